"""SAR: sharpness-aware, reliable entropy minimisation with model recovery (Niu et al., ICLR 2023).

Facts from the authors' code (mr-eggplant/SAR ``sar.py``, ``sam.py``, ``main.py``) and the
zoo's ``classification/methods/sar.py``; written anew on the public Adapter API.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter
from ._methods import configure_norm_layers, softmax_entropy

#: momentum of the moving average of the second-pass loss (``update_ema``: 0.9 old + 0.1 new).
LOSS_EMA_MOMENTUM = 0.9
#: the last stage of the architectures the reference knows (ResNet ``layer4``, ViT-B blocks
#: 9-11 and the final ``norm``), plus roadshift's ``stage3`` (the 1/16 stage, ResNet's layer4).
LAST_STAGES = ("layer4", "blocks.9", "blocks.10", "blocks.11", "norm", "stage3")


@register_adapter(name="sar")
class SAR(Adapter):
    """SAR: sharpness-aware entropy minimisation on reliable pixels, with recovery to the source.

    Per step, as ``forward_and_adapt_sar``: forward; keep samples with entropy
    e < E0 = ``e_margin``·ln C; back-propagate their mean entropy; SAM's first step moves
    every trained parameter by ρ·g/(‖g‖ + 1e-12) (‖g‖ over all of them); a second forward
    at the perturbed point, keeping the first pass's reliable samples that are still below
    E0; back-propagate their mean entropy, move back and take the SGD step with those
    gradients. The second loss (when defined) enters a moving average (0.9 old, 0.1 new);
    when it falls below ``reset_threshold`` the model, optimiser and average return to the
    source state (model recovery). Two forward and two backward passes per step; the
    prediction returned is the first forward pass. Trained: the affine parameters of the
    normalisation layers outside ``skip`` (the last stage, as the reference's
    ``collect_params``); BatchNorm on batch statistics.

    Dense prediction (no segmentation port exists): a sample is a pixel; both losses are
    means over the kept pixels of the batch.

    Defaults are the ImageNet configuration (the only one published: ResNet-50-GN/BN,
    ViT-B): SGD momentum 0.9, lr 0.00025 for batches of 32 or more and
    (0.00025/64)·batch·2 below (``scale_lr``: the lr is set from each batch's size; ×2 more
    at batch 1, as ``main.py``'s batch-size-1 runs), ρ 0.05, E0 0.4·ln C, threshold 0.2.
    """

    options: ClassVar[Mapping[str, Any]] = {
        "optimizer": "sgd",
        "lr": 0.00025,
        "momentum": 0.9,
        "e_margin": 0.4,
        "rho": 0.05,
        "reset_threshold": 0.2,
        "scale_lr": True,
        "skip": LAST_STAGES,
    }
    traits = MethodTraits(
        updates="normalisation affine parameters except the last stage",
        norm="any normalisation",
        resets="when the loss average falls below 0.2",
        forward_per_frame="2",
        backward_per_frame="2",
    )

    def check_options(self) -> None:
        o = self.options
        for key in ("e_margin", "rho", "reset_threshold"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"sar: option {key!r} must be a number >= 0, got {v!r}")
        if not isinstance(o["scale_lr"], bool):
            raise TypeError("sar: option 'scale_lr' must be True or False")
        skip = o["skip"]
        if isinstance(skip, str) or not all(isinstance(s, str) for s in skip):
            raise TypeError(f"sar: option 'skip' must be a list of module names, got {skip!r}")

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        self.trained = configure_norm_layers(model, "sar", skip=self.options["skip"])

    def params_to_train(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return self.trained

    def reset_state(self) -> None:
        #: moving average of the second-pass loss (None until the first defined loss).
        self.loss_ema: float | None = None

    def batch_lr(self, batch_size: int) -> float:
        """The learning rate for a batch of this size (the reference's batch-size rule)."""
        lr = self.options["lr"]
        if not self.options["scale_lr"] or batch_size >= 32:
            return lr
        lr = lr / 64 * batch_size * 2
        return 2 * lr if batch_size == 1 else lr

    def predict(self, x: Tensor) -> Tensor:
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = self.batch_lr(int(x.shape[0]))
        for _ in range(self.options["steps"]):
            logits = self.forward(x)
            e_margin = self.options["e_margin"] * math.log(logits.shape[1])
            entropy = softmax_entropy(logits)
            reliable = entropy < e_margin
            self.backward(entropy[reliable].mean())  # NaN loss, zero gradients when empty
            old = self._ascend()
            entropy2 = softmax_entropy(self.forward(x))[reliable]
            loss2 = entropy2[entropy2 < e_margin].mean()
            value = float(loss2.detach())
            if not math.isnan(value):
                self.loss_ema = (
                    value
                    if self.loss_ema is None
                    else LOSS_EMA_MOMENTUM * self.loss_ema + (1 - LOSS_EMA_MOMENTUM) * value
                )
            self.backward(loss2)
            with torch.no_grad():
                for p, value_before in old:
                    p.copy_(value_before)
            self.optimizer.step()  # with the gradients taken at the perturbed point
            self.optimizer.zero_grad(set_to_none=True)
            self.end_step()
            if self.loss_ema is not None and self.loss_ema < self.options["reset_threshold"]:
                self.reset()  # model recovery
        return logits

    @torch.no_grad()
    def _ascend(self) -> list[tuple[Tensor, Tensor]]:
        """SAM's first step: climb to θ + ρ·g/‖g‖; returns the values to come back to."""
        grads = [p for p in self.trained if p.grad is not None]
        if not grads:
            return []
        norm = torch.norm(torch.stack([p.grad.norm(p=2) for p in grads]), p=2)
        scale = self.options["rho"] / (norm + 1e-12)
        old = []
        for p in grads:
            old.append((p, p.detach().clone()))
            p.add_(p.grad * scale.to(p))
            p.grad = None
        return old
