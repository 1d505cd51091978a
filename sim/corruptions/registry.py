"""The corruption registry: what a corruption is, what it may use, and how it is registered.

Every corruption is a function ``fn(image, severity, rng, ctx) -> array`` registered in
``CORRUPTIONS`` with a :class:`CorruptionInfo`. ``image`` is float32 in [0, 1] (H, W, 3)
(or the uint8 image itself for fast paths registered with ``uint8_input``), ``severity`` a
float in (0, 5], ``rng`` a seeded ``numpy.random.Generator`` and ``ctx`` a :class:`Context`
with the optional depth map, the previous frame, the spatial scale and the stream's state.
Pixel-moving corruptions return a :class:`Warp` (sampling maps) that ``corrupt_frame``
applies to the image, the labels and the depth alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.common.registry import Registry

FAMILIES = ("noise", "blur", "weather", "digital", "driving")


@dataclass(frozen=True)
class CorruptionInfo:
    """What a corruption is and what it needs."""

    name: str
    family: str
    moves_pixels: bool = False
    needs_depth: bool = False
    needs_previous: bool = False
    stateful: bool = False
    description: str = ""


@dataclass(frozen=True)
class Context:
    """Side information a corruption may use."""

    depth: np.ndarray | None = None
    previous: np.ndarray | None = None
    scale: float = 1.0
    pattern_seed: int | None = None
    state: dict | None = None

    def memory(self, key: str) -> dict:
        """The dict a stateful corruption keeps between frames of one stream under ``key``
        (a fresh one when the caller keeps no state: a single image is a stream's first
        frame)."""
        if self.state is None:
            return {}
        return self.state.setdefault(key, {})

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
    family: str,
    *,
    name: str | None = None,
    moves_pixels: bool = False,
    needs_depth: bool = False,
    needs_previous: bool = False,
    stateful: bool = False,
    uint8_input: bool = False,
    override: bool = False,
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator: register a corruption function of ``family`` under its name (or ``name``).

    The function's docstring, first paragraph, is its description (``roadshift list
    corruptions``). ``uint8_input``: the function works on the uint8 image directly (a fast
    path for look-up-table and OpenCV-native operations) instead of float32 in [0, 1].
    ``stateful``: the function remembers across a stream's frames in ``ctx.memory(name)``
    (the caller keeps the state dict; see ``corrupt_frame``). A name that is already
    registered raises ``ValueError`` unless ``override=True``.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")

    def deco(fn: CorruptionFn) -> CorruptionFn:
        key = name or fn.__name__
        CORRUPTIONS.check_free(key, override)
        description = " ".join(inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0].split())
        info = CorruptionInfo(
            key, family, moves_pixels, needs_depth, needs_previous, stateful, description
        )
        UINT8_INPUT.discard(key)
        if uint8_input:
            UINT8_INPUT.add(key)
        return CORRUPTIONS.register(fn, name=key, meta=info, override=override)

    return deco
