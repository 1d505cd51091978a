"""The corruption catalogue: names, groups and metadata, and the public entry points.

Corruptions live one family per module (``noise``, ``blur``, ``weather``, ``digital``,
``driving``; the calibrated driving weather in ``driving_weather``, the depth-aware optics in
``optics``, the faults that unfold over frames in ``temporal``) and register themselves in
``sim.corruptions.registry``; importing this module imports them all. Severity: integers 1-5
select the published constants; a float in [0, 5] interpolates linearly between consecutive
levels, level 0 being the identity parameters (``sim.corruptions.kernels.levels``).
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

from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

from sim.common.names import unknown_name

# The family modules register their corruptions on import.
from sim.corruptions import (  # noqa: F401
    albu,
    blur,
    digital,
    driving,
    driving_weather,
    noise,
    optics,
    temporal,
    weather,
)
from sim.corruptions.compat import (
    IMAGENET_C,
    IMAGENET_C_EXTRA,
    give_back,
    resolve_call,
    to_rgb_uint8,
)
from sim.corruptions.kernels import spatial_scale, to_uint8
from sim.corruptions.registry import (
    CORRUPTIONS,
    FAMILIES,
    UINT8_INPUT,
    Context,
    CorruptionInfo,
    Warp,
)


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
    """An explicit generator: an int seeds one, a Generator is used as is, ``None`` draws
    fresh entropy from the operating system (a different result every call)."""
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a numpy.random.Generator or None, got {seed!r}")
    return np.random.default_rng(int(seed))


SCALINGS = ("relative", "absolute")


def resolve_scale(scaling: str, shape: tuple[int, ...]) -> float:
    """The spatial scale of a ``scaling`` rule for an image of ``shape``.

    ``relative`` (default): ``min(H, W) / 224``, so a severity damages every resolution
    alike. ``absolute``: 1, the published constants in pixels at any resolution, as
    Cityscapes-C applies them to full-resolution frames.
    """
    if scaling == "relative":
        return spatial_scale(shape)
    if scaling == "absolute":
        return 1.0
    raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate an image: numpy uint8 array of shape (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy uint8 array (H, W, 3), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (H, W, 3), got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 8 or image.shape[1] < 8:
        raise ValueError(f"{name} must have shape (H, W, 3) with H, W >= 8, got {image.shape}")
    return image


# ---------------------------------------------------------------------------------------------
# public API


def corruption_names(family: str | None = None) -> list[str]:
    """Registered corruption names, optionally only one family (noise, blur, weather, ...)."""
    if family is None:
        return CORRUPTIONS.names()
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return [n for n in CORRUPTIONS.names() if CORRUPTIONS.meta(n).family == family]


def corruption_info(name: str | dict) -> CorruptionInfo:
    """Metadata of a corruption (family, moves_pixels, needs_depth, needs_previous, ...).

    An albumentations shift spec (``sim.corruptions.albu``) is described too: its label as
    the name, family ``albumentations``.
    """
    if albu.is_spec(name):
        spec = albu.resolved(name)
        what = spec.get("albumentations") or f"pipeline {spec.get('albumentations_file')}"
        return CorruptionInfo(
            spec["label"], albu.FAMILY, moves_pixels=albu.moves_pixels(spec),
            description=f"albumentations {what}",
        )  # fmt: skip
    return CORRUPTIONS.meta(name)


def corruption_groups() -> dict[str, list[str]]:
    """Named groups: imagenet-c (15), imagenet-c-extra (4), their ``imagecorruptions`` names
    common (the 15) and validation (the 4), each family, and all (every corruption; the
    package's ``all``, its 19, is ``sim.get_corruption_names("all")``)."""
    groups = {
        "imagenet-c": list(IMAGENET_C),
        "imagenet-c-extra": list(IMAGENET_C_EXTRA),
        "common": list(IMAGENET_C),
        "validation": list(IMAGENET_C_EXTRA),
    }
    for fam in FAMILIES:
        groups[fam] = corruption_names(fam)
    groups["all"] = corruption_names()
    return groups


def expand_corruptions(items: Iterable[str | dict]) -> list[str | dict]:
    """Corruption names and group names (``corruption_groups``) as corruption names.

    Groups expand in their order, repeats are dropped (first occurrence kept). An unknown
    item raises ``UnknownNameError`` (a ``ValueError``) listing the names and the groups.
    albumentations shift specs (dicts) pass through resolved (``albu.resolve_spec``); their
    labels may not be corruption or group names.
    """
    groups = corruption_groups()
    names = set(CORRUPTIONS.names())
    out: list[str | dict] = []
    for item in items:
        if albu.is_spec(item):
            spec = albu.resolved(item)
            if spec["label"] in names or spec["label"] in groups:
                raise albu.ShiftSpecError(
                    f"label {spec['label']!r} is a corruption or group name; give the "
                    "albumentations shift another label"
                )
            members: list = [spec]
        elif item in groups:
            members = groups[item]
        elif item in names:
            members = [item]
        else:
            raise unknown_name(
                "corruption",
                item,
                sorted(names),
                alternatives=f"; or a group: {', '.join(sorted(groups))}",
                also_close=groups,
            )
        out += [m for m in members if m not in out]
    return out


def corrupt(
    image: np.ndarray,
    name: str | None = None,
    severity: float | None = None,
    seed: int | np.random.Generator | None = None,
    depth: np.ndarray | None = None,
    previous: np.ndarray | None = None,
    *,
    scaling: str = "relative",
    corruption_name: str | None = None,
    corruption_number: int | None = None,
) -> np.ndarray:
    """Corrupt one image: ``corrupt(image, "fog", 3, seed=0)``; same shape and dtype out.

    ``seed``: an int or a ``numpy.random.Generator`` reproduces the bits; the default
    ``None`` draws fresh entropy, so frames corrupted one call at a time get independent
    noise (pass a seed, or one Generator for the whole stream, to reproduce a dataset).
    ``severity``: int 1-5 or float in [0, 5] (default 3). ``scaling``: ``relative`` (spatial
    constants times ``min(H, W) / 224``) or ``absolute`` (the published pixels, as
    Cityscapes-C). ``depth`` (float metres, (H, W), ``inf`` for sky) is required by
    depth-aware corruptions; ``previous`` (the previous frame of a stream) is used by the
    temporal ones.

    The ``imagecorruptions`` call form works too: ``corrupt(image, corruption_name="fog",
    severity=3)``, ``corrupt(image, 3, corruption_name="fog")`` or ``corruption_number=9``
    (severity 1 by default there, as in the package), on uint8 RGB, grayscale ``(H, W)`` or
    ``(H, W, 1)`` images (returned as RGB, as the package does) and, beyond the package,
    float images in [0, 1] (returned as float32 in [0, 1]).
    """
    name, severity = resolve_call(name, severity, corruption_name, corruption_number)
    image, back = to_rgb_uint8(image)
    out, _, _ = _apply(
        image, None, depth, name, severity, seed, previous, want_truth=False, scaling=scaling
    )
    return give_back(out, back)


def corrupt_frame(
    image: np.ndarray,
    semantic: np.ndarray | None,
    depth: np.ndarray | None,
    name: str,
    severity: float,
    rng: int | np.random.Generator,
    previous: np.ndarray | None = None,
    pattern_seed: int | None = None,
    *,
    scaling: str = "relative",
    state: dict | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Corrupt a frame of a stream and keep its ground truth consistent.

    Pixel-moving corruptions move ``semantic`` (nearest neighbour, 255 where undefined) and
    ``depth`` (nearest, NaN where undefined) with the image; the others pass them through.
    ``pattern_seed`` (an int fixed for a whole stream) keeps camera-fixed defects such as dead
    pixels and lens dirt in place from frame to frame. ``state``: a dict the caller keeps for
    one stream (empty at its start) in which stateful corruptions (``auto_exposure_lag``,
    ``camera_crash``) carry what they remember from frame to frame; without one, each frame
    is the first of a stream. ``scaling`` as in :func:`corrupt`.
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
        scaling=scaling,
        state=state,
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
    scaling="relative",
    pattern_seed=None,
    state=None,
):
    spec = albu.resolved(name) if albu.is_spec(name) else None
    fn = None if spec is not None else CORRUPTIONS.get(name)
    info: CorruptionInfo = corruption_info(name)
    check_image(image)
    s = check_severity(severity)
    scale = resolve_scale(scaling, image.shape)
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
    if spec is not None:
        return albu.apply(spec, np.ascontiguousarray(image), semantic, depth, s, rng)
    if state is not None and not isinstance(state, dict):
        raise TypeError(f"state must be a dict kept for one stream, got {type(state).__name__}")
    ctx = Context(
        depth=depth, previous=previous, pattern_seed=pattern_seed, scale=scale, state=state
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
