"""Segmentation models for CPU-speed perception on 128×256 frames, and their registry.

Every model takes float32 NCHW RGB in [0, 1], standardises it inside (registered ``mean``/``std``
buffers, so checkpoints and adapters never need to know the constants) and returns NCHW logits over
the 19 Cityscapes trainIds at the input resolution.

The architecture is a small encoder–decoder built from depthwise-separable convolutions: a stride-2
stem, three downsampling stages (to 1/16) with dilated context blocks at the bottom, and a light
decoder that fuses the 1/8 and 1/4 features, then (``fine=True``) a thin 1/2-resolution refinement
with the stem's features. It is the CPU-friendly cousin of Fast-SCNN / ENet-style real-time
segmenters. On a CPU the cost is dominated by memory traffic at full and half resolution
(normalising the input, the stem, the 19-channel logits), not by the width of the low-resolution
stages, so the registered models put their depth and width there.

The classifier (``head="deconv"``, the default) is a 2×2, stride-2 transposed convolution from the
1/2-resolution features: a learned sub-pixel upsampling that can place a one-pixel pole or a
pedestrian's leg at full resolution. Bilinear upsampling of 1/2-resolution logits cannot: even a
*perfect* 1/2-resolution score map, upsampled bilinearly, caps clean mIoU on the source domain at
about 0.87 (0.74 from 1/4), with poles and fences near 0.5. It is also cheaper than resampling 19
channels. ``head="bilinear"`` keeps the classic 1×1 classifier plus bilinear upsampling.

Logits are returned channels-last in memory (their shape is NCHW): use ``.reshape``, not ``.view``.

Every model exposes a *feature hook* for output-space adaptation methods (LAME): ``features(x)``
returns the per-pixel features the classifier reads (the 1/2-resolution map, or the 1/4 map when
neither ``fine`` nor the deconv head asks for 1/2), and ``head(features, size=None)`` turns them
into logits, at ``size`` when given, else at the map's natural output resolution (the input
resolution whenever height and width are multiples of 16). ``forward(x)`` is
``head(features(x), x.shape[-2:])``.

Registry in the timm style: a bare ``@register_model`` keyed on the function name, default
configurations kept as data in ``MODEL_CFGS``, and ``create_model(name, **overrides)`` that ignores
``None`` overrides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sim.common import Registry, call_ignoring_none, load_object

from ._models_classes import NUM_CLASSES

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

#: Per-channel standardisation applied inside every model (the usual ImageNet constants).
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
NORMS = ("bn", "gn")
HEADS = ("deconv", "bilinear")

#: Default configurations as data, beside the builders below.
MODEL_CFGS: dict[str, dict[str, Any]] = {
    "roadseg_s": {
        "widths": (16, 40, 80, 160),
        "depths": (2, 3, 4),
        "decoder": 40,
        "norm": "bn",
        "fine": True,
        "head": "deconv",
        "description": "default: small BatchNorm encoder-decoder for the CPU",
    },
    "roadseg_s_gn": {
        "widths": (16, 40, 80, 160),
        "depths": (2, 3, 4),
        "decoder": 40,
        "norm": "gn",
        "fine": True,
        "head": "deconv",
        "description": "roadseg_s with GroupNorm (no BatchNorm for batch-statistics methods)",
    },
    "roadseg_m": {
        "widths": (24, 56, 112, 224),
        "depths": (2, 3, 4),
        "decoder": 56,
        "norm": "bn",
        "fine": True,
        "head": "deconv",
        "description": "wider throughout, the 1/2-resolution path included: about 1.5x slower",
    },
    "test_bn": {
        "widths": (4, 8, 8, 16),
        "depths": (1, 1, 1),
        "decoder": 8,
        "norm": "bn",
        "fine": True,
        "head": "deconv",
        "description": "tiny BatchNorm model for fast tests",
    },
    "test_gn": {
        "widths": (4, 8, 8, 16),
        "depths": (1, 1, 1),
        "decoder": 8,
        "norm": "gn",
        "fine": True,
        "head": "deconv",
        "description": "tiny GroupNorm model for fast tests",
    },
}


class _GroupNorm(nn.GroupNorm):
    """GroupNorm that sidesteps a PyTorch CPU crash (seen in 2.13): the backward pass on a
    channels-last input that needs no gradient, while the affine parameters do, segfaults
    for small maps (e.g. 4×16×32). Test-time adaptation of a frozen network's norm layers
    meets exactly that at the first layer, so such inputs go through in NCHW layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            and not x.requires_grad
            and self.weight is not None
            and self.weight.requires_grad
            and not x.is_contiguous()
        ):
            return super().forward(x.contiguous()).contiguous(memory_format=torch.channels_last)
        return super().forward(x)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    # Groups of 4 channels (at least 1 group): GroupNorm's usual choice for thin layers.
    return _GroupNorm(max(1, channels // 4), channels)


class ConvNormAct(nn.Sequential):
    """Convolution (no bias) → normalisation → ReLU."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        norm: str = "bn",
        act: bool = True,
    ) -> None:
        pad = dilation * (k - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=False),
            _norm(norm, cout),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SepBlock(nn.Module):
    """Depthwise 3×3 (optionally strided/dilated) then pointwise 1×1; residual when shapes match."""

    def __init__(
        self, cin: int, cout: int, stride: int = 1, dilation: int = 1, norm: str = "bn"
    ) -> None:
        super().__init__()
        self.dw = ConvNormAct(cin, cin, 3, stride, dilation, groups=cin, norm=norm)
        self.pw = ConvNormAct(cin, cout, 1, norm=norm, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(y + x if self.residual else y, inplace=True)


class RoadSeg(nn.Module):
    """Small depthwise-separable encoder–decoder returning logits at input resolution."""

    def __init__(
        self,
        widths: Sequence[int] = (16, 32, 64, 96),
        depths: Sequence[int] = (1, 1, 2),
        decoder: int = 32,
        norm: str = "bn",
        num_classes: int = NUM_CLASSES,
        fine: bool = True,
        head: str = "deconv",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {head!r}")
        if len(widths) != 4 or len(depths) != 3:
            raise ValueError(f"widths needs 4 and depths 3 entries; got {widths!r}, {depths!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(RGB_STD).view(1, 3, 1, 1))
        c0, c1, c2, c3 = widths
        self.stem = ConvNormAct(3, c0, 3, stride=2, norm=norm)  # 1/2

        def stage(cin: int, cout: int, depth: int, dilations: Sequence[int] = ()) -> nn.Sequential:
            blocks = [SepBlock(cin, cout, stride=2, norm=norm)]
            for i in range(depth):
                d = dilations[i % len(dilations)] if dilations else 1
                blocks.append(SepBlock(cout, cout, dilation=d, norm=norm))
            return nn.Sequential(*blocks)

        self.stage1 = stage(c0, c1, depths[0])  # 1/4
        self.stage2 = stage(c1, c2, depths[1])  # 1/8
        self.stage3 = stage(c2, c3, depths[2], dilations=(2, 4))  # 1/16, wide receptive field
        self.lat2 = ConvNormAct(c2, decoder, 1, norm=norm, act=False)
        self.lat1 = ConvNormAct(c1, decoder, 1, norm=norm, act=False)
        self.top = ConvNormAct(c3, decoder, 1, norm=norm, act=False)
        self.fuse2 = SepBlock(decoder, decoder, norm=norm)
        self.fuse1 = SepBlock(decoder, decoder, norm=norm)
        # 1/2-resolution fusion with the stem's features: keeps poles, signs and distant road
        # users (one or two pixels wide at 128×256) from vanishing in the 1/4 decoder, and gives
        # the deconv head the sub-pixel detail it draws at full resolution. The optional
        # refinement block runs at the stem's width (thin) because memory traffic at 1/2
        # resolution, not arithmetic, is what costs on a CPU.
        self.fine = bool(fine)
        self.head_type = head
        self.half_res = self.fine or head == "deconv"
        if self.half_res:
            self.narrow0 = ConvNormAct(decoder, c0, 1, norm=norm, act=False)
        if self.fine:
            self.fuse0 = SepBlock(c0, c0, norm=norm)
        if head == "deconv":
            self.classifier = nn.ConvTranspose2d(c0, num_classes, 2, stride=2)
        else:
            self.classifier = nn.Conv2d(c0 if self.half_res else decoder, num_classes, 1)
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x), size=tuple(x.shape[-2:]))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel features the classifier reads (1/2 resolution, or 1/4 without it)."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"x must be float NCHW RGB with 3 channels; got shape {tuple(x.shape)}"
            )
        # Channels-last is ~1.5x faster for these thin convolutions on CPU and makes the class-dim
        # reductions downstream (softmax, argmax) contiguous; the logits keep the NCHW shape.
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        f0 = self.stem(x)
        f1 = self.stage1(f0)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        y = self.top(f3)
        y = F.interpolate(y, size=f2.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse2(F.relu(y + self.lat2(f2)))
        y = F.interpolate(y, size=f1.shape[-2:], mode="bilinear", align_corners=False)
        y = self.fuse1(F.relu(y + self.lat1(f1)))
        if self.half_res:
            y = self.narrow0(y)
            y = F.interpolate(y, size=f0.shape[-2:], mode="bilinear", align_corners=False)
            y = F.relu(y + f0)
            if self.fine:
                y = self.fuse0(y)
        return y

    def head(self, features: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits from :meth:`features`: at ``size`` when given, else at the natural output
        resolution (2x the 1/2-resolution map, 4x the 1/4 one)."""
        y = self.classifier(features)
        if self.head_type == "deconv":  # 2×2 stride 2: full resolution, rounded up to even
            return y[..., : size[0], : size[1]] if size is not None and y.shape[-2:] != size else y
        if size is None:
            factor = 2 if self.half_res else 4
            size = (features.shape[-2] * factor, features.shape[-1] * factor)
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


def register_model(fn: Callable[..., nn.Module] | None = None, *, override: bool = False) -> Any:
    """Decorator (bare or ``(override=True)``): register a model builder under its function name.

    A name that is already registered raises ``ValueError`` unless ``override=True``."""
    return MODELS.register(fn, override=override)


def _build(name: str, **overrides: Any) -> nn.Module:
    cfg = {k: v for k, v in MODEL_CFGS[name].items() if k != "description"}
    cfg.update(overrides)
    return RoadSeg(**cfg)


@register_model
def roadseg_s(**kw: Any) -> nn.Module:
    """The default: small BatchNorm encoder–decoder, ~175k parameters, 3–4 ms per 128×256 frame."""
    return _build("roadseg_s", **kw)


@register_model
def roadseg_s_gn(**kw: Any) -> nn.Module:
    """``roadseg_s`` with GroupNorm instead of BatchNorm."""
    return _build("roadseg_s_gn", **kw)


@register_model
def roadseg_m(**kw: Any) -> nn.Module:
    """A wider BatchNorm variant (same depths) for when CPU time is less scarce: ~1.5x slower."""
    return _build("roadseg_m", **kw)


@register_model
def test_bn(**kw: Any) -> nn.Module:
    """Tiny BatchNorm model (a few thousand parameters) so tests stay fast."""
    return _build("test_bn", **kw)


@register_model
def test_gn(**kw: Any) -> nn.Module:
    """Tiny GroupNorm model for tests."""
    return _build("test_gn", **kw)


def model_names() -> list[str]:
    """Names of the registered models, sorted."""
    return MODELS.names()


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model (or ``"module:factory"``) with overrides; ``None`` values ignored.

    The returned module carries ``model_name`` (the spec it was built from) for checkpoints.
    """
    if isinstance(name, str) and ":" in name:
        factory = _import_factory(name)
    else:
        factory = MODELS.get(name)
    model = call_ignoring_none(factory, **kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model factory {name!r} must return a torch.nn.Module, got {type(model).__name__}"
        )
    model.model_name = name
    return model


def _import_factory(spec: str) -> Callable[..., nn.Module]:
    obj = load_object(spec, "model spec", "module:factory")
    if not callable(obj):
        raise TypeError(f"model spec {spec!r}: {spec.partition(':')[2]!r} is not callable")
    return obj
