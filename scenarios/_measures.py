"""Per-segment measures beyond mIoU: recovery after a shift, collapse, fixed-class mIoU, priors.

Definitions (stored in the run's meta, ``recovery`` and ``collapse``, so a report states them):

- **Recovery** (:func:`recovery_frames`): the segment's per-frame mIoU, smoothed by a trailing
  mean over :data:`RECOVERY_WINDOW` frames, *settles* at the first frame from which it stays
  within :data:`RECOVERY_BAND` (absolute mIoU) of the segment's final level, the mean per-frame
  mIoU of its last :data:`FINAL_FRACTION` of frames. Recovery is the number of frames before
  that one (0: settled from the first frame). Segments shorter than twice the window, or whose
  frames are not consecutive in the stream (``mixed``), have none. A method that does not adapt
  still "recovers" as scene content varies; compare methods with the source row.
- **Collapse** (:func:`collapsed`): the segment's predictions collapsed when, averaged over its
  frames, the number of classes predicted is below :data:`COLLAPSE_CLASS_RATIO` times the number
  of classes in the ground truth, or the mean per-pixel softmax entropy is below
  :data:`COLLAPSE_ENTROPY` nats (an over-confident model predicting few classes: TENT's
  failure mode on long streams).
- **Fixed-class mIoU** (:func:`miou_over`): mIoU over a fixed class set (the classes present in
  the ground truth of the unit's clean frames); a class of the set with an empty union in the
  counted frames is skipped, a class outside the set never counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "COLLAPSE_CLASS_RATIO",
    "COLLAPSE_ENTROPY",
    "FINAL_FRACTION",
    "RECOVERY_BAND",
    "RECOVERY_WINDOW",
    "class_prior",
    "collapse_meta",
    "collapsed",
    "miou_over",
    "recovery_frames",
    "recovery_meta",
]

RECOVERY_WINDOW = 8
RECOVERY_BAND = 0.05
FINAL_FRACTION = 0.25
COLLAPSE_CLASS_RATIO = 0.5
COLLAPSE_ENTROPY = 0.005


def recovery_meta() -> dict[str, float]:
    return {"window": RECOVERY_WINDOW, "band": RECOVERY_BAND, "final_fraction": FINAL_FRACTION}


def collapse_meta() -> dict[str, float]:
    return {"class_ratio": COLLAPSE_CLASS_RATIO, "entropy": COLLAPSE_ENTROPY}


def recovery_frames(per_frame_miou: Sequence[float | None]) -> int | None:
    """Frames until the smoothed per-frame mIoU settles (see the module docstring), or None."""
    m = np.array([np.nan if v is None else float(v) for v in per_frame_miou], dtype=float)
    n = len(m)
    if n < 2 * RECOVERY_WINDOW or np.isnan(m).all():
        return None
    m = np.where(np.isnan(m), np.nanmean(m), m)
    tail = max(1, round(n * FINAL_FRACTION))
    final = float(m[-tail:].mean())
    csum = np.concatenate([[0.0], np.cumsum(m)])
    idx = np.arange(n)
    lo = np.maximum(idx - RECOVERY_WINDOW + 1, 0)
    smoothed = (csum[idx + 1] - csum[lo]) / (idx + 1 - lo)
    outside = np.abs(smoothed - final) > RECOVERY_BAND + 1e-9  # the band edge is inside
    if not outside.any():
        return 0
    return int(np.nonzero(outside)[0][-1]) + 1


def collapsed(pred_classes: float, gt_classes: float, entropy: float | None) -> bool:
    """Whether a segment's predictions collapsed (see the module docstring)."""
    if gt_classes > 0 and pred_classes < COLLAPSE_CLASS_RATIO * gt_classes:
        return True
    return entropy is not None and entropy < COLLAPSE_ENTROPY


def miou_over(confusion: np.ndarray, classes: np.ndarray) -> float | None:
    """mIoU over the classes marked in ``classes`` (bool per class); None if none is counted."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    keep = np.asarray(classes, bool) & (union > 0)
    if not keep.any():
        return None
    return float((tp[keep] / union[keep]).mean())


def class_prior(confusion: np.ndarray) -> list[float]:
    """Ground-truth class frequencies: the fraction of labelled pixels of each class."""
    gt = np.asarray(confusion, dtype=np.float64).sum(1)
    total = gt.sum()
    return [round(float(v), 6) for v in (gt / total if total > 0 else gt)]
