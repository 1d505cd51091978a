"""The lazily generated town along the road: curvature, layer blocks, intersections, props.

Static objects (trees, poles, signs, lights, parked cars) are generated chunk by chunk from the
world's generator, so the same seed always gives the same town however fast it is traversed.
"""

from __future__ import annotations

import numpy as np

from sim.world.layout import Blocks, Layout
from sim.world.objects import PROP_DTYPE, PropKind, concat_tables, take_rows
from sim.world.sampling import car_color, choose, jitter
from sim.world.styles import K_BUILDING, K_FENCE, K_HEDGE, K_RAIL, K_TREES, K_WALL, TownStyle

CHUNK = 20.0  # metres of props generated at a time
# Street furniture colours (bins, benches, bollards, boxes), before each piece's wobble.
_CLUTTER_COLORS = ((60, 70, 60), (110, 100, 90), (150, 150, 150), (40, 60, 110), (130, 60, 40))


class TownMap:
    """Everything static about the drive, generated in order from one generator."""

    def __init__(self, style: TownStyle, rng: np.random.Generator) -> None:
        self.style = style
        self.layout = Layout(style)
        self.rng = rng
        # Curvature: two slow sinusoids with random phases; straight-ish roads stay gentle.
        self._k_amp = style.curvature * rng.uniform(0.6, 1.0)
        self._k_freq = 2 * np.pi / rng.uniform([350.0, 900.0], [600.0, 1600.0])
        self._k_phase = rng.uniform(0, 2 * np.pi, 2)
        self.blocks = [[Blocks(), Blocks()], [Blocks(), Blocks()]]  # [side][layer]
        # Lateral set-back |u| of each layer's plane, per side (0 left, 1 right).
        lay = self.layout
        self.setback = [
            [
                lay.outer + float(rng.uniform(*style.near_u)),
                lay.outer + float(rng.uniform(*style.far_u)),
            ]
            for _ in (0, 1)
        ]
        if lay.median_u is not None:
            self.setback[0][0] = -lay.median_u
        self.inter_start = np.zeros(0, np.float64)
        self.inter_end = np.zeros(0, np.float64)
        self._next_inter = self._draw_inter_gap() if style.intersection_every else np.inf
        self.lamp_spacing = float(rng.uniform(25.0, 35.0))
        self.lamp_offset = float(rng.uniform(0.0, self.lamp_spacing))
        self.has_lamps = style.name != "rural"
        # static props, sorted by s (see PROP_DTYPE)
        self.props = np.zeros(0, PROP_DTYPE)
        self._props_to = -40.0
        self._gen_to = -60.0
        self._ready_to = -np.inf  # everything is generated up to here
        self._tidy_at = -np.inf  # next s_min at which to drop what lies behind
        self.ensure(-60.0, 400.0)

    # ----- curvature -----
    def curvature(self, s: np.ndarray | float) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        a = self._k_amp
        return a * (
            0.65 * np.sin(self._k_freq[0] * s + self._k_phase[0])
            + 0.35 * np.sin(self._k_freq[1] * s + self._k_phase[1])
        )

    def mean_curvature(self, s0: float, length: float) -> float:
        """Mean curvature over ``[s0, s0 + length]`` (closed form of the sinusoids)."""
        a, w, p = self._k_amp, self._k_freq, self._k_phase
        s1 = s0 + length
        integ = (
            0.65 * (np.cos(w[0] * s0 + p[0]) - np.cos(w[0] * s1 + p[0])) / w[0]
            + 0.35 * (np.cos(w[1] * s0 + p[1]) - np.cos(w[1] * s1 + p[1])) / w[1]
        )
        return float(a * integ / length)

    # ----- generation -----
    def _draw_inter_gap(self) -> float:
        lo, hi = self.style.intersection_every  # type: ignore[misc]
        return float(self.rng.uniform(lo, hi))

    def ensure(self, s_min: float, s_max: float) -> None:
        """Generate blocks, intersections and props up to ``s_max``; drop those behind ``s_min``."""
        if s_max <= self._ready_to and s_min < self._tidy_at:
            return  # nothing to generate or drop yet
        rng = self.rng
        while self._gen_to < s_max:
            s = self._gen_to
            if self._next_inter < s + 60 and self._next_inter > s:
                width = float(rng.uniform(9.0, 14.0))
                self.inter_start = np.append(self.inter_start, self._next_inter)
                self.inter_end = np.append(self.inter_end, self._next_inter + width)
                self._next_inter += width + self._draw_inter_gap()
            self._gen_to += 60.0
        for side in (0, 1):
            for layer in (0, 1):
                b = self.blocks[side][layer]
                while b.end < s_max:
                    self._append_block(b, side, layer)
        while self._props_to < s_max:
            self._gen_props(self._props_to, self._props_to + CHUNK)
            self._props_to += CHUNK
        for side in self.blocks:
            for b in side:
                b.trim(s_min)
        if len(self.props) > 2000:
            self.props = take_rows(self.props, self.props["s"] > s_min)
        ends = [b.end for side in self.blocks for b in side]
        self._ready_to = min(self._gen_to, self._props_to, *ends)
        self._tidy_at = s_min + 40.0

    def _append_block(self, b: Blocks, side: int, layer: int) -> None:
        st, rng, lay = self.style, self.rng, self.layout
        kinds = st.near_kinds if layer == 0 else st.far_kinds
        kind = choose(rng, kinds)
        lo, hi = st.near_height if layer == 0 else st.far_height
        if kind in (K_FENCE, K_HEDGE, K_WALL) and layer == 0 and st.name == "urban":
            lo, hi = 1.2, 3.0
        if kind == K_TREES:
            lo, hi = max(lo, 5.0), max(hi, 9.0)
        height = float(rng.uniform(lo, hi))
        length = float(rng.uniform(*st.block_len))
        u = self.setback[side][layer]
        if layer == 0 and side == 0 and lay.median_u is not None:
            kind, height = K_WALL, 0.9  # the median barrier
        if kind == K_BUILDING:
            rgb = jitter(rng, st.building_colors[int(rng.integers(len(st.building_colors)))], 0.12)
        elif kind in (K_WALL, K_RAIL):
            rgb = jitter(rng, st.wall_colors[int(rng.integers(len(st.wall_colors)))], 0.1)
        elif kind == K_FENCE:
            base = st.wall_colors[int(rng.integers(len(st.wall_colors)))]
            if rng.random() < 0.4:
                base = (120, 95, 70)  # wooden
            rgb = jitter(rng, base, 0.12)
        elif kind in (K_HEDGE, K_TREES):
            rgb = jitter(rng, st.veg_rgb, 0.15)
        else:
            rgb = np.zeros(3, np.float32)
        b.append(b.end, length, kind, height, u, rgb, float(rng.uniform(0, 1000)))

    def in_intersection(self, s: np.ndarray) -> np.ndarray:
        if len(self.inter_start) == 0:
            return np.zeros(np.shape(s), bool)
        i = np.searchsorted(self.inter_start, s, side="right") - 1
        ok = i >= 0
        ic = np.maximum(i, 0)
        return ok & (s < self.inter_end[ic])

    def _gen_props(self, s0: float, s1: float) -> None:
        st, rng, lay = self.style, self.rng, self.layout
        rows: list[tuple] = []
        kerb = lay.road_half
        per = (s1 - s0) / 100.0
        for side in (-1, 1):
            for ptype, rate in (
                (PropKind.TREE, st.trees),
                (PropKind.POLE, st.poles),
                (PropKind.SIGN, st.signs),
                (PropKind.PARKED, st.parked),
                (PropKind.BUSH, 0.0 if st.name == "urban" else st.trees * 0.5),
                (PropKind.CLUTTER, 4.0 if st.sidewalk else 0.0),
            ):
                for _ in range(int(rng.poisson(rate * per))):
                    s = float(rng.uniform(s0, s1))
                    if self.in_intersection(np.array([s]))[0] and ptype != PropKind.SIGN:
                        continue
                    size = variant = 0.0
                    if ptype == PropKind.PARKED:
                        if st.parking <= 0 or (st.name == "highway"):
                            if st.name != "rural":
                                continue
                        u = kerb - 1.1 if st.parking > 0 else kerb + 1.5
                        variant = float(rng.uniform(0, 1))
                        rgb = car_color(rng)
                    elif ptype == PropKind.TREE:
                        if st.sidewalk:
                            u = kerb + st.verge + st.sidewalk * rng.uniform(0.6, 0.85)
                        else:
                            u = lay.outer + rng.uniform(2.0, 14.0)
                        size = float(rng.uniform(4.0, 11.0))
                        rgb = jitter(rng, st.veg_rgb, 0.2)
                    elif ptype == PropKind.CLUTTER:  # bins, benches, bollards, boxes: void class
                        u = kerb + st.verge + st.sidewalk * rng.uniform(0.15, 0.9)
                        variant = float(rng.uniform(0.0, 1.0))
                        rgb = jitter(rng, _CLUTTER_COLORS[int(rng.integers(5))], 0.12)
                    elif ptype == PropKind.BUSH:
                        u = lay.outer + rng.uniform(0.5, 8.0)
                        size = float(rng.uniform(0.6, 1.6))
                        rgb = jitter(rng, st.veg_rgb, 0.2)
                    else:
                        u = kerb + (st.verge + 0.4 if st.sidewalk else 0.8 + rng.uniform(0, 1.5))
                        variant = float(rng.uniform(0, 1))
                        rgb = jitter(rng, (130, 130, 128), 0.15)
                    rows.append((s, side * u, ptype, size, variant, rgb, rng.uniform(0, 1000)))
            # Street lights at a regular spacing (both sides, offset by half a spacing).
            if self.has_lamps:
                first = self.lamp_offset + (0.5 * self.lamp_spacing if side < 0 else 0.0)
                k0 = np.ceil((s0 - first) / self.lamp_spacing)
                s = first + k0 * self.lamp_spacing
                while s < s1:
                    u = kerb + (st.verge + 0.3 if st.sidewalk else 0.6)
                    seed = rng.uniform(0, 1000)
                    rows.append((s, side * u, PropKind.LAMP, 0.0, 0.0, (110, 112, 115), seed))
                    s += self.lamp_spacing
        # Traffic lights at the near corners of intersections starting in this chunk.
        # Near corners: an overhead mast-arm signal on the right (variant 1), a plain one on the
        # left (variant 0); far corner on the right: another mast-arm signal across the crossing.
        sel = (self.inter_start >= s0) & (self.inter_start < s1)
        signal = PropKind.TRAFFIC_LIGHT
        for a, b in zip(self.inter_start[sel], self.inter_end[sel], strict=True):
            u = kerb + 0.5
            phase = rng.uniform(0, 1000)
            rows.append((a - 1.5, u, signal, 0.0, 1.0, (40, 40, 38), phase))
            rows.append((a - 1.5, -u, signal, 0.0, 0.0, (40, 40, 38), phase))
            rows.append((b + 1.0, u, signal, 0.0, 1.0, (40, 40, 38), phase))
            seed = rng.uniform(0, 1000)
            rows.append((a - 2.0, kerb + 0.8, PropKind.SIGN, 0.0, 0.5, (130, 130, 128), seed))
        if rows:
            props = concat_tables(self.props, np.array(rows, dtype=PROP_DTYPE))
            self.props = take_rows(props, np.argsort(props["s"], kind="stable"))

    def props_between(self, s_lo: float, s_hi: float) -> np.ndarray:
        """The props with ``s_lo <= s < s_hi``, in order of ``s``."""
        s = self.props["s"]
        i0 = np.searchsorted(s, s_lo) if len(s) else 0
        i1 = np.searchsorted(s, s_hi) if len(s) else 0
        return self.props[i0:i1]
