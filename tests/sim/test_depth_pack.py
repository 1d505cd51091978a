"""The depth-aware pack: depth of field, ego-motion blur with parallax, low light, camera
crashes and auto-exposure lag, each against an independent computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import sim

H, W = 64, 128
F_PX = W / 2  # the roadshift camera: 90 degree horizontal field of view


def _thin_lens_coc(d: float, focus: float, aperture: float, f: float = 0.035) -> float:
    """CoC = f^2 / (N (S - f)) |d - S| / d on the sensor, N = f / A; in pixels of pitch
    f / F_PX."""
    n = f / aperture
    coc_m = f * f / (n * (focus - f)) * abs(d - focus) / d
    return coc_m / (f / F_PX)


def _spot_radius(out: np.ndarray) -> float:
    """Radius of a uniform disk with the same second moment as the blur spot (E r^2 = R^2/2)."""
    w = out[..., 0].astype(np.float64)
    w -= w.min()
    yy, xx = np.mgrid[: w.shape[0], : w.shape[1]]
    cy, cx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
    m2 = (w * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum() / w.sum()
    return math.sqrt(2 * m2)


@pytest.mark.parametrize(("name", "focus", "depth", "sev", "aperture"),
                         [("near_focus", 3.0, 40.0, 3, 0.22), ("near_focus", 3.0, 12.0, 5, 0.45),
                          ("far_focus", 60.0, 3.0, 4, 0.32)])  # fmt: skip
def test_depth_of_field_follows_the_thin_lens(name, focus, depth, sev, aperture):
    img = np.zeros((H, W, 3), np.uint8)
    img[H // 2, W // 2] = 255  # a point light
    out = sim.corrupt(img, name, sev, seed=0, depth=np.full((H, W), depth, np.float32))
    radius = _thin_lens_coc(depth, focus, aperture) / 2
    assert 2 < radius < 12
    # the anti-aliased rim adds ~1/12 px^2 to the moment: within 8 %
    assert _spot_radius(out) == pytest.approx(radius, rel=0.08)


def test_in_focus_depths_stay_sharp():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    depth = np.full((H, W), 3.0, np.float32)  # exactly at near_focus's focus distance
    assert np.array_equal(sim.corrupt(img, "near_focus", 5, seed=0, depth=depth), img)
    depth[:, : W // 2] = np.inf  # the sky: out of focus for near focus ...
    out = sim.corrupt(img, "near_focus", 5, seed=0, depth=depth)
    assert np.array_equal(out[:, W // 2 + 40 :], img[:, W // 2 + 40 :])  # ... not the 3 m half
    assert np.abs(out[:, : W // 2 - 40].astype(int) - img[:, : W // 2 - 40]).mean() > 20
    far = sim.corrupt(img, "far_focus", 5, seed=0, depth=np.full((H, W), 60.0, np.float32))
    assert np.array_equal(far, img)


def test_lateral_motion_blur_is_a_box_of_flow_length():
    img = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    travel = 0.6  # severity 3: 15 m/s x 40 ms
    d = F_PX * travel / 8  # a plane whose image moves 8 px during the exposure
    depth = np.full((H, W), d, np.float32)
    depth[:10] = np.inf  # sky: no parallax
    out = sim.corrupt(img, "lateral_motion_blur", 3, seed=0, depth=depth).astype(np.float64)
    # 9 samples at t = -1/2 ... 1/2: whole-pixel shifts -4 ... 4, edges replicated
    pad = np.pad(img.astype(np.float64), ((0, 0), (4, 4), (0, 0)), mode="edge")
    ref = np.mean([pad[:, 4 + k : 4 + k + W] for k in range(-4, 5)], axis=0)
    assert np.abs(out[10:] - ref[10:]).max() <= 0.5 + 1e-6
    assert np.array_equal(out[:10], img[:10])


def test_forward_motion_blur_streaks_radially_with_parallax():
    from scipy.ndimage import map_coordinates

    img = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    d, travel = 20.0, 1.11  # severity 3: 27.8 m/s x 40 ms
    out = sim.corrupt(img, "forward_motion_blur", 3, seed=0,
                      depth=np.full((H, W), d, np.float32)).astype(np.float64)  # fmt: skip
    k = travel / d
    yy, xx = np.mgrid[:H, :W].astype(np.float64)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    longest = math.hypot(cx, cy) * k
    n = min(32, max(2, math.ceil(longest) + 1))
    ref = np.zeros_like(out)
    for t in np.linspace(-0.5, 0.5, n):
        ys = cy + (yy - cy) * (1 + t * k)
        xs = cx + (xx - cx) * (1 + t * k)
        for c in range(3):
            ref[..., c] += map_coordinates(img[..., c].astype(np.float64), [ys, xs], order=1,
                                           mode="nearest")  # fmt: skip
    ref /= n
    assert np.abs(out - ref).max() <= 1.0
    # nearer scenes streak more (flow ~ 1 / depth)
    near = sim.corrupt(img, "forward_motion_blur", 3, seed=0, depth=np.full((H, W), 5.0))
    assert np.abs(near.astype(int) - img).mean() > np.abs(out - img).mean() + 5


@pytest.mark.parametrize(
    ("sev", "c", "photons", "sigma"),
    [(1, 0.6, 600, 0.008), (3, 0.4, 120, 0.018), (5, 0.2, 30, 0.038)],
)
def test_low_light_is_the_published_imadjust_and_poisson_gaussian(sev, c, photons, sigma):
    img = np.full((128, 256, 3), 50, np.uint8)
    img[:, 128:] = 200  # the image's range [50, 200] maps to [0, c] with gamma 2
    out = sim.corrupt(img, "low_light", sev, seed=0).astype(np.float64) / 255
    bright = out[:, 128:]
    lam = np.rint(c * 255) / 255  # the darkened value, on the 8-bit grid
    assert bright.mean() == pytest.approx(lam, abs=0.01)
    assert bright.var() == pytest.approx(lam / photons + sigma**2, rel=0.12)
    mid = np.full((32, 32, 3), 125, np.uint8)
    mid[0, 0], mid[0, 1] = 50, 200
    v = sim.corrupt(mid, "low_light", sev, seed=1).astype(np.float64)[1:, 1:] / 255
    assert v.mean() == pytest.approx(((125 - 50) / 150) ** 2 * c, abs=0.012)


@pytest.mark.parametrize(("sev", "rate", "outage"), [(3, 0.03, 8.0), (5, 0.08, 15.0)])
def test_camera_crash_blank_spells(sev, rate, outage):
    img = np.full((8, 8, 3), 90, np.uint8)
    rng = np.random.default_rng(sev)
    state: dict = {}
    blank = []
    for _ in range(6000):
        out, _, _ = sim.corrupt_frame(img, None, None, "camera_crash", sev, rng, state=state)
        assert np.array_equal(out, img) or not out.any()
        blank.append(not out.any())
    blank = np.array(blank)
    # renewal theory: up spells last 1 / rate, down spells `outage` frames on average
    assert blank.mean() == pytest.approx(rate * outage / (1 + rate * outage), abs=0.06)
    starts = np.flatnonzero(np.diff(blank.astype(int)) == 1)
    ends = np.flatnonzero(np.diff(blank.astype(int)) == -1)
    spells = [e - s for s, e in zip(starts, ends[ends > starts[0]], strict=False)]
    assert np.mean(spells) == pytest.approx(outage, rel=0.25)
    # a single image: the stream's long-run state
    singles = [not sim.corrupt(img, "camera_crash", sev, seed=k).any() for k in range(2000)]
    assert np.mean(singles) == pytest.approx(rate * outage / (1 + rate * outage), abs=0.035)


def test_auto_exposure_lag_recovers_exponentially_after_light_changes():
    stops, tau = 2.0, 5.0  # severity 3
    grey_lin = 0.05
    value = round(grey_lin ** (1 / 2.2) * 255)
    img = np.full((8, 8, 3), value, np.uint8)
    lin_in = (value / 255) ** 2.2
    rng = np.random.default_rng(0)
    state: dict = {}
    evs = []
    for _ in range(400):
        out, _, _ = sim.corrupt_frame(img, None, None, "auto_exposure_lag", 3, rng, state=state)
        evs.append(math.log2(((out[0, 0, 0] + 0.0) / 255) ** 2.2 / lin_in))
    evs = np.array(evs)
    assert abs(abs(evs[0]) - stops) < 0.15  # a stream starts right after a change
    decay = math.exp(-1 / tau)
    jumps = 0
    for prev, now in itertools.pairwise(evs):
        expected = prev * decay
        if abs(now - expected) > stops / 2:
            jumps += 1
            assert abs(abs(now - expected) - stops) < 0.2  # a light change: +-2 stops
        else:
            assert abs(now - expected) < 0.12  # otherwise the exponential recovery
    assert 8 <= jumps <= 35  # 5 % of 400 frames
    # reset state: the same draws give the same stream
    again: dict = {}
    rng = np.random.default_rng(0)
    first = [sim.corrupt_frame(img, None, None, "auto_exposure_lag", 3, rng, state=again)[0]
             for _ in range(5)]  # fmt: skip
    assert abs(math.log2((first[0][0, 0, 0] / 255) ** 2.2 / lin_in) - evs[0]) < 1e-9


def test_the_pack_is_catalogued():
    depth_aware = {"near_focus", "far_focus", "forward_motion_blur", "lateral_motion_blur"}
    for name in depth_aware:
        info = sim.corruption_info(name)
        assert info.needs_depth and info.family == "driving" and not info.moves_pixels
        with pytest.raises(ValueError, match="needs depth"):
            sim.corrupt(np.zeros((H, W, 3), np.uint8), name, 3)
    for name in ("camera_crash", "auto_exposure_lag"):
        assert sim.corruption_info(name).stateful
    assert {"low_light", *depth_aware} <= set(sim.corruption_groups()["driving"])
