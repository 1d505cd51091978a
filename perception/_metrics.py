"""Segmentation metrics accumulated over a stream of frames.

Everything derives from a confusion matrix ``cm[gt, pred]`` (rows: ground truth, columns:
prediction) accumulated with ``bincount`` over pixels whose label is not ``ignore_index``, plus two
label-free running sums for calibration and entropy.

Rules (documented because published numbers differ on them):

- **IoU** of class c is ``TP / (TP + FP + FN)``. A class is *present* in a cell when it occurs in
  the ground truth or in the prediction (``TP + FP + FN > 0``); absent classes get ``None`` and
  are left out of the mean. **mIoU** is the mean IoU over present classes (NaN if none).
  Predicting a class that is not in the ground truth therefore costs IoU 0 for that class.
- **Pixel accuracy**: correct / labelled pixels.
- **ECE** (Guo et al., 2017): confidences (max softmax probability) of labelled pixels fall in 15
  equal-width bins ``((m-1)/M, m/M]``; ECE = Σ_m |B_m|/n · |acc(B_m) − conf(B_m)|.
- **Entropy**: mean softmax entropy (nats) over *all* pixels, labelled or not — it needs no
  labels and is the collapse signal of entropy-minimising adaptation.
- **Safety-critical recall**: pixel recall ``TP / (TP + FN)`` for person, rider, car, truck, bus,
  motorcycle and bicycle; ``None`` when the class has no ground-truth pixels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._models_classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, SAFETY_CLASSES


def _as_long_tensor(a: Any, name: str) -> torch.Tensor:
    if isinstance(a, np.ndarray):
        a = torch.from_numpy(a)
    if not isinstance(a, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(a).__name__}")
    return a.detach().cpu().long()


def confusion_matrix(
    pred: Any, target: Any, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """``cm[gt, pred]`` counts (int64, ``num_classes``²) over pixels whose target is not ignored."""
    p = _as_long_tensor(pred, "pred").reshape(-1)
    t = _as_long_tensor(target, "target").reshape(-1)
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same number of pixels; got {p.numel()} and {t.numel()}"
        )
    keep = t != ignore_index
    p, t = p[keep], t[keep]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"target labels must be in [0, {num_classes}) or {ignore_index}")
    if p.numel() and (int(p.min()) < 0 or int(p.max()) >= num_classes):
        raise ValueError(f"pred labels must be in [0, {num_classes})")
    cm = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes).numpy().astype(np.int64)


def iou_from_confusion(cm: np.ndarray) -> list[float | None]:
    """Per-class IoU; ``None`` for classes absent from both ground truth and prediction."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return [float(tp[c] / union[c]) if union[c] > 0 else None for c in range(cm.shape[0])]


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over classes present in ground truth or prediction (NaN when none are)."""
    ious = [v for v in iou_from_confusion(cm) if v is not None]
    return float(np.mean(ious)) if ious else math.nan


class StreamMetrics:
    """Accumulates metrics over a stream; ``compute()`` summarises, ``merge()`` adds another.

    The state is a set of summable counts, public so that a caller may fill it from its own
    batched computation: ``confusion`` (C×C int64, rows = ground truth), ``bin_count``,
    ``bin_conf``, ``bin_correct`` (per ECE bin), ``entropy_sum``, ``pixels`` and ``frames``.
    """

    def __init__(
        self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX, ece_bins: int = 15
    ) -> None:
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}")
        if not isinstance(ece_bins, int) or ece_bins < 1:
            raise ValueError(f"ece_bins must be a positive int; got {ece_bins!r}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.ece_bins = ece_bins
        self.reset()

    def reset(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.bin_count = np.zeros(self.ece_bins, dtype=np.int64)
        self.bin_conf = np.zeros(self.ece_bins, dtype=np.float64)
        self.bin_correct = np.zeros(self.ece_bins, dtype=np.float64)
        self.entropy_sum = 0.0
        self.pixels = 0  # all pixels seen (entropy denominator)
        self.frames = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: Any) -> None:
        """Add a batch: ``logits`` (N, C, H, W), ``target`` (N, H, W) trainIds with 255 ignored."""
        if not isinstance(logits, torch.Tensor) or logits.dim() != 4:
            raise ValueError("logits must be a 4-D torch.Tensor (N, C, H, W)")
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have {logits.shape[1]} classes, metrics expect {self.num_classes}"
            )
        t = _as_long_tensor(target, "target")
        n, _, h, w = logits.shape
        if tuple(t.shape) != (n, h, w):
            raise ValueError(
                f"target must have shape {(n, h, w)} to match logits; got {tuple(t.shape)}"
            )
        logits = logits.detach().float().cpu()
        logp = torch.log_softmax(logits, dim=1)
        prob = logp.exp()
        entropy = -(prob * logp).sum(1)  # (N, H, W)
        conf, pred = prob.max(1)
        self.confusion += confusion_matrix(pred, t, self.num_classes, self.ignore_index)
        self.entropy_sum += float(entropy.double().sum())
        self.pixels += entropy.numel()
        self.frames += n
        keep = t != self.ignore_index
        c = conf[keep].double()
        correct = (pred[keep] == t[keep]).double()
        # Bin m holds confidences in ((m-1)/M, m/M]; ceil(c*M)-1 maps exactly that way.
        idx = (torch.ceil(c * self.ece_bins).long() - 1).clamp_(0, self.ece_bins - 1)
        self.bin_count += torch.bincount(idx, minlength=self.ece_bins).numpy()
        self.bin_conf += torch.bincount(idx, weights=c, minlength=self.ece_bins).numpy()
        self.bin_correct += torch.bincount(idx, weights=correct, minlength=self.ece_bins).numpy()

    def merge(self, other: StreamMetrics) -> StreamMetrics:
        """Add ``other``'s counts into this accumulator (same configuration); returns self."""
        if not isinstance(other, StreamMetrics):
            raise TypeError(f"other must be StreamMetrics, got {type(other).__name__}")
        if (other.num_classes, other.ignore_index, other.ece_bins) != (
            self.num_classes,
            self.ignore_index,
            self.ece_bins,
        ):
            raise ValueError("other must have the same num_classes, ignore_index and ece_bins")
        self.confusion += other.confusion
        self.bin_count += other.bin_count
        self.bin_conf += other.bin_conf
        self.bin_correct += other.bin_correct
        self.entropy_sum += other.entropy_sum
        self.pixels += other.pixels
        self.frames += other.frames
        return self

    def ece(self) -> float:
        n = self.bin_count.sum()
        if n == 0:
            return math.nan
        gap = np.abs(self.bin_correct - self.bin_conf)  # = |B_m| * |acc - conf| per bin
        return float(gap.sum() / n)

    def compute(self) -> dict[str, Any]:
        """``miou, pixel_acc, ece, entropy, per_class_iou, safety_recall, confusion, frames``."""
        cm = self.confusion
        labelled = cm.sum()
        names = CLASS_NAMES if self.num_classes == len(CLASS_NAMES) else None
        safety: dict[str, float | None] = {}
        if names is not None:
            for c in SAFETY_CLASSES:
                gt = cm[c].sum()
                safety[names[c]] = float(cm[c, c] / gt) if gt > 0 else None
        return {
            "miou": miou_from_confusion(cm),
            "pixel_acc": float(np.trace(cm) / labelled) if labelled else math.nan,
            "ece": self.ece(),
            "entropy": self.entropy_sum / self.pixels if self.pixels else math.nan,
            "per_class_iou": iou_from_confusion(cm),
            "safety_recall": safety,
            "confusion": cm.tolist(),
            "frames": self.frames,
        }
