"""RoTTA: robust test-time adaptation for correlated, changing streams (Yuan et al., CVPR 2023).

Facts from the authors' code (BIT-DA/RoTTA ``core/adapter/rotta.py``, ``core/utils/memory.py``,
``core/utils/bn_layers.py``, ``configs/adapter/rotta.yaml``); written anew on the public
Adapter API.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter
from ._augment import COTTA_JITTER, DenseAugment, augment, restore
from ._methods import require_batchnorm


class RobustBatchNorm(nn.Module):
    """RoTTA's robust BatchNorm: statistics are an EMA over test batches, started at the source.

    In train mode the batch's mean and biased variance update the stored statistics,
    stat ← (1 − α)·stat + α·batch, and the updated (not detached) mixture normalises the
    batch; in eval mode the stored statistics do. The affine parameters are the replaced
    layer's own."""

    def __init__(self, bn: nn.Module, alpha: float) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.eps = bn.eps
        self.weight = bn.weight
        self.bias = bn.bias
        self.register_buffer("mean", bn.running_mean.detach().clone())
        self.register_buffer("var", bn.running_var.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.training:
            var_b, mean_b = torch.var_mean(x, dim=[0, *range(2, x.dim())], correction=0)
            mean = (1 - self.alpha) * self.mean + self.alpha * mean_b
            var = (1 - self.alpha) * self.var + self.alpha * var_b
            with torch.no_grad():
                self.mean.copy_(mean)
                self.var.copy_(var)
        else:
            mean, var = self.mean, self.var
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


@dataclass
class MemoryItem:
    frame: Tensor
    label: int
    uncertainty: float
    age: int = 0


class CategoryBalancedMemory:
    """RoTTA's CSTU memory: category-balanced, with timeliness and uncertainty.

    Capacity ``capacity`` frames, ``capacity / num_classes`` per class. A new frame with
    score λt/(1 + exp(−age/capacity)) + λu·uncertainty/ln C (age 0) enters when its class is
    under quota and the memory is not full; otherwise it replaces the highest-scoring item
    (oldest and most uncertain; the last of equal scores) of its own class when the class is
    at quota, else of the classes holding the most items, provided that score is higher
    than the new frame's. After every arrival each stored item ages by one."""

    def __init__(
        self, capacity: int, num_classes: int, lambda_t: float = 1.0, lambda_u: float = 1.0
    ) -> None:
        self.capacity = capacity
        self.num_classes = num_classes
        self.per_class = capacity / num_classes
        self.lambda_t = lambda_t
        self.lambda_u = lambda_u
        self.items: list[list[MemoryItem]] = [[] for _ in range(num_classes)]

    def __len__(self) -> int:
        return sum(len(c) for c in self.items)

    def score(self, age: int, uncertainty: float) -> float:
        return self.lambda_t / (1 + math.exp(-age / self.capacity)) + (
            self.lambda_u * uncertainty / math.log(self.num_classes)
        )

    def add(self, frame: Tensor, label: int, uncertainty: float) -> None:
        if self._make_room(label, self.score(0, uncertainty)):
            self.items[label].append(MemoryItem(frame, label, uncertainty))
        for cls in self.items:
            for item in cls:
                item.age += 1

    def _make_room(self, label: int, new_score: float) -> bool:
        if len(self.items[label]) < self.per_class:
            if len(self) < self.capacity:
                return True
            counts = [len(c) for c in self.items]
            majority = [k for k, n in enumerate(counts) if n == max(counts)]
            return self._replace(majority, new_score)
        return self._replace([label], new_score)

    def _replace(self, classes: list[int], new_score: float) -> bool:
        best: tuple[int, int] | None = None
        best_score = -math.inf
        for k in classes:
            for i, item in enumerate(self.items[k]):
                s = self.score(item.age, item.uncertainty)
                if best is None or s >= best_score:
                    best, best_score = (k, i), s
        if best is None:
            return True
        if best_score > new_score:
            self.items[best[0]].pop(best[1])
            return True
        return False

    def contents(self) -> tuple[list[Tensor], list[float]]:
        """The stored frames in class order, and their ages divided by the capacity."""
        items = [item for cls in self.items for item in cls]
        return [i.frame for i in items], [i.age / self.capacity for i in items]


def timeliness(ages: Tensor) -> Tensor:
    """RoTTA's instance weight exp(−a)/(1 + exp(−a)) of a normalised age a."""
    return torch.exp(-ages) / (1 + torch.exp(-ages))


@register_adapter(name="rotta")
class RoTTA(Adapter):
    """RoTTA: robust BatchNorm, a category-balanced memory and a timeliness-weighted mean teacher.

    As the reference: every BatchNorm becomes a robust BatchNorm (``alpha`` α); the
    teacher (an EMA copy) predicts each batch in eval mode, and that is the prediction
    returned; each frame enters the memory (:class:`CategoryBalancedMemory`) with the
    teacher's pseudo-label and uncertainty; after every ``update_every`` frames, in train
    mode, the teacher predicts the memory and the student predicts a strongly augmented
    copy of it, the student minimises the cross-entropy to the teacher's softmax weighted by
    each item's timeliness, one Adam step, then teacher ← (1 − ν)·teacher + ν·student
    (``nu``). Trained: BatchNorm affine parameters. Needs BatchNorm.

    Dense prediction (no segmentation port exists): a frame's pseudo-label is the argmax of
    its mean softmax over pixels (its dominant class) and its uncertainty the mean pixel
    entropy (with the reference's +1e-6 inside the log); the loss is the per-pixel
    cross-entropy, averaged over each frame's pixels covered by its view, weighted, averaged
    over frames. The strong augmentation must be undone on the logits, so it is the shared
    dense set: CoTTA's photometric jitter and noise, random flips and crops keeping 90-100 %
    of the side (a stand-in for the reference's small affine warp; blur is left out). In
    driving frames the dominant class is one of a few (road, building, vegetation, sky), so
    the memory holds about 64/19 ≈ 4 frames per such class: the published balance rule,
    applied as is. Random draws come from ``self.generator`` (``seed``).

    Defaults are the CIFAR configuration (``configs/adapter/rotta.yaml``, the only one
    published): Adam lr 1e-3, memory 64, update every 64 frames, ν 0.001, α 0.05, λt = λu = 1.
    """

    options: ClassVar[Mapping[str, Any]] = {
        "memory_size": 64,
        "update_every": 64,
        "nu": 0.001,
        "alpha": 0.05,
        "lambda_t": 1.0,
        "lambda_u": 1.0,
        "seed": 0,
    }
    traits = MethodTraits(
        views="1 strong view per memory frame, every 64 frames",
        updates="BatchNorm affine parameters and robust statistics (teacher: EMA)",
        norm="BatchNorm",
        forward_per_frame="≈3 (teacher; memory through teacher and student every 64 frames)",
        backward_per_frame="≈1 (memory of ≤64 frames every 64 frames)",
    )
    #: the strong augmentation of memory frames (see the class docstring).
    strong = DenseAugment(flip=0.5, crop=(0.9, 1.0), **COTTA_JITTER)  # type: ignore[arg-type]

    def check_options(self) -> None:
        o = self.options
        for key in ("memory_size", "update_every"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"rotta: option {key!r} must be an integer >= 1, got {v!r}")
        for key in ("nu", "alpha"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"rotta: option {key!r} must be a number in [0, 1], got {v!r}")

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        layers = require_batchnorm(model, "rotta", "RoTTA's robust BatchNorm replaces them")
        for name, _ in layers:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            bn = getattr(parent, child)
            if bn.running_mean is None:
                raise ValueError(f"rotta: BatchNorm layer {name!r} keeps no source statistics")
            robust = RobustBatchNorm(bn, self.options["alpha"])
            robust.eval()
            setattr(parent, child, robust)
        self.trained = [
            p for m in model.modules() if isinstance(m, RobustBatchNorm)
            for p in (m.weight, m.bias) if p is not None
        ]  # fmt: skip
        for p in self.trained:
            p.requires_grad_(True)
        self.teacher = self.model_copy(model)

    def params_to_train(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return self.trained

    def reset_state(self) -> None:
        #: the memory, created at the first batch (when the number of classes is known).
        self.memory: CategoryBalancedMemory | None = None
        self.frames_seen = 0

    def predict(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            teacher = self.forward(x, self.teacher)
            probs = teacher.softmax(1)
            uncertainty = (-probs * torch.log(probs + 1e-6)).sum(1).flatten(1).mean(1)
            labels = probs.flatten(2).mean(2).argmax(1)
        if self.memory is None:
            self.memory = CategoryBalancedMemory(
                self.options["memory_size"], teacher.shape[1],
                self.options["lambda_t"], self.options["lambda_u"],
            )  # fmt: skip
        for i in range(x.shape[0]):
            self.memory.add(x[i].detach().clone(), int(labels[i]), float(uncertainty[i]))
            self.frames_seen += 1
            if self.frames_seen % self.options["update_every"] == 0:
                self.update_from_memory()
        return teacher

    def update_from_memory(self) -> None:
        assert self.memory is not None
        frames, ages = self.memory.contents()
        batch = torch.stack(frames)
        height, width = batch.shape[-2:]
        self._robust_mode(True)
        try:
            with torch.no_grad():
                target = self.forward(batch, self.teacher).softmax(1)
            views = self.strong.sample(len(frames), height, width, self.generator)
            student = self.forward(augment(batch, views, self.generator))
            student, covered = restore(student, views, (height, width))
            ce = -(target * student.log_softmax(1)).sum(1)
            covered = covered[:, 0]
            per_frame = (ce * covered).sum((1, 2)) / covered.sum((1, 2)).clamp_min(1.0)
            weight = timeliness(torch.tensor(ages, dtype=per_frame.dtype, device=per_frame.device))
            self.update((per_frame * weight).mean())
        finally:
            self._robust_mode(False)
        with torch.no_grad():
            nu = self.options["nu"]
            for t, s in zip(self.teacher.parameters(), self.model.parameters(), strict=True):
                t.copy_((1 - nu) * t + nu * s)

    def _robust_mode(self, train: bool) -> None:
        for net in (self.model, self.teacher):
            for m in net.modules():
                if isinstance(m, RobustBatchNorm):
                    m.train(train)
