"""Pixel-level training augmentations: photometric distortion, AugMix, and how train() runs them."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

import perception
from scenarios import _augmix as am
from scenarios._train_augment import AUGMENT_NAMES, PhotometricDistortion, make_augment

torch.set_num_threads(1)


def _frames(n: int = 4, seed: int = 0, h: int = 24, w: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _toy_batches(n: int, seed: int = 0, h: int = 32, w: int = 64) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        labels = rng.integers(0, 19, (4, h, w), dtype=np.uint8)
        labels[:, :2] = 255
        images = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
        out.append((images, labels))
    return out


class _Recorder(torch.nn.Module):
    """Wraps a model and keeps the batches (and their labels, via a hook) train() feeds it."""

    def __init__(self, name: str = "test_bn", seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.inner = perception.create_model(name)
        self.num_classes = 19
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(x.detach().clone())
        return self.inner(x)


# --------------------------------------------------------------------------- photometric
def test_photometric_is_seeded_keeps_uint8_and_changes_pixels():
    frames = _frames(8)
    pd = PhotometricDistortion()
    a = pd(frames, np.random.default_rng(1))
    b = pd(frames, np.random.default_rng(1))
    c = pd(frames, np.random.default_rng(2))
    assert a.dtype == np.uint8 and a.shape == frames.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a != frames).mean() > 0.3  # most frames get at least one of the four steps
    assert np.array_equal(frames, _frames(8))  # the input is not modified


def test_photometric_brightness_and_contrast_follow_mmseg_independently():
    # On grey frames saturation and hue do nothing, so each output is contrast(brightness(v)):
    # brightness adds U(-32, 32) with p 0.5, contrast multiplies by U(0.5, 1.5) with p 0.5, drawn
    # independently. One frame per call: albumentations' set_random_seed alone gives every
    # transform the same seed, so the first frame after each reseed gets both steps or neither
    # (half those frames untouched instead of a quarter).
    v = 100
    pd, rng = PhotometricDistortion(), np.random.default_rng(0)
    frame = np.full((1, 1, 1, 3), v, dtype=np.uint8)
    out = np.concatenate([pd(frame, rng)[:, 0, 0] for _ in range(800)])
    assert (out[:, 0] == out[:, 1]).all() and (out[:, 1] == out[:, 2]).all()  # stays grey
    out = out[:, 0].astype(int)
    assert abs((out == v).mean() - 0.25) < 0.06  # 4 standard deviations
    assert out.min() >= (v - 32) * 0.5 - 1 and out.max() <= (v + 32) * 1.5 + 1
    assert out.min() < 50 and out.max() > 170  # both ranges are used
    shifted_only = out[(out != v) & (np.abs(out - v) <= 32)]
    assert len(shifted_only) > 0.2 * len(out)


def test_photometric_hue_shift_is_at_most_18_opencv_units_with_p_half():
    # Adding a constant, multiplying, or blending with grey leaves hue unchanged (no channel
    # clips for this colour): only the hue step moves it, by at most mmseg's 18 of OpenCV's 180.
    colour = np.array([120, 70, 50], dtype=np.uint8)
    frames = np.broadcast_to(colour, (3000, 1, 1, 3)).copy()
    out = PhotometricDistortion()(frames, np.random.default_rng(3))

    def hue(x: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(x.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV)[:, 0, 0].astype(int)

    d = (hue(out) - hue(frames) + 90) % 180 - 90
    assert np.abs(d).max() <= 18 + 2  # uint8 rounding of the other steps
    assert np.abs(d).max() >= 15
    moved = (np.abs(d) > 2).mean()
    assert 0.5 * 30 / 36 - 0.05 < moved < 0.5 * 34 / 36 + 0.05  # p 0.5 × P(|shift| > 2)


def test_photometric_config_is_recordable():
    config = PhotometricDistortion().config
    assert config["name"] == "photometric" and config["brightness_delta"] == 32
    assert config["contrast_range"] == [0.5, 1.5] and config["hue_delta"] == 18
    assert config["albumentations"]["transform"]["__class_fullname__"] == "Compose"


def test_make_augment_names_and_unknown_name():
    assert AUGMENT_NAMES == ("none", "photometric", "augmix")
    assert make_augment("none") is None
    assert isinstance(make_augment("photometric"), PhotometricDistortion)
    assert isinstance(make_augment("augmix"), am.AugMix)
    with pytest.raises(ValueError, match="valid choices: none, photometric, augmix"):
        make_augment("noise")


# --------------------------------------------------------------------------- train() hook
def test_none_feeds_todays_batches():
    # Without ``augment`` the batches are the geometric-only recipe of the bundled roadseg_s: the
    # data order, then per batch the crop offsets and the flips from one torch generator seeded
    # by TrainConfig.seed, in that order, recomputed here by hand.
    batches = _toy_batches(3, seed=5)
    cfg = perception.TrainConfig(steps=3, crop=(20, 36), seed=4)
    model = _Recorder()
    perception.train(model, batches, cfg, progress=False)
    gen = torch.Generator().manual_seed(4)
    for (images, _), seen in zip(batches, model.seen, strict=True):
        tops = torch.randint(0, 32 - 20 + 1, (4,), generator=gen).tolist()
        lefts = torch.randint(0, 64 - 36 + 1, (4,), generator=gen).tolist()
        flips = (torch.rand(4, generator=gen) < 0.5).tolist()
        for i in range(4):
            crop = images[i, tops[i] : tops[i] + 20, lefts[i] : lefts[i] + 36]
            crop = crop[:, ::-1] if flips[i] else crop
            expected = torch.from_numpy(crop.copy()).permute(2, 0, 1).float() / 255
            assert torch.equal(seen[i], expected)


def test_identity_augment_trains_bit_identically_to_none():
    # The hook draws nothing from the crop/flip generator and adds no numerical step.
    batches = _toy_batches(3, seed=6)
    cfg = perception.TrainConfig(steps=3, crop=(20, 40), seed=2)
    a = perception.train("test_bn", batches, cfg, progress=False)
    b = perception.train("test_bn", batches, cfg, progress=False, augment=lambda f, rng: f.copy())
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    sb = b.model.state_dict()
    assert all(torch.equal(v, sb[k]) for k, v in a.model.state_dict().items())
    assert a.meta["augment"] is None and b.meta["augment"].endswith("<lambda>")


def test_photometric_changes_pixels_never_labels_in_training():
    labels_seen: dict[str, list] = {"none": [], "photometric": []}

    def loss_spy(key):
        original = perception._train._loss

        def spy(logits, y, weight, hard_fraction):
            labels_seen[key].append(y.clone())
            return original(logits, y, weight, hard_fraction)

        return spy

    batches = _toy_batches(3, seed=7)
    cfg = perception.TrainConfig(steps=3, crop=(20, 40), seed=1)
    seen = {}
    for key, augment in (("none", None), ("photometric", PhotometricDistortion())):
        model = _Recorder()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(perception._train, "_loss", loss_spy(key))
            perception.train(model, batches, cfg, progress=False, augment=augment)
        seen[key] = model.seen
    for y0, y1 in zip(labels_seen["none"], labels_seen["photometric"], strict=True):
        assert torch.equal(y0, y1)
    changed = [
        not torch.equal(a, b) for a, b in zip(seen["none"], seen["photometric"], strict=True)
    ]
    assert all(changed)
    for x in seen["photometric"]:  # still frames on the uint8 grid in [0, 1]
        assert 0 <= x.min() and x.max() <= 1 and torch.equal((x * 255).round() / 255, x)


def test_training_with_photometric_is_deterministic_and_recorded(tmp_path):
    batches = _toy_batches(2, seed=8)
    cfg = perception.TrainConfig(steps=2, crop=(20, 40), seed=3)
    runs = [
        perception.train("test_bn", batches, cfg, progress=False, augment=PhotometricDistortion())
        for _ in range(2)
    ]
    sa, sb = (r.model.state_dict() for r in runs)
    assert all(torch.equal(v, sb[k]) for k, v in sa.items())
    other = perception.train(
        "test_bn",
        batches,
        perception.TrainConfig(steps=2, crop=(20, 40), seed=4),
        progress=False,
        augment=PhotometricDistortion(),
    )
    assert other.history[0]["loss"] != runs[0].history[0]["loss"]
    assert runs[0].meta["augment"]["name"] == "photometric"


def test_bad_augment_output_is_a_one_line_error():
    batches = _toy_batches(1)
    cfg = perception.TrainConfig(steps=1, crop=None)
    for bad in (lambda f, rng: f.astype(np.float32), lambda f, rng: f[:, :5], lambda f, rng: None):
        with pytest.raises(ValueError, match="augment must return uint8 frames") as info:
            perception.train("test_bn", batches, cfg, progress=False, augment=bad)
        assert "\n" not in str(info.value)
    floats = [(perception.images_to_tensor(batches[0][0]), batches[0][1])]
    with pytest.raises(ValueError, match="augment needs uint8"):
        perception.train("test_bn", floats, cfg, progress=False, augment=lambda f, rng: f)


# --------------------------------------------------------------------------- AugMix
def _pil_op(name: str, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The reference's operation through Pillow, levels drawn as the reference draws them."""
    pil = Image.fromarray(image)
    if name == "autocontrast":
        return np.asarray(ImageOps.autocontrast(pil))
    if name == "equalize":
        return np.asarray(ImageOps.equalize(pil))
    level = rng.uniform(0.1, 3.0)
    if name == "posterize":
        return np.asarray(ImageOps.posterize(pil, 4 - int(level * 4 / 10)))
    return np.asarray(ImageOps.solarize(pil, 256 - int(level * 256 / 10)))


@pytest.mark.parametrize("name", sorted(am.AUGMIX_OPS))
def test_augmix_ops_equal_pillow(name):
    rng = np.random.default_rng(11)
    for trial in range(20):
        lo, hi = sorted(rng.integers(0, 256, 2))
        image = rng.integers(lo, hi + 1, (9, 13, 3), dtype=np.uint8)
        if trial % 4 == 0:  # few distinct levels: the histogram edge cases
            image = image // 64 * 64
        ours_rng, ref_rng = copy.deepcopy(rng), copy.deepcopy(rng)
        ours = am.AUGMIX_OPS[name](image, 3.0, ours_rng)
        assert ours.dtype == np.uint8
        assert np.array_equal(ours, _pil_op(name, image, ref_rng)), (name, trial)
        rng = ours_rng


def test_augmix_mixture_equals_a_hand_computation():
    # Draw order as in the reference's aug(): Dirichlet weights, Beta skip weight, then per chain
    # its depth (1-3) and per step the operation and its level.
    aug = am.AugMix(ops=("autocontrast", "equalize", "posterize", "solarize"))
    image = _frames(1, seed=4, h=16, w=20)[0]
    rng = np.random.default_rng(21)
    got = aug.augment(image, copy.deepcopy(rng))
    weights = rng.dirichlet([1.0] * 3).astype(np.float32)
    m = np.float32(rng.beta(1.0, 1.0))
    mix = np.zeros(image.shape, np.float32)
    for w in weights:
        chain = image
        for _ in range(int(rng.integers(1, 4))):
            chain = _pil_op(aug.ops[int(rng.integers(4))], chain, rng)
        mix += w * chain
    expected = np.clip(np.rint((1 - m) * image + m * mix), 0, 255).astype(np.uint8)
    assert np.array_equal(got, expected)


def test_augmix_views_are_seeded_uint8_and_keep_the_clean_frames():
    frames = _frames(3, seed=2)
    aug = am.AugMix()
    a = aug(frames, np.random.default_rng(5))
    b = aug(frames, np.random.default_rng(5))
    assert len(a) == 3 and a[0] is frames  # clean first, as the reference's (x, aug, aug)
    for va, vb in zip(a, b, strict=True):
        assert va.dtype == np.uint8 and va.shape == frames.shape and np.array_equal(va, vb)
    assert not np.array_equal(a[1], a[2]) and not np.array_equal(a[1], frames)
    single = am.AugMix(jsd=False)(frames, np.random.default_rng(5))
    assert isinstance(single, np.ndarray) and single.shape == frames.shape
    assert am.AugMix().config["ops"] == ["autocontrast", "equalize", "solarize"]
    with pytest.raises(ValueError, match="unknown"):
        am.AugMix(ops=("rotate",))


def test_jensen_shannon_term_equals_a_hand_computation():
    from perception._train import _jensen_shannon

    g = torch.Generator().manual_seed(0)
    views = [torch.randn(2, 19, 3, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    views[2][0, :, 0, 0] = torch.tensor([60.0] + [-60.0] * 18)  # a near one-hot: the clamp acts
    p = [v.softmax(1).permute(0, 2, 3, 1).reshape(-1, 19).numpy() for v in views]
    total = 0.0
    for row in range(p[0].shape[0]):
        mixture = np.clip(sum(q[row] for q in p) / 3, 1e-7, 1)
        for q in p:
            nz = q[row] > 0
            total += float(np.sum(q[row][nz] * (np.log(q[row][nz]) - np.log(mixture[nz]))))
    expected = total / (3 * p[0].shape[0])  # mean over views, then over pixels of all images
    assert _jensen_shannon(views).item() == pytest.approx(expected, rel=1e-9)
    same = [views[0]] * 3
    assert _jensen_shannon(same).item() == pytest.approx(0.0, abs=1e-12)


def test_augmix_training_step_is_clean_cross_entropy_plus_12_jsd():
    from perception._train import _jensen_shannon, _loss

    captured = []

    def spy(frames, rng):
        views = am.AugMix()(frames, rng)
        captured.append([torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255 for v in views])
        return views

    images, labels = _toy_batches(1, seed=9)[0]
    cfg = perception.TrainConfig(steps=1, crop=None, hflip=False, seed=6)
    res = perception.train("test_bn", [(images, labels)], cfg, progress=False, augment=spy)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(6)
        fresh = perception.create_model("test_bn").train()  # BatchNorm over all views at once
    logits = fresh(torch.cat(captured[0])).split(4)
    y = torch.from_numpy(labels).long()
    ce = _loss(logits[0], y, None, cfg.hard_fraction)
    assert torch.equal(captured[0][0], perception.images_to_tensor(images))
    expected = ce + 12.0 * _jensen_shannon(logits)
    assert res.history[0]["loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert res.meta["augment"].endswith("spy")  # a plain function: its name is recorded
    assert res.meta["train_config"]["consistency_weight"] == 12.0


# --------------------------------------------------------------------------- the command line
def test_cli_train_with_an_augment_records_the_recipe(tmp_path, capsys):
    from scenarios.cli import main

    out = tmp_path / "m.pt"
    code = main(["train", "--model", "test_bn", "-o", str(out), "--steps", "2",
                 "--batch-size", "2", "--streams", "1", "--towns", "urban",
                 "--frames-per-stream", "6", "--val-streams", "1", "--threads", "1",
                 "--augment", "augmix", "--quiet"])  # fmt: skip
    assert code == 0 and out.is_file()
    meta = perception.read_checkpoint(out)["meta"]
    assert meta["augment"] == am.AugMix().config
    assert meta["train_config"]["steps"] == 2 and meta["train_config"]["seed"] == 0
    assert meta["threads"] == 1 and meta["steps_done"] == 2
    assert main(["train", "-o", str(tmp_path / "x.pt"), "--augment", "noise"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "invalid choice: 'noise'" in err
    assert "photometric" in err and not (tmp_path / "x.pt").exists()
