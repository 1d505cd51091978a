"""ImageNet-C digital corruptions: contrast, elastic transform, pixelate, JPEG, saturate."""

from __future__ import annotations

import cv2
import numpy as np

from sim.corruptions.kernels import gaussian, levels
from sim.corruptions.registry import Context, Warp, register


@register("digital", uint8_input=True)
def contrast(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Scale pixels about the per-channel mean by .4-.05."""
    c = levels((0.4, 0.3, 0.2, 0.1, 0.05), s, 1.0)
    # A per-channel affine map of the 256 input values: one look-up table per channel.
    means = np.array(cv2.mean(x)[:3]) / 255
    v = np.arange(256)[:, None] / 255
    lut = np.clip(((v - means) * c + means) * 255 + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(x, lut.reshape(256, 1, 3))


@register("digital")
def saturate(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Scale HSV saturation (and offset): .3, .1, 2, 5, 20."""
    mul, add = levels(((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)), s, (1.0, 0.0))
    # Closed form of rgb -> hsv, S' = clip(S * mul + add), hsv -> rgb. Each channel is
    # V * (1 - S * g(hue)), so channel' = V - (V - channel) * S' / S. Grey pixels (S = 0) have
    # hue 0 (red) in the published conversion: R = V, G = B = V * (1 - S').
    v = x.max(axis=2, keepdims=True)
    mn = x.min(axis=2, keepdims=True)
    sat = np.divide(v - mn, v, out=np.zeros_like(v), where=v > 0)
    sat2 = np.clip(sat * np.float32(mul) + np.float32(add), 0, 1)
    ratio = np.divide(sat2, sat, out=np.zeros_like(sat), where=sat > 0)
    out = v - (v - x) * ratio
    grey = (sat <= 0)[..., 0]
    if grey.any() and add > 0:
        vg, sg = v[grey], sat2[grey]
        out[grey] = np.concatenate([vg, vg * (1 - sg), vg * (1 - sg)], axis=1)
    return out


@register("digital", uint8_input=True)
def pixelate(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Box-downsample by .6-.25 (Pillow's box filter, exactly) and upsample nearest."""
    c = levels((0.6, 0.5, 0.4, 0.3, 0.25), s, 1.0)
    h, w = x.shape[:2]
    small = pil_box_resize(x, max(1, int(w * c)), max(1, int(h * c)))
    # INTER_NEAREST_EXACT samples pixel centres, like PIL's NEAREST.
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)


_PIL_BITS = 22  # Pillow's fixed-point precision for 8-bit resampling (32 - 8 - 2)


def _pil_box_axis(x: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One pass of Pillow's BOX reduction along ``axis`` (uint8 in, uint8 out), exactly.

    Pillow's box filter is evaluated at input pixel centres, so an input pixel counts fully
    or not at all (no fractional coverage as in an area filter); the weights 1/count become
    22-bit fixed-point integers and the sum is rounded and shifted back.
    """
    n = x.shape[axis]
    if n == out_size:
        return x
    scale = n / out_size
    support = 0.5 * max(scale, 1.0)
    centre = (np.arange(out_size) + 0.5) * scale
    lo = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    hi = np.minimum((centre + support + 0.5).astype(np.int64), n)
    # Within [lo, hi) the filter is 1 where -0.5 < (i - centre + 0.5) / scale' <= 0.5.
    ss = 1.0 / max(scale, 1.0)
    span = int((hi - lo).max())
    i = lo[:, None] + np.arange(span)[None, :]
    t = (i - centre[:, None] + 0.5) * ss
    on = (i < hi[:, None]) & (t > -0.5) & (t <= 0.5)
    first = np.where(on.any(1), on.argmax(1), 0) + lo
    count = on.sum(1)
    last = first + count
    k = (0.5 + (1 << _PIL_BITS) / np.maximum(count, 1)).astype(np.int64)
    k[count == 0] = 0
    csum = np.cumsum(np.moveaxis(x, axis, 0).astype(np.int64), axis=0)
    csum = np.concatenate([np.zeros_like(csum[:1]), csum], axis=0)
    sums = csum[last] - csum[first]
    shape = (-1,) + (1,) * (sums.ndim - 1)
    out = (sums * k.reshape(shape) + (1 << (_PIL_BITS - 1))) >> _PIL_BITS
    return np.moveaxis(np.clip(out, 0, 255).astype(np.uint8), 0, axis)


def pil_box_resize(x: np.ndarray, out_w: int, out_h: int) -> np.ndarray:
    """``PIL.Image.resize((out_w, out_h), Image.BOX)`` for shrinking uint8 images.

    A horizontal pass to uint8, then a vertical one; each pass alone is Pillow's bit for bit,
    the two together within one grey level of Pillow 13 (which rounds between the passes
    differently). An area filter (``cv2.INTER_AREA``) weighs partly covered pixels by their
    coverage and differs from the published pixelate by up to 40 levels at factors .6, .4, .3.
    """
    return _pil_box_axis(_pil_box_axis(x, out_w, 1), out_h, 0)


@register("digital", uint8_input=True)
def jpeg_compression(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """JPEG re-encoding at quality 25, 18, 15, 10, 7."""
    q = round(levels((25, 18, 15, 10, 7), s, 100))
    bgr = cv2.cvtColor(x, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@register("digital", moves_pixels=True)
def elastic_transform(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> Warp:
    """Smooth random displacement field (rubber-sheet warp)."""
    alpha = levels(tuple(250 * a for a in (0.05, 0.065, 0.085, 0.1, 0.12)), s, 0.0)
    h, w = x.shape[:2]
    # Published form: uniform noise of amplitude 0.005*H, smoothed by a Gaussian of sigma
    # 0.01*(H, W) (truncated at 3 sigma, reflected borders), times alpha. Already relative to
    # the image, so not rescaled.
    amp = h * 0.005
    fields = rng.uniform(-amp, amp, size=(2, h, w)).astype(np.float32)
    dx = gaussian(fields[0], w * 0.01, truncate=3, border=cv2.BORDER_REFLECT, sigma_y=h * 0.01)
    dy = gaussian(fields[1], w * 0.01, truncate=3, border=cv2.BORDER_REFLECT, sigma_y=h * 0.01)
    # skimage's gaussian takes sigma per axis (rows, cols) = (0.01*H, 0.01*W).
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return Warp(gx + dx * np.float32(alpha), gy + dy * np.float32(alpha), border="reflect")
