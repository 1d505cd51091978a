"""Every built-in method: the lifecycle contract (caller's model untouched, exact reset,
reset_every, determinism), GroupNorm support, metadata, the feature and source-data hooks."""

from __future__ import annotations

import copy
from typing import ClassVar

import pytest
import torch
from torch import nn

import perception
from tests.perception.test_adapt_nets import same_snapshot, snapshot

torch.set_num_threads(1)

NEW = ["eata", "eta", "sar", "cotta", "rotta", "lame", "dua", "memo", "rdumb"]
ALL = sorted([*NEW, "source", "bn", "tent"])
BN_ONLY = {"bn", "rotta", "dua"}
RANDOM = {"cotta", "rotta", "dua", "memo"}
#: small settings so every method does its full work on a short stream
FAST = {
    "eata": {"fisher_frames": 4},
    "rotta": {"memory_size": 4, "update_every": 4},
    "dua": {"views": 4},
    "memo": {"views": 3},
}


def x_batches(n: int = 3) -> list:
    g = torch.Generator().manual_seed(0)
    return [torch.rand((4, 3, 32, 64), generator=g) for _ in range(n)]


def make(name: str, model: nn.Module, **options) -> perception.Adapter:
    adapter = perception.create_adapter(name, model, **{**FAST.get(name, {}), **options})
    if adapter.needs_source_data:
        adapter.prepare_source(iter(x_batches(2)))
    return adapter


@pytest.fixture(scope="module")
def bn_model() -> nn.Module:
    return perception.create_model("test_bn").eval()


@pytest.mark.parametrize("name", ALL)
def test_every_method_is_listed_with_traits(name):
    info = perception.adapter_info(name)
    assert info.origin == "built-in" and len(info.description) > 10
    assert isinstance(info.traits, perception.MethodTraits)
    assert info.traits.norm in ("BatchNorm", "any normalisation", "none")
    assert info.needs_source_data == (name == "eata") and info.needs_features == (name == "lame")
    assert "reset_every" in info.options and "episodic" in info.options


@pytest.mark.parametrize("name", NEW)
def test_callers_model_is_never_changed(name, bn_model):
    model = copy.deepcopy(bn_model).train()
    before = snapshot(model)
    adapter = make(name, model)
    for x in x_batches(2):
        adapter.predict(x)
    adapter.reset()
    assert same_snapshot(before, snapshot(model))


@pytest.mark.parametrize("name", NEW)
def test_reset_restores_every_copy_bit_for_bit(name, bn_model):
    adapter = make(name, bn_model)
    fresh = [copy.deepcopy(m.state_dict()) for m in (adapter.model, *copies(adapter))]
    for x in x_batches(2):
        out = adapter.predict(x)
        assert out.shape == (4, 19, 32, 64) and torch.isfinite(out).all()
    adapter.reset()
    for m, state in zip((adapter.model, *copies(adapter)), fresh, strict=True):
        assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    if name not in RANDOM:  # the generator is not rewound; everything else is
        again = make(name, bn_model)
        torch.testing.assert_close(adapter.predict(x_batches(1)[0]), again.predict(x_batches(1)[0]))


def copies(adapter) -> list:
    return [getattr(adapter, k) for k in ("teacher", "anchor") if hasattr(adapter, k)]


@pytest.mark.parametrize("name", ALL)
def test_reset_every_works_for_any_method(name, bn_model):
    # (MEMO is episodic by default, i.e. it resets before every frame anyway)
    adapter = make(name, bn_model, reset_every=2, **({"episodic": False} if name == "memo" else {}))
    xs = x_batches(5)
    outs = [adapter.predict(x) for x in xs]
    assert adapter.stats["steps"] == 5 and adapter.stats["resets"] == 2
    if name not in RANDOM:  # after steps 2 and 4 the model is the source again
        fresh = make(name, bn_model, **({"episodic": False} if name == "memo" else {}))
        torch.testing.assert_close(outs[2], fresh.predict(xs[2]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="reset_every"):
        perception.create_adapter(name, bn_model, reset_every=0)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_same_seed_same_bits(name, bn_model):
    def run(seed: int) -> torch.Tensor:
        a = make(name, bn_model, seed=seed)
        return torch.stack([a.predict(x) for x in x_batches(2)])

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


@pytest.mark.parametrize("name", ALL)
def test_groupnorm_model_works_or_fails_in_one_line(name):
    model = perception.create_model("test_gn").eval()
    if name in BN_ONLY:
        with pytest.raises(ValueError, match=rf"^{name}: the model has no BatchNorm layers") as e:
            make(name, model)
        assert "\n" not in str(e.value) and "GroupNorm" in str(e.value)
        return
    adapter = make(name, model)
    for x in x_batches(2):
        out = adapter.predict(x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", perception.model_names())
def test_registered_models_expose_the_feature_hook(name):
    model = perception.create_model(name).eval()
    assert perception.has_feature_hook(model)
    x = torch.rand((2, 3, 64, 128), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = model.features(x)
        assert torch.equal(model(x), model.head(feats))
        assert torch.equal(model(x), model.head(feats, size=(64, 128)))
    odd = torch.rand((1, 3, 63, 129))  # odd sizes need the size argument
    with torch.no_grad():
        assert model.head(model.features(odd), size=(63, 129)).shape[-2:] == (63, 129)


def test_bilinear_head_has_the_hook_too():
    model = perception.create_model("test_bn", head="bilinear", fine=False).eval()
    x = torch.rand((1, 3, 64, 128))
    with torch.no_grad():
        assert model.features(x).shape[-2:] == (16, 32)
        torch.testing.assert_close(model(x), model.head(model.features(x)), rtol=0, atol=0)


class SourceCounter(perception.Adapter):
    """A plug-in that needs source data: remembers how many source frames it saw."""

    uses_optimizer = False
    needs_source_data = True
    options: ClassVar[dict] = {"frames_wanted": 5}

    def prepare_source(self, batches):
        seen = 0
        for x in batches:
            seen += int(x.shape[0])
            if seen >= self.frames_wanted:
                break
        self.seen = seen
        with torch.no_grad():  # a warm start: this becomes the state reset() restores
            for p in self.model.parameters():
                p.add_(1.0)


def test_source_data_hook_for_plugins(bn_model):
    adapter = SourceCounter(bn_model)
    with pytest.raises(RuntimeError, match="SourceCounter needs source-domain images"):
        adapter.predict(x_batches(1)[0])
    pulled = []

    def lazy():
        for x in x_batches(5):
            pulled.append(x)
            yield x

    adapter.prepare_source(lazy())
    assert adapter.seen == 8 and len(pulled) == 2  # takes what it needs, no more
    warm = copy.deepcopy(adapter.model.state_dict())
    adapter.predict(x_batches(1)[0])
    adapter.reset()
    assert all(torch.equal(v, warm[k]) for k, v in adapter.model.state_dict().items())


def test_image_accounting_counts_views_and_backward_images(bn_model):
    tent = perception.create_adapter("tent", bn_model)
    tent.predict(x_batches(1)[0])
    s = tent.stats
    assert (s["image_forwards"], s["image_backwards"], s["steps"]) == (4, 4, 1)
    cotta = perception.create_adapter("cotta", bn_model, confidence=0.0)
    cotta.predict(x_batches(1)[0])
    assert cotta.stats["image_forwards"] == 12 and cotta.stats["image_backwards"] == 4


def test_list_methods_shows_traits(capsys):
    from scenarios.cli import main

    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    for name in NEW:
        assert f"\n{name} " in f"\n{out}"
    assert "needs source data" in out and "needs features" in out and "BatchNorm" in out
