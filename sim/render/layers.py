"""The road-side layers: façades, walls, fences, hedges and tree lines as vertical planes.

Each side of the road has a near and a far layer at a fixed set-back ``|u|`` (see
``sim.world.town_map``). Each image column's ray is intersected with the layer planes by
solving the quadratic of the road's curve; the block hit gives the column's height, kind and
colour, and the façade atlas (``sim.render.atlas``) the solid pixels, windows and texture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.common.classes import BUILDING
from sim.render.atlas import (
    ATLAS_A,
    ATLAS_H,
    ATLAS_RES,
    BUILDING_STYLES,
    TEX_STEP,
    variant_table,
)
from sim.render.buffers import FrameBuffers
from sim.render.camera import ZMAX, Camera, CameraState
from sim.render.ids import F_LEFT, F_RIGHT, G_WINDOW, layer_slots
from sim.render.materials import MaterialTable
from sim.world.styles import (
    K_BUILDING,
    K_HEDGE,
    K_NONE,
    K_TREES,
    K_WALL,
    LAYER_LABEL,
    N_LAYER_KINDS,
)
from sim.world.town_map import TownMap

MIN_HIT = 0.05  # metres: plane hits nearer than this (or behind) do not count
# Tree lines and hedges get a ragged top from the 1-D noise along the road.
TREE_TOP_RANGE = (0.72, 0.28)  # height share: base + swing * noise
HEDGE_TOP_RANGE = (0.9, 0.1)
TOP_NOISE_CELLS_PER_M = 2.0
_LABEL = np.array([LAYER_LABEL.get(k, BUILDING) for k in range(N_LAYER_KINDS)], np.uint8)


@dataclass
class LayerColumns:
    """Per-column facts of one layer in one frame."""

    zc: np.ndarray  # depth of the hit (ZMAX where none)
    s_hit: np.ndarray  # s of the hit
    kind: np.ndarray  # layer kind of the block hit
    right: np.ndarray  # the hit is on the right side of the road
    rgb: np.ndarray  # block colour
    bstart: np.ndarray  # s where the block starts (the atlas pattern runs from there)
    style: np.ndarray  # block style seed
    y_lo: np.ndarray  # first image row (fractional) the layer covers; 1e9 where none
    y_hi: np.ndarray  # last; -1e9 where none
    full: np.ndarray  # the layer is opaque from its base to its top here


class Layers:
    """Paints the two road-side layers of one town for one camera."""

    def __init__(
        self, town: TownMap, camera: Camera, atlas: np.ndarray, top_noise: np.ndarray
    ) -> None:
        """``atlas``: from ``build_atlas``; ``top_noise``: 256 values of noise along the road."""
        self.town = town
        self.camera = camera
        self.atlas = atlas
        self.variants = variant_table()
        self.top_noise = top_noise
        W = camera.W
        self.col_ids = [
            np.arange(layer_slots(layer, W).start, layer_slots(layer, W).stop, dtype=np.int32)
            for layer in (0, 1)
        ]

    def paint(self, cam: CameraState, buf: FrameBuffers, materials: MaterialTable) -> None:
        """Both layers into the buffers, far then near (a near hit is never behind a far one)."""
        hits, sides = self._hits(cam)
        cols = [self._columns(cam, layer, hits[layer], sides[layer]) for layer in (0, 1)]
        near, far = cols
        if near is not None and far is not None:
            # far columns wholly hidden behind a solid near façade need no pixel work
            hidden = near.full & (near.y_lo <= far.y_lo)
            far.y_lo = np.where(hidden, np.float32(1e9), far.y_lo)
            far.y_hi = np.where(hidden, np.float32(-1e9), far.y_hi)
        for layer in (1, 0):
            c = cols[layer]
            if c is not None:
                self._paint_layer(layer, c, buf, materials)

    def _hits(self, cam: CameraState) -> tuple[np.ndarray, np.ndarray]:
        """Per layer and column: depth of the first hit with the layer's planes (left or
        right, whichever comes first) and the side hit; shapes (2, W)."""
        sb = self.town.setback
        U = np.array([[-sb[0][0]], [sb[1][0]], [-sb[0][1]], [sb[1][1]]])
        A = -0.5 * cam.curvature
        B = (self.camera.a - cam.heading)[None, :]
        C = cam.u - U
        with np.errstate(divide="ignore", invalid="ignore"):
            if abs(A) < 1e-9:
                z = -C / B
                z = np.where(z > MIN_HIT, z, np.inf)
            else:
                disc = B * B - 4 * A * C
                sq = np.sqrt(np.maximum(disc, 0.0))
                q = -0.5 * (B + np.where(B >= 0, sq, -sq))  # the stable root formula
                r1 = q / A
                r2 = C / q
                r1 = np.where(r1 > MIN_HIT, r1, np.inf)
                r2 = np.where(r2 > MIN_HIT, r2, np.inf)
                z = np.where(disc >= 0, np.minimum(r1, r2), np.inf)
        z = z.reshape(2, 2, -1)  # (layer, side, W)
        side = (z[:, 1] < z[:, 0]).astype(np.int8)
        best = np.minimum(z[:, 0], z[:, 1])
        best = np.where(best < ZMAX, best, np.inf)
        return best, side

    def _columns(
        self, cam: CameraState, layer: int, z: np.ndarray, side: np.ndarray
    ) -> LayerColumns | None:
        """Per-column facts of one layer: depth, block properties, covered rows."""
        town, c = self.town, self.camera
        hit = np.isfinite(z)
        if not hit.any():
            return None
        zc = np.where(hit, z, ZMAX)
        s_hit = cam.s + zc
        bl, br = town.blocks[0][layer], town.blocks[1][layer]
        idx_l, idx_r = bl.lookup(s_hit), br.lookup(s_hit)
        right = side == 1
        kind = np.where(right, br.kind[idx_r], bl.kind[idx_l])
        top = np.where(right, br.height[idx_r], bl.height[idx_l]).astype(np.float64)
        rgb = np.where(right[:, None], br.rgb[idx_r], bl.rgb[idx_l])
        bstart = np.where(right, br.start[idx_r], bl.start[idx_l])
        style = np.where(right, br.seed[idx_r], bl.seed[idx_l]).astype(np.int64)
        if layer == 0:
            top = np.where(town.in_intersection(s_hit), 0.0, top)
        n1 = self.top_noise[(s_hit * TOP_NOISE_CELLS_PER_M).astype(np.int64) & 255]
        base, swing = TREE_TOP_RANGE
        top = np.where(kind == K_TREES, top * (base + swing * n1), top)
        base, swing = HEDGE_TOP_RANGE
        top = np.where(kind == K_HEDGE, top * (base + swing * n1), top)
        top = np.where(hit & (kind != K_NONE), top, 0.0)
        if not (top > 0).any():
            return None
        # rows between the layer's base (height 0) and its top, column by column
        y_lo = c.yh - 0.5 + c.f * (c.cam_h - top) / zc
        y_hi = c.yh - 0.5 + c.f * c.cam_h / zc
        y_lo = np.where(top > 0, y_lo, 1e9).astype(np.float32)
        y_hi = np.where(top > 0, y_hi, -1e9).astype(np.float32)
        full = (top > 0) & (
            (kind == K_BUILDING) | (kind == K_WALL) | (kind == K_HEDGE) | (kind == K_TREES)
        )
        return LayerColumns(zc, s_hit, kind, right, rgb, bstart, style, y_lo, y_hi, full)

    def _paint_layer(
        self, layer: int, c: LayerColumns, buf: FrameBuffers, materials: MaterialTable
    ) -> None:
        """Write a layer's solid pixels (windows, fences' gaps, texture) into the buffers."""
        depth, gid, texv, shadow = buf.depth, buf.gid, buf.texv, buf.shadow
        cam = self.camera
        H, W = cam.H, cam.W
        y_lo, y_hi = c.y_lo, c.y_hi
        ra = int(max(0, math.floor(float(y_lo.min()))))
        rb = int(min(H, math.ceil(float(y_hi.max())) + 1))
        if rb <= ra:
            return
        kind = c.kind
        materials.set_layer(layer, c.rgb, _LABEL[kind], np.where(c.right, F_LEFT, F_RIGHT))
        band = slice(ra, rb)  # only the rows the layer can cover ...
        vis = y_lo < 1e8
        cols: slice | np.ndarray = slice(None)
        if vis.sum() < 0.75 * W:  # ... and only the columns where it can show
            cols = np.flatnonzero(vis)
            y_lo, y_hi = y_lo[cols], y_hi[cols]
        zc32 = c.zc[cols].astype(np.float32)
        rows = cam.rows_f[band]
        solid = (rows > y_lo[None, :]) & (rows <= y_hi[None, :])
        hp = cam.cam_h - cam.b32[band, None] * zc32[None, :]  # height of each pixel's hit
        hq = (hp * ATLAS_RES).astype(np.int32)
        np.maximum(hq, 0, out=hq)
        np.minimum(hq, ATLAS_H - 1, out=hq)
        along = ((c.s_hit[cols] - c.bstart[cols]) * ATLAS_RES).astype(np.int64) % ATLAS_A
        variant = self.variants[kind[cols] * BUILDING_STYLES + c.style[cols] % BUILDING_STYLES]
        colterm = ((variant * ATLAS_A + along) * ATLAS_H).astype(np.int32)
        hq += colterm[None, :]
        packed = self.atlas.take(hq)
        code = packed & 3
        solid &= code > 0
        view = isinstance(cols, slice)
        d_sub, g_sub, t_sub = depth[band, cols], gid[band, cols], texv[band, cols]
        np.copyto(d_sub, np.broadcast_to(zc32[None, :], solid.shape), where=solid)
        np.copyto(g_sub, self.col_ids[layer][cols][None, :], where=solid)
        code += G_WINDOW - 2  # windows (2, 3) become G_WINDOW, G_LITWIN
        np.copyto(g_sub, code, where=solid & (code >= G_WINDOW))
        packed >>= 2
        np.copyto(t_sub, packed * np.float32(TEX_STEP), where=solid)
        if not view:
            depth[band, cols] = d_sub
            gid[band, cols] = g_sub
            texv[band, cols] = t_sub
        if shadow is not None:
            if view:
                shadow[band] &= ~solid
            else:
                shadow[band, cols] &= ~solid
