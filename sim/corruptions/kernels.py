"""Helpers every corruption family may use: severity levels, scale, blur kernels, noise tables.

Severity: integers 1-5 select the published constants; a float in [0, 5] interpolates linearly
between consecutive levels, level 0 being the identity parameters (see :func:`levels`).

Noise is drawn by inverse-CDF table look-up on 16-bit uniform integers, several times faster
than NumPy's normal/Poisson samplers on a full frame. The tables resolve the distributions to
1/65536 in probability (normal tails beyond 4.3 sigma, probability 2e-5, are cut), far finer
than the 8-bit output can show; the tests check the published statistics.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

REFERENCE_SIZE = 224  # the crop size the ImageNet-C constants were tuned for


def levels(table: Sequence[Any], severity: float, zero: Any) -> Any:
    """Parameters for ``severity``: ``table[s-1]`` at integers, linear in between, ``zero`` at 0.

    ``table`` holds five scalars or five equal-length tuples; so does ``zero``.
    """
    rows = [zero, *table]
    lo = int(np.floor(severity))
    hi = min(lo + 1, 5)
    f = severity - lo
    a, b = rows[lo], rows[hi]
    if isinstance(a, tuple):
        return tuple((1 - f) * x + f * y for x, y in zip(a, b, strict=True))
    return (1 - f) * a + f * b


def spatial_scale(shape: tuple[int, ...]) -> float:
    """Factor applied to the 224-px spatial constants: ``min(H, W) / 224``."""
    return min(shape[0], shape[1]) / REFERENCE_SIZE


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (x, y) coordinates of every pixel of an (h, w) frame."""
    return np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float [0, 1] image to uint8 with rounding and clipping."""
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def gaussian(
    x: np.ndarray,
    sigma: float,
    truncate: float = 4.0,
    border: int = cv2.BORDER_REPLICATE,
    sigma_y: float | None = None,
) -> np.ndarray:
    """Gaussian filter like ``skimage.filters.gaussian`` (kernel radius ``truncate * sigma``)."""
    sy = sigma if sigma_y is None else sigma_y
    if sigma <= 0 and sy <= 0:
        return x
    kx = 2 * int(np.ceil(truncate * sigma)) + 1 if sigma > 0 else 1
    ky = 2 * int(np.ceil(truncate * sy)) + 1 if sy > 0 else 1
    return cv2.GaussianBlur(
        x, (kx, ky), sigmaX=max(sigma, 1e-6), sigmaY=max(sy, 1e-6), borderType=border
    )


def motion_kernel(radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """Correlation kernel of the published motion blur.

    The image is averaged over ``2*radius+1`` copies shifted along ``angle`` (one-sided, from
    the pixel backwards), with half-Gaussian weights of width ``sigma``.
    """
    width = 2 * max(1, round(radius)) + 1
    sigma = max(sigma, 1e-3)
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    sy, sx = math.sin(math.radians(angle_deg)), math.cos(math.radians(angle_deg))
    k = np.zeros((2 * width + 1, 2 * width + 1), np.float32)
    for i, wgt in enumerate(weights):
        dy = -math.ceil(i * sy - 0.5)
        dx = -math.ceil(i * sx - 0.5)
        # blurred(y, x) += w * image(y - dy, x - dx); filter2D correlates, so the tap sits at -d.
        k[width - dy, width - dx] += wgt
    return k


def apply_kernel(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate with a centred kernel (replicated borders), cropped to its non-zero box."""
    rows = np.flatnonzero(kernel.any(axis=1))
    cols = np.flatnonzero(kernel.any(axis=0))
    if len(rows) == 0:
        return np.zeros_like(x)
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
    crop = np.ascontiguousarray(kernel[r0:r1, c0:c1])
    return cv2.filter2D(x, -1, crop, anchor=(int(cx - c0), int(cy - r0)),
                        borderType=cv2.BORDER_REPLICATE)  # fmt: skip


UNIFORM_BINS = 65536  # levels of the 16-bit uniform integers behind the noise tables
# Standard normal quantiles at the mid-points of 65536 equal-probability bins.
_NORMAL = None


def normal_table() -> np.ndarray:
    global _NORMAL
    if _NORMAL is None:
        from statistics import NormalDist

        inv = NormalDist().inv_cdf
        mids = [(i + 0.5) / UNIFORM_BINS for i in range(UNIFORM_BINS)]
        _NORMAL = np.array([inv(p) for p in mids], dtype=np.float32)
    return _NORMAL


def uniform16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, UNIFORM_BINS, size=shape, dtype=np.uint16)


def normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal deviates (float32) by table look-up."""
    return normal_table()[uniform16(rng, shape)]


@functools.lru_cache(maxsize=2)
def poisson_table(lam: float) -> np.ndarray:
    """(256, 65536) uint8: output pixel for input value v and uniform bin u.

    Row v is the inverse CDF of Poisson(v * lam / 255), each count k mapped to the output
    value round(k / lam * 255) clipped to 255.
    """
    kmax = int(lam + 12 * math.sqrt(lam) + 30)
    k = np.arange(kmax + 1, dtype=np.float64)
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, kmax + 1)))])
    means = np.arange(256, dtype=np.float64) * lam / 255
    with np.errstate(divide="ignore", invalid="ignore"):
        logpmf = k[None, :] * np.log(means[:, None]) - means[:, None] - logfact[None, :]
    pmf = np.exp(logpmf)
    pmf[0] = 0.0
    pmf[0, 0] = 1.0
    edges = np.rint(np.cumsum(pmf, axis=1) * UNIFORM_BINS).astype(np.int64)
    edges = np.minimum(edges, UNIFORM_BINS)
    edges[:, -1] = UNIFORM_BINS
    counts = np.diff(np.concatenate([np.zeros((256, 1), np.int64), edges], axis=1), axis=1)
    values = np.clip(np.rint(k / lam * 255), 0, 255).astype(np.uint8)
    table = np.empty((256, UNIFORM_BINS), np.uint8)
    for v in range(256):
        table[v] = np.repeat(values, counts[v])
    return table


def poisson_gaussian(
    x: np.ndarray, photons: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Sensor noise on a uint8 image: Poisson shot noise with ``photons`` at white, then
    Gaussian read noise of ``sigma`` (on [0, 1] pixels), clipped; uint8 out."""
    table = poisson_table(round(float(photons), 6)).ravel()
    idx = x.astype(np.int32) << 16
    idx |= uniform16(rng, x.shape)
    steps = np.rint(normal_table() * np.float32(sigma * 255)).astype(np.int16)
    out = steps[uniform16(rng, x.shape)]
    out += table[idx]
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)
