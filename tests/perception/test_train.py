"""Source training: determinism, augmentation consistency, checkpoints, validation, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import perception
from perception._train import _augment

torch.set_num_threads(1)


def _toy_batches(n_batches: int, seed: int = 0, n: int = 4, h: int = 32, w: int = 64):
    """Images whose colour defines the label: red pixels are class 0, green 8, blue 10."""
    rng = np.random.default_rng(seed)
    colours = {0: (200, 30, 30), 8: (30, 200, 30), 10: (30, 30, 200)}
    out = []
    for _ in range(n_batches):
        labels = np.zeros((n, h, w), dtype=np.uint8)
        for i in range(n):
            labels[i] = rng.choice([0, 8, 10], size=(1, 1))
            y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
            labels[i, y0 : y0 + h // 2, x0 : x0 + w // 2] = rng.choice([0, 8, 10])
        images = np.zeros((n, h, w, 3), dtype=np.uint8)
        for k, c in colours.items():
            images[labels == k] = c
        labels[:, 0, :] = 255  # an ignored row
        out.append((images, labels))
    return out


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_bit_for_bit_and_global_rng_untouched():
    data = _toy_batches(3)
    cfg = perception.TrainConfig(steps=3, seed=7, crop=(24, 48), warmup_steps=1)
    before = torch.get_rng_state()
    a = perception.train("test_bn", data, cfg, progress=False)
    b = perception.train("test_bn", data, cfg, progress=False)
    assert torch.equal(before, torch.get_rng_state())
    sa, sb = _state(a.model), _state(b.model)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = perception.train("test_bn", data, perception.TrainConfig(steps=3, seed=8), progress=False)
    assert any(not torch.equal(sa[k], v) for k, v in _state(c.model).items())
    assert len(a.history) == 3 and a.history[0]["lr"] > 0
    assert not a.model.training


def test_training_learns_a_toy_task_and_checkpoint_records_metadata(tmp_path):
    data = _toy_batches(80, seed=1)
    val = _toy_batches(2, seed=99)
    cfg = perception.TrainConfig(
        steps=80, lr=3e-2, warmup_steps=5, crop=None, seed=0, hard_fraction=1.0
    )
    untrained = perception.evaluate(perception.create_model("test_bn"), val)
    res = perception.train(
        "test_bn",
        data,
        cfg,
        val_batches=val,
        out=tmp_path / "toy.pt",
        progress=False,
        meta={"data": {"kind": "toy"}},
    )
    val_miou = res.meta["val_metrics"]["miou"]
    assert val_miou > 0.75 and untrained["miou"] < 0.5
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    meta = perception.read_checkpoint(res.path)["meta"]
    for key in ("model", "classes", "input_size", "train_config", "val_metrics", "versions"):
        assert key in meta
    assert meta["model"] == "test_bn" and meta["input_size"] == [32, 64]
    assert meta["train_config"]["steps"] == 80 and meta["data"] == {"kind": "toy"}
    assert len(meta["val_metrics"]["per_class_iou"]) == 19
    reloaded = perception.load_model("test_bn", res.path)
    assert perception.evaluate(reloaded, val)["miou"] == pytest.approx(val_miou)


def test_augmentation_moves_images_and_labels_together():
    # Encode each pixel's label in its red channel; any crop/flip must keep them equal.
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 19, (6, 20, 30), generator=g)
    x = torch.stack(
        [
            y.float() / 255,
            torch.zeros_like(y, dtype=torch.float32),
            torch.zeros_like(y, dtype=torch.float32),
        ],
        dim=1,
    )
    cfg = perception.TrainConfig(crop=(12, 16), hflip=True)
    xa, ya = _augment(x, y, cfg, torch.Generator().manual_seed(1))
    assert xa.shape == (6, 3, 12, 16) and ya.shape == (6, 12, 16)
    torch.testing.assert_close((xa[:, 0] * 255).round().long(), ya)
    mirrored = []
    for i in range(6):  # every crop is a window of the original, mirrored or not
        found = {
            flipped
            for flipped, src in ((False, y[i]), (True, y[i].flip(-1)))
            for t in range(20 - 12 + 1)
            for s in range(30 - 16 + 1)
            if torch.equal(src[t : t + 12, s : s + 16], ya[i])
        }
        assert len(found) == 1  # random labels: exactly one of the two orientations fits
        mirrored.append(found.pop())
    assert True in mirrored and False in mirrored  # both branches of the flip were taken


def test_images_to_tensor_conversions():
    img = np.full((2, 4, 5, 3), 255, dtype=np.uint8)
    img[..., 1] = 0
    t = perception.images_to_tensor(img)
    assert t.shape == (2, 3, 4, 5) and t.dtype == torch.float32
    assert torch.equal(t[:, 0], torch.ones(2, 4, 5)) and torch.equal(t[:, 1], torch.zeros(2, 4, 5))
    f = torch.rand(1, 3, 4, 5)
    assert torch.equal(perception.images_to_tensor(f), f)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        perception.images_to_tensor(np.zeros((2, 4, 5), dtype=np.uint8))
    with pytest.raises(TypeError, match="images"):
        perception.images_to_tensor([1, 2, 3])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"steps": 0}, "steps"),
        ({"lr": 0.0}, "lr"),
        ({"crop": (10,)}, "crop"),
        ({"seed": -1}, "seed"),
        ({"weight_decay": -1.0}, "weight_decay"),
    ],
)
def test_train_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}"):
        perception.TrainConfig(**kwargs)


def test_train_rejects_bad_arguments():
    with pytest.raises(TypeError, match="config"):
        perception.train("test_bn", _toy_batches(1), config={"steps": 1})
    with pytest.raises(ValueError, match="unknown model"):
        perception.train("nope", _toy_batches(1), progress=False)


def test_class_weights_weight_the_loss_per_pixel_class():
    images, labels = _toy_batches(1, seed=3)[0]
    weights = [0.0] * 19
    weights[8] = 2.0  # only class 8 (green) pixels count
    cfg = perception.TrainConfig(
        steps=1, crop=None, hflip=False, seed=5, class_weights=weights, hard_fraction=1.0
    )
    res = perception.train("test_bn", [(images, labels)], cfg, progress=False)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        fresh = perception.create_model("test_bn")
    logits = fresh(perception.images_to_tensor(images))
    y = torch.from_numpy(labels).long()
    per_pixel = torch.nn.functional.cross_entropy(logits, y, ignore_index=255, reduction="none")
    expected = per_pixel[y == 8].mean().item()
    assert res.history[0]["loss"] == pytest.approx(expected, rel=1e-5)
    assert res.meta["train_config"]["class_weights"] == weights
    with pytest.raises(ValueError, match="class_weights has 3 entries"):
        perception.train(
            "test_bn",
            [(images, labels)],
            perception.TrainConfig(class_weights=(1, 1, 1)),
            progress=False,
        )
    with pytest.raises(ValueError, match=r"TrainConfig\.class_weights"):
        perception.TrainConfig(class_weights=(1.0, -1.0))


def test_hard_fraction_averages_only_the_hardest_pixels():
    images, labels = _toy_batches(1, seed=4)[0]
    cfg = perception.TrainConfig(steps=1, crop=None, hflip=False, seed=2, hard_fraction=0.1)
    res = perception.train("test_bn", [(images, labels)], cfg, progress=False)
    with torch.random.fork_rng():
        torch.manual_seed(2)
        fresh = perception.create_model("test_bn")
    y = torch.from_numpy(labels).long()
    per_pixel = torch.nn.functional.cross_entropy(
        fresh(perception.images_to_tensor(images)), y, ignore_index=255, reduction="none"
    )
    valid = sorted(per_pixel[y != 255].tolist(), reverse=True)
    k = round(0.1 * len(valid))
    assert res.history[0]["loss"] == pytest.approx(sum(valid[:k]) / k, rel=1e-5)
    assert res.history[0]["loss"] > sum(valid) / len(valid)
    with pytest.raises(ValueError, match=r"TrainConfig\.hard_fraction"):
        perception.TrainConfig(hard_fraction=0.0)


@pytest.mark.parametrize("hard_fraction", [1.0, 0.3])
def test_loss_and_gradients_do_not_depend_on_the_logits_memory_layout(hard_fraction):
    # Registered models return channels-last logits; a user's model may return NCHW-contiguous
    # ones. Both must give the same loss and gradient, and both must match a per-pixel
    # computation written out by hand (class weights, ignore label, hardest-fraction mean).
    from perception._train import _loss

    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 19, 5, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 19, (2, 5, 7), generator=g)
    y[1, 0] = 255
    weight = torch.rand(19, generator=g, dtype=torch.float64) + 0.5
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        x = logits.clone().contiguous(memory_format=layout).requires_grad_()
        loss = _loss(x, y, weight, hard_fraction)
        loss.backward()
        results.append((loss.item(), x.grad.clone()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)
    # By hand: weighted negative log-softmax of the true class; mean of the hardest fraction.
    lp = logits.log_softmax(1).permute(0, 2, 3, 1).reshape(-1, 19).numpy()
    t = y.reshape(-1).numpy()
    per = np.array([-lp[i, c] * weight[c].item() for i, c in enumerate(t) if c != 255])
    if hard_fraction == 1.0:
        w = np.array([weight[c].item() for c in t if c != 255])
        expected = per.sum() / w.sum()  # torch's weighted mean divides by the weights' sum
    else:
        k = max(1, round(hard_fraction * per.size))
        expected = np.sort(per)[::-1][:k].mean()
    assert results[0][0] == pytest.approx(expected, rel=1e-10)


def test_uint8_frames_and_their_float_tensors_train_identically():
    # train() crops and flips uint8 frames before converting them (cheaper); the batches it
    # trains on must be exactly those of the converted frames, random draws included.
    batches = _toy_batches(3, seed=6)
    as_float = [(perception.images_to_tensor(img), lab) for img, lab in batches]
    cfg = perception.TrainConfig(steps=3, crop=(20, 40), seed=4)
    a = perception.train("test_bn", batches, cfg, progress=False)
    b = perception.train("test_bn", as_float, cfg, progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    sb = b.model.state_dict()
    for name, va in a.model.state_dict().items():
        assert torch.equal(va, sb[name]), name
