"""benchmarks/gpu_check.py runs end to end on the CPU (it is meant for a GPU lent for one call)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_and_prints_every_figure(capsys):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    args = ["--device", "cpu", "--frames", "8", "--repeats", "1", "--procs", "2", "--threads", "1"]
    gpu_check.main(args)
    out = capsys.readouterr().out
    for line in ("model forward:", "TENT step:", "small grid: 3 methods x 3 corruptions",
                 "render/model balance: 1 render process", "with 2 render processes"):  # fmt: skip
        assert line in out, out
    assert "mIoU: bn/contrast" in out and "x the model time" in out
