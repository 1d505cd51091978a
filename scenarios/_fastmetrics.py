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


class _Workspace:
    """Buffers reused from batch to batch: a fresh 20 MB tensor per operation costs more in page
    faults than the arithmetic itself, so every full-size intermediate lives here."""

    def __init__(self, n: int, c: int, h: int, w: int, bins: int) -> None:
        full, pix = (n, c, h, w), (n, h, w)
        self.z, self.e = torch.empty(full), torch.empty(full)
        self.eq, self.u8 = torch.empty(full, dtype=torch.bool), torch.empty(full, dtype=torch.uint8)
        self.zmax, self.s, self.ez = torch.empty(n, 1, h, w), torch.empty(pix), torch.empty(pix)
        self.ent, self.conf, self.f = torch.empty(pix), torch.empty(pix), torch.empty(pix)
        self.top = torch.empty(pix, dtype=torch.uint8)
        self.pred, self.t = torch.empty(pix, dtype=torch.long), torch.empty(pix, dtype=torch.long)
        self.idx, self.bin = torch.empty(pix, dtype=torch.long), torch.empty(pix, dtype=torch.long)
        self.ign, self.hit = torch.empty(pix, dtype=torch.bool), torch.empty(pix, dtype=torch.bool)
        self.wconf = torch.empty(pix, dtype=torch.double)
        self.wcorr = torch.empty(pix, dtype=torch.double)
        self.rank = torch.arange(c, 0, -1, dtype=torch.uint8).view(1, c, 1, 1)
        frames = torch.arange(n).view(n, 1, 1)
        self.cm_offset = frames * ((c + 1) * c)  # one (C+1) x C block per frame; row C = ignored
        self.bin_offset = frames * (bins + 1)  # one (M+1) block per frame; bin M = ignored


_WORKSPACES: dict[tuple[int, ...], _Workspace] = {}


def _workspace(n: int, c: int, h: int, w: int, bins: int) -> _Workspace:
    key = (n, c, h, w, bins)
    if key not in _WORKSPACES:
        if len(_WORKSPACES) >= 4:  # a stream uses one or two batch shapes
            _WORKSPACES.clear()
        _WORKSPACES[key] = _Workspace(n, c, h, w, bins)
    return _WORKSPACES[key]


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
    ws = _workspace(n, c, h, w, ece_bins)
    # Class planes contiguous (the copy also makes channels-last logits planar), so every pass
    # below is vectorised across pixels; reductions over a trailing axis of 19 are far slower.
    z = ws.z
    z.copy_(logits.detach())
    torch.amax(z, 1, keepdim=True, out=ws.zmax)
    # argmax as the first class reaching the max (torch.argmax's tie rule), via a fast amax
    torch.eq(z, ws.zmax, out=ws.eq)
    torch.mul(ws.eq, ws.rank, out=ws.u8)
    torch.amax(ws.u8, 1, out=ws.top)
    pred = ws.pred
    pred.copy_(ws.top).neg_().add_(c)
    # softmax statistics: S = sum exp(z - max); H = log S + max - sum(e z) / S; conf = 1 / S
    torch.sub(z, ws.zmax, out=ws.e)
    ws.e.exp_()
    torch.sum(ws.e, 1, out=ws.s)
    ws.e.mul_(z)
    torch.sum(ws.e, 1, out=ws.ez)
    ent = torch.log(ws.s, out=ws.ent)
    ent.add_(ws.zmax.view(n, h, w)).sub_(ws.ez.div_(ws.s))
    # Any NaN/inf logit makes its pixel's max or entropy non-finite: checking these per-pixel
    # values is ~19x cheaper than isfinite over every logit.
    finite = torch.isfinite(ent).view(n, -1).all(1) & torch.isfinite(ws.zmax).view(n, -1).all(1)
    if not bool(finite.all()):
        bad = int((~finite).nonzero()[0, 0])
        raise FloatingPointError(f"non-finite logits at frame {first_frame + bad}")
    conf = torch.reciprocal(ws.s, out=ws.conf)
    # confusion: ignored pixels go to an extra row C that is dropped
    t = ws.t
    t.copy_(target.reshape(n, h, w))
    torch.eq(t, ignore_index, out=ws.ign)
    t.masked_fill_(ws.ign, c)
    torch.mul(t, c, out=ws.idx)
    ws.idx.add_(pred).add_(ws.cm_offset)
    cm = torch.bincount(ws.idx.view(-1), minlength=n * (c + 1) * c).view(n, c + 1, c)[:, :c]
    # ECE: bin m holds confidences in ((m-1)/M, m/M]; ignored pixels go to an extra bin M
    torch.eq(pred, t, out=ws.hit)
    ws.wcorr.copy_(ws.hit)
    ws.wconf.copy_(conf)
    torch.mul(conf, ece_bins, out=ws.f).ceil_()
    b = ws.bin
    b.copy_(ws.f).sub_(1).clamp_(0, ece_bins - 1).masked_fill_(ws.ign, ece_bins)
    b.add_(ws.bin_offset)
    size = n * (ece_bins + 1)
    flat = b.view(-1)
    bc = torch.bincount(flat, minlength=size).view(n, ece_bins + 1)[:, :ece_bins].numpy()
    bconf = torch.bincount(flat, weights=ws.wconf.view(-1), minlength=size)
    bcorr = torch.bincount(flat, weights=ws.wcorr.view(-1), minlength=size)
    bconf = bconf.view(n, ece_bins + 1)[:, :ece_bins].numpy()
    bcorr = bcorr.view(n, ece_bins + 1)[:, :ece_bins].numpy()
    ent_sum = torch.sum(ent.view(n, -1), 1, dtype=torch.float64).numpy()
    cm_np = cm.numpy().astype(np.int64)
    return [
        FrameCounts(
            cm_np[i].copy(),
            bc[i].astype(np.int64),
            bconf[i].copy(),
            bcorr[i].copy(),
            float(ent_sum[i]),
            h * w,
        )
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
