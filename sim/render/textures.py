"""Procedural textures made once per world: tileable value noise and rain streaks."""

from __future__ import annotations

import cv2
import numpy as np


def tileable_noise(
    rng: np.random.Generator,
    size: int = 256,
    base: int = 4,
    octaves: int = 5,
    persistence: float = 0.55,
) -> np.ndarray:
    """Fractal value noise in about [-1, 1] that wraps around at ``size`` in both axes."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        n = base * 2**o
        grid = rng.normal(0.0, 1.0, (n, n)).astype(np.float32)
        big = cv2.resize(np.tile(grid, (3, 3)), (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)
        out += amp * big[size : 2 * size, size : 2 * size]
        total += amp
        amp *= persistence
    out /= total
    out /= max(float(np.abs(out).max()), 1e-6)
    return out


def rain_canvas(rng: np.random.Generator, height: int, width: int, slant: float) -> np.ndarray:
    """A (2H, 2W) canvas of thin bright streaks, cropped at a moving offset each frame."""
    h2, w2 = 2 * height, 2 * width
    canvas = np.zeros((h2, w2), np.float32)
    n = int(0.004 * h2 * w2)
    length = max(4, height // 10)
    xs = rng.integers(0, w2, n)
    ys = rng.integers(0, h2, n)
    lens = rng.integers(length // 2, length + 1, n)
    vals = rng.uniform(0.3, 1.0, n)
    for x, y, ln, v in zip(xs, ys, lens, vals, strict=True):
        dx = round(slant * ln)
        cv2.line(canvas, (int(x), int(y)), (int(x + dx), int(y + ln)), float(v), 1)
    return cv2.GaussianBlur(canvas, (3, 3), 0.6)
