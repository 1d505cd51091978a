"""The second bundled model, roadseg_s_photo: registered, loadable, its recipe recorded, good."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import perception
import sim
from perception._models_io import pretrained_path
from scenarios._train_augment import PhotometricDistortion
from scenarios._train_data import SOURCE_TOWNS, VAL_SEED_BASE, render_frames

torch.set_num_threads(1)
NAME = "roadseg_s_photo"


def test_registered_bundled_and_loadable_in_eval_mode():
    assert NAME in perception.model_names() and NAME in perception.pretrained_names()
    assert pretrained_path(NAME).stat().st_size < 5 * 2**20
    model = perception.load_pretrained(NAME)
    assert not model.training and model.model_name == NAME
    default = perception.load_pretrained()
    assert [k for k in model.state_dict()] == [k for k in default.state_dict()]  # same network
    assert any(  # different weights
        not torch.equal(v, default.state_dict()[k]) for k, v in model.state_dict().items()
    )
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 128)).shape == (1, 19, 64, 128)


def test_metadata_records_the_recipe_and_validation_metrics():
    meta = perception.load_pretrained(NAME).checkpoint_meta
    assert meta["model"] == NAME and meta["classes"] == list(perception.CLASS_NAMES)
    assert meta["augment"] == PhotometricDistortion().config  # the exact pipeline it trained with
    cfg = meta["train_config"]
    assert cfg["steps"] == 12000 and cfg["seed"] == 0 and meta["steps_done"] == 12000
    default_cfg = perception.load_pretrained().checkpoint_meta["train_config"]
    assert {k: v for k, v in cfg.items() if k != "consistency_weight"} == default_cfg
    assert meta["data"]["batch_size"] == 16 and meta["threads"] >= 1
    assert meta["data"] == perception.load_pretrained().checkpoint_meta["data"]  # same frames
    val = meta["val_metrics"]
    assert val["frames"] == 576 and len(val["per_class_iou"]) == 19
    present = [v for v in val["per_class_iou"] if v is not None]
    assert val["miou"] == pytest.approx(sum(present) / len(present))


def test_segments_held_out_clean_frames_well():
    # 144 frames of the held-out validation drives (3 per source town), recomputed here. The
    # bound means something: a model that only knew road, sky and vegetation would score about
    # 0.2, and every large class must be recognised. Measured: 0.724 (roadseg_s's own bar, 0.70,
    # applies; its validation figure over all 576 frames is 0.783).
    images, labels = render_frames(
        SOURCE_TOWNS, [VAL_SEED_BASE + i for i in range(3)], frames_per_stream=72, stride=3
    )
    assert len(images) == 144
    batches = [(images[s : s + 48], labels[s : s + 48]) for s in range(0, 144, 48)]
    metrics = perception.evaluate(perception.load_pretrained(NAME), batches)
    iou = dict(zip(perception.CLASS_NAMES, metrics["per_class_iou"], strict=True))
    assert metrics["miou"] >= 0.70
    for cls in ("road", "sidewalk", "building", "vegetation", "sky", "car"):
        assert iou[cls] >= 0.80, (cls, iou[cls])  # measured: car 0.84, the others >= 0.93


def test_is_more_robust_to_colour_shifts_than_the_geometric_only_model():
    # What it is for: the same network and data, plus photometric jitter in training. On frames
    # of a held-out drive shifted in brightness and contrast (ImageNet-C's severity 3), it keeps
    # clearly more of its mIoU than roadseg_s.
    config = sim.WorldConfig(town="suburban")
    frames = list(sim.render_stream(config, seed=700_001, n_frames=32))
    labels = np.stack([f.semantic for f in frames])
    scores = {}
    for name in (perception.DEFAULT_MODEL, NAME):
        model = perception.load_pretrained(name)
        scores[name] = {}
        for corruption in ("brightness", "contrast"):
            images = np.stack(
                [sim.corrupt(f.image, corruption, 3, seed=i) for i, f in enumerate(frames)]
            )
            scores[name][corruption] = perception.evaluate(model, [(images, labels)])["miou"]
    for corruption in ("brightness", "contrast"):
        assert scores[NAME][corruption] > scores[perception.DEFAULT_MODEL][corruption] + 0.1
