"""The calibrated driving weather: the physics each severity is built from."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sim
from sim.corruptions import driving_weather as dw

H, W = 64, 128
IMG = np.random.default_rng(0).integers(30, 220, (H, W, 3), dtype=np.uint8)


def test_ladders_double_or_quarter_per_level_around_the_anchor():
    assert dw.FOG_BETA[2] == dw.FOG_BETA_S3 and dw.RAIN_RATE[2] == dw.RAIN_RATE_S3
    assert dw.NIGHT_LUX[2] == dw.NIGHT_LUX_S3
    for table, ratio in ((dw.FOG_BETA, 2), (dw.RAIN_RATE, 2), (dw.NIGHT_LUX, 0.25)):
        assert np.allclose(np.array(table[1:]) / np.array(table[:-1]), ratio)


@pytest.mark.parametrize("sev", [1, 3, 5])
def test_fog_depth_is_koschmieder(sev):
    beta = dw.FOG_BETA[sev - 1]
    depth = np.full((H, W), 50.0, np.float32)
    depth[:10] = np.inf  # sky
    out = sim.corrupt(IMG, "fog_depth", sev, seed=0, depth=depth).astype(np.float64) / 255
    t = math.exp(-beta * 50.0)
    ref = IMG.astype(np.float64) / 255 * t + 0.82 * (1 - t)
    assert np.abs(out[10:] - ref[10:]).max() <= 1 / 255 + 1e-9
    assert np.abs(out[:10] - 0.82).max() <= 1 / 255 + 1e-9  # infinite depth: pure airlight
    with pytest.raises(ValueError, match="depth"):
        sim.corrupt(IMG, "fog_depth", 3)


def test_rain_extinction_from_marshall_palmer():
    # sigma = integral of 2 * (pi/4) D^2 N(D) dD with N(D) = 8000 exp(-4.1 R^-0.21 D), numerically
    for rate in (5.0, 25.0, 100.0):
        lam = 4.1 * rate**-0.21
        d = np.linspace(0, 20, 200_001)  # drop diameter, mm
        integral = np.trapezoid(2 * np.pi / 4 * d**2 * 8000 * np.exp(-lam * d), d)  # mm^2 / m^3
        assert dw.rain_extinction(rate) == pytest.approx(integral * 1e-6, rel=1e-4)
    assert dw.rain_extinction(25.0) == pytest.approx(3.65e-4 * 25**0.63, rel=0.01)


def test_rain_uses_depth_when_given():
    far = np.full((H, W), 2000.0, np.float32)
    near = np.full((H, W), 2.0, np.float32)
    a = sim.corrupt(IMG, "rain", 5, seed=0, depth=far)
    b = sim.corrupt(IMG, "rain", 5, seed=0, depth=near)
    assert np.abs(a.astype(int) - IMG).mean() > np.abs(b.astype(int) - IMG).mean() + 2


@pytest.mark.parametrize("sev", [1, 3, 5])
def test_night_exposure_and_noise(sev):
    lux = dw.NIGHT_LUX[sev - 1]
    under, photons, read = dw.night_exposure(lux)
    deficit = math.log2(10_000 / lux)  # stops short of the day's light
    gain = min(max(deficit - 5, 0), 6)  # after 5 stops of longer exposure
    assert under == pytest.approx(max(0.0, deficit - 11))
    assert photons == pytest.approx(10_000 / 2**gain) and read == pytest.approx(0.001 * 2**gain)
    grey = np.full((128, 128, 3), 180, np.uint8)
    out = sim.corrupt(grey, "night", sev, seed=0).astype(np.float64) / 255
    lin = (180 / 255) ** 2.2 * 2.0**-under
    # photon noise var lin / photons plus read noise, seen through the 1 / 2.2 encoding
    draws = np.random.default_rng(1).poisson(lin * photons, 200_000) / photons
    draws = draws + np.random.default_rng(2).normal(0, read, draws.size)
    ref = np.clip(draws, 0, 1) ** (1 / 2.2)
    assert out.mean() == pytest.approx(ref.mean(), abs=0.01)
    assert out.std() == pytest.approx(ref.std(), rel=0.1, abs=0.004)
