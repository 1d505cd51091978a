"""AugMix (Hendrycks et al., ICLR 2020) for dense prediction: pixel-level operations only.

Facts from the reference code (google-research/augmix, ``augmentations.py`` and ``cifar.py``):
``width`` 3 chains, each of ``depth`` 1–3 operations (drawn per chain) chosen uniformly, at
``severity`` 3; chain weights from Dirichlet(1, 1, 1), the mix with the original from Beta(1, 1):
``mixed = (1 − m) · image + m · Σ w_i · chain_i(image)``. Trained with the Jensen–Shannon
consistency loss (weight 12) among the clean image and two AugMix draws, the cross-entropy on the
clean one only (``perception.train`` does that when handed the three views).

The reference draws from nine operations: autocontrast, equalize, posterize, solarize and five
geometric ones (rotate, shear x/y, translate x/y); it leaves out brightness, contrast, colour and
sharpness because ImageNet-C tests them. For segmentation the geometric ones cannot be used: the
mixture blends differently moved copies of the image, which no single label map fits. Of the pixel
operations, posterize (4 or 3 bits at severity 3) is what this suite's ``color_quant`` corruption
tests (5…1 bits), so by the paper's own rule it is left out by default too: the default operations
are autocontrast, equalize and solarize (``ops=AUGMIX_OPS`` selects all four). Each is a per-channel
lookup table computed as Pillow's ``ImageOps`` computes it (the reference runs on PIL images).

The mixed image is rounded back to uint8 (the training feed's contract), an error of at most half a
grey level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

Op = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _per_channel_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a (3, 256) table: channel c maps value v to ``lut[c, v]``."""
    return cv2.LUT(image, np.ascontiguousarray(lut.T, dtype=np.uint8).reshape(256, 1, 3))


def _histograms(image: np.ndarray) -> list[np.ndarray]:
    return [np.bincount(image[..., c].ravel(), minlength=256) for c in range(3)]


def _sample_level(severity: float, rng: np.random.Generator) -> float:
    return float(rng.uniform(0.1, severity))  # the reference's sample_level


def autocontrast(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Stretch each channel's [min, max] to [0, 255] (``ImageOps.autocontrast``, no cutoff)."""
    luts = []
    for h in _histograms(image):
        present = np.flatnonzero(h)
        lo, hi = int(present[0]), int(present[-1])
        if hi <= lo:
            luts.append(np.arange(256))
            continue
        scale = 255.0 / (hi - lo)
        luts.append(np.clip(np.trunc(np.arange(256) * scale + (-lo * scale)), 0, 255))
    return _per_channel_lut(image, np.array(luts))


def equalize(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Histogram-equalise each channel (``ImageOps.equalize``'s integer recipe)."""
    luts = []
    for h in _histograms(image):
        present = h[h > 0]
        step = (int(present.sum()) - int(present[-1])) // 255 if len(present) > 1 else 0
        if step == 0:
            luts.append(np.arange(256))
            continue
        before = np.concatenate([[0], np.cumsum(h)[:-1]])  # pixels below each level
        luts.append(np.minimum((step // 2 + before) // step, 255))
    return _per_channel_lut(image, np.array(luts))


def posterize(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Keep the top ``4 − ⌊level · 4 / 10⌋`` bits of each value (4 or 3 at severity 3)."""
    bits = 4 - int(_sample_level(severity, rng) * 4 / 10)
    return image & np.uint8(~(2 ** (8 - bits) - 1) & 0xFF)


def solarize(image: np.ndarray, severity: float, rng: np.random.Generator) -> np.ndarray:
    """Invert values at or above ``256 − ⌊level · 256 / 10⌋`` (180…254 at severity 3)."""
    threshold = 256 - int(_sample_level(severity, rng) * 256 / 10)
    return np.where(image < threshold, image, 255 - image).astype(np.uint8)


#: Every pixel-level operation of the reference, by name.
AUGMIX_OPS: dict[str, Op] = {
    "autocontrast": autocontrast,
    "equalize": equalize,
    "posterize": posterize,
    "solarize": solarize,
}
#: The default: the reference's pixel operations minus posterize (tested here as ``color_quant``).
DEFAULT_OPS: tuple[str, ...] = ("autocontrast", "equalize", "solarize")


class AugMix:
    """AugMix views of a batch: ``(clean, augmix, augmix)`` with ``jsd`` (default), else one.

    ``width`` chains of ``depth`` operations (``None``: 1–3 drawn per chain) at ``severity``,
    mixed with Dirichlet(``alpha``) weights and a Beta(``alpha``, ``alpha``) skip connection;
    ``ops`` names operations of :data:`AUGMIX_OPS`. All draws come from the caller's generator.
    """

    name = "augmix"

    def __init__(
        self,
        width: int = 3,
        depth: int | None = None,
        severity: float = 3.0,
        alpha: float = 1.0,
        ops: Sequence[str] = DEFAULT_OPS,
        jsd: bool = True,
    ) -> None:
        unknown = [op for op in ops if op not in AUGMIX_OPS]
        if unknown or not ops:
            raise ValueError(
                f"AugMix ops: unknown {unknown or 'empty list'}; valid: {', '.join(AUGMIX_OPS)}"
            )
        if width < 1 or (depth is not None and depth < 1) or severity <= 0.1 or alpha <= 0:
            raise ValueError(
                "AugMix needs width >= 1, depth None or >= 1, severity > 0.1 and alpha > 0; got "
                f"width={width}, depth={depth}, severity={severity}, alpha={alpha}"
            )
        self.width, self.depth, self.severity, self.alpha = width, depth, severity, alpha
        self.ops, self.jsd = tuple(ops), jsd

    @property
    def config(self) -> dict[str, Any]:
        """What the checkpoint records."""
        return {
            "name": self.name,
            "width": self.width,
            "depth": self.depth,
            "severity": self.severity,
            "alpha": self.alpha,
            "ops": list(self.ops),
            "jsd": self.jsd,
        }

    def augment(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One AugMix draw of a uint8 (H, W, 3) image."""
        weights = rng.dirichlet([self.alpha] * self.width).astype(np.float32)
        m = np.float32(rng.beta(self.alpha, self.alpha))
        mix = np.zeros(image.shape, np.float32)
        for w in weights:
            chain = image
            depth = self.depth if self.depth is not None else int(rng.integers(1, 4))
            for _ in range(depth):
                op = AUGMIX_OPS[self.ops[int(rng.integers(len(self.ops)))]]
                chain = op(chain, self.severity, rng)
            mix += w * chain
        mixed = (1 - m) * image + m * mix
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)

    def __call__(
        self, frames: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """AugMix each uint8 (N, H, W, 3) frame; with ``jsd``, the clean frames and two draws."""
        views = [
            np.stack([self.augment(f, rng) for f in frames]) for _ in range(2 if self.jsd else 1)
        ]
        return (frames, *views) if self.jsd else views[0]
