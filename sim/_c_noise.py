"""ImageNet-C noise corruptions (gaussian, shot, impulse, speckle) with the published constants."""

from __future__ import annotations

import numpy as np

from sim._corrupt import Context, levels, register


def normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


@register("gaussian_noise", "noise", "Additive Gaussian noise, sigma .08-.38 on [0, 1] pixels.")
def gaussian_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    sigma = levels((0.08, 0.12, 0.18, 0.26, 0.38), s, 0.0)
    out = normal(rng, x.shape)
    out *= np.float32(sigma)
    out += x
    return out


@register("shot_noise", "noise", "Poisson (photon) noise with 60, 25, 12, 5, 3 photons at white.")
def shot_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    # Interpolate the photon count in log space so the identity (infinitely many photons) is
    # approached smoothly; integers hit the published constants exactly.
    if s >= 1:
        lam = float(np.exp(levels(tuple(np.log([60, 25, 12, 5, 3])), s, 0.0)))
    else:
        lam = float(np.exp(np.log(60) + (1 - s) * np.log(100)))
    counts = rng.poisson(x * np.float32(lam)).astype(np.float32)
    return counts * np.float32(1 / lam)


@register("impulse_noise", "noise", "Salt-and-pepper noise on a fraction .03-.27 of the values.")
def impulse_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    amount = levels((0.03, 0.06, 0.09, 0.17, 0.27), s, 0.0)
    # Same semantics as skimage's 's&p' mode: each channel value independently flipped with
    # probability `amount`, to 1 or 0 with equal odds.
    u = rng.random(x.shape, dtype=np.float32)
    out = x.copy()
    hit = u < amount
    # Reuse the same uniform draw for the salt/pepper choice: u / amount is uniform on [0, 1).
    salt = u < amount * 0.5
    out[hit] = 0.0
    out[salt] = 1.0
    return out


@register("speckle_noise", "noise", "Multiplicative Gaussian noise x + x*n, sigma .15-.6.")
def speckle_noise(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    sigma = levels((0.15, 0.2, 0.35, 0.45, 0.6), s, 0.0)
    n = normal(rng, x.shape)
    n *= np.float32(sigma)
    n += 1.0
    n *= x
    return n
