"""Camera faults that unfold over frames: crashes (blank frames) and auto-exposure lag.

Both are stateful: what they remember lives in the per-stream ``state`` dict the caller keeps
(``sim.corrupt_frame(..., state=...)``; ``CorruptionWrapper`` and the runner keep one per
stream). Every draw comes from the frame's generator, so a stream is reproducible from its
seed. Without a state (a single image) each call is the first frame of a stream. The stale
frames of the driving benchmarks are ``frame_drop`` (each frame replaced by the previous one
with probability p).
"""

from __future__ import annotations

import math

import numpy as np

from sim.corruptions.kernels import levels
from sim.corruptions.registry import Context, register

#: Per severity: crashes per frame (at 10 frames/s, the world's default step) and the mean
#: outage in frames (a reboot); the fraction of blank frames is q m / (1 + q m).
CRASHES = ((0.01, 3.0), (0.02, 5.0), (0.03, 8.0), (0.05, 10.0), (0.08, 15.0))


def blank_fraction(rate: float, outage: float) -> float:
    """Long-run fraction of blank frames: up spells last 1 / rate, down spells ``outage``."""
    return rate * outage / (1 + rate * outage)


@register("driving", stateful=True)
def camera_crash(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """The camera crashes and reboots: blank (black) frames in spells; crash rate .01-.08 per
    frame, mean outage 3-15 frames (3-55 % of frames blank)."""
    rate, outage = levels(CRASHES, s, (0.0, 1.0))
    mem = ctx.memory("camera_crash")
    u = rng.random()
    if "down" not in mem:
        # A stream (or a single image) starts in the long-run state: down with probability
        # blank_fraction, so a stream is the same kind of stream from its first frame.
        down = u < blank_fraction(rate, outage)
    elif mem["down"]:
        down = u >= 1 / outage  # each down frame ends the outage with probability 1 / m
    else:
        down = u < rate
    mem["down"] = bool(down)
    return np.zeros_like(x) if down else x


#: Per severity: the size of a sudden light change in stops (tunnel exits and entries,
#: shadows of bridges) and the auto-exposure time constant in frames.
EXPOSURE = ((1.0, 2.0), (1.5, 3.0), (2.0, 5.0), (2.5, 8.0), (3.0, 12.0))
LIGHT_CHANGES_PER_FRAME = 0.05
GAMMA = 2.2


@register("driving", stateful=True)
def auto_exposure_lag(
    x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context
) -> np.ndarray:
    """Auto-exposure lags sudden light changes: the exposure is off by 1-3 stops after each
    change and recovers with a time constant of 2-12 frames."""
    stops, tau = levels(EXPOSURE, s, (0.0, 1.0))
    mem = ctx.memory("auto_exposure_lag")
    sign = 1.0 if rng.random() < 0.5 else -1.0
    change = rng.random() < LIGHT_CHANGES_PER_FRAME
    if "ev" not in mem:
        ev = sign * stops  # a stream starts just after a light change
    else:
        ev = mem["ev"] * math.exp(-1 / tau)  # the controller closes the gap exponentially
        if change:
            ev += sign * stops
    mem["ev"] = ev
    # the error is an exposure gain 2**ev in linear light (sRGB-like gamma 2.2)
    lin = np.power(x, np.float32(GAMMA)) * np.float32(2.0**ev)
    return np.power(np.clip(lin, 0, 1), np.float32(1 / GAMMA))
