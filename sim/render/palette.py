"""Label maps as pictures: the Cityscapes palette as an array and a colouriser."""

from __future__ import annotations

import numpy as np

from sim.common.classes import CLASS_NAMES, PALETTE_RGB

PALETTE: np.ndarray = np.array(PALETTE_RGB, dtype=np.uint8)
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
