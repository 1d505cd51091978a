"""ImageNet-C noise corruptions (gaussian, shot, impulse, speckle) with the published constants.

Speed: the noise is drawn by inverse-CDF table look-up on 16-bit uniform integers (the tables
live in ``sim.corruptions.kernels``, shared with the sensor faults of ``driving``).
"""

from __future__ import annotations

import numpy as np

from sim.corruptions.kernels import (
    UNIFORM_BINS,
    levels,
    normal,
    normal_table,
    poisson_table,
    uniform16,
)
from sim.corruptions.registry import Context, register


@register("noise", uint8_input=True)
def gaussian_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Additive Gaussian noise, sigma .08-.38 on [0, 1] pixels."""
    sigma = levels((0.08, 0.12, 0.18, 0.26, 0.38), s, 0.0)
    # x is uint8 and the output is rounded to integers, so round(x + n) = x + round(n):
    # the whole corruption runs in int16.
    steps = np.rint(normal_table() * np.float32(sigma * 255)).astype(np.int16)
    out = steps[uniform16(rng, x.shape)]
    out += x
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


@register("noise", uint8_input=True)
def shot_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    # Interpolate the photon count in log space so the identity (infinitely many photons) is
    # approached smoothly; integers hit the published constants exactly.
    """Poisson (photon) noise with 60, 25, 12, 5, 3 photons at white."""
    if s >= 1:
        lam = float(np.exp(levels(tuple(np.log([60, 25, 12, 5, 3])), s, 0.0)))
    else:
        lam = float(np.exp(np.log(60) + (1 - s) * np.log(100)))
    table = poisson_table(round(lam, 6)).ravel()
    idx = x.astype(np.int32) << 16
    idx |= uniform16(rng, x.shape)
    return table[idx]


@register("noise", uint8_input=True)
def impulse_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Salt-and-pepper noise on a fraction .03-.27 of the values."""
    amount = levels((0.03, 0.06, 0.09, 0.17, 0.27), s, 0.0)
    # Same semantics as skimage's 's&p' mode: each channel value independently flipped with
    # probability `amount`, to 1 or 0 with equal odds (one uniform draw decides both:
    # u < amount/2 -> salt, amount/2 <= u < amount -> pepper), on a 1/65536 grid.
    u = uniform16(rng, x.shape)
    out = x.copy()
    np.putmask(out, u < round(amount * UNIFORM_BINS), 0)
    np.putmask(out, u < round(amount * UNIFORM_BINS / 2), 255)
    return out


@register("noise")
def speckle_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Multiplicative Gaussian noise x + x*n, sigma .15-.6."""
    sigma = levels((0.15, 0.2, 0.35, 0.45, 0.6), s, 0.0)
    n = normal(rng, x.shape)
    n *= np.float32(sigma)
    n += 1.0
    n *= x
    return n
