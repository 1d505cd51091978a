"""Devices: auto / cpu / cuda resolve as documented; naming the CPU changes no bit."""

from __future__ import annotations

import pytest
import torch

import perception
from tests.perception.test_train import _state, _toy_batches

torch.set_num_threads(1)


def test_cpu_and_auto_resolve_and_bad_names_list_the_choices():
    assert perception.resolve_device("cpu") == torch.device("cpu")
    assert perception.resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert perception.resolve_device("auto").type == expected
    assert perception.resolve_device(None).type == expected
    assert set(perception.DEVICE_CHOICES) == {"auto", "cpu", "cuda"}
    for bad in ("tpu", "gpu", "CPU", ""):
        with pytest.raises(ValueError, match="valid choices: auto, cpu, cuda"):
            perception.resolve_device(bad)
    with pytest.raises(ValueError, match="index is a number"):
        perception.resolve_device("cuda:x")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_cuda_without_a_gpu_is_one_line_naming_what_is_available():
    with pytest.raises(ValueError, match=r"no CUDA device .* valid choices here: auto, cpu"):
        perception.resolve_device("cuda")


def test_training_on_a_named_cpu_is_bit_identical_to_the_default():
    data = _toy_batches(3)
    cfg = perception.TrainConfig(steps=3, seed=3, crop=(24, 48), warmup_steps=1)
    a = perception.train("test_bn", data, cfg, progress=False)
    b = perception.train("test_bn", data, cfg, progress=False, device="cpu")
    sa, sb = _state(a.model), _state(b.model)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert b.meta["device"] == "cpu"
