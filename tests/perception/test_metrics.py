"""Every stream metric against a direct, independent computation on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import perception

C = perception.NUM_CLASSES


def _batch(seed: int, n: int = 2, h: int = 6, w: int = 7, classes: int = C, sharp: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, h, w, generator=g) * sharp
    target = torch.randint(0, classes, (n, h, w), generator=g)
    # Make predictions partly right so IoUs are neither all 0 nor all 1.
    agree = torch.rand(n, h, w, generator=g) < 0.5
    logits.scatter_add_(1, target.unsqueeze(1), agree.unsqueeze(1).float() * 10)
    ignore = torch.rand(n, h, w, generator=g) < 0.15
    target[ignore] = 255
    return logits, target


def _direct(logits: torch.Tensor, target: torch.Tensor, bins: int = 15):
    """Pixel-by-pixel reference using plain Python over numpy arrays."""
    z = logits.double().numpy()
    t = target.numpy()
    n, c, h, w = z.shape
    cm = np.zeros((c, c), dtype=np.int64)
    ent_sum, pixels = 0.0, 0
    conf_list, correct_list = [], []
    for i in range(n):
        for y in range(h):
            for x in range(w):
                v = z[i, :, y, x]
                p = np.exp(v - v.max())
                p /= p.sum()
                ent_sum += -sum(q * math.log(q) for q in p if q > 0)
                pixels += 1
                if t[i, y, x] == 255:
                    continue
                k = int(np.argmax(p))
                cm[t[i, y, x], k] += 1
                conf_list.append(float(p[k]))
                correct_list.append(float(k == t[i, y, x]))
    ece = 0.0
    total = len(conf_list)
    for m in range(1, bins + 1):
        lo, hi = (m - 1) / bins, m / bins
        members = [j for j, cf in enumerate(conf_list) if lo < cf <= hi]
        if members:
            acc = sum(correct_list[j] for j in members) / len(members)
            conf = sum(conf_list[j] for j in members) / len(members)
            ece += len(members) / total * abs(acc - conf)
    ious = []
    pred_labels = np.argmax(z, axis=1)
    valid = t != 255
    for k in range(c):
        g_mask = (t == k) & valid
        p_mask = (pred_labels == k) & valid
        union = (g_mask | p_mask).sum()
        ious.append(float((g_mask & p_mask).sum() / union) if union else None)
    return cm, ious, ece, ent_sum / pixels


def test_confusion_matrix_counts_pairs_and_skips_ignore():
    pred = np.array([[0, 1, 2], [2, 2, 1]])
    target = np.array([[0, 2, 255], [2, 1, 1]])
    cm = perception.confusion_matrix(pred, target, num_classes=3)
    expected = np.zeros((3, 3), dtype=np.int64)
    for p, t in zip(pred.ravel(), target.ravel(), strict=True):
        if t != 255:
            expected[t, p] += 1
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == 5


def test_stream_metrics_match_direct_computation():
    metrics = perception.StreamMetrics()
    batches = [_batch(s) for s in range(3)]
    for logits, target in batches:
        metrics.update(logits, target)
    out = metrics.compute()
    logits = torch.cat([b[0] for b in batches])
    target = torch.cat([b[1] for b in batches])
    cm, ious, ece, entropy = _direct(logits, target)
    np.testing.assert_array_equal(np.array(out["confusion"]), cm)
    for got, want in zip(out["per_class_iou"], ious, strict=True):
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want, abs=1e-12)
    present = [v for v in ious if v is not None]
    assert out["miou"] == pytest.approx(sum(present) / len(present), abs=1e-12)
    assert out["pixel_acc"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-12)
    assert out["ece"] == pytest.approx(ece, abs=1e-6)
    assert out["entropy"] == pytest.approx(entropy, abs=1e-5)
    assert out["frames"] == 6
    for name, recall in out["safety_recall"].items():
        k = perception.CLASS_NAMES.index(name)
        gt = (target == k).sum().item()
        hit = ((target == k) & (logits.argmax(1) == k)).sum().item()
        assert recall == (pytest.approx(hit / gt) if gt else None)


def test_miou_counts_classes_present_in_prediction_or_ground_truth():
    # GT has classes 0 and 1; the prediction also invents class 2; class 3 appears nowhere.
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 0, 1, 2]]])
    logits = torch.nn.functional.one_hot(pred, 4).permute(0, 3, 1, 2).float() * 5
    m = perception.StreamMetrics(num_classes=4)
    m.update(logits, target)
    out = m.compute()
    assert out["per_class_iou"] == [1.0, 0.5, 0.0, None]
    assert out["miou"] == pytest.approx(0.5)
    assert perception.miou_from_confusion(np.array(out["confusion"])) == pytest.approx(0.5)
    assert out["safety_recall"] == {}  # no class names for a 4-class model


def test_absent_classes_are_none_and_empty_stream_is_nan():
    m = perception.StreamMetrics()
    out = m.compute()
    assert math.isnan(out["miou"]) and math.isnan(out["ece"]) and math.isnan(out["pixel_acc"])
    assert out["per_class_iou"] == [None] * C
    assert all(v is None for v in out["safety_recall"].values())
    assert len(out["safety_recall"]) == 7


def test_ece_is_zero_for_a_calibrated_toy_and_gap_for_an_overconfident_one():
    # Two classes, every pixel predicted with confidence 0.75; 3 of 4 right → calibrated.
    logit = math.log(3.0)
    logits = torch.tensor([[[[logit] * 4], [[0.0] * 4]]])  # (1, 2, 1, 4)
    m = perception.StreamMetrics(num_classes=2)
    m.update(logits, torch.tensor([[[0, 0, 0, 1]]]))
    assert m.compute()["ece"] == pytest.approx(0.0, abs=1e-6)
    m2 = perception.StreamMetrics(num_classes=2)
    m2.update(logits, torch.tensor([[[0, 1, 1, 1]]]))  # 1 of 4 right at confidence 0.75
    assert m2.compute()["ece"] == pytest.approx(0.5)


def test_merge_equals_single_accumulation():
    a, b, whole = perception.StreamMetrics(), perception.StreamMetrics(), perception.StreamMetrics()
    for s in range(4):
        logits, target = _batch(10 + s)
        (a if s % 2 else b).update(logits, target)
        whole.update(logits, target)
    merged = a.merge(b).compute()
    ref = whole.compute()
    assert merged["confusion"] == ref["confusion"]
    for k in ("miou", "pixel_acc", "ece", "entropy"):
        assert merged[k] == pytest.approx(ref[k], abs=1e-12)
    with pytest.raises(ValueError, match="same num_classes"):
        a.merge(perception.StreamMetrics(num_classes=4))


def test_numpy_targets_and_bad_inputs():
    logits, target = _batch(0)
    m = perception.StreamMetrics()
    m.update(logits, target.numpy().astype(np.uint8))
    assert m.compute()["frames"] == 2
    with pytest.raises(ValueError, match="target must have shape"):
        m.update(logits, target[:, :3])
    with pytest.raises(ValueError, match="classes"):
        m.update(logits[:, :5], target)
    with pytest.raises(TypeError, match="target"):
        m.update(logits, target.tolist())
    with pytest.raises(ValueError, match="target labels"):
        perception.confusion_matrix(np.zeros(3, int), np.array([0, 1, 40]), num_classes=19)
    with pytest.raises(ValueError, match="ece_bins"):
        perception.StreamMetrics(ece_bins=0)
