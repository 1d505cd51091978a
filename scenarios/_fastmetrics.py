"""Per-frame metric counts for a whole batch in a handful of tensor passes.

The runner needs per-frame rows (timelines), per-segment rows and per-cell totals. Feeding
``perception.StreamMetrics`` frame by frame costs more than the model's forward pass at 128x256
(log-softmax, exp, entropy and max as separate full passes over the 19-channel logits). Here one
batch gives every frame's counts at once, in the same definitions: argmax prediction, confidence
= max softmax probability, Shannon entropy of the softmax, ECE bin m holding confidences in
((m-1)/M, m/M]. The counts are then loaded into ``perception.StreamMetrics`` accumulators, whose
``compute()`` (the mIoU rule, safety recall, ECE) stays the single source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import perception

__all__ = ["FrameCounts", "accumulator", "add_counts", "batch_counts"]


@dataclass
class FrameCounts:
    """Counts of one frame (the fields ``StreamMetrics`` accumulates)."""

    confusion: np.ndarray  # (C, C) int64, rows = ground truth
    bin_count: np.ndarray  # (M,) int64
    bin_conf: np.ndarray  # (M,) float64
    bin_correct: np.ndarray  # (M,) float64
    entropy_sum: float
    pixels: int


@torch.no_grad()
def batch_counts(
    logits: torch.Tensor, target: torch.Tensor, num_classes: int = 19, ignore_index: int = 255,
    ece_bins: int = 15, first_frame: int = 0,
) -> list[FrameCounts]:  # fmt: skip
    """Per-frame counts for ``logits`` (N, C, H, W) against ``target`` (N, H, W).

    Raises ``FloatingPointError`` when any logit is NaN or infinite (naming the frame, counted
    from ``first_frame``)."""
    n, c, h, w = logits.shape
    if c != num_classes:
        raise ValueError(f"logits have {c} classes, expected {num_classes}")
    # Class planes are contiguous here, so every pass below is vectorised across pixels
    # (reductions over a trailing axis of 19 are several times slower on CPU).
    z = logits.detach().float().contiguous()
    zmax = z.amax(1, keepdim=True)
    # argmax as the first class reaching the max (torch.argmax's tie rule), via a fast amax
    rank = torch.arange(c, 0, -1, dtype=torch.uint8).view(1, c, 1, 1)
    pred = (c - ((z == zmax) * rank).amax(1).long()).reshape(-1)
    e = (z - zmax).exp_()
    s = e.sum(1)
    ez = e.mul_(z).sum(1)
    entropy = (s.log() + zmax.squeeze(1) - ez / s).reshape(-1)  # log S + max - sum(e z) / S
    # Any NaN/inf logit makes the max or the entropy of its pixel non-finite: checking these
    # per-pixel values is ~19x cheaper than isfinite over every logit.
    finite = torch.isfinite(entropy).view(n, -1).all(1) & torch.isfinite(zmax).view(n, -1).all(1)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        raise FloatingPointError(f"non-finite logits at frame {first_frame + bad}")
    conf = s.reciprocal().reshape(-1)  # the max probability is exp(0) / S
    frame = torch.arange(n).repeat_interleave(h * w)
    t = target.reshape(-1).long()
    keep = t != ignore_index
    tk, pk, fk = t[keep], pred[keep], frame[keep]
    cm = torch.bincount(fk * (c * c) + tk * c + pk, minlength=n * c * c).view(n, c, c)
    ck = conf[keep].double()
    correct = (pk == tk).double()
    b = (torch.ceil(ck * ece_bins).long() - 1).clamp_(0, ece_bins - 1) + fk * ece_bins
    size = n * ece_bins
    bc = torch.bincount(b, minlength=size).view(n, ece_bins).numpy()
    bconf = torch.bincount(b, weights=ck, minlength=size).view(n, ece_bins).numpy()
    bcorr = torch.bincount(b, weights=correct, minlength=size).view(n, ece_bins).numpy()
    ent = entropy.double().view(n, -1).sum(1).numpy()
    cm_np = cm.numpy().astype(np.int64)
    return [
        FrameCounts(cm_np[i], bc[i].astype(np.int64), bconf[i], bcorr[i], float(ent[i]), h * w)
        for i in range(n)
    ]


def accumulator() -> perception.StreamMetrics:
    return perception.StreamMetrics()


def add_counts(m: perception.StreamMetrics, f: FrameCounts) -> perception.StreamMetrics:
    """Add one frame's counts into a ``StreamMetrics`` accumulator."""
    m.confusion += f.confusion
    m.bin_count += f.bin_count
    m.bin_conf += f.bin_conf
    m.bin_correct += f.bin_correct
    m.entropy_sum += f.entropy_sum
    m.pixels += f.pixels
    m.frames += 1
    return m
