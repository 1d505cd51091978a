"""MEMO: marginal entropy minimisation over augmented views (Zhang, Levine & Finn, NeurIPS 2022).

Facts from the authors' code (zhangmarvin/memo ``imagenet-exps``) and the segmentation port
(mariodoebler/test-time-adaptation ``segmentation/methods/memo.py``, ``cfgs/memo.yaml``);
written anew on the public Adapter API.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter
from ._augment import COTTA_JITTER, DenseAugment, augment, restore
from ._methods import reestimate_batchnorm

_BatchNorm = nn.modules.batchnorm._BatchNorm


def marginal_entropy(logits: Tensor, covered: Tensor) -> Tensor:
    """Mean over pixels of the entropy of the per-pixel marginal over views.

    ``logits`` (V, C, H, W) are the views' logits on the input grid and ``covered``
    (V, 1, H, W) marks the pixels each view shows; a pixel's marginal is the mean of the
    softmax of the views covering it (pixels no view covers do not count)."""
    logp = logits.log_softmax(1) + torch.log(covered)  # −inf where a view does not cover
    count = covered.sum(0)  # (1, H, W)
    marginal = torch.logsumexp(logp, dim=0) - torch.log(count.clamp_min(1.0))  # (C, H, W)
    marginal = marginal.clamp(min=torch.finfo(marginal.dtype).min)  # as the reference
    entropy = -(marginal * marginal.exp()).sum(0)  # (H, W)
    seen = count[0] > 0
    return entropy[seen].mean()


@register_adapter(name="memo")
class MEMO(Adapter):
    """MEMO: per frame, one step on the entropy of the marginal prediction over augmented views.

    As the reference's ``adapt_single``/``test_single``: for each frame, starting from the
    source model (episodic), ``views`` augmented copies are predicted, the entropy of the
    mean of their softmax is minimised by ``steps`` SGD step(s) on *all* parameters, and the
    frame itself is then predicted by the updated model; BatchNorm mixes the source
    statistics with the current batch's as a prior of strength N (λ = N/(N + 1): a batch of
    views, or the frame alone, counts as one image). ``episodic=False`` carries the updates
    from frame to frame instead.

    Segmentation: the marginal is taken **per pixel**, over the views warped back to the
    input grid (un-mirrored, a crop resized back into its box; pixels a view does not show
    are left out of its vote), and the loss is its entropy averaged over pixels. The port
    averages over views *and* pixels (one class histogram per image, whose entropy falls
    when every pixel takes the same class) and zeroes gradients between its pairs of views
    (so only the last pair counts); neither is followed. Views: flips and crops of 30-100 %
    of the area with the frame's aspect (the port's RandomResizedCrop scale), and CoTTA's
    photometric jitter standing in for AugMix's operations (rotations and shears cannot be
    undone on a label grid by the shared dense set; autocontrast, equalise, posterise and
    solarise are photometric). Random draws come from ``self.generator`` (``seed``).

    Defaults are the segmentation configuration (``segmentation/cfgs/memo.yaml``): 6 views,
    SGD lr 2.5e-4 (as ImageNet's), weight decay 5e-4, one step, episodic; the BN prior of
    the port (source weight 0.9, so N = 9; MEMO's ImageNet runs: N = 16). Works on models
    without BatchNorm (MEMO's CIFAR runs use GroupNorm), where no prior is needed.
    """

    options: ClassVar[Mapping[str, Any]] = {
        "optimizer": "sgd",
        "lr": 2.5e-4,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "episodic": True,
        "views": 6,
        "prior_strength": 9.0,
        "seed": 0,
    }
    traits = MethodTraits(
        views="6 per frame",
        updates="all parameters (from the source for every frame)",
        norm="none",
        resets="every frame (episodic)",
        forward_per_frame="7",
        backward_per_frame="6",
    )
    #: the views' distribution (see the class docstring).
    view_distribution = DenseAugment(
        flip=0.5,
        crop=(math.sqrt(0.3), 1.0),
        brightness=COTTA_JITTER["brightness"],  # type: ignore[arg-type]
        contrast=COTTA_JITTER["contrast"],  # type: ignore[arg-type]
        saturation=COTTA_JITTER["saturation"],  # type: ignore[arg-type]
        gamma=COTTA_JITTER["gamma"],  # type: ignore[arg-type]
    )

    def check_options(self) -> None:
        v, n = self.options["views"], self.options["prior_strength"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"memo: option 'views' must be an integer >= 1, got {v!r}")
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not n >= 0:
            raise ValueError(f"memo: option 'prior_strength' must be a number >= 0, got {n!r}")

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        if any(isinstance(m, _BatchNorm) for m in model.modules()):
            reestimate_batchnorm(
                model, "memo", prior_strength=float(self.options["prior_strength"]), batch_count=1
            )
        model.requires_grad_(True)

    def params_to_train(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return list(model.parameters())

    def predict(self, x: Tensor) -> Tensor:
        outs = []
        height, width = x.shape[-2:]
        for i in range(x.shape[0]):
            if i > 0 and self.options["episodic"]:
                self.reset()  # the wrapper reset before the batch's first frame
            frame = x[i : i + 1]
            for _ in range(self.options["steps"]):
                views = self.view_distribution.sample(
                    self.options["views"], height, width, self.generator
                )
                out = self.forward(augment(frame.expand(len(views), -1, -1, -1), views))
                self.update(marginal_entropy(*restore(out, views, (height, width))))
            with torch.no_grad():
                outs.append(self.forward(frame))
        return torch.cat(outs)
