"""RoTTA against a straightforward implementation of the reference (rotta.py, memory.py,
bn_layers.py) with frames as samples; robust BN, the memory's capacity and replacement rule."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

import perception
from perception._methods_rotta import CategoryBalancedMemory
from tests.perception.test_adapt_nets import TinyNet, batches, confident_net

torch.set_num_threads(1)


class HandRobustBN(nn.Module):
    def __init__(self, bn: nn.BatchNorm2d, alpha: float) -> None:
        super().__init__()
        self.alpha, self.eps = alpha, bn.eps
        self.register_buffer("m", bn.running_mean.clone())
        self.register_buffer("v", bn.running_var.clone())
        self.weight, self.bias = bn.weight, bn.bias

    def forward(self, x):
        if self.training:
            bv, bm = torch.var_mean(x, dim=[0, 2, 3], unbiased=False)
            mean = (1 - self.alpha) * self.m + self.alpha * bm
            var = (1 - self.alpha) * self.v + self.alpha * bv
            self.m, self.v = mean.detach().clone(), var.detach().clone()
        else:
            mean, var = self.m, self.v
        x = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class HandMemory:
    """CSTU as in memory.py, with plain lists."""

    def __init__(self, capacity, num_class):
        self.capacity, self.num_class = capacity, num_class
        self.per_class = capacity / num_class
        self.data = [[] for _ in range(num_class)]  # [x, uncertainty, age]

    def score(self, age, unc):
        return 1 / (1 + math.exp(-age / self.capacity)) + unc / math.log(self.num_class)

    def add(self, x, label, unc):
        occupied = sum(len(d) for d in self.data)
        if len(self.data[label]) < self.per_class:
            if occupied < self.capacity:
                ok = True
            else:
                most = max(len(d) for d in self.data)
                ok = self.remove([k for k, d in enumerate(self.data) if len(d) == most], unc)
        else:
            ok = self.remove([label], unc)
        if ok:
            self.data[label].append([x, unc, 0])
        for d in self.data:
            for item in d:
                item[2] += 1

    def remove(self, classes, unc):
        best, best_score = None, None
        for k in classes:
            for i, item in enumerate(self.data[k]):
                s = self.score(item[2], item[1])
                if best_score is None or s >= best_score:
                    best, best_score = (k, i), s
        if best is None:
            return True
        if best_score > self.score(0, unc):
            self.data[best[0]].pop(best[1])
            return True
        return False


def reference_rotta(model, xs, *, memory_size, update_every, nu, alpha=0.05, seed=0):
    student = copy.deepcopy(model).eval().requires_grad_(False)
    for name in ("norm1", "norm2"):
        setattr(student, name, HandRobustBN(getattr(student, name), alpha).eval())
    params = [p for m in (student.norm1, student.norm2) for p in (m.weight, m.bias)]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999))
    teacher = copy.deepcopy(student).requires_grad_(False)
    memory = HandMemory(memory_size, 5)
    strong = perception.DenseAugment(flip=0.5, crop=(0.9, 1.0), **perception.COTTA_JITTER)
    g = torch.Generator().manual_seed(seed)
    seen, outs = 0, []
    for x in xs:
        with torch.no_grad():
            out = teacher(x)
            p = out.softmax(1)
            unc = (-p * torch.log(p + 1e-6)).sum(1).mean((1, 2))
            labels = p.mean((2, 3)).argmax(1)
        for i in range(x.shape[0]):
            memory.add(x[i], int(labels[i]), float(unc[i]))
            seen += 1
            if seen % update_every == 0:
                items = [it for d in memory.data for it in d]
                data = torch.stack([it[0] for it in items])
                ages = torch.tensor([it[2] / memory_size for it in items])
                for net in (student, teacher):
                    net.norm1.train(), net.norm2.train()
                with torch.no_grad():
                    target = teacher(data).softmax(1)
                views = strong.sample(len(items), *data.shape[-2:], g)
                stu, covered = perception.restore(
                    student(perception.augment(data, views, g)), views, data.shape[-2:]
                )
                ce = -(target * stu.log_softmax(1)).sum(1)
                covered = covered[:, 0]
                per_frame = (ce * covered).sum((1, 2)) / covered.sum((1, 2))
                weight = torch.exp(-ages) / (1 + torch.exp(-ages))
                opt.zero_grad()
                (per_frame * weight).mean().backward()
                opt.step()
                for net in (student, teacher):
                    net.norm1.eval(), net.norm2.eval()
                with torch.no_grad():
                    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
                        t.data[:] = (1 - nu) * t.data[:] + nu * s.data[:]
        outs.append(out)
    return outs, memory


def test_rotta_matches_reference():
    model, xs = confident_net(), batches(4)
    expected, memory = reference_rotta(model, xs, memory_size=6, update_every=4, nu=0.5)
    rotta = perception.create_adapter("rotta", model, memory_size=6, update_every=4, nu=0.5)
    got = [rotta.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert not torch.allclose(got[-1], perception.create_adapter("rotta", model).predict(xs[-1]))
    assert rotta.stats["backward_passes"] == 4
    assert [len(c) for c in rotta.memory.items] == [len(d) for d in memory.data]
    for cls, hand in zip(rotta.memory.items, memory.data, strict=True):
        assert [(i.uncertainty, i.age) for i in cls] == [(h[1], h[2]) for h in hand]


def test_prediction_is_the_teachers_before_any_update():
    model, x = confident_net(), batches(1)[0]
    rotta = perception.create_adapter("rotta", model, memory_size=4, update_every=2)
    with torch.no_grad():
        before = rotta.teacher(x)
    torch.testing.assert_close(rotta.predict(x), before, rtol=0, atol=0)
    assert rotta.stats["backward_passes"] == 2  # two updates happened after predicting


def test_robust_batchnorm_statistics():
    rotta = perception.create_adapter("rotta", TinyNet(), alpha=0.05)
    layer, source = rotta.model.norm1, TinyNet().norm1
    assert torch.equal(layer.weight, rotta.model.norm1.weight) and layer.weight.requires_grad
    h = torch.randn((3, 8, 4, 4), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out_eval = layer(h)
        ref = (h - source.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            source.running_var.view(1, -1, 1, 1) + source.eps
        ) * source.weight.view(1, -1, 1, 1) + source.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(out_eval, ref, rtol=0, atol=1e-6)  # eval: stored statistics
        layer.train()
        layer(h)
        layer.eval()
    var, mean = torch.var_mean(h, dim=[0, 2, 3], unbiased=False)
    torch.testing.assert_close(layer.mean, 0.95 * source.running_mean + 0.05 * mean)
    torch.testing.assert_close(layer.var, 0.95 * source.running_var + 0.05 * var)


def test_memory_capacity_and_replacement_rule():
    mem = CategoryBalancedMemory(capacity=4, num_classes=2)
    hand = HandMemory(4, 2)
    g = torch.Generator().manual_seed(5)
    for k in range(40):
        label, unc = int(torch.randint(2, (), generator=g)), float(torch.rand((), generator=g))
        mem.add(torch.tensor(float(k)), label, unc)
        hand.add(k, label, unc)
        assert len(mem) <= 4
        got = [[float(i.frame) for i in c] for c in mem.items]
        assert got == [[float(h[0]) for h in d] for d in hand.data]
    # a fresh, more certain frame of a full class replaces its oldest, most uncertain item
    full = CategoryBalancedMemory(capacity=2, num_classes=2)  # one per class
    full.add(torch.tensor(0.0), 0, 0.9)
    full.add(torch.tensor(1.0), 0, 0.1)  # class 0 at quota: replaces the 0.9 item
    assert [float(i.frame) for i in full.items[0]] == [1.0]
    full.add(torch.tensor(2.0), 0, 0.9)  # a worse score than the stored one: refused
    assert [float(i.frame) for i in full.items[0]] == [1.0] and full.items[0][0].age == 2


def test_equal_scores_remove_the_last_stored_item():
    mem = CategoryBalancedMemory(capacity=4, num_classes=2, lambda_t=0.0)  # score ∝ uncertainty
    for k, unc in enumerate([0.5, 0.5, 0.1]):
        mem.add(torch.tensor(float(k)), 0, unc)
    assert [float(i.frame) for i in mem.items[0]] == [0.0, 2.0]  # memory.py's `>=`: the last


def test_timeliness_weight():
    from perception._methods_rotta import timeliness

    a = torch.tensor([0.0, 1.0, 5.0])
    torch.testing.assert_close(timeliness(a), torch.exp(-a) / (1 + torch.exp(-a)))
    assert timeliness(a)[0] == 0.5


def test_rotta_needs_batchnorm():
    with pytest.raises(ValueError, match=r"^rotta: the model has no BatchNorm layers \(Group"):
        perception.create_adapter("rotta", TinyNet(norm="gn"))
