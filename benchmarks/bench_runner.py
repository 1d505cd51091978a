"""Runner overhead and memory: how much a batch run costs beyond the model itself.

1. Overhead ratio: a grid of 3 methods (source, bn, tent) x 6 corruptions x 2 severities at
   128x256 runs on one worker; its wall time is divided by the time the model alone needs for the
   same frames (forward for source and bn, forward + entropy backward + optimiser step for tent),
   measured in the same process with the same thread count. Floor 1.6, aim 1.15.
2. Memory: peak resident memory of a run (in a fresh process) as ``frames`` grows; streaming
   keeps it flat.

Usage: ``python benchmarks/bench_runner.py [--frames 32] [--memory-frames 32 256]
[--device cpu|auto|cuda]`` (the run and the model-alone timings both on ``--device``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORRUPTIONS = ["gaussian_noise", "motion_blur", "fog", "contrast", "jpeg_compression", "lens_dirt"]


def grid(frames: int, methods: list[str], corruptions: list[str], model: str | None) -> dict:
    return {
        "name": "bench-runner",
        "methods": methods,
        "corruptions": corruptions,
        "severities": [2, 4],
        "include_clean": False,
        "frames": frames,
        "batch_size": 8,
        "height": 128,
        "width": 256,
        "model": model,
        "samples": 0,
    }


def model_alone_seconds(model, x, method: str, repeats: int = 5) -> float:
    """Median seconds of one batch through the bare model as ``method`` would use it (on the
    device of ``x``; the model is copied there)."""
    import torch

    from perception._device import synchronize

    m = copy.deepcopy(model).to(x.device)
    if method == "source":
        m.eval()
    else:  # bn and tent normalise with the batch statistics
        m.eval()
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.train()
                mod.track_running_stats = False
                mod.running_mean = None
                mod.running_var = None
    params = []
    if method == "tent":
        m.requires_grad_(False)
        for mod in m.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.weight.requires_grad_(True)
                mod.bias.requires_grad_(True)
                params += [mod.weight, mod.bias]
        opt = torch.optim.Adam(params, lr=1e-3)

    def step() -> None:
        if method == "tent":
            logits = m(x)
            loss = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                m(x)

    step()
    times = []
    for _ in range(repeats):
        synchronize(x.device)
        t0 = time.perf_counter()
        step()
        synchronize(x.device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def overhead(frames: int, model_name: str | None, device: str = "cpu") -> None:
    import numpy as np
    import torch

    import sim
    from scenarios import run_scenario
    from scenarios._validate import validate_scenario
    from scenarios._work import init_worker

    init_worker(1)
    methods = ["source", "bn", "tent"]
    sc = validate_scenario(grid(frames, methods, CORRUPTIONS, model_name))
    # Warm-up: pay one-time imports (torch.optim pulls in torch._dynamo, ~2 s) before timing,
    # as the model-alone timings below are warm too.
    import perception

    perception.create_adapter("tent", perception.create_model("test_bn"))
    from scenarios import ResultsStore
    from scenarios._work import build_model

    name = sc.model.name or perception.DEFAULT_MODEL
    config = sim.WorldConfig(height=128, width=256)
    imgs = np.stack([f.image for f in sim.render_stream(config, 0, 8)])
    x = (torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255).to(
        perception.resolve_device(device)
    )
    batches_per_cell = -(-frames // 8)
    shifts = len(CORRUPTIONS) * 2

    def alone(model) -> dict[str, float]:
        return {m: model_alone_seconds(model, x, m) * batches_per_cell * shifts for m in methods}

    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(name)
        if name in perception.pretrained_names():
            model = perception.load_pretrained(name)
        before = alone(model)  # the machine may be shared: measure before and after the run
        t0 = time.perf_counter()
        summary = run_scenario(sc, Path(tmp) / "run", workers=1, quiet=True, device=device)
        wall = time.perf_counter() - t0
        assert summary.ok, summary.failed
        after = alone(model)
        cells = ResultsStore(Path(tmp) / "run").cells()
    in_run = {m: 0.0 for m in methods}
    for c in cells:
        in_run[c["method"]] += c["ms_per_frame"] * c["frames"] / 1000
    sep = {m: (before[m] + after[m]) / 2 for m in methods}
    print(
        f"grid: {len(methods)} methods x {len(CORRUPTIONS)} corruptions x 2 severities = "
        f"{len(cells)} cells, {frames} frames each, 128x256, batch 8, 1 worker, 1 torch thread"
    )
    print(f"model: {name}; corruptions: {', '.join(CORRUPTIONS)}")
    print("model time           measured inside the run   measured alone (before/after)")
    for m in methods:
        print(
            f"  {m:6s}             {in_run[m]:8.2f} s               "
            f"{sep[m]:8.2f} s ({before[m]:.2f}/{after[m]:.2f})"
        )
    tot_in, tot_sep = sum(in_run.values()), sum(sep.values())
    print(f"  total              {tot_in:8.2f} s               {tot_sep:8.2f} s")
    print(f"run wall time:       {wall:8.2f} s")
    print(
        f"overhead ratio:      {wall / tot_in:8.2f} (vs model time inside the run)   "
        f"{wall / tot_sep:.2f} (vs model alone)   floor 1.6, aim 1.15"
    )


def memory_child(frames: int, model_name: str | None) -> None:
    from scenarios import run_scenario
    from scenarios._validate import validate_scenario

    sc = validate_scenario(grid(frames, ["bn", "tent"], ["gaussian_noise", "fog"], model_name))
    with tempfile.TemporaryDirectory() as tmp:
        run_scenario(sc, Path(tmp) / "run", workers=1, quiet=True)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": frames, "peak_rss_mb": rss_kb / 1024}))


def memory(frames_list: list[int], model_name: str | None) -> None:
    print("peak resident memory of a run (bn + tent, 2 corruptions x 2 severities, fresh process):")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for n in frames_list:
        cmd = [sys.executable, __file__, "--memory-child", str(n)]
        if model_name:
            cmd += ["--model", model_name]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  frames {rec['frames']:5d}: {rec['peak_rss_mb']:7.1f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--model", default=None, help="model name (default: the bundled default)")
    p.add_argument("--memory-frames", type=int, nargs="*", default=[32, 256])
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu, auto (CUDA when present), cuda")
    a = p.parse_args()
    if a.memory_child is not None:
        memory_child(a.memory_child, a.model)
        return
    if not a.skip_overhead:
        overhead(a.frames, a.model, a.device)
    if a.memory_frames:
        memory(a.memory_frames, a.model)


if __name__ == "__main__":
    main()
