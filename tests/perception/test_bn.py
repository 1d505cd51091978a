"""BN re-estimation: batch-only, Schneider et al.'s prior mixing and the EMA variant."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import perception
from tests.perception.test_adapt_nets import TinyNet, batches

torch.set_num_threads(1)


def hand_forward(net: TinyNet, x: torch.Tensor, stats) -> torch.Tensor:
    """TinyNet's forward written out, with ``stats(layer, h) -> (mean, var)`` per BN layer."""

    def norm(layer, h):
        mean, var = stats(layer, h)
        h = (h - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + layer.eps)
        return h * layer.weight[None, :, None, None] + layer.bias[None, :, None, None]

    h = torch.relu(norm(net.norm1, F.conv2d(x, net.conv1.weight, net.conv1.bias, padding=1)))
    h = torch.relu(norm(net.norm2, F.conv2d(h, net.conv2.weight, net.conv2.bias, padding=1)))
    return F.conv2d(h, net.head.weight, net.head.bias)


def batch_stats(h):
    mean = h.mean(dim=(0, 2, 3))
    var = ((h - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))  # biased
    return mean, var


def prior_stats(n_prior):
    def stats(layer, h):
        lam = n_prior / (n_prior + h.shape[0])
        mean_t, var_t = batch_stats(h)
        return (
            lam * layer.running_mean + (1 - lam) * mean_t,
            lam * layer.running_var + (1 - lam) * var_t,
        )

    return stats


@torch.no_grad()
def test_batch_only_matches_hand_computation():
    net, x = TinyNet(), batches(1)[0]
    got = perception.create_adapter("bn", net).predict(x)
    expected = hand_forward(net, x, lambda _, h: batch_stats(h))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@torch.no_grad()
@pytest.mark.parametrize("n_prior", [1.0, 4.0, 16.0])
def test_prior_strength_matches_schneider_formula(n_prior):
    net, x = TinyNet(), batches(1, size=4)[0]
    got = perception.create_adapter("bn", net, prior_strength=n_prior).predict(x)
    torch.testing.assert_close(got, hand_forward(net, x, prior_stats(n_prior)), atol=1e-5, rtol=0)
    # strictly between source and batch-only
    batch_only = hand_forward(net, x, lambda _, h: batch_stats(h))
    assert not torch.allclose(got, batch_only, atol=1e-3)


@torch.no_grad()
def test_prior_strength_limits():
    net, x = TinyNet(), batches(1)[0]
    source = perception.create_adapter("source", net).predict(x)
    batch_only = perception.create_adapter("bn", net).predict(x)
    assert not torch.allclose(source, batch_only, atol=1e-2)
    huge = perception.create_adapter("bn", net, prior_strength=1e9).predict(x)
    torch.testing.assert_close(huge, source, atol=1e-4, rtol=0)
    inf = perception.create_adapter("bn", net, prior_strength=math.inf).predict(x)
    torch.testing.assert_close(inf, source, atol=1e-5, rtol=0)
    zero = perception.create_adapter("bn", net, prior_strength=0).predict(x)
    torch.testing.assert_close(zero, batch_only, atol=0, rtol=0)


@torch.no_grad()
def test_batch_size_enters_the_mixing_weight():
    """λ = N/(N+n): the same pixels count less against the prior in a smaller batch."""
    net, x = TinyNet(), batches(1, size=8)[0]
    adapter = perception.create_adapter("bn", net, prior_strength=4.0)
    torch.testing.assert_close(
        adapter.predict(x[:2]), hand_forward(net, x[:2], prior_stats(4.0)), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        adapter.predict(x), hand_forward(net, x, prior_stats(4.0)), atol=1e-5, rtol=0
    )


@torch.no_grad()
def test_momentum_keeps_an_ema_over_the_stream():
    net, xs, m = TinyNet(), batches(3), 0.3
    adapter = perception.create_adapter("bn", net, momentum=m)
    state = {id(net.norm1): None, id(net.norm2): None}

    def ema(layer, h):
        old = state[id(layer)] or (layer.running_mean.clone(), layer.running_var.clone())
        mean_t, var_t = batch_stats(h)
        state[id(layer)] = ((1 - m) * old[0] + m * mean_t, (1 - m) * old[1] + m * var_t)
        return state[id(layer)]

    outs = [adapter.predict(x) for x in xs]
    for x, out in zip(xs, outs, strict=True):
        torch.testing.assert_close(out, hand_forward(net, x, ema), atol=1e-5, rtol=0)
    # reset returns to the source statistics: the first output is reproduced exactly
    adapter.reset()
    torch.testing.assert_close(adapter.predict(xs[0]), outs[0], atol=0, rtol=0)
    assert adapter.stats["backward_passes"] == 0 and adapter.optimizer is None


def test_nothing_trains_and_caller_model_keeps_its_statistics():
    net = TinyNet()
    before = net.norm1.running_mean.clone()
    adapter = perception.create_adapter("bn", net, momentum=0.5)
    for x in batches(2):
        adapter.predict(x)
    assert torch.equal(net.norm1.running_mean, before)
    assert not any(p.requires_grad for p in adapter.model.parameters())


def test_bad_configurations_fail_with_one_line():
    with pytest.raises(ValueError, match=r"no BatchNorm layers.*GroupNorm") as err:
        perception.create_adapter("bn", TinyNet(norm="gn"))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"prior_strength"):
        perception.create_adapter("bn", TinyNet(), prior_strength=-1)
    with pytest.raises(ValueError, match=r"momentum"):
        perception.create_adapter("bn", TinyNet(), momentum=1.5)
    with pytest.raises(ValueError, match=r"one of the options"):
        perception.create_adapter("bn", TinyNet(), prior_strength=2, momentum=0.1)
    with pytest.raises(ValueError, match=r"no running statistics"):
        perception.create_adapter("bn", TinyNet(norm="bn-nostats"), prior_strength=2)
    # optimiser options do not apply to a method that trains nothing
    with pytest.raises(ValueError, match=r"option.*'lr'.*valid options: episodic, momentum"):
        perception.create_adapter("bn", TinyNet(), lr=0.1)


@torch.no_grad()
def test_statistics_fallback_gives_the_same_result(monkeypatch):
    """Backends without ATen's BatchNorm statistics kernel take the generic path."""
    net, x = TinyNet(), batches(1)[0]
    fast = perception.create_adapter("bn", net, prior_strength=4.0).predict(x)

    def unavailable(*args, **kwargs):
        raise NotImplementedError("no kernel for this backend")

    monkeypatch.setattr(torch, "batch_norm_update_stats", unavailable)
    slow = perception.create_adapter("bn", net, prior_strength=4.0).predict(x)
    torch.testing.assert_close(slow, fast, atol=1e-5, rtol=0)
    torch.testing.assert_close(slow, hand_forward(net, x, prior_stats(4.0)), atol=1e-5, rtol=0)


@settings(max_examples=12, deadline=None)
@given(
    n_prior=st.floats(min_value=0.0, max_value=1e4, allow_nan=False),
    batch=st.integers(min_value=1, max_value=6),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_prior_mixing_formula_holds_for_any_strength_and_batch_size(n_prior, batch, seed):
    net, x = TinyNet(seed=seed % 7), batches(1, seed=seed, size=batch)[0]
    with torch.no_grad():
        got = perception.create_adapter("bn", net, prior_strength=n_prior).predict(x)
        expected = hand_forward(net, x, prior_stats(n_prior))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
