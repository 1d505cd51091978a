"""Depth-aware optics: depth of field and motion blur with depth parallax.

The world renders exact metric depth, so these corruptions follow the physics rather than an
estimated depth (as image-only suites such as 3D Common Corruptions must). The camera is the
roadshift pinhole: 90 degree horizontal field of view, so the focal length is ``W / 2``
pixels, and the principal point is the image centre. The blur at each pixel is set by that
pixel's own depth (a gather model: no occlusion handling at depth edges). Sky (``inf``) and
undefined (NaN) depth count as infinitely far.

Sizes follow the camera geometry (they scale with the frame width), so both ``scaling`` rules
give the same result.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.corruptions.kernels import levels
from sim.corruptions.registry import Context, register

HFOV_DEG = 90.0  # roadshift's default camera (sim.WorldConfig.fov_deg)


def focal_px(width: int) -> float:
    """Focal length in pixels of the roadshift camera for a frame ``width`` pixels wide."""
    return (width / 2) / math.tan(math.radians(HFOV_DEG) / 2)


def _depth(ctx: Context) -> np.ndarray:
    d = np.asarray(ctx.depth, np.float64)
    return np.where(np.isfinite(d), d, np.inf)


# ---------------------------------------------------------------------------------------------
# depth of field

FOCAL_LENGTH_M = 0.035  # thin lens focal length f; only its size relative to S matters


def coc_px(depth: np.ndarray, focus_m: float, aperture_m: float, f_px: float) -> np.ndarray:
    """Thin-lens circle-of-confusion diameter in pixels for points at ``depth`` metres.

    CoC = f^2 / (N (S - f)) * |d - S| / d on the sensor, with the aperture diameter
    A = f / N; in pixels (sensor pitch f / f_px): f_px * A / (S - f) * |d - S| / d.
    ``inf`` depth gives the far limit f_px * A / (S - f).
    """
    f = FOCAL_LENGTH_M
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isinf(depth), 1.0, np.abs(depth - focus_m) / np.maximum(depth, 1e-6))
    return f_px * aperture_m / (focus_m - f) * ratio


def soft_disk(radius: float) -> np.ndarray:
    """A normalised disk of ``radius`` pixels with anti-aliased rim (pixel coverage ramps
    over one pixel), so that its size grows continuously from a single pixel at radius 0."""
    half = math.ceil(radius + 1)
    ax = np.arange(-half, half + 1, dtype=np.float64)
    dist = np.hypot(ax[:, None], ax[None, :])
    k = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    return (k / k.sum()).astype(np.float32)


#: Blur radii (px) of the layers a depth-varying blur is interpolated from.
_RADII = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.5, 8.0, 10.0, 12.5, 15.0, 20.0, 25.0, 32.0)


def depth_of_field(x: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Blur each pixel with a disk of its own ``radius`` (px).

    The image is blurred with disks at fixed radii and each pixel interpolates between the
    two layers around its radius, linearly in radius squared, so that the blur spot's second
    moment (r^2 / 2 for a disk) is exact in between.
    """
    r = np.clip(radius, 0.0, _RADII[-1]).astype(np.float32)
    radii = np.asarray(_RADII, np.float32)
    hi = np.clip(np.searchsorted(radii, r, side="left"), 1, len(radii) - 1)
    lo = hi - 1
    w_hi = (r * r - radii[lo] ** 2) / (radii[hi] ** 2 - radii[lo] ** 2)
    out = np.zeros_like(x)
    for k, rad in enumerate(_RADII):
        weight = np.where(hi == k, w_hi, 0.0) + np.where(lo == k, 1.0 - w_hi, 0.0)
        if not weight.any():
            continue
        layer = x if rad == 0 else cv2.filter2D(x, -1, soft_disk(rad),
                                                borderType=cv2.BORDER_REPLICATE)  # fmt: skip
        out += layer * weight.astype(np.float32)[..., None]
    return out


#: Aperture diameter A (m) per severity. Real car cameras (A of a few millimetres) keep
#: everything sharp; these emulate a wide-aperture lens focused at the wrong distance.
APERTURES_M = (0.08, 0.14, 0.22, 0.32, 0.45)


@register("driving", needs_depth=True)
def near_focus(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Lens focused at 3 m (thin-lens depth of field): the distance blurs, aperture .08-.45 m."""
    aperture = levels(APERTURES_M, s, 0.0)
    coc = coc_px(_depth(ctx), 3.0, aperture, focal_px(x.shape[1]))
    return depth_of_field(x, coc / 2)


@register("driving", needs_depth=True)
def far_focus(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Lens focused at 60 m (thin-lens depth of field): the near road and cars blur, aperture
    .08-.45 m."""
    aperture = levels(APERTURES_M, s, 0.0)
    coc = coc_px(_depth(ctx), 60.0, aperture, focal_px(x.shape[1]))
    return depth_of_field(x, coc / 2)


# ---------------------------------------------------------------------------------------------
# motion blur from the ego's own motion (parallax: flow falls as 1 / depth)

#: Distance (m) the camera travels during the exposure per severity, exposures of 10, 20,
#: 40, 70 and 100 ms: forward at 100 km/h (27.8 m/s), sideways at 54 km/h (15 m/s).
FORWARD_TRAVEL_M = (0.28, 0.56, 1.11, 1.94, 2.78)
LATERAL_TRAVEL_M = (0.15, 0.3, 0.6, 1.05, 1.5)
_MAX_SAMPLES = 32


def _streak(x: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Average of the image sampled along each pixel's flow (dx, dy) over the exposure.

    Samples at evenly spaced times t in [-1/2, 1/2] (so the blur is centred), one more than
    the longest streak in pixels, at most 32; bilinear, replicated borders.
    """
    h, w = x.shape[:2]
    longest = float(np.sqrt(dx * dx + dy * dy).max(initial=0.0))
    n = int(min(_MAX_SAMPLES, max(2, math.ceil(longest) + 1)))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    out = np.zeros_like(x)
    for t in np.linspace(-0.5, 0.5, n, dtype=np.float32):
        out += cv2.remap(x, gx + t * dx, gy + t * dy, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return out * np.float32(1 / n)


@register("driving", needs_depth=True)
def forward_motion_blur(
    x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context
) -> np.ndarray:
    """Ego driving forward during the exposure: radial streaks from the image centre,
    ~ offset / depth; travel .28-2.8 m (100 km/h, 10-100 ms)."""
    travel = levels(FORWARD_TRAVEL_M, s, 0.0)
    h, w = x.shape[:2]
    d = _depth(ctx)
    # A point at depth d moves from p to c + (p - c) * d / (d - b): radial flow (p - c) b / d.
    k = np.minimum(travel / np.maximum(d, 1e-6), 0.9).astype(np.float32)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return _streak(x, (gx - (w - 1) / 2) * k, (gy - (h - 1) / 2) * k)


@register("driving", needs_depth=True)
def lateral_motion_blur(
    x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context
) -> np.ndarray:
    """Camera moving sideways during the exposure (a side-facing camera of a moving car):
    horizontal streaks of f_px * travel / depth pixels; travel .15-1.5 m (54 km/h, 10-100
    ms)."""
    travel = levels(LATERAL_TRAVEL_M, s, 0.0)
    d = _depth(ctx)
    dx = (focal_px(x.shape[1]) * travel / np.maximum(d, 1e-6)).astype(np.float32)
    return _streak(x, dx, np.zeros_like(dx))
