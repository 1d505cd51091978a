"""DUA: dynamic unsupervised adaptation of BatchNorm statistics (Mirza et al., CVPR 2022).

Facts from the authors' code (jmiemirza/DUA ``methods/dua.py``, ``main.py``); written anew on
the public Adapter API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter
from ._augment import DenseAugment, augment
from ._methods import require_batchnorm


@register_adapter(name="dua")
class DUA(Adapter):
    """DUA: BatchNorm statistics updated frame by frame with a decaying momentum; nothing trains.

    As the reference's ``dua``: for each of the first ``samples`` frames of the stream,
    the momentum decays, mom ← mom·``decay`` (from ``initial_momentum``), every BatchNorm
    layer gets momentum mom + ``min_momentum`` and, in train mode, sees a batch of
    ``views`` augmented copies of the frame — PyTorch's update, stat ← (1 − m)·stat +
    m·batch stat (unbiased variance), starting from the source statistics; then the frame
    is predicted in eval mode with the updated statistics. Later frames are predicted with
    the statistics as they are (the reference adapts on ``num_samples`` frames, then
    evaluates). No parameter trains, no backward pass; needs BatchNorm with source
    statistics. Unlike the reference, which reports the best of its per-sample evaluations
    (chosen with labels), the prediction is always the current one.

    Dense prediction: the statistics need no undoing, so the copies are the shared dense
    set's flips and crops keeping 87.5-100 % of the side (the reference: random crops with
    4-pixel padding of 32-pixel CIFAR images, or 224×640 crops of KITTI, plus flips). The
    reference also rotates copies by random multiples of 90° (from TTT's rotation head);
    that is left out: a rotated 2:1 driving frame no longer fits its canvas, and upside-down
    views would pull the statistics towards images the stream never shows. Random draws
    come from ``self.generator`` (``seed``).

    Defaults are the published ones (``main.py``, CIFAR-10-C/ImageNet-C/KITTI alike):
    ``views`` 64, ``samples`` 80, ``initial_momentum`` 0.1, ``decay`` 0.94,
    ``min_momentum`` 0.005.
    """

    uses_optimizer = False
    options: ClassVar[Mapping[str, Any]] = {
        "views": 64,
        "samples": 80,
        "initial_momentum": 0.1,
        "decay": 0.94,
        "min_momentum": 0.005,
        "seed": 0,
    }
    traits = MethodTraits(
        views="64 copies per frame (first 80 frames)",
        updates="BatchNorm statistics (decaying momentum)",
        norm="BatchNorm",
        forward_per_frame="65 for the first 80 frames, then 1",
    )
    #: the copies' distribution (see the class docstring).
    copies = DenseAugment(flip=0.5, crop=(0.875, 1.0))

    def check_options(self) -> None:
        o = self.options
        for key in ("views", "samples"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "views" else 0):
                raise ValueError(f"dua: option {key!r} must be a non-negative integer, got {v!r}")
        for key in ("initial_momentum", "decay", "min_momentum"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"dua: option {key!r} must be a number in [0, 1], got {v!r}")

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        layers = require_batchnorm(model, "dua", "DUA adapts BatchNorm statistics only")
        self.layers = [m for _, m in layers]
        if any(m.running_mean is None for m in self.layers):
            raise ValueError("dua: a BatchNorm layer keeps no running statistics to adapt")

    def reset_state(self) -> None:
        #: the decayed momentum before its floor (``mom_pre``) and the frames adapted on.
        self.momentum_now = float(self.options["initial_momentum"])
        self.frames_adapted = 0

    def predict(self, x: Tensor) -> Tensor:
        outs: list[Tensor] = []
        start = 0  # frames [start, i) wait for one batched prediction with the same statistics
        for i in range(x.shape[0]):
            if self.frames_adapted >= self.options["samples"]:
                continue
            if i > start:
                outs.append(self.forward(x[start:i]))
            self.adapt_on(x[i])
            outs.append(self.forward(x[i : i + 1]))
            start = i + 1
        if start < x.shape[0]:
            outs.append(self.forward(x[start:]))
        return torch.cat(outs)

    def adapt_on(self, frame: Tensor) -> None:
        """One DUA update: decayed momentum, then the copies' batch in train mode."""
        self.momentum_now *= self.options["decay"]
        for m in self.layers:
            m.momentum = self.momentum_now + self.options["min_momentum"]
        height, width = frame.shape[-2:]
        views = self.copies.sample(self.options["views"], height, width, self.generator)
        copies = augment(frame.expand(len(views), -1, -1, -1), views, self.generator)
        for m in self.layers:
            m.train()
        try:
            self.forward(copies)  # updates the running statistics; the output is not used
        finally:
            for m in self.layers:
                m.eval()
        self.frames_adapted += 1
