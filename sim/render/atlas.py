"""Façade atlas: per-style patterns of the vertical layers as lookup tables.

A layer pixel is addressed by its height above the ground and its distance along the block
(both in ATLAS_RES cells per metre); the atlas says whether the pixel is solid (fence slats and
guardrail bands let the background through), whether it is a window (and whether that window
is lit at night), and a texture value. One table lookup replaces a dozen per-pixel operations.
"""

from __future__ import annotations

import numpy as np

from sim.world.styles import K_BUILDING, K_FENCE, K_HEDGE, K_NONE, K_RAIL, K_TREES, K_WALL

ATLAS_RES = 5.0  # cells per metre
ATLAS_H = 320  # 64 m of height
ATLAS_A = 170  # 34 m along the block before the pattern repeats
BUILDING_STYLES = 4
# code values: 0 transparent, 1 solid, 2 window, 3 window lit at night
N_VARIANTS = BUILDING_STYLES + 6


def variant_table() -> np.ndarray:
    """Atlas variant by ``kind * BUILDING_STYLES + style % BUILDING_STYLES``."""
    kind = np.repeat(np.arange(7), BUILDING_STYLES)
    style = np.tile(np.arange(BUILDING_STYLES), 7)
    return variant_of(kind, style)


def variant_of(kind: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Atlas variant for each column from its layer kind and block style (0..3)."""
    v = np.full(kind.shape, BUILDING_STYLES, np.int32)  # default: plain solid wall
    v = np.where(kind == K_BUILDING, style % BUILDING_STYLES, v)
    v = np.where(kind == K_WALL, BUILDING_STYLES + 0, v)
    v = np.where(kind == K_FENCE, BUILDING_STYLES + 1 + (style % 2), v)
    v = np.where(kind == K_RAIL, BUILDING_STYLES + 3, v)
    v = np.where((kind == K_HEDGE) | (kind == K_TREES), BUILDING_STYLES + 4, v)
    v = np.where(kind == K_NONE, BUILDING_STYLES + 5, v)
    return v.astype(np.int32)


TEX_STEP = 1.0 / 24.0  # texture quantum of the packed atlas


def build_atlas(rng: np.random.Generator, noise: np.ndarray) -> np.ndarray:
    """Packed int16 atlas, flat index ``(variant * ATLAS_A + along) * ATLAS_H + height``:
    ``value & 3`` is the code, ``(value >> 2) * TEX_STEP`` the texture (about -1..1)."""
    h = (np.arange(ATLAS_H) + 0.5)[:, None] / ATLAS_RES  # metres
    a = (np.arange(ATLAS_A) + 0.5)[None, :] / ATLAS_RES
    shape = (ATLAS_H, ATLAS_A)
    codes = np.zeros((N_VARIANTS, *shape), np.int8)
    tex = np.zeros((N_VARIANTS, *shape), np.float32)
    n = noise[np.arange(ATLAS_H) % noise.shape[0]][:, np.arange(ATLAS_A) % noise.shape[1]]
    fine = noise[(np.arange(ATLAS_H) * 7) % noise.shape[0]][
        :, (np.arange(ATLAS_A) * 5) % noise.shape[1]
    ]
    # building styles: (window width share, floor height, window top/bottom in the floor)
    styles = [
        (0.5, 3.1, 0.33, 0.75),
        (0.82, 3.4, 0.3, 0.72),
        (0.3, 2.9, 0.4, 0.72),
        (0.6, 3.3, 0.25, 0.8),
    ]
    for v, (share, floor, lo, hi) in enumerate(styles):
        bay = 3.4 if v != 2 else 1.7
        fa = (a % bay) / bay
        fh = (h % floor) / floor
        win = (np.abs(fa - 0.5) < share / 2) & (fh > lo) & (fh < hi) & (h > 1.0)
        if v == 3:  # shopfronts: a tall glass ground floor
            win |= (h > 0.4) & (h < 3.0) & (np.abs(fa - 0.5) < 0.45)
        lit = rng.random((int(ATLAS_H / ATLAS_RES / floor) + 2, int(ATLAS_A / 1.7) + 2)) < 0.4
        lit_px = lit[(h / floor).astype(int) % lit.shape[0], (a / bay).astype(int) % lit.shape[1]]
        codes[v] = np.where(win, np.where(lit_px, 3, 2), 1)
        # masonry: faint horizontal courses plus noise
        course = ((h % 1.2) < 0.2).astype(np.float32)
        tex[v] = 0.45 * n + 0.25 * fine - 0.4 * course * (~win)
        tex[v] = np.where(win, 0.5 * fine, tex[v])
    base = BUILDING_STYLES
    # concrete / brick walls: blocks with joints
    joint = ((h % 0.6) < 0.2) & (((a + 0.6 * ((h // 0.6) % 2)) % 1.2) < 0.2)
    codes[base + 0] = 1
    tex[base + 0] = 0.35 * n + 0.2 * fine - 0.5 * joint
    # fences: posts every 2.125 m with vertical slats / a mesh of wires
    post = (a % 2.125) < 0.2
    slat = (a % 0.4) < 0.2
    codes[base + 1] = np.where(post | slat, 1, 0)
    wire = ((h % 0.4) < 0.2) & ((a % 0.4) < 0.2)
    codes[base + 2] = np.where(post | wire | (h > 1.6), 1, 0)
    tex[base + 1] = tex[base + 2] = 0.3 * fine
    # guardrail: a steel band from 0.45 to 0.8 m on posts every 4.25 m
    codes[base + 3] = np.where(((h > 0.4) & (h < 0.8)) | ((a % 4.25) < 0.2), 1, 0)
    tex[base + 3] = 0.25 * fine + 0.3 * ((h % 0.4) < 0.2)
    # hedges and tree lines: leafy noise
    codes[base + 4] = 1
    tex[base + 4] = 0.6 * fine + 0.4 * n
    codes[base + 5] = 0
    q = np.clip(np.rint(tex / TEX_STEP), -120, 120).astype(np.int16)
    packed = (q << 2) | codes.astype(np.int16)
    # stored as [variant][along][height]: a column's pixels read consecutive entries
    return np.ascontiguousarray(packed.transpose(0, 2, 1)).reshape(-1)
