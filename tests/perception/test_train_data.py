"""The world-driven training feed (``scenarios._train_data``): rendering, batches, train_default."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import perception
from scenarios import _train_data as td

torch.set_num_threads(1)


def test_render_frames_shapes_stride_and_determinism():
    a_img, a_lab = td.render_frames(
        ["urban"], [5, 6], frames_per_stream=6, stride=2, height=64, width=128
    )
    assert a_img.shape == (6, 64, 128, 3) and a_img.dtype == np.uint8
    assert a_lab.shape == (6, 64, 128) and a_lab.dtype == np.uint8
    labels = set(np.unique(a_lab).tolist())
    assert labels <= set(range(19)) | {255} and len(labels) >= 5
    b_img, b_lab = td.render_frames(
        ["urban"], [5, 6], frames_per_stream=6, stride=2, height=64, width=128
    )
    assert np.array_equal(a_img, b_img) and np.array_equal(a_lab, b_lab)
    assert not np.array_equal(a_img[0], a_img[3])  # different seeds, different drives


def test_shuffled_batches_are_seeded_epochs_without_repeats():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1).repeat(3, axis=-1)
    labels = np.arange(10, dtype=np.uint8).reshape(10, 1, 1)
    it = td.shuffled_batches(images, labels, 3, seed=4)
    epoch = [next(it) for _ in range(3)]  # 3 full batches of 3 per 10-frame epoch
    seen = np.concatenate([lab.ravel() for _, lab in epoch])
    assert len(set(seen.tolist())) == 9
    for img, lab in epoch:
        assert np.array_equal(img[:, 0, 0, 0], lab[:, 0, 0])
    again = td.shuffled_batches(images, labels, 3, seed=4)
    assert all(np.array_equal(next(again)[1], b[1]) for b in epoch)
    with pytest.raises(ValueError, match="batch_size"):
        next(td.shuffled_batches(images, labels, 11, seed=0))


def test_source_data_validation():
    with pytest.raises(ValueError, match="streams"):
        td.SourceData(streams=0)
    with pytest.raises(ValueError, match="towns"):
        td.SourceData(towns="urban")


def test_train_default_writes_a_checkpoint_with_source_metadata(tmp_path):
    out = tmp_path / "m.pt"
    res = td.train_default(
        out,
        model="test_bn",
        steps=2,
        batch_size=2,
        streams=1,
        towns=["urban"],
        frames_per_stream=6,
        val_streams=1,
        quiet=True,
    )
    meta = perception.read_checkpoint(out)["meta"]
    assert meta["data"]["towns"] == ["urban"] and meta["data"]["weather"] == "clear"
    assert meta["data"]["train_frames"] == 2 and meta["data"]["val_frames"] == 2
    assert set(meta["data"]["train_seeds"]).isdisjoint(meta["data"]["val_seeds"])
    assert meta["steps_done"] == 2 and "miou" in meta["val_metrics"]
    # the total covers the rendering and the training (three values rounded to 0.1 s each)
    assert meta["total_seconds"] >= meta["render_seconds"] + meta["train_seconds"] - 0.15
    assert res.path == out
    with pytest.raises(ValueError, match="unknown model"):
        td.train_default(tmp_path / "x.pt", model="nope", quiet=True)


def test_balanced_class_weights_follow_inverse_sqrt_frequency():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1 + [255] * 5, dtype=np.uint8)
    w = td.balanced_class_weights(labels, num_classes=4, power=0.5, max_weight=100.0)
    freq = np.array([0.9, 0.09, 0.01])
    raw = freq**-0.5
    expected = raw / (freq * raw).sum()
    assert w[:3] == pytest.approx(tuple(expected), abs=1e-4)
    assert w[3] == 0.0  # absent class
    capped = td.balanced_class_weights(labels, num_classes=4, power=0.5, max_weight=2.0)
    assert max(capped) == 2.0
