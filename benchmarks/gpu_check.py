"""One-call check of the model path on a device (a GPU when one is lent): speed and balance.

Usage: ``python benchmarks/gpu_check.py [--device auto|cpu|cuda] [--frames 64] [--procs N]``.
Runs on the CPU too (``--device cpu``), so it is tested where no GPU is. It prints, on the
device, at 128x256 and batch 16 with the bundled default model:

1. **model ms/frame**: a forward pass (inference mode), median of ``--repeats`` (20) calls; on
   CUDA also under autocast (float16 and bfloat16), for information: no roadshift method runs in
   mixed precision by default;
2. **TENT step cost**: one ``tent`` adapter step (forward, entropy backward, Adam step) per frame,
   and its ratio to the forward pass;
3. **a small grid's wall time**: methods ``source``, ``bn``, ``tent`` x corruptions
   ``gaussian_noise``, ``fog``, ``contrast`` at severity 3 on ``--frames`` frames each: rendering
   (once), corruption (once per corruption, on the CPU) and every method's predictions and metrics,
   each part timed, plus the grid's wall time over its model time;
4. **render/model balance**: one process rendering a frame over the model's time for a frame, and
   with ``--procs`` processes rendering at once (default: the CPU count, at most 8) -- below 1 the
   model, not the renderer, is the bottleneck.

Timings synchronise the device around each timed region. Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import perception
import sim
from perception._device import describe_device, synchronize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_world import parallel_frame_seconds

HEIGHT, WIDTH, BATCH = 128, 256, 16
METHODS = ("source", "bn", "tent")
CORRUPTIONS = ("gaussian_noise", "fog", "contrast")


def timed(fn, device: torch.device, repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_speed(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, repeats: int
) -> float:
    """ms per frame of a forward pass; on CUDA also under float16 / bfloat16 autocast."""

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    ms = 1000 * timed(forward, device, repeats) / BATCH
    print(f"model forward:            {ms:8.3f} ms/frame  ({describe_device(device)})")
    if device.type == "cuda":
        for dtype in (torch.float16, torch.bfloat16):

            def amp_forward(dtype: torch.dtype = dtype) -> None:
                with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                    model(x)

            amp = 1000 * timed(amp_forward, device, repeats) / BATCH
            print(f"  under autocast {str(dtype).split('.')[-1]:<9} {amp:8.3f} ms/frame")
    return ms


def tent_cost(
    model: torch.nn.Module, x: torch.Tensor, device: torch.device, fwd: float, repeats: int
) -> None:
    adapter = perception.create_adapter("tent", model)
    ms = 1000 * timed(lambda: adapter.predict(x), device, repeats) / BATCH
    print(f"TENT step:                {ms:8.3f} ms/frame  ({ms / fwd:.2f}x the forward pass)")


def small_grid(model: torch.nn.Module, frames: int, device: torch.device) -> float:
    """Wall seconds of the grid; prints the parts. Returns the model seconds per frame."""
    t0 = time.perf_counter()
    config = sim.WorldConfig(height=HEIGHT, width=WIDTH)
    stream = list(sim.render_stream(config, 0, frames))
    images = np.stack([f.image for f in stream])
    labels = torch.from_numpy(np.stack([f.semantic for f in stream]))
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    shifted = {
        c: np.stack([sim.corrupt(im, c, 3, seed=i) for i, im in enumerate(images)])
        for c in CORRUPTIONS
    }
    t_corrupt = time.perf_counter() - t0
    t_model = t_metrics = 0.0
    mious = {}
    for method in METHODS:
        for c in CORRUPTIONS:
            adapter = perception.create_adapter(method, model)
            metrics = perception.StreamMetrics()
            for b in range(0, frames, BATCH):
                x = perception.images_to_tensor(shifted[c][b : b + BATCH]).to(device)
                synchronize(device)
                t1 = time.perf_counter()
                logits = adapter.predict(x)
                synchronize(device)
                t2 = time.perf_counter()
                metrics.update(logits, labels[b : b + BATCH])
                t_metrics += time.perf_counter() - t2
                t_model += t2 - t1
            mious[(method, c)] = metrics.compute()["miou"]
    wall = t_render + t_corrupt + t_model + t_metrics
    cells = len(METHODS) * len(CORRUPTIONS)
    print(
        f"small grid: {len(METHODS)} methods x {len(CORRUPTIONS)} corruptions (severity 3), "
        f"{frames} frames a cell, batch {BATCH}"
    )
    print(
        f"  render {t_render:.2f} s, corrupt {t_corrupt:.2f} s, model {t_model:.2f} s, "
        f"metrics {t_metrics:.2f} s; wall {wall:.2f} s = {wall / t_model:.2f}x the model time"
    )
    print(
        "  mIoU: "
        + ", ".join(f"{m}/{c.split('_')[0]} {v:.3f}" for (m, c), v in sorted(mious.items()))
    )
    return t_model / (cells * frames)


def balance(model_s: float, frames: int, procs: int) -> None:
    warmup = min(100, frames)
    one = parallel_frame_seconds(HEIGHT, WIDTH, frames, 1, warmup)
    print(
        f"render/model balance: 1 render process {1000 * one:.2f} ms/frame, model "
        f"{1000 * model_s:.3f} ms/frame (in the grid): {one / model_s:.2f}"
    )
    if procs > 1:
        par = parallel_frame_seconds(HEIGHT, WIDTH, frames, procs, warmup)
        print(
            f"  with {procs} render processes: {1000 * par:.2f} ms/frame of wall time: "
            f"{par / model_s:.2f}  (below 1: the renderer keeps up with the model)"
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    ap.add_argument("--frames", type=int, default=64, help="frames per grid cell")
    ap.add_argument("--procs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per median")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = perception.resolve_device(a.device)
    print(f"torch {torch.__version__}, {describe_device(device)}, CPUs {os.cpu_count()}")
    if device.type == "cuda":
        print(f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    model = perception.load_pretrained().to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 3, HEIGHT, WIDTH, generator=gen).to(device)
    fwd = model_speed(model, x, device, a.repeats)
    tent_cost(model, x, device, fwd, a.repeats)
    model_s = small_grid(model, a.frames, device)
    balance(model_s, a.frames, a.procs)


if __name__ == "__main__":
    main()
