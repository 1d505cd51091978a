"""TENT against an independent, straightforward implementation of the paper's procedure."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import perception
from tests.perception.test_adapt_nets import TinyNet, batches

torch.set_num_threads(1)


def reference_tent(model: nn.Module, xs: list, steps: int = 1, optimizer: str = "adam") -> list:
    """TENT written out by hand: BN on batch statistics, only norm affine params train,
    mean softmax entropy, forward/backward/step per batch, return the pre-update output."""
    net = copy.deepcopy(model)
    net.eval()
    for p in net.parameters():
        p.requires_grad = False
    params = []
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.train()
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            m.weight.requires_grad = True
            m.bias.requires_grad = True
            params += [m.weight, m.bias]
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
    else:
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    outs = []
    for x in xs:
        for _ in range(steps):
            out = net(x)
            p = out.softmax(1)
            entropy = -(p * out.log_softmax(1)).sum(1)  # (B, H, W)
            loss = entropy.mean()  # batch and pixels
            opt.zero_grad()
            loss.backward()
            opt.step()
        outs.append(out.detach())
    return outs


@pytest.mark.parametrize(
    ("norm", "steps", "optimizer"),
    [("bn", 1, "adam"), ("bn", 3, "adam"), ("gn", 1, "adam"), ("bn", 1, "sgd")],
)
def test_tent_matches_independent_implementation(norm, steps, optimizer):
    model = TinyNet(norm=norm)
    xs = batches(5)
    expected = reference_tent(model, xs, steps=steps, optimizer=optimizer)
    tent = perception.create_adapter("tent", model, steps=steps, optimizer=optimizer)
    got = [tent.predict(x) for x in xs]
    for e, o in zip(expected, got, strict=True):
        torch.testing.assert_close(o, e, rtol=0, atol=1e-4)
    # adaptation really happened: later outputs differ from a fresh model's
    fresh = perception.create_adapter("tent", model, steps=steps, optimizer=optimizer)
    assert not torch.allclose(fresh.predict(xs[-1]), got[-1], atol=1e-5)


def test_first_batch_prediction_equals_bn():
    model = TinyNet()
    x = batches(1)[0]
    tent_out = perception.create_adapter("tent", model).predict(x)
    bn_out = perception.create_adapter("bn", model).predict(x)
    source_out = perception.create_adapter("source", model).predict(x)
    torch.testing.assert_close(tent_out, bn_out, rtol=0, atol=1e-6)
    assert not torch.allclose(tent_out, source_out, atol=1e-3)


def test_only_norm_affine_parameters_change():
    model = TinyNet()
    tent = perception.create_adapter("tent", model)
    for x in batches(3):
        tent.predict(x)
    before, after = dict(model.named_parameters()), dict(tent.model.named_parameters())
    for name, p in after.items():
        changed = not torch.equal(p, before[name])
        assert changed == name.startswith(("norm1", "norm2")), name
    for m in tent.model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert m.training and not m.track_running_stats and m.running_mean is None


def test_dropout_stays_off():
    model = TinyNet(dropout=0.5)
    x = batches(1)[0]
    tent = perception.create_adapter("tent", model, episodic=True)
    a, b = tent.predict(x), tent.predict(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not tent.model.drop.training
    # and equals the reference with Dropout in eval mode
    torch.testing.assert_close(a, reference_tent(model, [x])[0], rtol=0, atol=1e-5)


def test_predictions_are_detached_logits():
    tent = perception.create_adapter("tent", TinyNet())
    out = tent.predict(batches(1)[0])
    assert out.shape == (4, 5, 8, 16) and not out.requires_grad and out.grad_fn is None


def test_groupnorm_model_adapts_its_affine_parameters():
    model = TinyNet(norm="gn")
    tent = perception.create_adapter("tent", model)
    assert {id(p) for p in tent.optimizer.param_groups[0]["params"]} == {
        id(p) for n, p in tent.model.named_parameters() if n.startswith("norm")
    }
    for x in batches(2):
        tent.predict(x)
    assert not torch.equal(tent.model.norm1.weight, model.norm1.weight)


def test_model_without_normalisation_layers_is_refused():
    with pytest.raises(ValueError, match=r"no normalisation layers"):
        perception.create_adapter("tent", TinyNet(norm="none"))
