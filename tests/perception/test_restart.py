"""``Adapter.restart``: a used adapter becomes a freshly built one, bit for bit, for every method
(the runner reuses one adapter for many cells instead of copying the model for each)."""

from __future__ import annotations

import pytest
import torch

import perception
from tests.perception.test_adapt_nets import batches

torch.set_num_threads(1)


def _methods() -> list[str]:
    model = perception.create_model("test_bn")
    return [
        n
        for n in perception.adapter_names()
        if not perception.create_adapter(n, model).needs_source_data
    ]


@pytest.mark.parametrize("method", _methods())
def test_a_restarted_adapter_equals_a_fresh_one(method):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = perception.create_model("test_bn")
    xs = batches(3, size=4, hw=(32, 64))
    other = batches(4, seed=9, size=4, hw=(32, 64))
    fresh = perception.create_adapter(method, model)
    expected = [fresh.predict(x.clone()) for x in xs]
    used = perception.create_adapter(method, model)
    for x in other:  # move every state away from the source: weights, moments, memories, draws
        used.predict(x.clone())
    used.restart()
    got = [used.predict(x.clone()) for x in xs]
    for a, b in zip(expected, got, strict=True):
        assert torch.equal(a, b), method
    keys = ("forward_passes", "backward_passes", "image_forwards", "steps", "resets", "calls")
    assert {k: used.stats[k] for k in keys} == {k: fresh.stats[k] for k in keys}
