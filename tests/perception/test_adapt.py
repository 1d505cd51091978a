"""The Adapter lifecycle: private copy, options, reset, episodic, accounting, registry errors."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

import perception
from tests.perception.test_adapt_nets import TinyNet, batches, same_snapshot, snapshot

torch.set_num_threads(1)

METHODS = ["source", "bn", "tent"]


def test_builtin_methods_are_listed_with_descriptions():
    names = perception.adapter_names()
    assert set(METHODS) <= set(names) and names == sorted(names)
    for name in METHODS:
        info = perception.adapter_info(name)
        assert info.origin == "built-in" and info.error is None
        assert str(info) == info.description and len(info.description) > 10
    assert perception.adapter_info("tent").options["lr"] == 1e-3
    assert perception.adapter_info("tent").options["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("method", METHODS)
def test_callers_model_is_never_changed(method):
    model = TinyNet(dropout=0.2)
    model.train()  # whatever mode the caller left it in is theirs
    before = snapshot(model)
    options = {"momentum": 0.5} if method == "bn" else {}
    adapter = perception.create_adapter(method, model, **options)
    for x in batches(3):
        adapter.predict(x)
    adapter.reset()
    assert same_snapshot(before, snapshot(model))
    assert adapter.model is not model


@pytest.mark.parametrize(
    ("method", "options"),
    [("tent", {}), ("tent", {"optimizer": "sgd"}), ("bn", {"momentum": 0.2})],
)
def test_reset_restores_model_and_optimiser_exactly(method, options):
    xs = batches(3)
    adapter = perception.create_adapter(method, TinyNet(), **options)
    first = [adapter.predict(x) for x in xs]
    adapter.reset()
    again = [adapter.predict(x) for x in xs]
    for a, b in zip(first, again, strict=True):  # bit for bit, including the optimiser's moments
        assert torch.equal(a, b)


def test_episodic_starts_every_batch_from_the_source_state():
    model, xs = TinyNet(), batches(3)
    episodic = perception.create_adapter("tent", model, episodic=True)
    online = perception.create_adapter("tent", model)
    for x in xs:
        fresh = perception.create_adapter("tent", model).predict(x)
        assert torch.equal(episodic.predict(x), fresh)
        last_online = online.predict(x)
    assert not torch.allclose(last_online, fresh, atol=1e-5)  # online carries state over


def test_compute_accounting():
    xs = batches(3, size=2)
    tent = perception.create_adapter("tent", TinyNet(), steps=2)
    for x in xs:
        tent.predict(x)
    s = tent.stats
    assert (s["calls"], s["frames"], s["forward_passes"], s["backward_passes"]) == (3, 6, 6, 6)
    assert s["seconds"] > 0
    source = perception.create_adapter("source", TinyNet())
    source.predict(xs[0])
    assert source.stats["forward_passes"] == 1 and source.stats["backward_passes"] == 0
    source.reset()
    assert source.stats["calls"] == 1  # reset restores the model, not the bookkeeping


def test_source_is_the_model_in_eval_mode():
    model = TinyNet(dropout=0.5)
    x = batches(1)[0]
    model.eval()
    with torch.no_grad():
        expected = model(x)
    model.train()
    got = perception.create_adapter("source", model).predict(x)
    assert torch.equal(got, expected)


def test_options_none_are_dropped_and_sgd_is_selectable():
    tent = perception.create_adapter("tent", TinyNet(), lr=None, optimizer="sgd", momentum=0.5)
    assert isinstance(tent.optimizer, torch.optim.SGD)
    group = tent.optimizer.param_groups[0]
    assert group["lr"] == 1e-3 and group["momentum"] == 0.5
    assert tent.lr == 1e-3 and tent.options["optimizer"] == "sgd"
    adam = perception.create_adapter("tent", TinyNet()).optimizer
    assert isinstance(adam, torch.optim.Adam)
    group = adam.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and group["weight_decay"] == 0


def test_unknown_names_and_options_fail_with_one_line():
    msg = r"unknown adaptation method 'tnet' \(did you mean tent\?\).*source"
    with pytest.raises(ValueError, match=msg) as e:
        perception.create_adapter("tnet", TinyNet())
    assert "\n" not in str(e.value)
    msg = r"unknown option\(s\) 'lrate'.*valid options:.*\blr\b"
    with pytest.raises(ValueError, match=msg) as e:
        perception.create_adapter("tent", TinyNet(), lrate=0.1)
    assert "\n" not in str(e.value)
    for bad, match in [
        ({"steps": 0}, "steps"),
        ({"optimizer": "rmsprop"}, "adam, sgd"),
        ({"lr": -1.0}, "'lr'"),
        ({"betas": (0.9,)}, "betas"),
        ({"episodic": "yes"}, "episodic"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            perception.create_adapter("tent", TinyNet(), **bad)
    with pytest.raises(TypeError, match=r"nn.Module"):
        perception.create_adapter("tent", "not a model")
    with pytest.raises(TypeError, match=r"name_or_path"):
        perception.create_adapter(3, TinyNet())


def test_bad_inputs_fail_clearly():
    adapter = perception.create_adapter("source", TinyNet())
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        adapter.predict(batches(1)[0].numpy())
    with pytest.raises(TypeError, match=r"floating-point"):
        adapter.predict(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"non-empty batch"):
        adapter.predict(torch.zeros(0, 3, 8, 8))


class FlipAverage(perception.Adapter):
    """Average the logits of the image and its mirror image; nothing adapts."""

    uses_optimizer = False
    options: ClassVar[dict] = {"weight": 0.5}

    def predict(self, x):
        flipped = self.forward(x.flip(-1)).flip(-1)
        return self.weight * self.forward(x) + (1 - self.weight) * flipped


def test_overriding_predict_keeps_accounting_and_options():
    model, x = TinyNet(), batches(1)[0]
    adapter = perception.create_adapter(FlipAverage, model, weight=0.25)
    out = adapter.predict(x)
    with torch.no_grad():
        model.eval()
        expected = 0.25 * model(x) + 0.75 * model(x.flip(-1)).flip(-1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert not out.requires_grad
    assert adapter.stats["forward_passes"] == 2 and adapter.stats["calls"] == 1
    with pytest.raises(ValueError, match=r"valid options: episodic, reset_every, weight"):
        FlipAverage(model, lr=1)


class SubclassOfPredictor(FlipAverage):
    """Calls super().predict: the accounting must still count one call."""

    def predict(self, x):
        return super().predict(x) * 2


def test_super_predict_is_accounted_once():
    adapter = SubclassOfPredictor(TinyNet())
    adapter.predict(batches(1)[0])
    assert adapter.stats["calls"] == 1 and adapter.stats["forward_passes"] == 2


def test_option_names_may_not_shadow_the_interface():
    with pytest.raises(TypeError, match=r"clash"):

        class Broken(perception.Adapter):
            options: ClassVar[dict] = {"reset": 1}


def test_register_adapter_makes_a_name_available():
    @perception.register_adapter(name="test-flip-registered")
    class Registered(FlipAverage):
        """Registered under an explicit name."""

    try:
        assert "test-flip-registered" in perception.adapter_names()
        adapter = perception.create_adapter("test-flip-registered", TinyNet())
        assert isinstance(adapter, Registered) and Registered.name == "test-flip-registered"
    finally:  # keep the process-wide registry as other tests expect it
        perception._adapt_registry._BUILTIN._items.pop("test-flip-registered", None)
    with pytest.raises(TypeError, match=r"Adapter subclass"):
        perception.register_adapter(nn.Linear)


def test_registered_tiny_models_work_with_the_builtin_methods():
    x = torch.rand((2, 3, 64, 128), generator=torch.Generator().manual_seed(0))
    bn_model, gn_model = perception.create_model("test_bn"), perception.create_model("test_gn")
    for method in METHODS:
        out = perception.create_adapter(method, bn_model).predict(x)
        assert out.shape == (2, perception.NUM_CLASSES, 64, 128) and torch.isfinite(out).all()
    tent = perception.create_adapter("tent", gn_model)
    tent.predict(x)
    assert tent.stats["backward_passes"] == 1
    with pytest.raises(ValueError, match="no BatchNorm layers"):
        perception.create_adapter("bn", gn_model)


@pytest.mark.parametrize(
    "method, options", [("source", {}), ("bn", {}), ("bn", {"momentum": 0.3}), ("tent", {})]
)
def test_infer_predicts_with_the_current_state_and_changes_nothing(method, options):
    """``infer`` scores an adapted model (forgetting) without adapting it further: the state,
    later predictions and the accounting are as if it had never been called."""
    model = TinyNet()
    a = perception.create_adapter(method, model, **options)
    b = perception.create_adapter(method, model, **options)
    xs = batches(4)
    for x in xs[:2]:
        a.predict(x)
        b.predict(x)
    stats = a.stats
    before = snapshot(a.model)
    probe = xs[3] * 0.5
    first = a.infer(probe)
    assert torch.equal(first, a.infer(probe)) and not first.requires_grad
    assert same_snapshot(before, snapshot(a.model)) and a.stats == stats
    assert torch.equal(a.predict(xs[2]), b.predict(xs[2]))  # as if infer never ran
    if method == "tent":  # the adapted parameters, not the source ones
        fresh = perception.create_adapter(method, model, **options)
        assert not torch.equal(first, fresh.infer(probe))
