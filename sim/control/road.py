"""Where the lane is, seen through a semantic label map: the ego's lateral offset and heading.

Flat-ground back-projection through the world's pinhole camera (``sim.render.camera.Camera``):
a ground pixel in row ``r`` lies ``d = camera.zg[r]`` metres ahead, and the boundary between
columns ``c - 1`` and ``c`` lies ``X = (c - cx) / f * d`` metres right of the camera.

In every ground row between ``NEAR`` and ``FAR`` metres ahead, the run of road pixels around the
lane is found and each of its two ends is a measurement of a road edge if it is *seen*: a road
pixel inside next to a boundary class outside (sidewalk, terrain, building, wall, fence,
vegetation, pole, ...). Ends at the image border, at a vehicle or person (they stand on the
road and hide its edge), at the sky or at void pixels measure nothing. Knowing where the lane
lies between the road's edges (a :class:`RoadPrior`: map knowledge), each seen edge gives a
point of the lane's centre line. In the world's road frame that line, seen from the camera, is
``X(d) = (u_lane - u) - psi d + k d^2 / 2`` (``sim.render.ground``), so tracking the
coefficients ``(c0, c1, c2)`` of ``X(d) = c0 + c1 d + c2 d^2`` gives the ego's offset from its
lane ``u - u_lane = -c0``, its heading relative to the road ``psi = -c1`` and the road's
curvature ``k = 2 c2``. :class:`LaneTracker` tracks them with a Kalman filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.common.classes import (
    BICYCLE,
    BUS,
    CAR,
    IGNORE_INDEX,
    MOTORCYCLE,
    NUM_CLASSES,
    PERSON,
    RIDER,
    ROAD,
    SKY,
    TRAIN,
    TRUCK,
)
from sim.render.camera import Camera
from sim.render.ground import MARK_WIDTH
from sim.world.layout import Layout

#: Classes that stand on the road and hide it: a run of road pixels ending at one of them has
#: no visible edge there.
OCCLUDERS = (PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)
# Pixel classes by role (index: trainId; 255 and anything unknown count as "unknown").
_ROAD_LIKE = np.zeros(256, bool)
_ROAD_LIKE[[ROAD, *OCCLUDERS, IGNORE_INDEX]] = True
_BOUNDARY = np.zeros(256, bool)
_BOUNDARY[:NUM_CLASSES] = True
_BOUNDARY[[ROAD, SKY, *OCCLUDERS]] = False

NEAR, FAR = 3.0, 40.0  # metres ahead: the rows that measure the road
PIXEL_SIGMA = 1.0  # columns: the spread of a seen edge's position (quantisation and label noise)
HUBER = 2.0  # in sigmas: residuals beyond this weigh less (Huber's k)
GATE = 4.0  # in sigmas of the predicted line (plus PIXEL_SIGMA): points beyond are ignored
MIN_POINTS = 4  # fewer seen edge points than this: no update this frame
IRLS_ITERATIONS = 5
# The tracked state (c0, c1, c2): its spread when a drive starts in its lane, and how much it
# wanders per second beyond what the ego's own motion explains (metres, radians, 1/m).
START_SIGMA = (0.5, 0.05, 0.002)
DRIFT_PER_S = (0.1, 0.02, 0.0015)


@dataclass(frozen=True)
class RoadPrior:
    """Where the lane to keep lies across the drivable road (what a map would say).

    Lateral offsets ``u`` in metres from the road's centre line, positive to the right:
    ``left_edge`` and ``right_edge`` bound the stretch of road pixels around the lane (on a
    road with a median, the ego's carriageway), ``lane`` is the centre of the lane to keep.
    """

    left_edge: float
    right_edge: float
    lane: float

    def __post_init__(self) -> None:
        if not self.left_edge < self.lane < self.right_edge:
            raise ValueError(
                f"RoadPrior needs left_edge < lane < right_edge, got {self.left_edge:g}, "
                f"{self.lane:g}, {self.right_edge:g}"
            )

    @classmethod
    def of_town(cls, layout: Layout, lane: float) -> RoadPrior:
        """The prior for a lane of a town's road (``sim.world.layout.Layout``).

        A painted line on a road edge (the rural edge lines, the highway's line along the
        median) is labelled road, so the road's pixels reach half its width beyond the edge.
        """
        st = layout.style
        median = float(st.median)
        left = 0.5 * median if median > 0 else -float(layout.road_half)
        right = float(layout.road_half)
        lines = [0.5 * median + i * st.lane_width for i in range(st.lanes_per_dir + 1)]

        def painted(edge: float) -> bool:
            return any(abs(abs(edge) - line) < 1e-6 for line in lines)

        left -= MARK_WIDTH if painted(left) else 0.0
        right += MARK_WIDTH if painted(right) else 0.0
        return cls(left_edge=left, right_edge=right, lane=float(lane))


@dataclass(frozen=True)
class LaneEstimate:
    """The lane's centre line in the camera's ground frame, ``X(d) = c0 + c1 d + c2 d^2``.

    ``sigma``: the standard deviation (m) of ``c0``, how well the tracker knows where the
    lane is; ``points``: edge points this frame measured (0: the estimate is carried over
    from the car's own motion alone).
    """

    c0: float
    c1: float
    c2: float
    sigma: float
    points: int

    @property
    def seen(self) -> bool:
        return self.points > 0

    @property
    def offset(self) -> float:
        """The ego's lateral offset from the lane's centre (m, + right)."""
        return -self.c0

    @property
    def heading(self) -> float:
        """The ego's heading relative to the lane (rad, + right)."""
        return -self.c1

    @property
    def curvature(self) -> float:
        """The lane's curvature ahead (1/m, + bending right)."""
        return 2.0 * self.c2

    def at(self, d: float | np.ndarray) -> float | np.ndarray:
        """Lateral position (m, + right) of the lane's centre ``d`` metres ahead."""
        return self.c0 + self.c1 * d + self.c2 * d * d


class LaneTracker:
    """A Kalman filter on the lane's centre line, updated from label maps of one camera.

    ``predict(speed, yaw_rate, dt)`` moves the line by the ego's own motion (what odometry and
    a yaw-rate sensor report): ``dt`` seconds at ``speed`` m/s forward and ``yaw_rate`` rad/s
    (+ right) turn ``X(d)`` into ``X(d + v dt) - yaw_rate dt d``. ``update(labels)`` measures
    the seen road edges (see the module's docstring) and fuses them with the prediction, each
    point weighing ``1 / sigma^2`` with ``sigma`` = ``PIXEL_SIGMA`` columns in metres at its
    distance, Huber-reweighted over a few iterations, points beyond ``GATE`` sigmas of the
    predicted line dropped.
    """

    def __init__(self, camera: Camera, prior: RoadPrior, near: float = NEAR, far: float = FAR):
        self.camera, self.prior = camera, prior
        rows = np.nonzero(camera.ground & (camera.zg >= near) & (camera.zg <= far))[0]
        if len(rows) < 2:
            raise ValueError(
                f"the camera sees no ground between {near:g} and {far:g} m ahead; "
                "lower its pitch or raise its resolution"
            )
        self.rows = rows
        self.dist = camera.zg[rows]  # metres ahead of each measuring row
        self.per_px = self.dist / camera.f  # metres per column at that distance
        # position of column boundary c relative to the optical axis, in columns
        self.boundary = np.arange(camera.W + 1, dtype=np.float64) - camera.cx
        self.reset()

    def reset(self) -> None:
        """Forget the lane: the car stands in its lane, pointing along it, give or take."""
        self.mean = np.zeros(3)
        self.cov = np.diag(np.square(START_SIGMA))

    @property
    def estimate(self) -> LaneEstimate:
        c0, c1, c2 = (float(v) for v in self.mean)
        return LaneEstimate(c0, c1, c2, float(np.sqrt(self.cov[0, 0])), 0)

    def predict(self, speed: float, yaw_rate: float, dt: float) -> None:
        """Move the line by ``dt`` seconds of the ego's own motion."""
        step = speed * dt
        F = np.array([[1.0, step, step * step], [0.0, 1.0, 2.0 * step], [0.0, 0.0, 1.0]])
        self.mean = F @ self.mean
        self.mean[1] -= yaw_rate * dt
        self.cov = F @ self.cov @ F.T + np.diag(np.square(DRIFT_PER_S)) * dt

    def edge_points(self, labels: np.ndarray, anchor: np.ndarray) -> tuple[np.ndarray, ...]:
        """Lane-centre points from the seen road edges: (distance, X, sigma) arrays.

        ``anchor``: per measuring row, the column where the lane is expected; the run of
        road pixels holding it (or the nearest run) is measured.
        """
        W = self.camera.W
        lab = labels[self.rows]
        road_like = _ROAD_LIKE[lab]
        # runs of road-like pixels: their first columns and one past their last, row by row
        # (np.nonzero scans row-major, so starts and stops pair up in order)
        starts = road_like.copy()
        starts[:, 1:] &= ~road_like[:, :-1]
        stops = road_like.copy()
        stops[:, :-1] &= ~road_like[:, 1:]
        r_start, c_start = np.nonzero(starts)
        _, c_stop = np.nonzero(stops)
        c_stop += 1
        if len(r_start) == 0:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        # the run holding the anchor, or the nearest run, per row
        miss = np.maximum(c_start - anchor[r_start], anchor[r_start] - (c_stop - 1))
        order = np.lexsort((np.maximum(miss, 0), r_start))
        first = np.ones(len(order), bool)
        first[1:] = r_start[order][1:] != r_start[order][:-1]
        pick = order[first]
        rr, lo, hi = r_start[pick], c_start[pick], c_stop[pick]
        prior = self.prior
        # a left end is seen when it is not the border, with road inside and a boundary
        # class outside; likewise the right end
        inner_left = lab[rr, lo]
        outer_left = lab[rr, np.maximum(lo - 1, 0)]
        inner_right = lab[rr, hi - 1]
        outer_right = lab[rr, np.minimum(hi, W - 1)]
        left = (lo > 0) & (inner_left == ROAD) & _BOUNDARY[outer_left]
        right = (hi < W) & (inner_right == ROAD) & _BOUNDARY[outer_right]
        x_left = self.boundary[lo] * self.per_px[rr] + (prior.lane - prior.left_edge)
        x_right = self.boundary[hi] * self.per_px[rr] - (prior.right_edge - prior.lane)
        rows = np.concatenate([rr[left], rr[right]])
        x = np.concatenate([x_left[left], x_right[right]])
        return self.dist[rows], x, PIXEL_SIGMA * self.per_px[rows]

    def update(self, labels: np.ndarray) -> LaneEstimate:
        """Fuse this frame's label map (uint8 trainIds, (H, W)) into the estimate."""
        c = self.camera
        if labels.shape != (c.H, c.W):
            raise ValueError(f"labels must have shape {(c.H, c.W)}, got {labels.shape}")
        expect = self.mean[0] + self.mean[1] * self.dist + self.mean[2] * self.dist**2
        anchor = np.clip(np.rint(expect / self.per_px + c.cx), 0, c.W - 1).astype(np.int64)
        d, x, sigma = self.edge_points(labels, anchor)
        A = np.stack([np.ones_like(d), d, d * d], axis=1)
        if len(d):
            spread = np.sqrt(np.einsum("ij,jk,ik->i", A, self.cov, A) + sigma**2)
            keep = np.abs(x - A @ self.mean) < GATE * spread
            A, x, sigma = A[keep], x[keep], sigma[keep]
        if len(x) < MIN_POINTS:
            return self.estimate
        prior_info = np.linalg.inv(self.cov)
        prior_term = prior_info @ self.mean
        w0 = 1.0 / sigma**2
        w = w0
        for _ in range(IRLS_ITERATIONS):
            info = prior_info + (A * w[:, None]).T @ A
            mean = np.linalg.solve(info, prior_term + (A * w[:, None]).T @ x)
            z = np.abs(x - A @ mean) / sigma
            w = w0 * np.minimum(1.0, HUBER / np.maximum(z, 1e-9))
        self.mean, self.cov = mean, np.linalg.inv(info)
        return LaneEstimate(*(float(v) for v in mean), float(np.sqrt(self.cov[0, 0])), len(x))
