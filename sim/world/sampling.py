"""Random draws shared by the town and its traffic: weighted choices and instance colours."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

K = TypeVar("K")

# Body colours of cars (parked and moving), before each instance's own wobble.
CAR_COLORS: tuple[tuple[int, int, int], ...] = (
    (200, 200, 205),
    (30, 30, 34),
    (120, 122, 128),
    (160, 30, 30),
    (30, 50, 120),
    (220, 220, 215),
    (70, 80, 60),
    (180, 150, 60),
    (90, 60, 40),
    (60, 110, 150),
)


def choose(rng: np.random.Generator, options: tuple[tuple[K, float], ...]) -> K:
    """One of the ``(item, weight)`` options, drawn with probability proportional to weight."""
    p = np.array([w for _, w in options], dtype=float)
    return options[int(rng.choice(len(options), p=p / p.sum()))][0]


def jitter(rng: np.random.Generator, rgb: tuple[int, int, int], amount: float) -> np.ndarray:
    """An instance colour: the base colour with a random brightness and hue wobble."""
    c = np.asarray(rgb, dtype=np.float32) * rng.uniform(1 - amount, 1 + amount)
    c += rng.normal(0.0, 12.0 * amount, 3)
    return np.clip(c, 0, 255).astype(np.float32)


def car_color(rng: np.random.Generator) -> np.ndarray:
    """A car's body colour: one of ``CAR_COLORS`` with its own wobble."""
    return jitter(rng, CAR_COLORS[int(rng.integers(len(CAR_COLORS)))], 0.12)
