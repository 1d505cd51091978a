"""Tiny segmentation nets and data for the adaptation tests (no dependency on the model zoo).

Every weight and statistic comes from an explicit seeded generator, and the source running
statistics are deliberately far from the test batches' so that source, batch-only and mixed
normalisation give clearly different outputs.
"""

from __future__ import annotations

import torch
from torch import nn

CLASSES = 5


def _fill(module: nn.Module, g: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.dim() == 1:  # normalisation scale
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias") and p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(0.3 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


class TinyNet(nn.Module):
    """conv-norm-relu-(dropout)-conv-norm-relu-1x1 conv: NCHW in, NCHW logits out."""

    def __init__(self, norm: str = "bn", dropout: float = 0.0, seed: int = 0, width: int = 8):
        super().__init__()

        def make_norm() -> nn.Module:
            if norm == "bn":
                return nn.BatchNorm2d(width)
            if norm == "bn-nostats":
                return nn.BatchNorm2d(width, track_running_stats=False)
            if norm == "gn":
                return nn.GroupNorm(2, width)
            if norm == "none":
                return nn.Identity()
            raise ValueError(norm)

        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.norm1 = make_norm()
        self.drop = nn.Dropout2d(dropout)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = make_norm()
        self.head = nn.Conv2d(width, CLASSES, 1)
        _fill(self, torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.norm1(self.conv1(x))))
        return self.head(torch.relu(self.norm2(self.conv2(x))))


def confident_net(norm: str = "bn", scale: float = 3.0, seed: int = 0) -> TinyNet:
    """A TinyNet whose classifier is scaled so that roughly 40 % of its pixels pass the
    entropy filters of EATA/SAR (E0 = 0.4·ln 5) while the rest are filtered out."""
    net = TinyNet(norm=norm, seed=seed)
    with torch.no_grad():
        net.head.weight.mul_(scale)
    return net


def batches(n: int, seed: int = 1, size: int = 4, hw: tuple[int, int] = (8, 16)) -> list:
    """``n`` shifted batches (float32 NCHW in [0, 1]) with a drifting contrast and offset."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        x = torch.rand((size, 3, *hw), generator=g)
        out.append((0.3 + 0.1 * i) * x + 0.2)
    return out


def snapshot(model: nn.Module) -> dict:
    """Everything a caller could observe: parameters, buffers, modes and grad flags."""
    return {
        "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "track": [getattr(m, "track_running_stats", None) for m in model.modules()],
    }


def same_snapshot(a: dict, b: dict) -> bool:
    if a["state"].keys() != b["state"].keys():
        return False
    if any(not torch.equal(a["state"][k], b["state"][k]) for k in a["state"]):
        return False
    return all(a[k] == b[k] for k in ("training", "requires_grad", "track"))
