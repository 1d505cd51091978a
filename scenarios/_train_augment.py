"""Pixel-level training augmentations behind ``roadshift train --augment``.

- ``none``: no pixel-level augmentation, the geometric-only recipe of the bundled ``roadseg_s``;
- ``photometric``: :class:`PhotometricDistortion`, an albumentations pipeline after mmsegmentation's
  ``PhotoMetricDistortion`` (the photometric step of its Cityscapes configs); the recipe of the
  bundled ``roadseg_s_photo``;
- ``augmix``: ``scenarios._augmix.AugMix`` (Hendrycks et al. 2020) with its Jensen–Shannon
  consistency loss.

Each is a callable ``augment(frames, rng)`` handed to ``perception.train``, which runs it on every
batch after the random crop and flip, with a ``numpy.random.Generator`` seeded by the training
seed: the same seed gives the same bits. Labels never pass through: these change colours, never
positions. None of them is a corruption of the test catalogue (no noise, blur, weather, JPEG);
where one overlaps a catalogue entry in kind, its docstring says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The choices of ``roadshift train --augment``.
AUGMENT_NAMES: tuple[str, ...] = ("none", "photometric", "augmix")


class PhotometricDistortion:
    """Brightness, contrast, saturation and hue jitter after mmseg's ``PhotoMetricDistortion``.

    mmseg (``mmseg/datasets/transforms/transforms.py``) applies, each with probability 0.5:
    brightness (add a uniform draw in ±32), then contrast (multiply by a draw in [0.5, 1.5])
    either here or last (a fair coin), saturation (HSV saturation × [0.5, 1.5]) and hue (OpenCV hue
    + an integer in ±18, modulo 180). Here the same steps, order and probabilities as albumentations
    2.0.8 transforms:

    - brightness: ``RandomBrightnessContrast`` with ``brightness_by_max`` (adds ``beta · 255``,
      beta in ±32/255) and no contrast;
    - contrast: ``RandomBrightnessContrast`` with alpha in [0.5, 1.5] and no brightness: a plain
      multiplication, as in mmseg (not about the mean, unlike the catalogue's ``contrast``);
    - saturation: ``ColorJitter`` with only saturation: torchvision's blend with the grey image,
      ``f · img + (1 − f) · grey`` (mmseg scales HSV saturation instead; both are "saturation × f");
    - hue: ``HueSaturationValue`` with only a hue shift in ±18 OpenCV units (±36°), as in mmseg;
    - the contrast position: ``OneOf`` two ``Sequential`` orders, like mmseg's ``mode`` coin.

    Overlap with the catalogue: ImageNet-C's ``brightness`` (HSV value +0.1…+0.5), ``contrast``
    (towards the mean, ×0.4…×0.05) and the extra ``saturate`` are colour shifts too; the jitter
    covers milder, differently shaped ones (brightness ±32/255 ≈ ±0.13, contrast ×0.5…×1.5,
    saturation ×0.5…×1.5), which is the point of the mmseg recipe.

    Seeding: albumentations' ``Compose(seed=s)`` hands the *same* seed to every transform, so
    two transforms of one kind (the brightness and contrast steps here) would draw identical
    numbers in lockstep. Instead every transform of the tree is reseeded with its own seed, drawn
    from the caller's generator, once per batch.
    """

    name = "photometric"

    def __init__(
        self,
        brightness_delta: float = 32,
        contrast_range: tuple[float, float] = (0.5, 1.5),
        saturation_range: tuple[float, float] = (0.5, 1.5),
        hue_delta: float = 18,
        p: float = 0.5,
    ) -> None:
        import albumentations as A

        self.params = {
            "brightness_delta": brightness_delta,
            "contrast_range": list(contrast_range),
            "saturation_range": list(saturation_range),
            "hue_delta": hue_delta,
            "p": p,
        }
        lo, hi = contrast_range

        def contrast() -> Any:
            return A.RandomBrightnessContrast(
                brightness_limit=(0.0, 0.0), contrast_limit=(lo - 1.0, hi - 1.0), p=p
            )

        def saturation_and_hue() -> list[Any]:
            return [
                A.ColorJitter(
                    brightness=(1.0, 1.0),
                    contrast=(1.0, 1.0),
                    saturation=tuple(saturation_range),
                    hue=(0.0, 0.0),
                    p=p,
                ),
                A.HueSaturationValue(
                    hue_shift_limit=(-hue_delta, hue_delta),
                    sat_shift_limit=(0, 0),
                    val_shift_limit=(0, 0),
                    p=p,
                ),
            ]

        delta = brightness_delta / 255.0
        self.pipeline = A.Compose(
            [
                A.RandomBrightnessContrast(
                    brightness_limit=(-delta, delta),
                    contrast_limit=(0.0, 0.0),
                    brightness_by_max=True,
                    p=p,
                ),
                A.OneOf(
                    [
                        A.Sequential([contrast(), *saturation_and_hue()], p=1.0),
                        A.Sequential([*saturation_and_hue(), contrast()], p=1.0),
                    ],
                    p=1.0,
                ),
            ],
            seed=0,
        )

    @property
    def config(self) -> dict[str, Any]:
        """What the checkpoint records: the name, the mmseg-style parameters, the pipeline."""
        import albumentations as A

        return {"name": self.name, **self.params, "albumentations": A.to_dict(self.pipeline)}

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Distort each uint8 (N, H, W, 3) frame independently; a new array of the same shape."""
        _reseed(self.pipeline, rng)
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            out[i] = self.pipeline(image=frame)["image"]
        return out


def _reseed(transform: Any, rng: np.random.Generator) -> None:
    """Give every node of an albumentations tree its own seed from ``rng`` (parents first)."""
    import albumentations as A

    transform.set_random_seed(int(rng.integers(2**63)))
    if isinstance(transform, A.BaseCompose):  # set_random_seed gave the children the same seed
        for child in transform.transforms:
            _reseed(child, rng)


def make_augment(name: str) -> Any:
    """The augmentation called ``name`` (one of :data:`AUGMENT_NAMES`); None for ``none``."""
    if name == "none":
        return None
    if name == "photometric":
        return PhotometricDistortion()
    if name == "augmix":
        from ._augmix import AugMix  # OpenCV: imported only when used (the CLI starts faster)

        return AugMix()
    raise ValueError(f"unknown augment {name!r}; valid choices: {', '.join(AUGMENT_NAMES)}")
