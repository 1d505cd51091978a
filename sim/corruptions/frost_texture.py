"""A procedural stand-in for ImageNet-C's frost photographs, matched to their statistics.

The published frost overlays a random crop of one of five photographs of window frost (a
sixth ships but is never sampled), enlarged 1.1x (more when the image is larger than the
photograph). roadshift ships no image files, so it synthesises one "photograph" per *profile*,
each measured once from one photograph as the published code uses it (1.1x cubic enlargement,
random 224x224 crops, 60 crops per photograph): its size, mean colour, how each channel
follows luminance, the luminance contrast and its distribution (quantiles), and the radial
power spectrum. The two smaller photographs are near copies of one another, and so are their
profiles; the reference samples both, and so do we.

Synthesis: ice needles with side branches and rime speckle (crystal-like phase structure),
their luminance spectrum rescaled band by band to the profile's, then mapped through the
profile's luminance quantiles and colours. Each synthetic photograph is generated once per
process from a fixed seed (it plays the part of a file); every frost draws a profile and a
crop position from the caller's generator, as the published code draws a photograph and a
crop. ``tests/sim/test_fidelity.py`` pins the photographs' statistics and checks ours.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

#: Radial frequency band edges (cycles per pixel) of the synthesis: octaves up to 16 cycles
#: per 224 px, half octaves above, the last band running to the corner of the spectrum.
BAND_EDGES = np.array([0, 2, 4, 8, 16, 22.63, 32, 45.25, 64, 90.51, 128, 181]) / 224
#: Probabilities of the luminance quantiles below (standardised luminance).
QUANTILE_P = np.linspace(0.02, 0.98, 13)

# Per photograph (imagecorruptions 1.1.2's frost1-5, measured as the module docstring says):
# size (H, W) as stored, mean RGB, RGB slope on luminance, luminance std, standardised
# luminance quantiles at QUANTILE_P; then the synthesis's power fraction per band and
# softening sigma (px), tuned (fixed-point iteration) until textures measured through a Hann
# window show the photographs' band powers and gradient energy.
PROFILES = (
    (
        (660, 991),
        (0.305, 0.583, 0.648),
        (1.381, 0.868, 0.683),
        0.0603,
        (-1.775, -1.249, -0.943, -0.697, -0.478, -0.273, -0.071, 0.137, 0.361, 0.612, 0.920,
         1.349, 2.224),
        (0.4048, 0.0589, 0.0625, 0.0479, 0.0371, 0.0525, 0.0856, 0.1283, 0.0971, 0.0249, 0.0004),
        2.497,
    ),
    (
        (347, 616),
        (0.775, 0.792, 0.828),
        (0.976, 1.005, 1.037),
        0.0751,
        (-2.537, -1.335, -0.839, -0.511, -0.253, -0.038, 0.155, 0.333, 0.507, 0.688, 0.884,
         1.128, 1.563),
        (0.1599, 0.0499, 0.1105, 0.1920, 0.0972, 0.0834, 0.1052, 0.1109, 0.0767, 0.0141, 0.0001),
        2.611,
    ),
    (
        (347, 616),
        (0.775, 0.792, 0.829),
        (0.976, 1.005, 1.038),
        0.0755,
        (-2.560, -1.335, -0.834, -0.501, -0.245, -0.031, 0.158, 0.336, 0.510, 0.687, 0.884,
         1.123, 1.546),
        (0.1553, 0.0517, 0.1092, 0.2030, 0.0990, 0.0809, 0.1025, 0.1094, 0.0753, 0.0137, 0.0000),
        2.585,
    ),
    (
        (386, 580),
        (0.565, 0.623, 0.673),
        (0.993, 0.996, 1.041),
        0.1004,
        (-2.304, -1.234, -0.811, -0.534, -0.318, -0.132, 0.040, 0.211, 0.387, 0.581, 0.817,
         1.160, 2.085),
        (0.0984, 0.0117, 0.0637, 0.1313, 0.0926, 0.1243, 0.1557, 0.1763, 0.1203, 0.0257, 0.0002),
        1.608,
    ),
    (
        (545, 727),
        (0.400, 0.444, 0.490),
        (1.011, 0.999, 0.976),
        0.1431,
        (-1.751, -1.254, -0.954, -0.706, -0.485, -0.277, -0.074, 0.137, 0.363, 0.620, 0.929,
         1.349, 2.234),
        (0.0921, 0.0819, 0.1734, 0.1638, 0.0900, 0.0907, 0.0945, 0.0927, 0.0781, 0.0408, 0.0021),
        1.335,
    ),
)  # fmt: skip


def _radial_band(h: int, w: int) -> np.ndarray:
    """Band index of every frequency of an (h, w) FFT; -1 for the DC term."""
    f = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :])
    band = np.searchsorted(BAND_EDGES, f, side="right") - 1
    band = np.minimum(band, len(BAND_EDGES) - 2)
    band[0, 0] = -1
    return band


def _equalise(lum: np.ndarray, fractions: np.ndarray, soften: float) -> np.ndarray:
    """``lum`` with its power in each radial band set to ``fractions`` of unit variance.

    Phases are kept, so the needles stay needles; only how much each scale contributes
    changes. ``soften`` (a Gaussian's sigma in pixels) tilts the spectrum inside each band
    first, as the photographs' enlargement softened their finest detail.
    """
    h, w = lum.shape
    spec = np.fft.rfft2(lum - lum.mean())
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    spec *= np.exp(-2 * math.pi**2 * soften**2 * f2)
    band = _radial_band(h, w)
    # rfft2 stores half the spectrum: weight the columns that stand for two frequencies.
    weight = np.full(spec.shape, 2.0)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    power = np.abs(spec) ** 2 * weight
    total = fractions.sum()
    gain = np.zeros(spec.shape)
    for b, frac in enumerate(fractions):
        m = band == b
        have = power[m].sum()
        if have > 0:
            gain[m] = math.sqrt(frac / total * (h * w) ** 2 / have)
    return np.fft.irfft2(spec * gain, s=(h, w))


def _to_quantiles(z: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Map ``z`` monotonically so its quantiles are the profile's (linear beyond the ends)."""
    flat = z.ravel()
    order = np.argsort(flat, kind="stable")
    p = (np.arange(flat.size) + 0.5) / flat.size
    qp = np.concatenate([[0.0], QUANTILE_P, [1.0]])
    lo = quantiles[0] - (quantiles[1] - quantiles[0]) / (QUANTILE_P[1] - QUANTILE_P[0]) * qp[1]
    hi = quantiles[-1] + (quantiles[-1] - quantiles[-2]) / (QUANTILE_P[1] - QUANTILE_P[0]) * (
        1 - qp[-2]
    )
    qv = np.concatenate([[lo], quantiles, [hi]])
    out = np.empty_like(flat)
    out[order] = np.interp(p, qp, qv)
    return out.reshape(z.shape)


def _needles(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Ice needles with two side branches each, plus rime speckle (the phase structure)."""
    canvas = np.zeros((h, w), np.float32)
    unit = min(h, w) / 224
    n = int(90 * h * w / (224 * 224)) + 8
    pts = rng.random((n, 2)) * (w, h)
    angles = rng.uniform(0, 2 * np.pi, n)
    lengths = np.exp(rng.uniform(math.log(4), math.log(60), n)) * max(unit, 0.25)
    shades = rng.uniform(0.3, 1.0, n)
    for (px, py), a, ln, sh in zip(pts, angles, lengths, shades, strict=True):
        ex, ey = px + ln * math.cos(a), py + ln * math.sin(a)
        cv2.line(canvas, (int(px), int(py)), (int(ex), int(ey)), float(sh), 1, cv2.LINE_AA)
        for frac, turn in ((0.4, 0.6), (0.7, -0.6)):
            bx, by = px + frac * (ex - px), py + frac * (ey - py)
            tip = (int(bx + 0.4 * ln * math.cos(a + turn)), int(by + 0.4 * ln * math.sin(a + turn)))
            cv2.line(canvas, (int(bx), int(by)), tip, float(sh) * 0.8, 1, cv2.LINE_AA)
    canvas += (rng.random((h, w), dtype=np.float32) > 0.97) * np.float32(0.5)
    canvas += rng.standard_normal((h, w), dtype=np.float32) * np.float32(0.15)
    return canvas


@functools.lru_cache(maxsize=len(PROFILES))
def synthetic_photo(profile: int) -> np.ndarray:
    """The synthetic stand-in for photograph ``profile`` (0-4), uint8 RGB, enlarged 1.1x.

    Generated from a fixed seed, so every process sees the same "file"; read-only.
    """
    size, mean, slope, std, quantiles, fractions, soften = PROFILES[profile]
    h, w = math.ceil(size[0] * 1.1), math.ceil(size[1] * 1.1)
    rng = np.random.default_rng([0x0F2057, profile])
    lum = _needles(h, w, rng).astype(np.float64)
    fr, q = np.asarray(fractions), np.asarray(quantiles)
    # Spectrum, then marginal; a second round restores the spectrum the mapping bent.
    z = _to_quantiles(_equalise(lum, fr, soften), q)
    z = _to_quantiles(_equalise(z, fr, soften), q)
    tex = np.asarray(mean)[None, None, :] + np.asarray(slope)[None, None, :] * std * z[..., None]
    tex = np.clip(tex * 255 + 0.5, 0, 255).astype(np.uint8)
    tex.flags.writeable = False
    return tex


def frost_texture(
    h: int, w: int, rng: np.random.Generator, scale: float = 1.0, profile: int | None = None
) -> np.ndarray:
    """A frost layer, uint8 RGB (h, w, 3): a random crop of a synthetic photograph.

    As the published code: draw one of the five photographs (``profile`` fixes it), enlarge
    it 1.1x (more if the frame is larger, so that it covers the frame), take a random crop.
    The crop is taken for a frame of ``(h, w) / scale`` and resized to ``(h, w)``: with the
    relative rule (``scale = min(H, W) / 224``) crystals keep their size relative to the
    frame; with the absolute one (``scale = 1``) they keep their size in pixels.
    """
    if profile is None:
        profile = int(rng.integers(len(PROFILES)))
    photo = synthetic_photo(profile)
    th, tw = max(1, round(h / scale)), max(1, round(w / scale))
    ph, pw = PROFILES[profile][0]
    # The published rule: no enlargement beyond 1.1x unless the frame is larger than the
    # stored photograph, then the larger of the two factors (times 1.1).
    factor = max(1.0, th / ph, tw / pw)
    if factor > 1.0:
        size = (math.ceil(pw * factor * 1.1), math.ceil(ph * factor * 1.1))
        photo = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)
    y0 = int(rng.integers(0, max(1, photo.shape[0] - th)))
    x0 = int(rng.integers(0, max(1, photo.shape[1] - tw)))
    tex = photo[y0 : y0 + th, x0 : x0 + tw]
    if (th, tw) != (h, w):
        shrink = th * tw > h * w
        tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.ascontiguousarray(tex)
