"""CoTTA against a straightforward implementation of the reference (qinenergy/cotta and the
segmentation port), with the generator draws the documented order gives; its invariants."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import perception
from tests.perception.test_adapt_nets import TinyNet, batches, confident_net

torch.set_num_threads(1)
SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def reference_cotta(model, xs, *, lr=0.01, confidence=0.9, rst=0.01, mt=0.999, seed=0):
    student = copy.deepcopy(model).eval().requires_grad_(False)
    for m in student.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = None
    named = [
        (n, p) for n, p in student.named_parameters() if n.split(".")[-1] in ("weight", "bias")
    ]
    for _, p in named:
        p.requires_grad_(True)
    opt = torch.optim.SGD([p for _, p in named], lr=lr, momentum=0.9, weight_decay=5e-4)
    teacher = copy.deepcopy(student).requires_grad_(False)
    anchor = copy.deepcopy(student).requires_grad_(False)
    source = copy.deepcopy(student.state_dict())
    g = torch.Generator().manual_seed(seed)
    outs, triggered = [], []
    for x in xs:
        n, _, h, w = x.shape
        out = student(x)
        with torch.no_grad():
            anchor_prob = anchor(x).softmax(1).max(1)[0]
            ema = teacher(x)
            triggered.append(bool(anchor_prob.mean() < confidence))
            if triggered[-1]:
                total = ema.clone()
                for r in SCALES:
                    torch.rand((), generator=g)  # DenseAugment draws the scale first
                    u = torch.rand((n, 8), generator=g, dtype=torch.float64)
                    flips = (u[:, 0] < 0.5).tolist()
                    inp = torch.cat(
                        [x[i : i + 1].flip(3) if f else x[i : i + 1] for i, f in enumerate(flips)]
                    )
                    size = (round(r * h), round(r * w))
                    inp = F.interpolate(inp, size=size, mode="bilinear", align_corners=False)
                    o = teacher(inp)
                    o = torch.cat(
                        [o[i : i + 1].flip(3) if f else o[i : i + 1] for i, f in enumerate(flips)]
                    )
                    total += F.interpolate(o, size=(h, w), mode="bilinear", align_corners=False)
                ema = total / (len(SCALES) + 1)
        loss = (-(ema.softmax(1) * out.log_softmax(1)).sum(1)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        with torch.no_grad():
            for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
                t.data[:] = mt * t.data[:] + (1 - mt) * s.data[:]
            for name, p in named:
                mask = (torch.rand(p.shape, generator=g) < rst).float()
                p.data = source[name] * mask + p * (1.0 - mask)
        outs.append(ema.detach())
    return outs, triggered, student, teacher


@pytest.mark.parametrize(("norm", "confidence"), [("bn", 0.9), ("gn", 0.9), ("bn", 0.0)])
def test_cotta_matches_reference(norm, confidence):
    model, xs = confident_net(norm), batches(4)
    expected, triggered, student, teacher = reference_cotta(model, xs, confidence=confidence)
    cotta = perception.create_adapter("cotta", model, lr=0.01, confidence=confidence)
    got = [cotta.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert all(triggered) == (confidence > 0) and any(triggered) == (confidence > 0)
    for a, b in zip(cotta.model.parameters(), student.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    for a, b in zip(cotta.teacher.parameters(), teacher.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_teacher_is_an_ema_of_the_student():
    model, x = confident_net(), batches(1)[0]
    cotta = perception.create_adapter("cotta", model, lr=0.05, restore_prob=0.0, confidence=0.0)
    source = [p.detach().clone() for p in cotta.teacher.parameters()]
    cotta.predict(x)
    for t, s, s0 in zip(cotta.teacher.parameters(), cotta.model.parameters(), source, strict=True):
        torch.testing.assert_close(t, 0.999 * s0 + 0.001 * s, rtol=0, atol=1e-7)
    student = list(cotta.model.parameters())
    assert any(not torch.equal(s, s0) for s, s0 in zip(student, source, strict=True))
    assert all(torch.equal(a, s0) for a, s0 in zip(cotta.anchor.parameters(), source, strict=True))


def test_augmentation_average_only_below_the_confidence_threshold():
    model, x = confident_net(), batches(1)[0]
    never = perception.create_adapter("cotta", model, confidence=0.0)
    always = perception.create_adapter("cotta", model, confidence=1.0)
    plain = never.predict(x)
    averaged = always.predict(x)
    assert never.stats["forward_passes"] == 3  # student, anchor, teacher
    assert always.stats["forward_passes"] == 3 + len(SCALES)
    assert always.stats["image_forwards"] == 4 * (3 + len(SCALES))
    with torch.no_grad():  # the plain teacher prediction is the configured source model's
        torch.testing.assert_close(plain, never.anchor(x), rtol=0, atol=0)
    assert not torch.allclose(plain, averaged, atol=1e-4)


@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_stochastic_restore_probability(p):
    model = TinyNet(width=32)
    cotta = perception.create_adapter("cotta", model, lr=0.5, restore_prob=p, confidence=0.0)
    source = {n: q.detach().clone() for n, q in cotta.anchor.named_parameters()}
    cotta.predict(batches(1)[0])
    restored = total = 0
    for n, q in cotta.model.named_parameters():
        same = q == source[n]
        restored += int(same.sum())
        total += same.numel()
    # elements that the step moved come back with probability p (a few may not have moved)
    assert restored / total == pytest.approx(p, abs=0.03)


def test_same_seed_same_bits_other_seed_other_draws():
    model, xs = confident_net(), batches(2)

    def run(seed):
        a = perception.create_adapter("cotta", model, seed=seed, restore_prob=0.5)
        return [a.predict(x) for x in xs][-1], [q.clone() for q in a.model.parameters()]

    (o1, p1), (o2, p2), (_, p3) = run(0), run(0), run(1)
    assert torch.equal(o1, o2) and all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(p1, p3, strict=True))


def test_reset_restores_student_teacher_and_optimiser_exactly():
    model, xs = confident_net(), batches(3)
    cotta = perception.create_adapter("cotta", model)
    fresh = {k: v.clone() for k, v in cotta.model.state_dict().items()}
    fresh_teacher = {k: v.clone() for k, v in cotta.teacher.state_dict().items()}
    for x in xs:
        cotta.predict(x)
    cotta.reset()
    assert all(torch.equal(v, fresh[k]) for k, v in cotta.model.state_dict().items())
    assert all(torch.equal(v, fresh_teacher[k]) for k, v in cotta.teacher.state_dict().items())
    assert cotta.optimizer.state_dict()["state"] == {}
