"""Driving weather with physical parameters, calibrated to real adverse-weather drops.

Each condition is driven by one physical quantity per severity, on a fixed ladder around a
severity-3 anchor (see ``docs/calibration.md``):

- ``fog_depth``: Koschmieder fog, extinction beta doubling per level; visibility (meteorological
  optical range) MOR = 2.996 / beta.
- ``rain``: rain rate R (mm/h) doubling per level; the veil's extinction follows from the
  Marshall-Palmer drop sizes (sigma = 0.365 R^0.63 /km: geometric optics, extinction
  efficiency 2), streaks and dimming grow with R.
- ``night``: scene illuminance E (lux) falling 4x (2 stops) per level; the camera exposes up
  to 5 stops longer, then gains up to 6 stops (photon and amplified read noise), and the rest
  stays underexposed.
- ``sun_flare``: veiling glare from a low sun in view (no real-data target; documented only).

The severity-3 anchors are the calibration knobs: the target is the fraction of clean mIoU
that Cityscapes-trained models keep on ACDC for the condition, on the bundled photometrically
trained model; ``benchmarks/calibrate_weather.py`` measures it (and ``--search`` finds the
anchors), ``docs/calibration.md`` states what was measured on which model.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sim.corruptions.kernels import apply_kernel, gaussian, levels, pixel_grid
from sim.corruptions.registry import Context, register

AIRLIGHT = np.float32(0.82)


def ladder(anchor: float, ratio: float) -> tuple[float, ...]:
    """Five levels: ``anchor`` at severity 3, times ``ratio`` per level up."""
    return tuple(anchor * ratio ** (k - 3) for k in range(1, 6))


def _koschmieder(x: np.ndarray, depth: np.ndarray, beta: float, light: float) -> np.ndarray:
    d = np.asarray(depth, np.float32)
    # Sky (inf) and undefined (NaN) depth get transmission exp(-inf) = 0: pure airlight.
    t = np.exp(-np.float32(beta) * np.where(np.isnan(d), np.float32(np.inf), d))[..., None]
    return x * t + np.float32(light) * (1 - t)


# ---------------------------------------------------------------------------------------------
# fog

#: Extinction beta (1/m) at severity 3, calibrated on roadseg_s_photo (docs/calibration.md:
#: visibility 253 m); doubling per level, as Foggy Cityscapes' 0.005, 0.01, 0.02 (about 600,
#: 300, 150 m).
FOG_BETA_S3 = 0.01183
FOG_BETA = ladder(FOG_BETA_S3, 2.0)


@register("driving", needs_depth=True)
def fog_depth(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Koschmieder fog with true depth, visibility (MOR) halving per level around 253 m at
    severity 3; airlight .82."""
    return _koschmieder(x, ctx.depth, levels(FOG_BETA, s, 0.0), AIRLIGHT)


# ---------------------------------------------------------------------------------------------
# rain


def rain_extinction(rate_mm_h: float) -> float:
    """Extinction (1/m) of rain of ``rate_mm_h``: Marshall-Palmer drops N0 = 8000 /m^3/mm,
    slope 4.1 R^-0.21 /mm, geometric optics (extinction efficiency 2): 3.65e-4 R^0.63."""
    return math.pi * 8000 / (4.1 * rate_mm_h**-0.21) ** 3 * 1e-6 if rate_mm_h > 0 else 0.0


#: Rain rate (mm/h) at severity 3, doubling per level.
RAIN_RATE_S3 = 27.8  # mm/h, calibrated on roadseg_s_photo (docs/calibration.md)
RAIN_RATE = ladder(RAIN_RATE_S3, 2.0)


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Un-normalised line of ones (a rain streak footprint), ``angle`` from the vertical."""
    n = max(1, round(length))
    size = 2 * n + 1
    k = np.zeros((size, size), np.float32)
    a = math.radians(angle_deg)
    dx, dy = math.sin(a), math.cos(a)
    for i in range(n + 1):
        k[round(n - i * dy), round(n - i * dx)] = 1.0
    return k


@register("driving")
def rain(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Rain of 6-100 mm/h (25 at severity 3): streaks, a veil whose extinction follows the
    rate (with depth when given) and overcast dimming."""
    rate = levels(RAIN_RATE, s, 0.0)
    if rate <= 0:
        return x
    r = rate / 25.0
    # Visual scales (at 224 px) that grow with the rate; the veil is physical.
    density = 0.007 * r**0.5  # streaks per pixel
    length = 16 * r**0.2
    alpha = min(0.6, 0.35 * r**0.2)
    dim = math.exp(-0.004 * rate)  # darker sky under heavier rain
    blur = 0.5 * r**0.5  # drops on the lens, px at 224
    beta = rain_extinction(rate)
    h, w = x.shape[:2]
    k = ctx.scale
    out = x * np.float32(dim)
    if blur * k > 0.2:
        out = gaussian(out, blur * k)
    # The veil: Koschmieder with the rain's extinction when depth is known, else the loss of
    # contrast at a typical 60 m.
    depth = ctx.depth if ctx.depth is not None else np.full((h, w), 60.0, np.float32)
    out = _koschmieder(out, depth, beta, 0.7 * dim)
    seeds = (rng.random((h, w), dtype=np.float32) < density).astype(np.float32)
    seeds *= rng.uniform(0.5, 1.0, (h, w)).astype(np.float32)
    angle = rng.uniform(-15, 15)
    streaks = np.clip(apply_kernel(seeds, _line_kernel(length * k, angle)), 0, 1)
    streaks = cv2.GaussianBlur(streaks, (3, 3), 0.6)[..., None] * np.float32(alpha * 2)
    streaks = np.minimum(streaks, 1.0)
    return out * (1 - streaks) + np.float32(0.85) * streaks


# ---------------------------------------------------------------------------------------------
# night

#: Scene illuminance (lux) at severity 3; falling 4x (2 stops) per level.
NIGHT_LUX_S3 = 23.9  # calibrated on roadseg_s_photo (docs/calibration.md)
NIGHT_LUX = ladder(NIGHT_LUX_S3, 0.25)
DAY_LUX = 10_000.0  # the clean frames' exposure
MAX_EXPOSURE_STOPS = 5.0  # longer exposure: 1 ms by day up to 32 ms
MAX_GAIN_STOPS = 6.0  # then analogue/digital gain (64x)
DAY_PHOTONS = 10_000.0  # photons (electrons) per pixel at white: a small sensor's full well
READ_NOISE = 0.001  # read noise at unit gain, on [0, 1] pixels (10 electrons)
GAMMA = 2.2


def night_exposure(lux: float) -> tuple[float, float, float]:
    """(underexposure in stops, photons at white, read noise) of a frame at ``lux``.

    The light deficit D = log2(DAY_LUX / lux) stops is met first by a longer exposure (up to
    5 stops: more photons, no extra noise), then by gain (up to 6 stops: fewer photons per
    output level, read noise amplified), and what is left stays underexposed.
    """
    deficit = max(0.0, math.log2(DAY_LUX / lux))
    exposure = min(deficit, MAX_EXPOSURE_STOPS)
    gain = min(deficit - exposure, MAX_GAIN_STOPS)
    return deficit - exposure - gain, DAY_PHOTONS / 2**gain, READ_NOISE * 2**gain


@register("driving")
def night(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Night: scene illuminance 160-0.6 lux (10 at severity 3); longer exposure, then gain
    (photon and amplified read noise), the rest underexposed."""
    lux = math.exp(levels(tuple(math.log(v) for v in NIGHT_LUX), s, math.log(DAY_LUX)))
    under, photons, read = night_exposure(lux)
    lin = np.power(x, np.float32(GAMMA)) * np.float32(2.0**-under)
    counts = rng.poisson(lin.astype(np.float64) * photons).astype(np.float32)
    lin = counts * np.float32(1 / photons)
    lin += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(read)
    return np.power(np.clip(lin, 0, 1), np.float32(1 / GAMMA))


# ---------------------------------------------------------------------------------------------
# sun glare


@register("driving")
def sun_flare(x: np.ndarray, s: float, rng: np.random.Generator, ctx: Context) -> np.ndarray:
    """Low sun in view: glow, lens ghosts and veiling glare of 4-24 % of white."""
    strength, radius, glare = levels(
        (
            (0.35, 0.12, 0.04),
            (0.5, 0.16, 0.08),
            (0.65, 0.2, 0.12),
            (0.8, 0.25, 0.17),
            (0.95, 0.3, 0.24),
        ),
        s,
        (0, 0.1, 0),
    )
    h, w = x.shape[:2]
    diag = math.hypot(h, w)
    sx, sy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.03, 0.35) * h
    gx, gy = pixel_grid(h, w)
    light = np.zeros((h, w), np.float32)
    r2 = (gx - sx) ** 2 + (gy - sy) ** 2
    light += np.exp(-r2 / np.float32((radius * diag) ** 2))
    # Ghosts: soft discs along the line from the sun through the image centre.
    cx, cy = w / 2, h / 2
    for pos in rng.uniform(-1.2, 0.9, 4):
        gx0, gy0 = cx + pos * (cx - sx), cy + pos * (cy - sy)
        rr = rng.uniform(0.02, 0.06) * diag
        d2 = (gx - gx0) ** 2 + (gy - gy0) ** 2
        light += np.float32(rng.uniform(0.15, 0.35)) * np.exp(-((d2 / np.float32(rr**2)) ** 2))
    tint = np.float32([1.0, 0.93, 0.78])
    add = np.clip(light * np.float32(strength), 0, 1)[..., None] * tint + np.float32(glare)
    return 1 - (1 - x) * (1 - np.clip(add, 0, 1))  # screen blend
