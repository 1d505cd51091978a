"""The built-in adaptation methods ``source``, ``bn`` (BN re-estimation) and ``tent``, and the
model set-up helpers other methods share (public, so plug-ins can use them too).

Semantics follow the papers and their reference code (see the class docstrings); each
method overrides only the lifecycle steps of :class:`perception.Adapter` that differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter

_BatchNorm = nn.modules.batchnorm._BatchNorm
#: normalisation layers whose affine parameters TENT adapts.
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    _BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def softmax_entropy(logits: Tensor) -> Tensor:
    """Shannon entropy of the softmax over the class axis (dim 1), per sample/pixel."""
    return -(logits.softmax(1) * logits.log_softmax(1)).sum(1)


def use_batch_statistics(bn: nn.Module) -> None:
    """Make a BatchNorm layer normalise with the current batch's statistics only.

    As TENT's reference (``configure_model``): train mode, ``track_running_stats=False`` and
    no running buffers, so neither the source statistics are used nor new ones accumulate."""
    bn.train()
    bn.track_running_stats = False
    bn.running_mean = None
    bn.running_var = None


def _layer_names(model: nn.Module) -> str:
    kinds = sorted({type(m).__name__ for m in model.modules() if isinstance(m, NORM_LAYERS)})
    return ", ".join(kinds) if kinds else "no normalisation layers"


def _skipped(name: str, skip: Iterable[str]) -> bool:
    return any(name == s or name.startswith(s + ".") for s in skip)


def require_batchnorm(model: nn.Module, method: str, why: str) -> list[tuple[str, nn.Module]]:
    """The model's BatchNorm layers (name, module), or a one-line ValueError naming
    ``method``, the normalisation layers the model has instead, and ``why`` it needs BN."""
    layers = [(k, m) for k, m in model.named_modules() if isinstance(m, _BatchNorm)]
    if not layers:
        raise ValueError(
            f"{method}: the model has no BatchNorm layers ({_layer_names(model)}); {why}"
        )
    return layers


def configure_norm_layers(
    model: nn.Module, method: str, *, skip: Iterable[str] = ()
) -> list[nn.Parameter]:
    """TENT's model set-up, shared by the entropy-minimisation family (TENT, EATA, SAR).

    Every BatchNorm layer normalises with batch statistics only (:func:`use_batch_statistics`)
    and is the only kind of layer put in train mode; the affine weight and bias of every
    normalisation layer (BatchNorm, GroupNorm, LayerNorm, InstanceNorm) train, except in
    modules named in ``skip`` (a name and everything under it). Returns those parameters,
    each once; raises a one-line ValueError naming ``method`` when there are none."""
    skip = tuple(skip)
    norms = [(k, m) for k, m in model.named_modules() if isinstance(m, NORM_LAYERS)]
    if not norms:
        raise ValueError(
            f"{method}: the model has no normalisation layers (BatchNorm, GroupNorm, "
            "LayerNorm, InstanceNorm) to adapt; use 'source'"
        )
    params: dict[int, nn.Parameter] = {}  # by identity: a shared parameter trains once
    for k, m in norms:
        if isinstance(m, _BatchNorm):
            use_batch_statistics(m)
        if _skipped(k, skip):
            continue
        for p in (getattr(m, "weight", None), getattr(m, "bias", None)):
            if isinstance(p, nn.Parameter):
                p.requires_grad_(True)
                params.setdefault(id(p), p)
    if not params:
        raise ValueError(
            f"{method}: the model's normalisation layers have no affine parameters "
            "(affine=False) to adapt" + (f" outside {', '.join(skip)}" if skip else "")
        )
    return list(params.values())


@register_adapter(name="source")
class Source(Adapter):
    """The source model unchanged: eval mode, stored statistics, nothing adapts."""

    uses_optimizer = False
    traits = MethodTraits(norm="none")


def _batch_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over every axis but dim 1.

    ATen's BatchNorm statistics kernel is 2-3x faster than ``torch.var_mean`` over
    (0, 2, 3) on CPU; fall back to the latter where a backend lacks the kernel."""
    try:
        return torch.batch_norm_update_stats(x, None, None, 0.0)
    except (RuntimeError, NotImplementedError):
        var, mean = torch.var_mean(x, dim=[0, *range(2, x.dim())], correction=0)
        return mean, var


class _ReestimatedBatchNorm(nn.Module):
    """Stands in for a BatchNorm layer: mixes source and batch statistics, or tracks an EMA.

    Batch statistics are the mean and the *biased* variance over every axis but the channel
    one. ``prior_strength`` N gives λ = N / (N + n) with n = batch size (images, not pixels;
    ``batch_count`` fixes n instead, e.g. 1 for MEMO's batch of views of one image) and
    μ = λ·μs + (1−λ)·μt, σ² = λ·σs² + (1−λ)·σt². With ``momentum`` m the stored statistics
    become (1−m)·old + m·batch on every batch and normalise that batch. No gradient flows
    through the statistics (only through the normalised values and the affine parameters)."""

    def __init__(
        self,
        bn: nn.Module,
        prior_strength: float,
        momentum: float | None,
        batch_count: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_count = batch_count
        self.eps = bn.eps
        self.weight = bn.weight
        self.bias = bn.bias
        self.register_buffer("running_mean", bn.running_mean.detach().clone())
        self.register_buffer("running_var", bn.running_var.detach().clone())
        self.prior_strength = float(prior_strength)
        self.momentum = momentum

    def forward(self, x: Tensor) -> Tensor:
        # The statistics are constants for the gradient, as in MEMO's reference (its BN
        # computes them in place, outside autograd); F.batch_norm needs that in eval mode.
        mean_t, var_t = _batch_stats(x.detach())
        if self.momentum is not None:
            m = float(self.momentum)
            with torch.no_grad():
                self.running_mean.mul_(1.0 - m).add_(mean_t.detach(), alpha=m)
                self.running_var.mul_(1.0 - m).add_(var_t.detach(), alpha=m)
            mean, var = self.running_mean, self.running_var
        else:
            n = x.shape[0] if self.batch_count is None else self.batch_count
            prior = self.prior_strength
            lam = 1.0 if math.isinf(prior) else prior / (prior + n)
            mean = lam * self.running_mean + (1.0 - lam) * mean_t
            var = lam * self.running_var + (1.0 - lam) * var_t
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        mode = (
            f"momentum={self.momentum}"
            if self.momentum is not None
            else (f"prior_strength={self.prior_strength}")
        )
        return f"{self.running_mean.numel()}, eps={self.eps}, {mode}"


def _replace(model: nn.Module, kind: type[nn.Module], make: Any) -> None:
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, kind):
                setattr(parent, child_name, make(child))


def reestimate_batchnorm(
    model: nn.Module,
    method: str,
    *,
    prior_strength: float = 0.0,
    momentum: float | None = None,
    batch_count: int | None = None,
) -> None:
    """Make every BatchNorm layer of ``model`` re-estimate its statistics at test time.

    Batch-only (the defaults): :func:`use_batch_statistics`. Otherwise each layer is replaced
    by one that mixes the source statistics with the batch's as a prior of strength
    ``prior_strength`` N (λ = N / (N + n), n the batch size or ``batch_count``), or keeps an
    EMA with ``momentum`` (see ``bn``'s options). The affine parameters are the same
    objects as before. Raises a one-line ValueError naming ``method`` when the model has no
    BatchNorm layer, or when a layer keeps no running statistics to mix."""
    layers = require_batchnorm(
        model, method, "use 'tent' for GroupNorm/LayerNorm models, or 'source'"
    )
    if prior_strength == 0 and momentum is None:
        for _, m in layers:
            use_batch_statistics(m)
        return
    for k, m in layers:
        if m.running_mean is None or m.running_var is None:
            raise ValueError(
                f"{method}: layer {k!r} keeps no running statistics, so 'prior_strength'/"
                "'momentum' have no source statistics to use; use the default batch-only mode"
            )
    _replace(
        model,
        _BatchNorm,
        lambda bn: _ReestimatedBatchNorm(bn, prior_strength, momentum, batch_count),
    )


@register_adapter(name="bn")
class BatchNormAdapter(Adapter):
    """BN re-estimation: normalise with test-batch statistics; nothing trains.

    Options:
    - ``prior_strength`` (N, default 0): mix the source statistics in as a prior (Schneider
      et al. 2020): λ = N / (N + n), μ = λ·μs + (1−λ)·μt, σ² = λ·σs² + (1−λ)·σt², with
      biased batch variance and n the number of images in the batch, as in the paper (for
      segmentation one could argue for n = images × pixels, which would make any practical
      N negligible; we keep the paper's convention). N = 0 is batch-only (Nado et al. 2020;
      TENT's "BN" baseline); N = inf is the source model.
    - ``momentum`` (m, default None): instead keep an exponential moving average of the
      statistics over the stream, starting from the source ones: after each batch
      stat ← (1−m)·stat + m·batch_stat (PyTorch's convention: m weights the new batch), and
      the batch is normalised with the updated statistics. Suited to video streams;
      ``reset()`` (or ``episodic=True``) returns to the source statistics.
    Needs BatchNorm layers; the two options are mutually exclusive.
    """

    uses_optimizer = False
    options: ClassVar[Mapping[str, Any]] = {"prior_strength": 0.0, "momentum": None}
    traits = MethodTraits(updates="BatchNorm statistics", norm="BatchNorm")

    def check_options(self) -> None:
        n, m = self.options["prior_strength"], self.options["momentum"]
        if isinstance(n, bool) or not isinstance(n, (int, float)) or math.isnan(n) or n < 0:
            raise ValueError(f"bn: option 'prior_strength' must be a number >= 0, got {n!r}")
        if m is not None:
            if isinstance(m, bool) or not isinstance(m, (int, float)) or not 0 < m <= 1:
                raise ValueError(f"bn: option 'momentum' must be None or in (0, 1], got {m!r}")
            if n != 0:
                raise ValueError("bn: set one of the options 'prior_strength' and 'momentum'")

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        o = self.options
        reestimate_batchnorm(
            model, "bn", prior_strength=o["prior_strength"], momentum=o["momentum"]
        )


@register_adapter(name="tent")
class Tent(Adapter):
    """TENT: entropy minimisation on the normalisation layers' affine parameters (Wang et al. 2021).

    As the reference: BatchNorm layers normalise with batch statistics only, only the
    normalisation layers' weight and bias train, the loss is the softmax entropy averaged
    over batch and pixels, Adam lr 1e-3 by default, one step per batch, and the prediction
    returned is the forward pass before the update. Unlike the reference, only the
    normalisation layers are in train mode (Dropout stays off) and the caller's model is
    never modified. GroupNorm/LayerNorm/InstanceNorm layers adapt their affine parameters.
    """

    traits = MethodTraits(
        updates="normalisation affine parameters",
        norm="any normalisation",
        backward_per_frame="1",
    )

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        self._params = configure_norm_layers(model, self._label())

    def params_to_train(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return self._params

    def loss(self, logits: Tensor, x: Tensor) -> Tensor:
        return softmax_entropy(logits).mean()
