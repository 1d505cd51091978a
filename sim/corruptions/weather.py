"""ImageNet-C weather corruptions: snow, frost, fog, brightness, spatter.

Frost overlays crops of synthetic photographs instead of the published ones (no image files
ship with roadshift), matched to the photographs' statistics (``frost_texture``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.corruptions.frost_texture import frost_texture
from sim.corruptions.kernels import apply_kernel, gaussian, levels, motion_kernel
from sim.corruptions.registry import Context, register

# ---------------------------------------------------------------------------------------------
# plasma fractal (diamond-square)

_PLASMA_MAX = 256


def plasma_fractal(size: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] of shape (size, size); ``size`` a power of two.

    As in the published fog: every midpoint is the mean of its four neighbours plus
    ``wibble * U(-wibble, wibble)``, ``wibble`` starting at 100 and divided by ``decay`` per
    octave; the map wraps around.
    """
    m = np.zeros((size, size), np.float64)
    step = size
    wibble = 100.0
    while step >= 2:
        half = step // 2
        corners = m[0:size:step, 0:size:step]
        sq = corners + np.roll(corners, -1, axis=0)
        sq = sq + np.roll(sq, -1, axis=1)
        m[half:size:step, half:size:step] = sq / 4 + wibble * rng.uniform(-wibble, wibble, sq.shape)
        dr = m[half:size:step, half:size:step]
        ul = m[0:size:step, 0:size:step]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        m[0:size:step, half:size:step] = lt / 4 + wibble * rng.uniform(-wibble, wibble, lt.shape)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        m[half:size:step, 0:size:step] = tt / 4 + wibble * rng.uniform(-wibble, wibble, tt.shape)
        step = half
        wibble /= decay
    m -= m.min()
    return (m / max(m.max(), 1e-12)).astype(np.float32)


def plasma_for(h: int, w: int, decay: float, rng: np.random.Generator) -> np.ndarray:
    """The top-left (h, w) crop of a plasma map of side next_pow2(max(h, w)).

    Octaves finer than 1/256 of the map carry well under 1% of the amplitude (it shrinks by
    decay**2 per octave), so maps larger than 256 are generated at 256 and upsampled.
    """
    side = 1 << (max(h, w) - 1).bit_length()
    small = min(side, _PLASMA_MAX)
    p = plasma_fractal(small, decay, rng)
    if small == side:
        return p[:h, :w]
    r = small / side
    crop = p[: max(2, math.ceil(h * r) + 1), : max(2, math.ceil(w * r) + 1)]
    # Sample the crop at the positions of the big map's pixels (pixel i -> i * r).
    m = np.float32([[r, 0, 0], [0, r, 0]])
    return cv2.warpAffine(
        crop,
        m,
        (w, h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


@register("weather", uint8_input=True)
def fog(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Fractal haze (diamond-square plasma) brightening and flattening."""
    if s < 1:
        return cv2.addWeighted(x, 1 - s, fog(x, 1.0, rng, ctx), s, 0.0)
    strength, decay = levels(((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)), s, (0, 2))
    h, w = x.shape[:2]
    max_val = float(x.max()) / 255
    haze = plasma_for(h, w, decay, rng)
    haze = cv2.cvtColor((haze * 255 + 0.5).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    # (x + strength * haze) * max / (max + strength), in one saturating OpenCV blend.
    k = max_val / (max_val + strength)
    return cv2.addWeighted(x, k, haze, strength * k, 0.0)


@register("weather", uint8_input=True)
def brightness(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Raise the HSV value channel by .1-.5."""
    c = levels((0.1, 0.2, 0.3, 0.4, 0.5), s, 0.0)
    # Closed form of rgb -> hsv, V += c, hsv -> rgb: hue and saturation fixed, every channel
    # scales by V' / V, a function of the 256 values of V; black (V = 0) becomes grey c.
    r, g, b = cv2.split(x)
    v = cv2.max(cv2.max(r, g), b)
    levels_ = np.arange(256, dtype=np.float64) / 255
    ratio = np.minimum(levels_ + c, 1.0) / np.maximum(levels_, 1e-12)
    out = x * ratio.astype(np.float32)[v][..., None]
    out[v == 0] = round(c * 255)
    return out * np.float32(1 / 255)


# ---------------------------------------------------------------------------------------------
# snow


@register("weather")
def snow(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Falling snow flakes (blurred streaks) over a whitened scene."""
    if s < 1:
        return (1 - s) * x + s * snow(x, 1.0, rng, ctx)
    loc, scale_, zoom, thresh, radius, sigma, keep = levels(
        (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ),
        s,
        (0.0,) * 7,
    )
    h, w = x.shape[:2]
    zoom = max(zoom * ctx.scale, 0.25)
    # The published layer: N(loc, scale) noise, its centre ceil(H/zoom) x ceil(W/zoom) zoomed
    # by `zoom` (flake size) as scipy.ndimage.zoom does (order 1, corners to corners, output
    # round(size * zoom)), thresholded, motion-blurred, then cropped to the frame top-left.
    sh, sw = max(2, math.ceil(h / zoom)), max(2, math.ceil(w / zoom))
    layer = rng.normal(loc, scale_, (sh, sw)).astype(np.float32)
    oh, ow = max(h, round(sh * zoom)), max(w, round(sw * zoom))
    m = np.float32([[(sw - 1) / max(ow - 1, 1), 0, 0], [0, (sh - 1) / max(oh - 1, 1), 0]])
    layer = cv2.warpAffine(layer, m, (ow, oh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    layer[layer < thresh] = 0
    np.clip(layer, 0, 1, out=layer)
    angle = rng.uniform(-135, -45)
    layer = apply_kernel(layer, motion_kernel(radius * ctx.scale, sigma * ctx.scale, angle))
    layer = np.round(np.clip(layer, 0, 1) * 255)[:h, :w] * np.float32(1 / 255)
    gray = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, gray * 1.5 + 0.5)
    flakes = layer + layer[::-1, ::-1]
    return x + flakes[..., None]


# ---------------------------------------------------------------------------------------------
# frost


@register("weather", uint8_input=True)
def frost(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Ice crystals on the lens (a crop of a synthetic frost photograph) blended in."""
    keep, amount = levels(((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)), s, (1, 0))
    tex = frost_texture(x.shape[0], x.shape[1], rng, scale=ctx.scale)
    return cv2.addWeighted(x, keep, tex, amount, 0.0)


# ---------------------------------------------------------------------------------------------
# spatter

_WATER = np.float32([175, 238, 238]) / 255
_MUD = np.float32([63, 42, 20]) / 255


@register("weather")
def spatter(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Water droplets (levels 1-3) or mud splashes (4-5) on the lens."""
    if s < 1:
        return (1 - s) * x + s * spatter(x, 1.0, rng, ctx)
    table = (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    )
    loc, sc, blur1, thresh, blur2, _ = levels(table, s, table[0])
    mud = s > 3.5  # the published table switches from water to mud between levels 3 and 4
    h, w = x.shape[:2]
    # The liquid layer is a thresholded texture whose character changes when its blur drops
    # below a pixel, so it is synthesised at the 224-px reference scale with the published
    # constants and resized to the frame (the resolution rule for texture layers).
    wh, ww = max(16, round(h / ctx.scale)), max(16, round(w / ctx.scale))
    liquid = rng.normal(loc, sc, (wh, ww)).astype(np.float32)
    liquid = gaussian(liquid, blur1)
    liquid[liquid < thresh] = 0
    if not mud:
        layer = (np.clip(liquid, 0, 1) * 255).astype(np.uint8)
        dist = 255 - cv2.Canny(layer, 50, 150)
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.blur(dist, (3, 3)).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
        dist = cv2.filter2D(dist, cv2.CV_8U, ker)
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        m = liquid * dist
        m *= np.float32(blur2 / max(float(m.max()), 1e-6))
        return x + _fit(m, h, w)[..., None] * _WATER
    m = (liquid > thresh).astype(np.float32)
    m = gaussian(m, blur2)
    m[m < 0.8] = 0
    m = _fit(m, h, w)[..., None]
    return x * (1 - m) + m * _MUD


def _fit(layer: np.ndarray, h: int, w: int) -> np.ndarray:
    if layer.shape == (h, w):
        return layer
    return cv2.resize(layer, (w, h), interpolation=cv2.INTER_LINEAR)
