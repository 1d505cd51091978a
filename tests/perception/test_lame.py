"""LAME against the reference's kNN affinity and bound optimisation (fiveai/LAME lame.py), with
pixels (or cells of pixels) as samples; parameters untouched, no backward pass."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import perception
from tests.perception.test_adapt_nets import TinyNet, batches

torch.set_num_threads(1)


class HookNet(nn.Module):
    """conv-BN-ReLU-conv-ReLU features at input resolution, a 1x1 classifier as head."""

    def __init__(self, seed: int = 0, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.norm1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.classifier = nn.Conv2d(8, classes, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (3 if p.dim() > 1 else 0.2))

    def features(self, x):
        return torch.relu(self.conv2(torch.relu(self.norm1(self.conv1(x)))))

    def head(self, f, size=None):
        return self.classifier(f)

    def forward(self, x):
        return self.head(self.features(x), x.shape[-2:])


def reference_lame(probas, feats, knn=5, max_steps=100):
    """lame.py: kNN affinity (topk of torch.norm distances, first one dropped) and
    laplacian_optimization, on (N, K) probabilities and (N, d) features."""
    unary = -torch.log(probas + 1e-10)
    feats = F.normalize(feats, p=2, dim=-1)
    n = feats.size(0)
    dist = torch.norm(feats.unsqueeze(0) - feats.unsqueeze(1), dim=-1, p=2)
    knn_index = dist.topk(min(knn + 1, n), -1, largest=False).indices[:, 1:]
    kernel = torch.zeros(n, n).scatter_(dim=-1, index=knn_index, value=1.0)
    y = (-unary).softmax(-1)
    old = float("inf")
    for i in range(max_steps):
        pairwise = kernel.matmul(y)
        y = (-unary + pairwise).softmax(-1)
        e = (unary * y - pairwise * y + y * torch.log(y.clip(1e-20))).sum().item()
        if i > 1 and abs(e - old) <= 1e-8 * abs(old):
            break
        old = e
    return y


def flat(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


@torch.no_grad()
def test_pixel_graph_matches_reference():
    model, x = HookNet().eval(), batches(1, hw=(4, 8))[0][:2]  # 64 pixels
    lame = perception.create_adapter("lame", model, node_stride=1)
    got = lame.predict(x)
    y = reference_lame(flat(model(x).softmax(1)), flat(model.features(x)))
    expected = torch.log(y).reshape(2, 4, 8, 5).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    source = perception.create_adapter("source", model).predict(x)
    assert not torch.allclose(got.softmax(1), source.softmax(1), atol=1e-3)  # it corrects


@torch.no_grad()
def test_class_split_cells_pool_features_and_correct_every_pixel():
    model, x = HookNet().eval(), batches(1, hw=(8, 16))[0][:2]
    got = perception.create_adapter("lame", model, node_stride=2).predict(x)
    probs, feats = model(x).softmax(1), model.features(x)
    label = probs.argmax(1)
    # nodes written out: the pixels of each 2x2 cell of each image, split by predicted class
    members: dict = {}
    for b in range(2):
        for i in range(8):
            for j in range(16):
                members.setdefault((b, i // 2, j // 2, int(label[b, i, j])), []).append((b, i, j))
    keys = sorted(members)
    node_p = torch.stack(
        [torch.stack([probs[b, :, i, j] for b, i, j in members[k]]).mean(0) for k in keys]
    )
    node_f = torch.stack(
        [torch.stack([feats[b, :, i, j] for b, i, j in members[k]]).mean(0) for k in keys]
    )
    y = reference_lame(node_p, node_f)
    correction = torch.log(y) - torch.log(node_p + 1e-10)  # = λ·W·Y up to a constant per node
    expected = torch.log(probs + 1e-10)
    for n, k in enumerate(keys):
        for b, i, j in members[k]:
            expected[b, :, i, j] += correction[n]
    assert len(keys) > 2 * 4 * 8  # some cells hold two classes
    torch.testing.assert_close(got, expected.log_softmax(1), rtol=0, atol=1e-5)


@torch.no_grad()
def test_node_budget_coarsens_the_cells():
    model, x = HookNet().eval(), batches(1, hw=(8, 16))[0][:2]
    budget = perception.create_adapter("lame", model, node_stride=2, max_nodes=1).predict(x)
    coarse = perception.create_adapter("lame", model, node_stride=16).predict(x)
    torch.testing.assert_close(budget, coarse, rtol=0, atol=0)
    fine = perception.create_adapter("lame", model, node_stride=2).predict(x)
    assert not torch.allclose(fine, coarse)


def test_parameters_untouched_and_no_backward_pass():
    model = HookNet()
    before = copy.deepcopy(model.state_dict())
    lame = perception.create_adapter("lame", model)
    for x in batches(3, hw=(8, 16)):
        lame.predict(x)
    assert lame.optimizer is None
    s = lame.stats
    assert (s["forward_passes"], s["backward_passes"], s["image_backwards"]) == (3, 0, 0)
    assert all(torch.equal(v, before[k]) for k, v in lame.model.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in lame.model.parameters())
    assert not lame.model.training


def test_registered_model_runs_and_symmetric_and_dense_affinities():
    model = perception.create_model("test_bn").eval()
    x = torch.rand((2, 3, 64, 128), generator=torch.Generator().manual_seed(0))
    for options in ({}, {"force_symmetry": True}, {"affinity": "rbf", "node_stride": 8}):
        out = perception.create_adapter("lame", model, **options).predict(x)
        assert out.shape == (2, 19, 64, 128) and torch.isfinite(out).all()
        torch.testing.assert_close(out.exp().sum(1), torch.ones(2, 64, 128))


def test_model_without_feature_hook_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"^lame needs the model's feature hook") as err:
        perception.create_adapter("lame", TinyNet())
    assert "\n" not in str(err.value) and "TinyNet" in str(err.value)
    perception.create_adapter("tent", TinyNet())  # methods that need no features are fine
    with pytest.raises(ValueError, match="affinity"):
        perception.create_adapter("lame", HookNet(), affinity="cosine")
