"""Model registry, shapes, in-model normalisation, checkpoints and bring-your-own models."""

from __future__ import annotations

import copy
import textwrap

import pytest
import torch
from torch import nn

import perception
from perception._models import RGB_MEAN, RGB_STD

torch.set_num_threads(1)


def _x(n: int = 2, h: int = 64, w: int = 128, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-default values so load tests can fail."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and name not in ("mean", "std"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.1)
    return model


def test_registry_lists_required_models():
    names = perception.model_names()
    assert names == sorted(names)
    for required in (perception.DEFAULT_MODEL, "roadseg_s_gn", "test_bn", "test_gn"):
        assert required in names


def test_unknown_model_error_lists_choices_in_one_line():
    with pytest.raises(ValueError) as info:
        perception.create_model("roadseg_x")
    msg = str(info.value)
    assert "\n" not in msg
    assert "roadseg_s" in msg and "test_bn" in msg  # close match + valid choices


def test_none_overrides_are_ignored_and_real_overrides_apply():
    m = perception.create_model("test_bn", num_classes=None, norm=None)
    assert m.num_classes == 19
    assert any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    m5 = perception.create_model("test_bn", num_classes=5, norm="gn").eval()
    assert m5(_x()).shape == (2, 5, 64, 128)
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m5.modules())
    with pytest.raises(ValueError, match="norm"):
        perception.create_model("test_bn", norm="ln")


@pytest.mark.parametrize("name", ["test_bn", "test_gn"])
@pytest.mark.parametrize("size", [(64, 128), (50, 90), (33, 47)])
@pytest.mark.parametrize("head", ["deconv", "bilinear"])
def test_logits_at_input_resolution(name, size, head):
    model = perception.create_model(name, head=head).eval()
    with torch.no_grad():
        y = model(_x(3, *size))
    assert y.shape == (3, 19, *size)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


def test_unknown_head_is_a_one_line_error():
    with pytest.raises(ValueError, match="head must be one of deconv, bilinear; got 'pixel'"):
        perception.create_model("test_bn", head="pixel")


def _lines(gen: torch.Generator, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey noise with four dark one-pixel-wide vertical lines per image (class 1)."""
    x = torch.rand(n, 3, 32, 64, generator=gen) * 0.2 + 0.4
    y = torch.zeros(n, 32, 64, dtype=torch.long)
    for i, cols in enumerate(torch.randint(0, 64, (n, 4), generator=gen)):
        x[i, :, :, cols] = 0.05
        y[i, :, cols] = 1
    return x, y


def _line_iou(head: str) -> float:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = perception.create_model("test_bn", num_classes=2, head=head)
    gen = torch.Generator().manual_seed(0)
    cfg = perception.TrainConfig(
        steps=120, lr=1e-2, warmup_steps=10, crop=None, hflip=False, hard_fraction=1.0
    )
    trained = perception.train(model, (_lines(gen) for _ in range(120)), cfg, progress=False)
    x, y = _lines(torch.Generator().manual_seed(99))
    metrics = perception.StreamMetrics(2)
    with torch.no_grad():
        metrics.update(trained.model(x), y)
    return metrics.compute()["per_class_iou"][1]


def test_default_head_segments_one_pixel_structures():
    # Poles and a pedestrian's legs are one or two pixels wide at 128x256. The transposed-conv
    # head learns where they lie inside each 2x2 block; bilinear upsampling of 1/2-resolution
    # logits smears them over their neighbours and loses them.
    deconv, bilinear = _line_iou("deconv"), _line_iou("bilinear")
    assert deconv > 0.4
    assert deconv > bilinear + 0.25


def test_norm_variants():
    bn = perception.create_model(perception.DEFAULT_MODEL)
    gn = perception.create_model("roadseg_s_gn")
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in gn.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in gn.modules())
    n_params = sum(p.numel() for p in bn.parameters())
    assert 20_000 < n_params < 2_000_000
    assert sum(p.numel() for p in perception.create_model("test_bn").parameters()) < 10_000


def test_normalisation_happens_inside_the_model():
    model = _randomise(perception.create_model("test_bn")).eval()
    plain = copy.deepcopy(model)
    plain.mean.zero_()
    plain.std.fill_(1.0)
    x = _x()
    mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(RGB_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        inside = model(x)
        by_hand = plain((x - mean) / std)
        raw = plain(x)
    torch.testing.assert_close(inside, by_hand, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(inside, raw, atol=1e-3)
    assert {"mean", "std"} <= set(model.state_dict())  # travel with checkpoints


def test_bad_input_shape_is_one_line_value_error():
    model = perception.create_model("test_bn").eval()
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 4, 32, 32))


def test_checkpoint_roundtrip_restores_outputs_and_metadata(tmp_path):
    src = _randomise(perception.create_model("test_bn")).eval()
    path = perception.save_checkpoint(src, tmp_path / "m.pt", {"note": "hello"})
    model = perception.load_model("test_bn", path)
    assert not model.training
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)
    meta = perception.read_checkpoint(path)["meta"]
    assert meta["model"] == "test_bn" and meta["note"] == "hello"
    assert meta["classes"] == list(perception.CLASS_NAMES)
    assert model.checkpoint_meta["note"] == "hello"
    assert "torch" in meta["versions"]


def test_bare_state_dict_loads(tmp_path):
    src = _randomise(perception.create_model("test_gn"), seed=3).eval()
    torch.save(src.state_dict(), tmp_path / "sd.pt")
    model = perception.load_model("test_gn", tmp_path / "sd.pt")
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)


def test_a_checkpoint_is_enough_on_its_own(tmp_path):
    """A checkpoint records its model: the path alone builds that model (a roadseg_m checkpoint
    is a roadseg_m, not the default roadseg_s), and another registered name is refused."""
    src = _randomise(perception.create_model("roadseg_m"), seed=5).eval()
    path = perception.save_checkpoint(src, tmp_path / "m.pt")
    x = _x()
    for model in (perception.load_model(str(path)), perception.load_model(path),
                  perception.load_model(weights=path)):  # fmt: skip
        assert model.model_name == "roadseg_m" and not model.training
        with torch.no_grad():
            torch.testing.assert_close(model(x), src(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"hold a 'roadseg_m' model, not 'roadseg_s'"):
        perception.load_model("roadseg_s", path)
    torch.save(src.state_dict(), tmp_path / "sd.pt")  # a bare state dict names no model
    with pytest.raises(ValueError, match=r"record no registered model.*roadseg_m"):
        perception.load_model(tmp_path / "sd.pt")


def test_mismatched_checkpoints_fail_in_one_line(tmp_path):
    perception.save_checkpoint(perception.create_model("test_bn"), tmp_path / "bn.pt")
    with pytest.raises(ValueError) as info:
        perception.load_model("test_gn", tmp_path / "bn.pt")
    msg = str(info.value)
    assert "\n" not in msg and "hold a 'test_bn' model, not 'test_gn'" in msg and len(msg) < 400
    torch.save(perception.create_model("test_bn").state_dict(), tmp_path / "bn_sd.pt")
    with pytest.raises(ValueError) as info:
        perception.load_model("test_gn", tmp_path / "bn_sd.pt")  # no name recorded: shapes
    assert "\n" not in str(info.value) and "do not fit" in str(info.value)

    five = perception.create_model("test_bn", num_classes=5)
    perception.save_checkpoint(five, tmp_path / "five.pt", {"classes": ["a", "b", "c", "d", "e"]})
    with pytest.raises(ValueError, match="5 classes, model has 19"):
        perception.load_model("test_bn", tmp_path / "five.pt")

    torch.save(five.state_dict(), tmp_path / "five_sd.pt")  # no metadata: shapes decide
    with pytest.raises(ValueError, match=r"shape mismatch.*classifier") as info:
        perception.load_model("test_bn", tmp_path / "five_sd.pt")
    assert "\n" not in str(info.value)


def test_unreadable_or_missing_weights_fail_in_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for path in (bad, tmp_path / "missing.pt"):
        with pytest.raises(ValueError) as info:
            perception.load_model("test_bn", path)
        assert "\n" not in str(info.value) and "weights" in str(info.value)


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoints_are_loaded_without_running_pickled_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="not a loadable checkpoint"):
        perception.load_model("test_bn", path)
    assert "code ran" not in capsys.readouterr().out


def test_module_factory_spec(tmp_path, monkeypatch):
    (tmp_path / "my_seg_models.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self, num_classes=19):
                    super().__init__()
                    self.num_classes = num_classes
                    self.conv = nn.Conv2d(3, num_classes, 1)
                def forward(self, x):
                    return self.conv(x)

            def build(num_classes=19):
                return Net(num_classes)

            def not_a_model():
                return 42
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = perception.create_model("my_seg_models:build", num_classes=None)
    assert model.model_name == "my_seg_models:build"
    _randomise(model)
    path = perception.save_checkpoint(model, tmp_path / "byo.pt")
    loaded = perception.load_model("my_seg_models:build", path)
    x = _x()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        perception.create_model("my_seg_models:not_a_model")
    with pytest.raises(ValueError, match="no attribute"):
        perception.create_model("my_seg_models:missing")
    with pytest.raises(ValueError, match="cannot import"):
        perception.create_model("no_such_module_anywhere:build")


def test_class_constants_match_the_simulator():
    import sim

    assert tuple(perception.CLASS_NAMES) == tuple(sim.CLASS_NAMES)
    assert perception.IGNORE_INDEX == sim.IGNORE_INDEX == 255
    names = [perception.CLASS_NAMES[i] for i in perception.SAFETY_CLASSES]
    assert names == ["person", "rider", "car", "truck", "bus", "motorcycle", "bicycle"]
