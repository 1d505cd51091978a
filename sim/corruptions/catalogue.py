"""The corruption catalogue: registry, metadata, severity handling and the public entry points.

Every corruption is a function ``fn(image, severity, rng, ctx) -> array`` registered in
``CORRUPTIONS`` with a :class:`CorruptionInfo`. ``image`` is float32 in [0, 1] (H, W, 3)
(or the uint8 image itself for fast paths registered with ``uint8_input``), ``severity`` a
float in (0, 5], ``rng`` a seeded ``numpy.random.Generator`` and ``ctx`` a
:class:`Context` with the optional depth map, the previous frame and the spatial scale.
Pixel-moving corruptions return a :class:`Warp` (sampling maps) that :func:`corrupt_frame`
applies to the image, the labels and the depth alike.

Severity: integers 1–5 select the published constants; a float in [0, 5] interpolates linearly
between consecutive levels, level 0 being the identity parameters (see :func:`levels`).
Corruptions whose parameters have no continuous identity (glass blur, fog, snow, spatter)
blend linearly from the clean image to their level-1 result between severities 0 and 1.

Resolution rule: ImageNet-C constants were tuned for 224-px crops. Spatial constants (blur
radii and sigmas, glass-blur shifts, snow flake size and streak length, camera-shake shift,
shadow and bloom softness, ...) are multiplied by ``scale = min(H, W) / 224``, so a severity
damages a 128×256 frame and a 512×1024 frame alike (at 224 px the published constants apply
unchanged). Texture layers whose character depends on their pixel scale (spatter) are
synthesised at the 224-px reference size and resized; frost and lens-dirt textures are built
relative to the frame. Constants the published code already expresses relative to the image
(pixelate factor, zoom factors, elastic sigma and amplitude, the fog fractal) are not scaled.
Whole-pixel constants round after scaling (glass blur keeps its shift variance by adjusting
the iteration count), and sub-pixel blurs fade in linearly instead of vanishing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from sim.common.registry import Registry

FAMILIES = ("noise", "blur", "weather", "digital", "driving")
IMAGENET_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
IMAGENET_C_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
REFERENCE_SIZE = 224


@dataclass(frozen=True)
class CorruptionInfo:
    """What a corruption is and what it needs."""

    name: str
    family: str
    moves_pixels: bool = False
    needs_depth: bool = False
    needs_previous: bool = False
    description: str = ""


@dataclass(frozen=True)
class Context:
    """Side information a corruption may use."""

    depth: np.ndarray | None = None
    previous: np.ndarray | None = None
    scale: float = 1.0
    pattern_seed: int | None = None

    def pattern_rng(self, rng: np.random.Generator) -> np.random.Generator:
        """Generator for defects fixed to the camera (dead pixels, lens dirt).

        With a ``pattern_seed`` (a stream's seed) the pattern stays put from frame to frame;
        without one it is drawn from the frame's generator.
        """
        if self.pattern_seed is None:
            return rng
        return np.random.default_rng(self.pattern_seed)


@dataclass(frozen=True)
class Warp:
    """A pixel-moving result: output pixel (y, x) samples the input at (map_y, map_x).

    ``border`` is ``"reflect"`` (every output pixel defined) or ``"constant"`` (pixels mapped
    outside the frame are undefined: black image, label 255, depth NaN). ``post`` optionally
    finishes the warped float image (e.g. extra blur) and must not move pixels.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    border: str = "reflect"
    post: Callable[[np.ndarray], np.ndarray] | None = None


CorruptionFn = Callable[[np.ndarray, float, np.random.Generator, Context], Any]
CORRUPTIONS: Registry[CorruptionFn] = Registry("corruption")
UINT8_INPUT: set[str] = set()


def register(
    name: str,
    family: str,
    description: str,
    *,
    moves_pixels: bool = False,
    needs_depth: bool = False,
    needs_previous: bool = False,
    uint8_input: bool = False,
    override: bool = False,
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Register a corruption function with its metadata.

    ``uint8_input``: the function works on the uint8 image directly (a fast path for
    look-up-table and OpenCV-native operations) instead of float32 in [0, 1]. A name that is
    already registered raises ``ValueError`` unless ``override=True``.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    CORRUPTIONS.check_free(name, override)
    info = CorruptionInfo(name, family, moves_pixels, needs_depth, needs_previous, description)
    UINT8_INPUT.discard(name)
    if uint8_input:
        UINT8_INPUT.add(name)
    return CORRUPTIONS.register(name=name, meta=info, override=override)


# ---------------------------------------------------------------------------------------------
# severity helpers


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


def check_severity(severity: Any) -> float:
    """Validate a severity: int 1–5 or float in [0, 5]."""
    if isinstance(severity, bool) or not isinstance(
        severity, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"severity must be an int 1-5 or a float in [0, 5], got {severity!r}")
    s = float(severity)
    if not 0.0 <= s <= 5.0 or np.isnan(s):
        raise ValueError(f"severity must be an int 1-5 or a float in [0, 5], got {severity!r}")
    return s


def as_generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    """An explicit generator from an int seed or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate an image: numpy uint8 array of shape (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint8 array (H, W, 3), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (H, W, 3), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{name} must have shape (H, W, 3) with H, W >= 8, got {image.shape}")
    return image


def spatial_scale(shape: tuple[int, ...]) -> float:
    """Factor applied to the 224-px spatial constants: ``min(H, W) / 224``."""
    return min(shape[0], shape[1]) / REFERENCE_SIZE


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


# ---------------------------------------------------------------------------------------------
# public API


def corruption_names(family: str | None = None) -> list[str]:
    """Registered corruption names, optionally only one family (noise, blur, weather, ...)."""
    _load()
    if family is None:
        return CORRUPTIONS.names()
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return [n for n in CORRUPTIONS.names() if CORRUPTIONS.meta(n).family == family]


def corruption_info(name: str) -> CorruptionInfo:
    """Metadata of a corruption (family, moves_pixels, needs_depth, needs_previous, ...)."""
    _load()
    return CORRUPTIONS.meta(name)


def corruption_groups() -> dict[str, list[str]]:
    """Named groups: imagenet-c (15), imagenet-c-extra (4), each family, and all."""
    _load()
    groups = {"imagenet-c": list(IMAGENET_C), "imagenet-c-extra": list(IMAGENET_C_EXTRA)}
    for fam in FAMILIES:
        groups[fam] = corruption_names(fam)
    groups["all"] = corruption_names()
    return groups


def corrupt(
    image: np.ndarray,
    name: str,
    severity: float = 3,
    seed: int | np.random.Generator = 0,
    depth: np.ndarray | None = None,
    previous: np.ndarray | None = None,
) -> np.ndarray:
    """Corrupt one uint8 (H, W, 3) image; same shape and dtype out.

    ``seed`` is an int or a ``numpy.random.Generator``: the same seed gives the same bits.
    ``depth`` (float metres, (H, W), ``inf`` for sky) is required by depth-aware corruptions;
    ``previous`` (the previous frame of a stream) is used by ``frame_drop``.
    """
    out, _, _ = _apply(image, None, depth, name, severity, seed, previous, want_truth=False)
    return out


def corrupt_frame(
    image: np.ndarray,
    semantic: np.ndarray | None,
    depth: np.ndarray | None,
    name: str,
    severity: float,
    rng: int | np.random.Generator,
    previous: np.ndarray | None = None,
    pattern_seed: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Corrupt a frame and keep its ground truth consistent.

    Pixel-moving corruptions move ``semantic`` (nearest neighbour, 255 where undefined) and
    ``depth`` (nearest, NaN where undefined) with the image; the others pass them through.
    ``pattern_seed`` (an int fixed for a whole stream) keeps camera-fixed defects such as dead
    pixels and lens dirt in place from frame to frame.
    """
    return _apply(
        image,
        semantic,
        depth,
        name,
        severity,
        rng,
        previous,
        want_truth=True,
        pattern_seed=pattern_seed,
    )


def _apply(
    image,
    semantic,
    depth,
    name,
    severity,
    seed,
    previous,
    *,
    want_truth,
    scale=None,
    pattern_seed=None,
):
    _load()
    fn = CORRUPTIONS.get(name)
    info: CorruptionInfo = CORRUPTIONS.meta(name)
    check_image(image)
    s = check_severity(severity)
    rng = as_generator(seed)
    h, w = image.shape[:2]
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != (h, w):
            raise ValueError(f"depth must have shape {(h, w)} like the image, got {depth.shape}")
    if semantic is not None:
        semantic = np.asarray(semantic)
        if semantic.shape != (h, w):
            raise ValueError(
                f"semantic must have shape {(h, w)} like the image, got {semantic.shape}"
            )
    if previous is not None:
        check_image(previous, "previous")
        if previous.shape != image.shape:
            raise ValueError(f"previous must have shape {image.shape}, got {previous.shape}")
    if info.needs_depth and depth is None:
        raise ValueError(
            f"corruption {name!r} needs depth: pass depth=<float (H, W) metres, inf for sky>"
            " (use 'fog' for the depth-free version)"
        )
    if s == 0.0:
        return image.copy(), semantic, depth
    ctx = Context(
        depth=depth,
        previous=previous,
        pattern_seed=pattern_seed,
        scale=spatial_scale(image.shape) if scale is None else scale,
    )
    if name in UINT8_INPUT:
        result = fn(np.ascontiguousarray(image), s, rng, ctx)
        return (result if result.dtype == np.uint8 else to_uint8(result)), semantic, depth
    x = image.astype(np.float32) * np.float32(1 / 255)
    result = fn(x, s, rng, ctx)
    if isinstance(result, Warp):
        out = _warp(x, result, cv2.INTER_LINEAR, (0.0, 0.0, 0.0))
        if result.post is not None:
            out = result.post(out)
        if want_truth:
            if semantic is not None:
                semantic = _warp(semantic, result, cv2.INTER_NEAREST, 255)
            if depth is not None:
                depth = _warp(depth.astype(np.float32), result, cv2.INTER_NEAREST, float("nan"))
        return to_uint8(out), semantic, depth
    if result.dtype == np.uint8:
        return result, semantic, depth
    return to_uint8(result), semantic, depth


def _warp(arr: np.ndarray, warp: Warp, interp: int, fill: Any) -> np.ndarray:
    dtype = arr.dtype
    src = arr.astype(np.uint8) if dtype == np.uint8 else arr
    if warp.border == "reflect":
        return cv2.remap(src, warp.map_x, warp.map_y, interp, borderMode=cv2.BORDER_REFLECT)
    return cv2.remap(
        src, warp.map_x, warp.map_y, interp, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )


_LOADED = False


def _load() -> None:
    """Import the modules that register corruptions (once)."""
    global _LOADED
    if not _LOADED:
        from sim import _c_blur, _c_digital, _c_driving, _c_noise, _c_weather  # noqa: F401

        _LOADED = True
