"""Batched per-frame counts must equal perception.StreamMetrics fed frame by frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import perception
from scenarios._fastmetrics import add_counts, batch_counts


@pytest.mark.parametrize("channels_last", [False, True])
def test_counts_match_stream_metrics_per_frame_and_in_total(channels_last):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 19, 16, 24, generator=g) * 4
    logits[0, :, 0, 0] = 1.0  # an exact tie: the first class wins, as with argmax
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    target = torch.randint(0, 19, (3, 16, 24), generator=g)
    target[1, :4] = 255
    counts = batch_counts(logits, target)
    total = perception.StreamMetrics()
    for j, f in enumerate(counts):
        ref = perception.StreamMetrics()
        ref.update(logits[j : j + 1], target[j : j + 1])
        np.testing.assert_array_equal(f.confusion, ref.confusion)
        np.testing.assert_array_equal(f.bin_count, ref.bin_count)
        np.testing.assert_allclose(f.bin_conf, ref.bin_conf, rtol=1e-6)
        assert f.entropy_sum == pytest.approx(ref.entropy_sum, rel=1e-6)
        assert f.pixels == 16 * 24
        add_counts(total, f)
    ref_all = perception.StreamMetrics()
    ref_all.update(logits, target)
    a, b = total.compute(), ref_all.compute()
    assert a["miou"] == b["miou"] and a["confusion"] == b["confusion"]
    assert a["ece"] == pytest.approx(b["ece"], abs=1e-9)
    assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-6)
    assert total.frames == 3


def test_entropy_and_prediction_against_numpy():
    z = np.array([2.0, -1.0, 0.5] + [-3.0] * 16, dtype=np.float32)
    logits = torch.from_numpy(z).view(1, 19, 1, 1)
    f = batch_counts(logits, torch.tensor([[[0]]]))[0]
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert f.entropy_sum == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-5)
    assert f.confusion[0, 0] == 1 and f.confusion.sum() == 1
    assert f.bin_conf.sum() == pytest.approx(p.max(), rel=1e-6)
    assert f.bin_count[int(np.ceil(p.max() * 15)) - 1] == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_any_non_finite_logit_is_refused_naming_the_frame(bad):
    logits = torch.zeros(3, 19, 8, 8)
    logits[2, 7, 5, 1] = bad
    with pytest.raises(FloatingPointError, match="non-finite logits at frame 12"):
        batch_counts(logits, torch.zeros(3, 8, 8, dtype=torch.long), first_frame=10)
