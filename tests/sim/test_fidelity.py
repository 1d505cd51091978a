"""ImageNet-C fidelity: what the published code *executes* (glass blur's pixel copies, zoom
blur's layers, Pillow's box filter) and the frost photographs' statistics."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

import sim
from sim.corruptions.blur import glass_copy
from sim.corruptions.frost_texture import PROFILES, frost_texture, synthetic_photo


class _Draws:
    """A generator stand-in that hands out pre-drawn integer arrays in order."""

    def __init__(self, draws: list[np.ndarray]):
        self.draws = list(draws)

    def integers(self, low, high, size, dtype=None):
        d = self.draws.pop(0)
        assert d.shape == tuple(size) and d.min() >= low and d.max() < high
        return d


def _published_glass_loop(x: np.ndarray, delta: int, draws: list[np.ndarray]) -> np.ndarray:
    """The published loop, verbatim in effect: ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``
    on an RGB array, one (dx, dy) pair per visited pixel."""
    x = x.copy()
    for d in draws:
        k = 0
        for h in range(x.shape[0] - delta, delta, -1):
            for w in range(x.shape[1] - delta, delta, -1):
                dx, dy = d[k]
                k += 1
                hp, wp = h + dy, w + dx
                x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
    return x


@pytest.mark.parametrize(
    ("h", "w", "delta", "iters"), [(20, 30, 1, 2), (33, 41, 2, 3), (40, 40, 3, 2), (36, 50, 4, 2)]
)
def test_glass_blur_copies_pixels_as_the_published_loop_does(h, w, delta, iters):
    rng = np.random.default_rng(h * w + delta)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    n = (h - 2 * delta) * (w - 2 * delta)
    draws = [rng.integers(-delta, delta, size=(n, 2), dtype=np.int8) for _ in range(iters)]
    ref = _published_glass_loop(img, delta, draws)
    ours = glass_copy(img, delta, iters, _Draws([d.copy() for d in draws]))
    assert np.array_equal(ours, ref)  # bit for bit, given the same draws
    # The "swap" is a copy: values are duplicated and others lost, unlike a permutation.
    assert sorted(map(tuple, ours.reshape(-1, 3))) != sorted(map(tuple, img.reshape(-1, 3)))


def test_glass_blur_drifts_content_down_and_right():
    # Pixels copy from (dy, dx) in [-delta, delta - 1]: on average from up and left, so
    # content drifts by about half a pixel per iteration at delta 1.
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 255  # a vertical edge
    out = glass_copy(img, 1, 2, np.random.default_rng(0))
    before, after = (img[8:56, 8:56, 0] > 0).mean(), (out[8:56, 8:56, 0] > 0).mean()
    assert after < before  # the bright half shrank: the edge moved right


def test_zoom_blur_uses_the_published_layers():
    from scipy.ndimage import zoom as scipy_zoom

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (5, 5), 1.5)
    x = img / 255.0
    for sev, zooms in ((1, np.arange(1, 1.11, 0.01)), (4, np.arange(1, 1.26, 0.02))):
        out = np.zeros_like(x)
        for z in zooms:  # the published clipped zoom
            ch, cw = int(np.ceil(48 / z)), int(np.ceil(64 / z))
            top, left = (48 - ch) // 2, (64 - cw) // 2
            out += scipy_zoom(x[top : top + ch, left : left + cw], (z, z, 1), order=1)[:48, :64]
        ref = np.clip((x + out) / (len(zooms) + 1), 0, 1) * 255
        assert len(zooms) == (12 if sev == 1 else 13)
        assert np.abs(sim.corrupt(img, "zoom_blur", sev, seed=0) - ref).max() <= 0.5 + 1e-6


class _Fixed:
    """Hands the snow corruption a given normal field and angle."""

    def __init__(self, field: np.ndarray, angle: float):
        self.field, self.angle = field, angle

    def normal(self, loc, scale, size):
        assert size == self.field.shape
        return self.field * scale + loc

    def uniform(self, low, high):
        return self.angle


@pytest.mark.parametrize("sev", [1, 2, 4])
def test_snow_layer_is_zoomed_as_scipy_does(sev):
    from scipy.ndimage import zoom as scipy_zoom

    from sim.corruptions.registry import Context
    from sim.corruptions.weather import snow

    loc, scale, z, thresh, radius, sigma, keep = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), None,
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    )[sev - 1]  # fmt: skip
    h, w, angle = 60, 90, -100.0
    ch, cw = int(np.ceil(h / z)), int(np.ceil(w / z))
    field = np.random.default_rng(sev).standard_normal((ch, cw))
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    # the published layer, written out: scipy zoom, threshold, shift-and-add motion blur
    layer = scipy_zoom(field * scale + loc, z, order=1)
    layer[layer < thresh] = 0
    layer = np.clip(layer, 0, 1)
    width = 2 * radius + 1
    weights = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    pad = np.pad(layer, width, mode="edge")
    blurred = np.zeros_like(layer)
    for i, wgt in enumerate(weights):
        dy = -int(np.ceil(i * np.sin(np.deg2rad(angle)) - 0.5))
        dx = -int(np.ceil(i * np.cos(np.deg2rad(angle)) - 0.5))
        blurred += wgt * pad[width - dy : width - dy + layer.shape[0],
                             width - dx : width - dx + layer.shape[1]]  # fmt: skip
    flakes = (np.round(np.clip(blurred, 0, 1) * 255) / 255)[:h, :w]
    x = img / 255.0
    grey = cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2GRAY)[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, grey * 1.5 + 0.5)
    ref = np.clip(x + (flakes + flakes[::-1, ::-1])[..., None], 0, 1) * 255
    ours = snow(img / np.float32(255), float(sev), _Fixed(field, angle), Context(scale=1.0))
    assert np.abs(np.clip(ours, 0, 1) * 255 - ref).max() < 0.6


def test_pixelate_box_filter_matches_pillow():
    from PIL import Image

    from sim.corruptions.digital import pil_box_resize

    rng = np.random.default_rng(1)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(8, 160, 2))
        oh, ow = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = np.asarray(Image.fromarray(img).resize((ow, oh), Image.Resampling.BOX))
        ours = pil_box_resize(img, ow, oh)
        # one pass alone is exact; Pillow rounds between the two passes its own way
        assert np.abs(ours.astype(int) - ref).max() <= 1
        one = np.asarray(Image.fromarray(img).resize((ow, h), Image.Resampling.BOX))
        assert np.array_equal(pil_box_resize(img, ow, h), one)


# --- frost: the photographs' statistics -----------------------------------------------------

# Measured once from imagecorruptions 1.1.2's frost1-5 as its frost uses them (1.1x cubic
# enlargement, 60 random 224x224 crops each): mean RGB, luminance std, gradient energy
# (mean squared forward difference of luminance, both axes), and the fraction of luminance
# variance in radial bands [0, 2, 4, 8, 16, 32, 64, corner] cycles per 224 px (Hann window).
PHOTOS = (
    ((0.305, 0.583, 0.648), 0.0603, 0.00240, (0.275, 0.148, 0.07, 0.052, 0.101, 0.235, 0.118)),
    ((0.775, 0.792, 0.828), 0.0751, 0.00351, (0.122, 0.076, 0.108, 0.186, 0.19, 0.232, 0.086)),
    ((0.775, 0.792, 0.829), 0.0755, 0.00351, (0.118, 0.076, 0.107, 0.197, 0.189, 0.228, 0.084)),
    ((0.565, 0.622, 0.673), 0.1004, 0.00991, (0.068, 0.031, 0.062, 0.132, 0.223, 0.343, 0.141)),
    ((0.4, 0.444, 0.49), 0.1431, 0.01556, (0.063, 0.105, 0.17, 0.169, 0.182, 0.192, 0.118)),
)
_EDGES = np.array([0, 2, 4, 8, 16, 32, 64, 1e9]) / 224


def _stats(tex: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
    t = tex.astype(np.float64) / 255
    lum = t @ np.array([0.299, 0.587, 0.114])
    grad = (np.diff(lum, axis=0) ** 2).mean() + (np.diff(lum, axis=1) ** 2).mean()
    n = lum.shape[0]
    hann = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fft2((lum - lum.mean()) * hann)) ** 2
    power[0, 0] = 0
    f = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    bands = np.array([power[(f >= a) & (f < b)].sum() for a, b in itertools.pairwise(_EDGES)])
    return t.mean((0, 1)), float(lum.std()), float(grad), bands / power.sum()


@pytest.fixture(scope="module")
def frost_stats():
    out = []
    for p in range(len(PROFILES)):
        layers = [frost_texture(224, 224, np.random.default_rng(k), profile=p) for k in range(24)]
        s = [_stats(t) for t in layers]
        out.append(tuple(np.mean([x[i] for x in s], axis=0) for i in range(4)))
    return out


def test_frost_profiles_match_their_photographs(frost_stats):
    """Tolerances: mean colour +-0.02, contrast +-10 %, gradient energy (fine detail)
    +-15 %, band powers +-25 % (the two lowest bands pooled: a 224-px crop holds too few
    of those waves to split them)."""
    assert len(PROFILES) == len(PHOTOS) == 5
    for (mean, std, grad, bands), (pm, ps, pg, pb) in zip(frost_stats, PHOTOS, strict=True):
        assert np.abs(mean - pm).max() < 0.02
        assert std == pytest.approx(ps, rel=0.10)
        assert grad == pytest.approx(pg, rel=0.15)
        pb = np.asarray(pb)
        assert bands[:2].sum() == pytest.approx(pb[:2].sum(), rel=0.25)
        np.testing.assert_allclose(bands[2:], pb[2:], rtol=0.25)


def test_frost_varies_from_texture_to_texture_like_the_photographs(frost_stats):
    # Across the five photographs: mean brightness, contrast and fine detail differ a lot
    # (the old single procedural texture varied 10-20x less).
    def spread(rows):
        lum = [np.dot(r[0], (0.299, 0.587, 0.114)) for r in rows]
        return np.std(lum), np.std([r[1] for r in rows]), np.std(np.log([r[2] for r in rows]))

    ours, photos = spread(frost_stats), spread(PHOTOS)
    for a, b in zip(ours, photos, strict=True):
        assert a == pytest.approx(b, rel=0.2)


def test_frost_draws_a_photograph_and_a_crop_from_the_generator():
    a = frost_texture(64, 96, np.random.default_rng(1))
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, frost_texture(64, 96, np.random.default_rng(1)))
    crops = {frost_texture(64, 96, np.random.default_rng(k)).tobytes() for k in range(6)}
    assert len(crops) == 6
    # The absolute rule crops the frame's own size at the photograph's pixel scale: the layer
    # is found, exactly, inside the synthetic photograph.
    ab = frost_texture(128, 256, np.random.default_rng(2), scale=1.0, profile=3)
    photo = np.ascontiguousarray(synthetic_photo(3))
    y, x = np.unravel_index(cv2.matchTemplate(photo, ab, cv2.TM_SQDIFF).argmin(), (298, 383))
    assert photo.shape == (425, 638, 3)  # frost4's 386 x 580, enlarged 1.1x
    assert np.array_equal(photo[y : y + 128, x : x + 256], ab)
    # The relative rule crops a window of (h, w) / scale and resizes it to the frame.
    rel = frost_texture(128, 256, np.random.default_rng(2), scale=128 / 224, profile=3)
    assert rel.shape == ab.shape and not np.array_equal(rel, ab)
