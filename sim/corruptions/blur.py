"""ImageNet-C blur corruptions: defocus, glass, motion, zoom and gaussian blur.

Kernel-based versions of the published algorithms (single OpenCV filter calls instead of
per-shift loops); spatial constants scale with ``ctx.scale`` (see ``sim.corruptions.catalogue``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.corruptions.kernels import apply_kernel, gaussian, levels, motion_kernel
from sim.corruptions.registry import Context, register


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """Normalised disk, anti-aliased by a small Gaussian (3×3 up to radius 8, 5×5 beyond)."""
    half = max(8, math.ceil(radius))
    ax = np.arange(-half, half + 1, dtype=np.float32)
    xx, yy = np.meshgrid(ax, ax)
    k = (xx**2 + yy**2 <= radius**2).astype(np.float32)
    k /= k.sum()
    ksize = (3, 3) if radius <= 8 else (5, 5)
    return cv2.GaussianBlur(k, ksize, sigmaX=max(alias_blur, 1e-6))


@register("blur", uint8_input=True)
def defocus_blur(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Disk-shaped lens defocus, radius 3-10 px at 224 px."""
    radius, alias = levels(((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)), s, (0.0, 0.1))
    radius *= ctx.scale
    if radius < 1:
        # A disk under one pixel is the identity: blend towards the 1-px disk so damage keeps
        # growing with severity on small frames.
        blurred = apply_kernel(x, disk_kernel(1.0, alias * ctx.scale))
        return cv2.addWeighted(x, 1 - radius, blurred, radius, 0.0)
    return apply_kernel(x, disk_kernel(radius, alias * ctx.scale))


@register("blur")
def gaussian_blur(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Gaussian blur, sigma 1, 2, 3, 4, 6 px at 224 px."""
    sigma = levels((1, 2, 3, 4, 6), s, 0.0) * ctx.scale
    return gaussian(x, sigma)


@register("blur", uint8_input=True)
def motion_blur(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Linear motion blur at a random angle in [-45, 45] degrees."""
    radius, sigma = levels(((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)), s, (0.0, 0.5))
    angle = rng.uniform(-45, 45)
    radius, sigma = radius * ctx.scale, sigma * ctx.scale
    if radius < 0.5:
        return x.copy()
    return apply_kernel(x, motion_kernel(radius, sigma, angle))


@register("blur")
def zoom_blur(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Average of centre zooms up to 1.11-1.31 (radial blur)."""
    zmax, step = levels(
        ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)), s, (1.0, 0.01)
    )
    # Exactly the published layers, np.arange(1, zmax, step): its float end point lands inside
    # at severity 1, which has 12 layers (1.00 ... 1.11), not 11.
    zooms = np.arange(1.0, zmax, step)
    h, w = x.shape[:2]
    acc = x.copy()
    for z in zooms:
        # The published clipped zoom: crop the centre ceil(H/z) x ceil(W/z), scale it back up.
        ch, cw = math.ceil(h / z), math.ceil(w / z)
        top, left = (h - ch) // 2, (w - cw) // 2
        oh, ow = round(ch * z), round(cw * z)
        # scipy.ndimage.zoom maps corner to corner: out i -> in i * (c - 1) / (o - 1).
        fy, fx = (ch - 1) / max(oh - 1, 1), (cw - 1) / max(ow - 1, 1)
        m = np.float32([[fx, 0, left], [0, fy, top]])
        acc += cv2.warpAffine(
            x,
            m,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REPLICATE,
        )
    return acc * np.float32(1 / (len(zooms) + 1))


@register("blur")
def glass_blur(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Blur, local pixel copies as the published code executes them, blur again (frosted glass)."""
    if s < 1:
        # Pixel moves do not shrink continuously to nothing: fade in the severity-1 result.
        return (1 - s) * x + s * glass_blur(x, 1.0, rng, ctx)
    sigma, delta, iters = levels(
        ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)), s, (0.0, 1, 1)
    )
    sigma *= ctx.scale
    # Shifts are whole pixels: round the scaled shift and keep the total displacement
    # variance (iterations x shift^2) of the published constants.
    scaled = delta * ctx.scale
    delta = max(1, round(scaled))
    iters = max(1, round(round(iters) * (scaled / delta) ** 2))
    # The published version truncates to uint8 between the two blurs.
    img = (np.clip(gaussian(x, sigma), 0, 1) * 255).astype(np.uint8)
    img = glass_copy(img, delta, iters, rng)
    return gaussian(img.astype(np.float32) * np.float32(1 / 255), sigma)


def glass_sweep(h: int, w: int, delta: int) -> np.ndarray:
    """Flat indices of the pixels the published sweep visits, in its order.

    Rows ``h - delta`` down to ``delta + 1``, and in each row columns ``w - delta`` down to
    ``delta + 1``: bottom-right to top-left, so the flat index strictly decreases.
    """
    ys = np.arange(h - delta, delta, -1)
    xs = np.arange(w - delta, delta, -1)
    return (ys[:, None] * w + xs[None, :]).ravel()


def glass_copy(img: np.ndarray, delta: int, iters: int, rng: np.random.Generator) -> np.ndarray:
    """The glass-blur pixel "swap" as the published code executes it, vectorised.

    The published loop visits each pixel ``p`` of :func:`glass_sweep` and runs
    ``x[p], x[q] = x[q], x[p]`` with ``q = p + (dy, dx)``, ``dx, dy`` uniform in
    ``[-delta, delta - 1]``. On an RGB array ``x[q]`` is a view, so the first assignment
    copies ``q`` into ``p`` and the second writes ``p``'s new value (``q``'s) back: a copy,
    not a swap. Pixels are duplicated and content drifts by a pixel or two.

    ``p`` takes the *current* value of ``q``: already overwritten when the sweep visited
    ``q`` before ``p`` (``q`` in the sweep and later in flat order), otherwise the value the
    iteration started with. Such chains run forwards in flat order, so each one ends at a
    pixel that reads a start value; pointer doubling finds every chain's end at once.
    Random draws: one ``(dx, dy)`` pair per visited pixel, in sweep order, per iteration
    (``rng.integers(-delta, delta, size=(n, 2), dtype=np.int8)``), the order in which the
    published loop draws them.
    """
    h, w = img.shape[:2]
    n = h * w
    sweep = glass_sweep(h, w, delta).astype(np.int32)
    if sweep.size == 0:
        return img.copy()
    visited = np.zeros(n, bool)
    visited[sweep] = True
    # Compose the iterations as one index map (output pixel -> input pixel), gather once.
    index = np.arange(n, dtype=np.int32)
    for _ in range(iters):
        d = rng.integers(-delta, delta, size=(sweep.size, 2), dtype=np.int8)
        src = sweep + d[:, 1].astype(np.int32) * w + d[:, 0]
        follow = visited[src] & (src > sweep)
        # read[p]: where p's value comes from if p ends a chain; link[p]: the next pixel.
        read = np.arange(n, dtype=np.int32)
        read[sweep] = src
        link = np.arange(n, dtype=np.int32)
        link[sweep[follow]] = src[follow]
        while True:
            nxt = link[link]
            if np.array_equal(nxt, link):
                break
            link = nxt
        index = index[read[link]]
    return img.reshape(n, -1)[index].reshape(img.shape)
