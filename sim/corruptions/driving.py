"""Camera faults and lighting, five severities each.

Modelled on the corruptions of driving robustness benchmarks (RoboBEV, MultiCorrupt): low
light, shadows, lens dirt and sensor defects, frame drops, camera shake, optical and exposure
faults. The calibrated weather (fog, rain, night, sun glare) lives in ``driving_weather``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.corruptions.kernels import gaussian, levels, pixel_grid, poisson_gaussian
from sim.corruptions.registry import Context, Warp, register


@register("driving", uint8_input=True)
def low_light(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Low light as RoboBEV/RoboDepth: the image's range mapped to [0, c] with gamma 2,
    c = .6-.2, then Poisson-Gaussian sensor noise."""
    c, photons, sigma = levels(
        ((0.6, 600, 0.008), (0.5, 250, 0.012), (0.4, 120, 0.018), (0.3, 50, 0.026),
         (0.2, 30, 0.038)),
        s,
        (1.0, 6000, 0.0),
    )  # fmt: skip
    # imadjust(x, min, max, 0, c, gamma=2) over the whole image, then Poisson with
    # 10x ImageNet-C's shot-noise photon counts and Gaussian with 0.1x its sigmas.
    lo, hi = int(x.min()), int(x.max())
    v = np.clip((np.arange(256) - lo) / max(hi - lo, 1), 0, 1)
    lut = np.rint(v**2 * c * 255).astype(np.uint8)
    return poisson_gaussian(cv2.LUT(x, lut), photons, sigma, rng)


@register("driving")
def shadow(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Hard-edged cast shadows (buildings, trees) across the scene."""
    count, darkness = levels(((1, 0.3), (2, 0.4), (3, 0.5), (4, 0.6), (5, 0.7)), s, (1, 0.0))
    h, w = x.shape[:2]
    mask = np.zeros((h, w), np.float32)
    for _ in range(max(1, round(count))):
        # A quadrilateral band crossing the lower two thirds, like a building's shadow.
        x0, x1 = sorted(rng.uniform(-0.2, 1.2, 2) * w)
        width = rng.uniform(0.15, 0.4) * w
        top, bottom = rng.uniform(0.3, 0.6) * h, h * 1.05
        lean = rng.uniform(-0.5, 0.5) * w
        pts = np.array(
            [[x0, top], [x0 + width, top], [x1 + width + lean, bottom], [x1 + lean, bottom]],
            np.int32,
        )
        cv2.fillPoly(mask, [pts], 1.0)
    mask = gaussian(mask, 1.5 * ctx.scale)
    shade = 1 - np.float32(darkness) * mask[..., None] * np.float32([1.0, 1.0, 0.93])
    return x * shade


@register("driving")
def lens_dirt(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Dirt and smudges on the lens: soft dark blobs with haze."""
    count, opacity, haze = levels(
        ((4, 0.45, 0.02), (8, 0.55, 0.03), (12, 0.65, 0.045), (18, 0.75, 0.06), (26, 0.85, 0.08)),
        s,
        (0, 0, 0),
    )
    prng = ctx.pattern_rng(rng)
    h, w = x.shape[:2]
    f = min(1.0, 160 / min(h, w))  # blobs are smooth: draw small, upsample
    sh, sw = max(8, round(h * f)), max(8, round(w * f))
    unit = min(sh, sw) / 224
    mask = np.zeros((sh, sw), np.float32)
    n = max(1, round(count))
    centres = prng.random((n, 2)) * (sw, sh)
    radii = prng.uniform(8, 30, n) * unit
    dens = prng.uniform(0.7, 1.0, n)
    for (cx, cy), r, a in zip(centres, radii, dens, strict=True):
        cv2.circle(mask, (int(cx), int(cy)), max(1, int(r)), float(a), -1, cv2.LINE_AA)
    mask = np.clip(cv2.GaussianBlur(mask, (0, 0), max(1.0, 4 * unit)), 0, 1)
    scatter = cv2.GaussianBlur(mask, (0, 0), max(1.0, 20 * unit))
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    scatter = cv2.resize(scatter, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    dirt = np.float32([0.22, 0.19, 0.15])
    out = x * (1 - np.float32(opacity) * mask) + np.float32(opacity) * mask * dirt
    return out + np.float32(haze) + np.float32(haze * 1.5) * scatter


@register("driving")
def dead_pixels(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Dead, hot and stuck pixels plus dead columns on the sensor."""
    frac, lines = levels(((0.0005, 0), (0.002, 0), (0.005, 1), (0.01, 2), (0.02, 4)), s, (0, 0))
    prng = ctx.pattern_rng(rng)
    h, w = x.shape[:2]
    out = x.copy()
    n = round(frac * h * w)
    if n:
        idx = prng.choice(h * w, size=n, replace=False)
        kind = prng.random(n)
        values = np.where(kind[:, None] < 0.5, 0.0, 1.0).astype(np.float32).repeat(3, axis=1)
        stuck = kind > 0.75
        values[stuck] = prng.random((int(stuck.sum()), 3))
        out.reshape(-1, 3)[idx] = values
    for _ in range(round(lines)):
        col = int(prng.integers(0, w))
        start = int(prng.integers(0, h // 2))
        out[start:, col] = 0.0 if prng.random() < 0.7 else 1.0
    return out


@register("driving", needs_previous=True)
def frame_drop(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Lost frames: the stream repeats the previous frame (black for a single image) with
    probability .1-.7."""
    p = levels((0.1, 0.2, 0.35, 0.5, 0.7), s, 0.0)
    if rng.random() >= p:
        return x
    if ctx.previous is None:
        return np.zeros(x.shape, np.uint8)
    return ctx.previous.copy()


@register("driving")
def iso_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """High-ISO sensor noise: signal-dependent luma plus colour blotches."""
    gain, read = levels(
        ((0.002, 0.01), (0.004, 0.02), (0.008, 0.03), (0.014, 0.045), (0.022, 0.06)), s, (0.0, 0.0)
    )
    h, w = x.shape[:2]
    std = np.sqrt(x * np.float32(gain) + np.float32(read**2))
    luma = rng.standard_normal((h, w, 1), dtype=np.float32)
    chroma = rng.standard_normal((h, w, 3), dtype=np.float32)
    chroma = gaussian(chroma, 0.8 * max(ctx.scale, 0.5)) * np.float32(1.8)
    return x + std * (np.float32(0.6) * luma + np.float32(0.8) * chroma)


@register("driving")
def color_quant(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Colour quantisation to 5, 4, 3, 2, 1 bits per channel."""
    bits = levels((5, 4, 3, 2, 1), s, 8)
    n = max(2, round(2**bits))
    return np.round(x * np.float32(n - 1)) * np.float32(1 / (n - 1))


@register("driving", moves_pixels=True)
def camera_shake(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> Warp:
    """Camera extrinsics jitter: random shift and roll; ground truth moves with the image."""
    shift, roll = levels(((2, 0.5), (4, 1.0), (8, 2.0), (12, 3.0), (18, 4.5)), s, (0.0, 0.0))
    h, w = x.shape[:2]
    a = rng.uniform(0, 2 * np.pi)
    mag = shift * ctx.scale * rng.uniform(0.7, 1.0)
    tx, ty = mag * math.cos(a), mag * math.sin(a)
    theta = math.radians(roll * rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.0))
    gx, gy = pixel_grid(h, w)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    # Inverse map: output pixel p samples R^-1 (p - c - t) + c.
    ct, st = math.cos(theta), math.sin(theta)
    ux, uy = gx - cx - tx, gy - cy - ty
    return Warp(ct * ux + st * uy + cx, -st * ux + ct * uy + cy, border="constant")


@register("driving")
def vignetting(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Radial light fall-off to 20-80% darker corners."""
    a = levels((0.2, 0.35, 0.5, 0.65, 0.8), s, 0.0)
    h, w = x.shape[:2]
    gx, gy = pixel_grid(h, w)
    r2 = ((gx - (w - 1) / 2) ** 2 + (gy - (h - 1) / 2) ** 2) / np.float32(
        (w / 2) ** 2 + (h / 2) ** 2
    )
    return x * (1 - np.float32(a) * r2 ** np.float32(1.25))[..., None]


@register("driving")
def chromatic_aberration(
    x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context
) -> np.ndarray:
    """Lateral colour fringes: red and blue magnified differently (green, and so the labels,
    stay put)."""
    d = levels((0.002, 0.004, 0.007, 0.011, 0.016), s, 0.0)
    h, w = x.shape[:2]
    out = x.copy()
    cx, cy = (w - 1) / 2, (h - 1) / 2
    for ch, mag in ((0, 1 + d), (2, 1 - d)):
        m = np.float32([[1 / mag, 0, cx * (1 - 1 / mag)], [0, 1 / mag, cy * (1 - 1 / mag)]])
        out[..., ch] = cv2.warpAffine(
            np.ascontiguousarray(x[..., ch]),
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return out


@register("driving")
def overexposure(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Exposure gain 1.6-5.5x in linear light with highlight bloom."""
    gain = levels((1.6, 2.2, 3.0, 4.0, 5.5), s, 1.0)
    lin = np.power(x, np.float32(2.2)) * np.float32(gain)
    bloom = gaussian(np.clip(lin - 1, 0, None), 4 * ctx.scale)
    lin = lin + np.float32(0.5) * bloom
    return np.power(np.clip(lin, 0, 1), np.float32(1 / 2.2))
