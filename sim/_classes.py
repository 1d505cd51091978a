"""The 19 Cityscapes training classes (trainIds), their official colours and a colouriser.

Every package in roadshift speaks this label space: the world renders it, models predict it,
metrics and reports name it. ``IGNORE_INDEX`` (255) marks pixels no metric should count.
"""

from __future__ import annotations

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)

IGNORE_INDEX: int = 255

# The official Cityscapes colour for each trainId (cityscapesScripts, labels.py).
PALETTE: np.ndarray = np.array(
    [
        (128, 64, 128),
        (244, 35, 232),
        (70, 70, 70),
        (102, 102, 156),
        (190, 153, 153),
        (153, 153, 153),
        (250, 170, 30),
        (220, 220, 0),
        (107, 142, 35),
        (152, 251, 152),
        (70, 130, 180),
        (220, 20, 60),
        (255, 0, 0),
        (0, 0, 142),
        (0, 0, 70),
        (0, 60, 100),
        (0, 80, 100),
        (0, 0, 230),
        (119, 11, 32),
    ],
    dtype=np.uint8,
)
PALETTE.setflags(write=False)

# 256-entry lookup table: trainIds map to their colour, everything else (255 included) to black.
_LUT = np.zeros((256, 3), dtype=np.uint8)
_LUT[: len(CLASS_NAMES)] = PALETTE
_LUT.setflags(write=False)


def colorize(labels: np.ndarray) -> np.ndarray:
    """Map a label map of trainIds to an RGB uint8 image (ignore and unknown ids become black)."""
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"labels must be an integer array, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("labels must lie in 0..255 (trainIds 0..18, 255 = ignore)")
    return _LUT[arr.astype(np.uint8, copy=False)]
