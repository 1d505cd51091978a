"""CoTTA: continual test-time adaptation with a mean teacher (Wang et al., CVPR 2022).

Facts from the authors' code (qinenergy/cotta ``cifar/cotta.py``, ``imagenet/cotta.py``) and
the segmentation port (mariodoebler/test-time-adaptation ``segmentation/methods/cotta.py``,
``segmentation/cfgs/cotta.yaml``); written anew on the public Adapter API.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter
from ._augment import DenseAugment, augment, restore
from ._methods import use_batch_statistics

#: the segmentation port's ensemble scales (6 ratios; the flip is drawn per image).
COTTA_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def weights_and_biases(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Parameters named ``weight`` or ``bias`` (the reference's ``collect_params``)."""
    named = model.named_parameters()
    return [(k, p) for k, p in named if k.rsplit(".", 1)[-1] in ("weight", "bias")]


@register_adapter(name="cotta")
class CoTTA(Adapter):
    """CoTTA: a student follows an EMA teacher, averaged over views when unsure; stochastic restore.

    Per step, as the reference's ``forward_and_adapt``: the student (all weights and
    biases train; BatchNorm on batch statistics) predicts the batch; the *anchor* (a frozen
    copy of the source model) gives its mean top-1 confidence over the batch's pixels; the
    *teacher* (an EMA copy) predicts the batch, and when the anchor's confidence is below
    ``confidence`` its logits are averaged with the teacher's on augmented views; the
    student minimises the cross-entropy to the teacher's softmax (per pixel, averaged);
    then teacher ← m·teacher + (1−m)·student (``teacher_momentum`` m) and every weight or
    bias element returns to its source value with probability ``restore_prob``. The
    prediction returned is the teacher's (averaged when unsure), made before the update,
    as the authors' code does. Reset restores student, teacher and anchor.

    Segmentation, as the port: the views are the frame at the six ``scales`` 0.5-1.75, each
    image mirrored with probability 1/2, and the teacher's logits are warped back to the
    input grid (un-mirrored, resized) and averaged with its plain prediction (sum / 7);
    the anchor's confidence is averaged over pixels. Deviations: the port trains on two
    random crops of frames twice the crop size and re-runs the teacher on the whole frame
    after the update; we train on the frame itself and return the pre-update teacher
    prediction (one teacher pass fewer); resizing uses ``align_corners=False`` (the port:
    True); the port's 10x learning rate for the segmentation head (a DeepLab training
    convention our models were not trained with) is not used; only BatchNorm switches to
    train mode (the reference puts the whole model in train mode, which also enables
    Dropout). Random draws (flips, restore masks) come from ``self.generator`` (``seed``).

    Defaults are the segmentation configuration (``segmentation/cfgs/cotta.yaml``): SGD
    lr 2.5e-4, momentum 0.9, weight decay 5e-4, ``confidence`` 0.9 (CIFAR-10: 0.92),
    ``teacher_momentum`` 0.999, ``restore_prob`` 0.01; the port runs at batch size 1.
    """

    options: ClassVar[Mapping[str, Any]] = {
        "optimizer": "sgd",
        "lr": 2.5e-4,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "teacher_momentum": 0.999,
        "restore_prob": 0.01,
        "confidence": 0.9,
        "scales": COTTA_SCALES,
        "flip": 0.5,
        "seed": 0,
    }
    traits = MethodTraits(
        views="6 scales, random flips (when the anchor is unsure)",
        updates="all weights and biases (teacher: EMA of them)",
        norm="none",
        resets="stochastic restore: 1% of weights per step",
        forward_per_frame="3 (9 when unsure)",
        backward_per_frame="1",
    )

    def check_options(self) -> None:
        o = self.options
        for key in ("teacher_momentum", "restore_prob", "confidence", "flip"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"cotta: option {key!r} must be a number in [0, 1], got {v!r}")
        scales = o["scales"]
        if (
            isinstance(scales, (str, bytes))
            or not isinstance(scales, Iterable)
            or not all(isinstance(s, (int, float)) and math.isfinite(s) and s > 0 for s in scales)
        ):
            raise ValueError(
                f"cotta: option 'scales' must be a list of positive numbers, got {scales!r}"
            )

    def configure(self, model: nn.Module) -> None:
        super().configure(model)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                use_batch_statistics(m)
        self.trained = weights_and_biases(model)
        for _, p in self.trained:
            p.requires_grad_(True)
        # copies of the configured source model: they normalise with batch statistics too
        self.teacher = self.model_copy(model)
        self.anchor = self.model_copy(model)

    def params_to_train(self, model: nn.Module) -> Iterable[nn.Parameter]:
        return [p for _, p in self.trained]

    def predict(self, x: Tensor) -> Tensor:
        for _ in range(self.options["steps"]):
            student = self.forward(x)
            with torch.no_grad():
                anchor_conf = self.forward(x, self.anchor).softmax(1).amax(1).mean()
                teacher = self.forward(x, self.teacher)
                if anchor_conf < self.options["confidence"]:
                    teacher = self.augmentation_average(x, teacher)
            loss = -(teacher.softmax(1) * student.log_softmax(1)).sum(1).mean()
            self.update(loss)
            with torch.no_grad():
                self.update_teacher()
                self.stochastic_restore()
            self.end_step()
        return teacher

    def augmentation_average(self, x: Tensor, teacher_logits: Tensor) -> Tensor:
        """The teacher's logits averaged with its warped-back logits on the scaled views."""
        height, width = x.shape[-2:]
        total = teacher_logits.clone()
        for scale in self.options["scales"]:
            views = DenseAugment(flip=self.options["flip"], scale=float(scale)).sample(
                x.shape[0], height, width, self.generator
            )
            out = self.forward(augment(x, views), self.teacher)
            total += restore(out, views, (height, width))[0]
        return total / (len(self.options["scales"]) + 1)

    def update_teacher(self) -> None:
        m = self.options["teacher_momentum"]
        for t, s in zip(self.teacher.parameters(), self.model.parameters(), strict=True):
            t.copy_(m * t + (1 - m) * s)

    def stochastic_restore(self) -> None:
        """Each weight/bias element returns to its source value with probability p."""
        p_restore = self.options["restore_prob"]
        if p_restore <= 0:
            return
        source = dict(self.anchor.named_parameters())
        for name, p in self.trained:
            mask = torch.rand(p.shape, generator=self.generator) < p_restore
            p.copy_(torch.where(mask.to(p.device), source[name], p))
