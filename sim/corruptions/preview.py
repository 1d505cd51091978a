"""Contact sheets: a labelled grid of corrupted versions of one frame (``roadshift preview``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from sim.corruptions.catalogue import (
    check_image,
    check_severity,
    corrupt,
    corruption_info,
    corruption_names,
    expand_corruptions,
)

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BG = (255, 255, 255)
_INK = (20, 20, 20)


def _text_size(text: str, scale: float) -> tuple[int, int]:
    (w, h), base = cv2.getTextSize(text, _FONT, scale, 1)
    return w, h + base


def _put(canvas: np.ndarray, text: str, x: int, y: int, scale: float) -> None:
    cv2.putText(canvas, text, (x, y), _FONT, scale, _INK, 1, cv2.LINE_AA)


def _placeholder(h: int, w: int, text: str, scale: float) -> np.ndarray:
    tile = np.full((h, w, 3), 200, np.uint8)
    tw, th = _text_size(text, scale)
    _put(tile, text, max(2, (w - tw) // 2), (h + th) // 2, scale)
    return tile


def _resolve(corruptions: str | Sequence[str] | None) -> list[str]:
    if corruptions is None:
        return corruption_names()
    names = expand_corruptions([corruptions] if isinstance(corruptions, str) else corruptions)
    if not names:
        raise ValueError("corruptions must name at least one corruption or group")
    return names


def contact_sheet(
    image: np.ndarray,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[float] = (1, 2, 3, 4, 5),
    seed: int = 0,
    depth: np.ndarray | None = None,
    tile_width: int | None = None,
) -> np.ndarray:
    """A labelled uint8 grid of ``image`` under each corruption and severity.

    With several severities: one row per corruption, a ``clean`` column then one column per
    severity. With one severity: a gallery of all corruptions (clean first), captioned.
    ``corruptions`` is a list of names, one name, a group name (``sim.corruption_groups()``)
    or ``None`` for all. Depth-aware corruptions show "needs depth" unless ``depth`` is given.
    Each tile is rendered at the image's resolution, then resized to ``tile_width`` pixels.
    """
    check_image(image)
    names = _resolve(corruptions)
    sevs = [check_severity(s) for s in severities]
    if not sevs:
        raise ValueError("severities must hold at least one severity in [0, 5]")
    h, w = image.shape[:2]
    tw = tile_width or min(w, 320)
    th = max(1, round(h * tw / w))
    scale = max(0.3, min(0.6, tw / 400))

    def tile(name: str | None, sev: float) -> np.ndarray:
        if name is None:
            out = image
        elif corruption_info(name).needs_depth and depth is None:
            return _placeholder(th, tw, "needs depth", scale)
        else:
            out = corrupt(image, name, sev, seed=seed, depth=depth)
        return cv2.resize(out, (tw, th), interpolation=cv2.INTER_AREA)

    pad = 4
    if len(sevs) > 1:
        label_w = max(_text_size(n, scale)[0] for n in [*names, "clean"]) + 2 * pad
        head_h = _text_size("s5", scale)[1] + 2 * pad
        cols = len(sevs) + 1
        sheet = np.full(
            (head_h + len(names) * (th + pad), label_w + cols * (tw + pad), 3), _BG, np.uint8
        )
        for j, title in enumerate(["clean"] + [f"severity {s:g}" for s in sevs]):
            x0 = label_w + j * (tw + pad)
            _put(sheet, title, x0 + pad, head_h - pad - 2, scale)
        for i, name in enumerate(names):
            y0 = head_h + i * (th + pad)
            _put(sheet, name, pad, y0 + th // 2 + 4, scale)
            for j, sev in enumerate([None, *sevs]):
                x0 = label_w + j * (tw + pad)
                sheet[y0 : y0 + th, x0 : x0 + tw] = tile(None if sev is None else name, sev or 0)
        return sheet
    sev = sevs[0]
    items: list[tuple[str | None, str]] = [(None, "clean")] + [(n, f"{n} s{sev:g}") for n in names]
    ncol = max(1, math.ceil(math.sqrt(len(items) * th / tw * 1.6)))
    ncol = min(ncol, len(items))
    nrow = math.ceil(len(items) / ncol)
    cap_h = _text_size("Ag", scale)[1] + 2 * pad
    cell_w, cell_h = tw + pad, th + cap_h
    sheet = np.full((nrow * cell_h + pad, ncol * cell_w + pad, 3), _BG, np.uint8)
    for k, (name, caption) in enumerate(items):
        r, c = divmod(k, ncol)
        x0, y0 = pad + c * cell_w, r * cell_h
        _put(sheet, caption, x0, y0 + cap_h - pad - 2, scale)
        sheet[y0 + cap_h : y0 + cap_h + th, x0 : x0 + tw] = tile(name, sev)
    return sheet
