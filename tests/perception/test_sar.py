"""SAR against a straightforward implementation of the reference (sar.py + sam.py), pixels as
samples; two passes per step, the batch-size learning-rate rule and model recovery."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import perception
from tests.perception.test_adapt_nets import batches, confident_net

torch.set_num_threads(1)


def reference_sar(model, xs, *, lr, rho=0.05, reset_constant=0.2, skip=()):
    net = copy.deepcopy(model).eval().requires_grad_(False)
    params = []
    for nm, m in net.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
            m.running_mean = m.running_var = None
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and nm not in skip:
            m.requires_grad_(True)
            params += [m.weight, m.bias]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    state = (copy.deepcopy(net.state_dict()), copy.deepcopy(opt.state_dict()))
    ema, outs, emas, resets = None, [], [], 0

    def entropy(out):
        flat = out.permute(0, 2, 3, 1).reshape(-1, out.shape[1])
        return -(flat.softmax(1) * flat.log_softmax(1)).sum(1)

    for x in xs:
        opt.zero_grad()
        out = net(x)
        margin = 0.4 * math.log(out.shape[1])
        ent = entropy(out)
        ids1 = torch.where(ent < margin)
        ent[ids1].mean(0).backward()
        # SAM first step
        with torch.no_grad():
            grads = [p.grad.norm(p=2) for p in params if p.grad is not None]
            norm = torch.norm(torch.stack(grads), p=2)
            scale = rho / (norm + 1e-12)
            old = [p.data.clone() for p in params]
            for p in params:
                p.add_(p.grad * scale)
        opt.zero_grad()
        ent2 = entropy(net(x))[ids1]
        ids2 = torch.where(ent2 < margin)
        loss2 = ent2[ids2].mean(0)
        if not np.isnan(loss2.item()):
            ema = loss2.item() if ema is None else 0.9 * ema + 0.1 * loss2.item()
        loss2.backward()
        with torch.no_grad():
            for p, o in zip(params, old, strict=True):
                p.data = o
        opt.step()
        opt.zero_grad()
        emas.append(ema)
        if ema is not None and ema < reset_constant:
            net.load_state_dict(state[0])
            opt.load_state_dict(state[1])
            ema, resets = None, resets + 1
        outs.append(out.detach())
    return outs, emas, resets


@pytest.mark.parametrize(("norm", "skip"), [("bn", ()), ("gn", ()), ("bn", ("norm2",))])
def test_sar_matches_reference(norm, skip):
    model, xs = confident_net(norm), batches(5)
    expected, emas, _ = reference_sar(model, xs, lr=0.05, skip=skip)
    sar = perception.create_adapter("sar", model, lr=0.05, scale_lr=False, skip=skip)
    got = []
    for x, ema in zip(xs, emas, strict=True):
        got.append(sar.predict(x))
        assert sar.loss_ema == pytest.approx(ema, rel=1e-5)
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert not torch.allclose(perception.create_adapter("sar", model).predict(xs[-1]), got[-1])
    if skip:
        assert torch.equal(sar.model.norm2.weight, model.norm2.weight)
        assert not torch.equal(sar.model.norm1.weight, model.norm1.weight)


def test_two_forward_and_two_backward_passes_per_step():
    sar = perception.create_adapter("sar", confident_net(), steps=2)
    for x in batches(3):
        sar.predict(x)
    s = sar.stats
    assert (s["forward_passes"], s["backward_passes"], s["steps"]) == (12, 12, 6)
    assert s["image_forwards"] == s["image_backwards"] == 12 * 4


def test_recovery_resets_when_the_loss_average_falls_under_the_threshold():
    model, xs = confident_net(), batches(4)
    # threshold above any entropy: the first defined loss triggers recovery
    expected, _, resets = reference_sar(model, xs, lr=0.05, reset_constant=10.0)
    sar = perception.create_adapter("sar", model, lr=0.05, scale_lr=False, reset_threshold=10.0)
    got = [sar.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-5)
    assert resets == sar.stats["resets"] == 4 and sar.loss_ema is None
    source = model.state_dict()
    for k, v in sar.model.state_dict().items():  # back at the source after every step
        assert torch.equal(v, source[k]), k
    never = perception.create_adapter("sar", model, reset_threshold=0.0)
    for x in xs:
        never.predict(x)
    assert never.stats["resets"] == 0 and never.loss_ema is not None


def test_learning_rate_follows_the_batch_size_rule():
    sar = perception.create_adapter("sar", confident_net())
    assert sar.batch_lr(64) == sar.batch_lr(32) == 0.00025
    assert sar.batch_lr(16) == pytest.approx(0.00025 / 64 * 16 * 2)
    assert sar.batch_lr(1) == pytest.approx(2 * 0.00025 / 64 * 2)
    sar.predict(batches(1)[0])
    assert sar.optimizer.param_groups[0]["lr"] == pytest.approx(0.00025 / 64 * 4 * 2)
    assert sar.optimizer.param_groups[0]["momentum"] == 0.9


def test_last_stage_is_frozen_on_the_registered_models():
    model = perception.create_model("test_gn")
    sar = perception.create_adapter("sar", model)
    trained = {id(p) for p in sar.trained}
    for name, p in sar.model.named_parameters():
        if name.startswith("stage3."):
            assert id(p) not in trained, name
    named = sar.model.named_parameters()
    assert any(n.startswith("stage2.") and id(p) in trained for n, p in named)
