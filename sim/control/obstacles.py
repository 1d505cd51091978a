"""What stands in the ego's path, seen through a semantic label map, and how fast it closes in.

An object stands on the ground, so in each image column the lowest pixel of a vehicle or a
person is where it meets the ground (or where a nearer object hides it): back-projecting that
pixel onto a plane ``contact_height`` above the ground gives its distance ``d`` and lateral
position ``X``; the controller decides which of them are in its path. A vehicle's
lowest visible part is its tyres near by but its body further away (small vehicles are drawn
without wheels, as a real camera would barely resolve them), so vehicles are projected onto a
plane ``VEHICLE_CONTACT_HEIGHT`` up, which errs towards nearer; people onto the ground.
"""

from __future__ import annotations

import math

import numpy as np

from sim.common.classes import BICYCLE, BUS, CAR, MOTORCYCLE, PERSON, RIDER, ROAD, TRAIN, TRUCK
from sim.render.camera import Camera

VEHICLES = (CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE, RIDER)
PEOPLE = (PERSON,)
VEHICLE_CONTACT_HEIGHT = 0.2  # m above the ground


class PathScanner:
    """Finds where vehicles or people meet the ground, per image column, in one camera."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self._tables: dict[tuple[int, ...], np.ndarray] = {}  # classes -> lookup by trainId

    def contacts(
        self,
        labels: np.ndarray,
        classes: tuple[int, ...],
        contact_height: float = 0.0,
        min_height: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per image column holding ``classes``: the distance ``d`` (m ahead of the camera)
        and lateral position ``X`` (m, + right) of its lowest such pixel, projected onto the
        plane ``contact_height`` metres above the ground, and whether the pixel below it is
        road (the thing stands on the carriageway; true at the image's bottom edge).

        ``min_height``: a pixel counts only atop an unbroken run of ``classes`` at least this
        many metres tall at its distance: things that stand up have height, while a
        mislabelled patch of road (a marking taken for a car) lies flat."""
        c = self.camera
        lab = labels[c.g0 :]
        table = self._tables.get(classes)
        if table is None:
            table = self._tables[classes] = np.isin(np.arange(256), classes)
        mask = table[lab]
        cols = np.nonzero(mask.any(axis=0))[0]
        if len(cols) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0, bool)
        sub = mask[:, cols]
        scale = (c.cam_h - contact_height) / c.cam_h
        if min_height > 0:
            # a pixel counts when the unbroken run of matching pixels ending at it (from above)
            # is as tall as min_height at its row's distance
            count = np.cumsum(sub, axis=0)
            run = count - np.maximum.accumulate(np.where(sub, 0, count), axis=0)
            need = min_height * c.f / (c.zg[c.g0 :] * scale)
            sub = sub & (run >= need[:, None])
            keep = sub.any(axis=0)
            cols, sub = cols[keep], sub[:, keep]
            if len(cols) == 0:
                return np.zeros(0), np.zeros(0), np.zeros(0, bool)
        lowest = sub.shape[0] - 1 - np.argmax(sub[::-1], axis=0)  # rows from the first ground row
        d = c.zg[c.g0 + lowest] * scale
        below = np.minimum(lowest + 1, lab.shape[0] - 1)
        on_road = (lab[below, cols] == ROAD) | (lowest == lab.shape[0] - 1)
        return d, c.a[cols] * d, on_road


class GapTracker:
    """An alpha-beta filter on the distance to an obstacle: smooths the distance, which the
    rows of a small image quantise coarsely far away, and estimates how fast it shrinks."""

    def __init__(self, alpha: float = 0.5, beta: float = 0.1, jump: float = 4.0) -> None:
        self.alpha, self.beta, self.jump = alpha, beta, jump
        self.gap = math.inf
        self.rate = 0.0  # d gap / dt (m/s): negative while closing in

    def reset(self) -> None:
        self.gap, self.rate = math.inf, 0.0

    def update(self, measured: float, dt: float, initial_rate: float) -> tuple[float, float]:
        """Fuse one measurement (``inf``: nothing seen); a new obstacle, or one much nearer
        than predicted, starts over at ``initial_rate``."""
        if not math.isfinite(measured):
            self.reset()
            return self.gap, self.rate
        predicted = self.gap + self.rate * dt
        if not math.isfinite(predicted) or measured < predicted - self.jump:
            self.gap, self.rate = measured, initial_rate
            return self.gap, self.rate
        residual = measured - predicted
        self.gap = predicted + self.alpha * residual
        self.rate += self.beta * residual / dt
        return self.gap, self.rate
