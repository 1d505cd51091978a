"""mIoU over a fixed class set, beside the per-cell rule of the stored ``miou``.

The stored ``miou`` of a cell averages IoU over the classes present in that cell's ground truth
*or* its prediction (the per-cell rule). On a short stream of one drive, a class that never
appears in the ground truth but is predicted on a few pixels scores IoU 0 and pulls the mean
down, and the set of classes averaged changes from cell to cell and from method to method.

The fixed rule averages over one class set K per seed: the classes with at least one
ground-truth pixel in that seed's clean stream. Every cell of the seed is scored over the same K,
from its stored confusion matrix (``confusion[gt][pred]``). A class of K with neither
ground-truth nor predicted pixels in a cell (possible only where a shift moves every pixel of it
out of view) is left out of that cell's mean rather than scored. Seeds without a clean cell, and
folders written before cells stored their confusion, have no fixed set: their cells show "—".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._load import CLEAN, RunData, is_grid_cell


def _confusion(cell: dict[str, Any]) -> np.ndarray | None:
    cm = cell.get("confusion")
    if not isinstance(cm, list) or not cm:
        return None
    arr = np.asarray(cm, dtype=np.float64)
    return arr if arr.ndim == 2 and arr.shape[0] == arr.shape[1] else None


def miou_over(cm: np.ndarray, classes: Sequence[int]) -> float | None:
    """Mean IoU over ``classes`` (rows of ``cm`` are ground truth); classes with an empty union
    are left out; None when none is left."""
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    vals = [tp[c] / union[c] for c in classes if c < len(union) and union[c] > 0]
    return float(np.mean(vals)) if vals else None


class FixedClasses:
    """The fixed class set K of each seed and the fixed-rule mIoU of any cell."""

    def __init__(self, data: RunData) -> None:
        present: dict[int, np.ndarray] = {}
        for c in data.done:
            if not (is_grid_cell(c) and c.get("corruption") == CLEAN):
                continue
            cm = _confusion(c)
            if cm is None:
                continue
            seed = int(c.get("seed") or 0)
            gt = cm.sum(1) > 0  # the ground truth is the same for every method of a seed
            present[seed] = gt if seed not in present else (present[seed] | gt)
        self.sets: dict[int, tuple[int, ...]] = {
            s: tuple(int(i) for i in np.flatnonzero(v)) for s, v in sorted(present.items())
        }
        self.stored = any(c.get("miou_fixed") is not None for c in data.done)

    def __bool__(self) -> bool:
        return bool(self.sets) or self.stored

    def miou(self, cell: dict[str, Any]) -> float | None:
        """The cell's mIoU over its seed's fixed class set (None: no set or no confusion).

        A runner that stores the number itself (``miou_fixed``, the same rule over the unit's
        clean frames) is taken at its word."""
        stored = cell.get("miou_fixed")
        if isinstance(stored, (int, float)) and not isinstance(stored, bool):
            return float(stored)
        classes = self.sets.get(int(cell.get("seed") or 0))
        cm = _confusion(cell)
        if classes is None or cm is None:
            return None
        return miou_over(cm, classes)

    def describe(self, class_names: Sequence[str]) -> str:
        """K in words: its size and, where it leaves classes out, which ones."""
        sets = set(self.sets.values())
        if not sets:
            return "the classes present in the ground truth of each stream's clean frames"
        n_all = len(class_names)
        if len(sets) == 1:
            (k,) = sets
            left_out = [class_names[i] for i in range(n_all) if i not in k]
            out = f"the {len(k)} classes present in the clean ground truth"
            if left_out:
                out += f" (absent: {', '.join(left_out)})"
            return out
        sizes = sorted({len(k) for k in sets})
        span = f"{sizes[0]}–{sizes[-1]}" if len(sizes) > 1 else str(sizes[0])
        return f"the {span} classes present in each seed's clean ground truth"

    def size_label(self) -> str:
        """'17 classes' (or '16–17 classes' when seeds differ), for column titles."""
        sizes = sorted({len(k) for k in self.sets.values()})
        if not sizes:
            return "fixed classes"
        return f"{sizes[0]} classes" if len(sizes) == 1 else f"{sizes[0]}–{sizes[-1]} classes"


def clean_confusion(data: RunData, method: str) -> np.ndarray | None:
    """The confusion matrix summed over ``method``'s clean cells (all seeds), or None."""
    total = None
    for c in data.done:
        if c.get("method") != method or not is_grid_cell(c) or c.get("corruption") != CLEAN:
            continue
        cm = _confusion(c)
        if cm is not None:
            total = cm if total is None else total + cm
    return total


def per_class_iou(cm: np.ndarray) -> list[float | None]:
    """IoU per class of one matrix; None where the class has neither ground truth nor
    predictions."""
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return [float(tp[i] / union[i]) if union[i] > 0 else None for i in range(len(tp))]
