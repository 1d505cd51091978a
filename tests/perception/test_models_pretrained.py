"""The bundled pretrained checkpoint: loads safely, carries its metadata, segments the world."""

from __future__ import annotations

import pytest
import torch

import perception
from perception._models_io import pretrained_path

torch.set_num_threads(1)


def test_bundled_default_loads_in_eval_mode_and_is_small():
    assert perception.DEFAULT_MODEL in perception.pretrained_names()
    path = pretrained_path()
    assert path.stat().st_size < 5 * 2**20
    model = perception.load_pretrained()
    assert not model.training and model.model_name == perception.DEFAULT_MODEL
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 128)).shape == (1, 19, 64, 128)


def test_bundled_metadata_has_the_required_fields():
    meta = perception.load_pretrained().checkpoint_meta
    assert meta["model"] == perception.DEFAULT_MODEL
    assert meta["classes"] == list(perception.CLASS_NAMES)
    assert meta["input_size"] == [128, 256]
    assert meta["train_config"]["steps"] >= 1 and "seed" in meta["train_config"]
    assert {"torch", "numpy", "python"} <= set(meta["versions"])
    val = meta["val_metrics"]
    # The band the bundled model must sit in: below it the source model is too weak to be worth
    # measuring; above it the world is too easy to leave headroom for shifts.
    assert 0.80 <= val["miou"] <= 0.97
    assert len(val["per_class_iou"]) == 19
    present = [v for v in val["per_class_iou"] if v is not None]
    assert val["miou"] == pytest.approx(sum(present) / len(present))
    assert meta["data"]["weather"] == "clear" and meta["data"]["time_of_day"] == "day"


def test_bundled_model_segments_a_fresh_clean_drive():
    sim = pytest.importorskip("sim")
    frames = list(sim.render_stream(sim.WorldConfig(town="urban"), seed=424242, n_frames=6))
    images = torch.stack([torch.from_numpy(f.image) for f in frames]).numpy()
    labels = torch.stack([torch.from_numpy(f.semantic) for f in frames]).numpy()
    metrics = perception.evaluate(perception.load_pretrained(), [(images, labels)])
    iou = dict(zip(perception.CLASS_NAMES, metrics["per_class_iou"], strict=True))
    assert metrics["pixel_acc"] > 0.8
    assert iou["road"] > 0.9 and iou["sky"] > 0.9


def test_unknown_pretrained_name_lists_choices():
    with pytest.raises(ValueError, match="no bundled weights for model 'test_bn'") as info:
        perception.load_pretrained("test_bn")
    assert perception.DEFAULT_MODEL in str(info.value) and "\n" not in str(info.value)
