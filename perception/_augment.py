"""Dense-aware test-time augmentations: views whose predictions map back to the input grid.

Classification TTA methods augment freely because a label does not move. A segmentation
method must compare or average predictions *pixel by pixel*, so every geometric change has to
be undone on the logits. A :class:`View` is one augmented copy of one image: the region
``box`` of the input is resized to ``size`` and mirrored when ``flip`` (geometric, undone by
:func:`restore`), then photometric jitter (brightness, contrast, saturation, gamma) and
Gaussian noise are applied (nothing to undo). :class:`DenseAugment` is a distribution over
views; every draw comes from an explicit ``torch.Generator``, so the same seed gives the same
views. CoTTA (multi-scale + flip ensembles), MEMO (marginal over views), DUA (statistics of
augmented copies) and RoTTA (strong views of its memory) all use this one module.

Resizing is bilinear with ``align_corners=False`` both ways (input views and logits warped
back). Photometric operations follow torchvision's tensor functions (each clamps to [0, 1];
grayscale = 0.2989 R + 0.587 G + 0.114 B) in a fixed order: brightness, contrast,
saturation, gamma; hue jitter and blur of the published pipelines are not offered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Range = tuple[float, float]

#: CoTTA's photometric jitter (``get_tta_transforms``, not "soft"; RoTTA uses the same):
#: brightness 0.6-1.4, contrast 0.7-1.3, saturation 0.5-1.5, gamma 0.7-1.3, noise std 0.005.
COTTA_JITTER: dict[str, Range | float] = {
    "brightness": (0.6, 1.4),
    "contrast": (0.7, 1.3),
    "saturation": (0.5, 1.5),
    "gamma": (0.7, 1.3),
    "noise": 0.005,
}


@dataclass(frozen=True)
class View:
    """One augmented view of one image.

    ``box`` = (top, left, height, width) is the input region the view shows, resized to
    ``size`` = (height, width) and mirrored left-right when ``flip``. Photometric factors are
    1.0 for "unchanged"; ``noise`` is the standard deviation of added Gaussian noise."""

    box: tuple[int, int, int, int]
    size: tuple[int, int]
    flip: bool = False
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    gamma: float = 1.0
    noise: float = 0.0


def _check_range(name: str, value: Range, low: float, high: float) -> Range:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        or not low <= value[0] <= value[1] <= high
    ):
        raise ValueError(
            f"{name} must be a range (a, b) with {low} <= a <= b <= {high}; got {value!r}"
        )
    return (float(value[0]), float(value[1]))


@dataclass(frozen=True)
class DenseAugment:
    """A distribution over :class:`View` s (the identity by default).

    - ``flip``: probability of mirroring left-right;
    - ``scale``: output size as a factor of the input size (a number, or a range drawn once
      per :meth:`sample` call, since views are stacked into one batch);
    - ``crop``: side length of the shown region as a fraction of the frame's (same aspect
      ratio as the frame; area = side²), drawn per view with a uniform position;
    - ``brightness``/``contrast``/``saturation``/``gamma``: ranges of the factors, drawn per
      view; ``noise``: standard deviation of Gaussian noise (on [0, 1] pixels).
    """

    flip: float = 0.0
    scale: float | Range = 1.0
    crop: Range = (1.0, 1.0)
    brightness: Range = (1.0, 1.0)
    contrast: Range = (1.0, 1.0)
    saturation: Range = (1.0, 1.0)
    gamma: Range = (1.0, 1.0)
    noise: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.flip, (int, float)) or not 0.0 <= self.flip <= 1.0:
            raise ValueError(f"flip must be a probability in [0, 1]; got {self.flip!r}")
        scale = self.scale if isinstance(self.scale, (tuple, list)) else (self.scale, self.scale)
        _check_range("scale", scale, 1e-3, 1e3)
        _check_range("crop", self.crop, 1e-3, 1.0)
        for name in ("brightness", "contrast", "saturation", "gamma"):
            _check_range(name, getattr(self, name), 0.0, 1e3)
        if not isinstance(self.noise, (int, float)) or not 0.0 <= self.noise < 1.0:
            raise ValueError(f"noise must be a standard deviation in [0, 1); got {self.noise!r}")

    def sample(self, n: int, height: int, width: int, generator: torch.Generator) -> list[View]:
        """``n`` views of ``height`` x ``width`` images, all of one output size.

        Draw order (fixed, so a seed always gives the same views): the scale once, then per
        view: flip, crop side, crop top, crop left, brightness, contrast, saturation, gamma,
        each one uniform number from ``generator``."""
        lo, hi = self.scale if isinstance(self.scale, (tuple, list)) else (self.scale,) * 2
        s = lo + (hi - lo) * float(torch.rand((), generator=generator))
        size = (max(1, round(s * height)), max(1, round(s * width)))
        u = torch.rand((n, 8), generator=generator, dtype=torch.float64).tolist()
        views = []
        for r in u:
            side = self.crop[0] + (self.crop[1] - self.crop[0]) * r[1]
            h, w = max(1, round(side * height)), max(1, round(side * width))
            top = min(height - h, int(r[2] * (height - h + 1)))
            left = min(width - w, int(r[3] * (width - w + 1)))

            def draw(rng: Range, v: float) -> float:
                return rng[0] + (rng[1] - rng[0]) * v

            views.append(
                View(
                    box=(top, left, h, w),
                    size=size,
                    flip=r[0] < self.flip,
                    brightness=draw(self.brightness, r[4]),
                    contrast=draw(self.contrast, r[5]),
                    saturation=draw(self.saturation, r[6]),
                    gamma=draw(self.gamma, r[7]),
                    noise=float(self.noise),
                )
            )
        return views


def _grayscale(x: Tensor) -> Tensor:
    r, g, b = x.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _photometric(x: Tensor, v: View) -> Tensor:
    if v.brightness != 1.0:
        x = (x * v.brightness).clamp(0.0, 1.0)
    if v.contrast != 1.0:
        mean = _grayscale(x).mean(dim=(-3, -2, -1), keepdim=True)
        x = (v.contrast * x + (1.0 - v.contrast) * mean).clamp(0.0, 1.0)
    if v.saturation != 1.0:
        x = (v.saturation * x + (1.0 - v.saturation) * _grayscale(x)).clamp(0.0, 1.0)
    if v.gamma != 1.0:
        x = x.clamp(1e-8, 1.0).pow(v.gamma)  # as CoTTA's ColorJitterPro: no NaN gradients at 0
    return x


def augment(x: Tensor, views: Sequence[View], generator: torch.Generator | None = None) -> Tensor:
    """Apply ``views[i]`` to image ``x[i]`` (float NCHW in [0, 1]); returns the stacked views.

    All views must share one ``size``. Noise (views with ``noise > 0``) is drawn from
    ``generator`` on the CPU, so results do not depend on the device."""
    if x.dim() != 4 or len(views) != x.shape[0]:
        raise ValueError(
            f"need one view per image: {len(views)} views, x of shape {tuple(x.shape)}"
        )
    sizes = {v.size for v in views}
    if len(sizes) != 1:
        raise ValueError(f"views of one batch must share one output size; got {sorted(sizes)}")
    out = []
    for img, v in zip(x, views, strict=True):
        top, left, h, w = v.box
        y = img[None, :, top : top + h, left : left + w]
        if (h, w) != v.size:
            y = F.interpolate(y, size=v.size, mode="bilinear", align_corners=False)
        if v.flip:
            y = y.flip(-1)
        y = _photometric(y, v)
        if v.noise > 0:
            if generator is None:
                raise ValueError("views with noise need a generator")
            noise = torch.randn(y.shape, generator=generator).to(y.device, y.dtype)
            y = (y + v.noise * noise).clamp(0.0, 1.0)
        out.append(y)
    return torch.cat(out)


def restore(logits: Tensor, views: Sequence[View], size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Warp per-view ``logits`` (N, C, h, w) back onto the ``size`` input grid.

    Undoes the flip, resizes to each view's box and pastes it there. Returns the logits
    (N, C, H, W), zero outside the box, and a float mask (N, 1, H, W) of the pixels each view
    covers (all ones for views of the whole frame)."""
    n = logits.shape[0]
    if len(views) != n:
        raise ValueError(f"need one view per prediction: {len(views)} views, {n} predictions")
    height, width = size
    full = all(v.box == (0, 0, height, width) for v in views)
    out, masks = [], []
    for y, v in zip(logits, views, strict=True):
        y = y[None]
        if v.flip:
            y = y.flip(-1)
        top, left, h, w = v.box
        if y.shape[-2:] != (h, w):
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        if (top, left, h, w) != (0, 0, height, width):
            y = F.pad(y, (left, width - left - w, top, height - top - h))
        out.append(y)
        if not full:
            m = logits.new_zeros((1, 1, height, width))
            m[..., top : top + h, left : left + w] = 1.0
            masks.append(m)
    mask = torch.cat(masks) if masks else logits.new_ones((n, 1, height, width))
    return torch.cat(out), mask
