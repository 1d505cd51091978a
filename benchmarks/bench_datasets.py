"""Datasets out and in: render-dataset and corrupt-dataset throughput, and reading a folder.

Usage: ``python benchmarks/bench_datasets.py [--frames N] [--workers W]``. Prints, measured side
by side in one run at 128x256:

- ``render_dataset`` frames/s (1 and W workers) beside the world's own frames/s
  (``render_stream`` alone, nothing written): the ratio is what writing the files costs;
- ``corrupt_dataset`` frames/s (1 and W workers) for a cheap, a middling and an expensive
  corruption beside ``corrupt_frame`` alone on the same frames (nothing read or written);
- ``FolderDataset.read`` frames/s on the exported dataset beside the world's frames/s: what
  a folder stream costs compared with rendering.

Absolute rates on a shared machine vary with its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import sim
from sim.common import stable_int

H, W = 128, 256
CORRUPTIONS = ("contrast", "gaussian_noise", "glass_blur")


def world_fps(frames: int) -> float:
    t0 = time.perf_counter()
    for _ in sim.render_stream(sim.WorldConfig(height=H, width=W), 0, frames):
        pass
    return frames / (time.perf_counter() - t0)


def render_fps(root: Path, frames: int, workers: int) -> float:
    shutil.rmtree(root, ignore_errors=True)
    seeds = list(range(max(workers, 2)))  # enough drives to keep the workers busy
    per = max(1, frames // len(seeds))
    t0 = time.perf_counter()
    sim.render_dataset(root, frames=per, seeds=seeds, size=(H, W), workers=workers)
    return per * len(seeds) / (time.perf_counter() - t0)


def corrupt_fps(src: Path, out: Path, corruption: str, workers: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    m = sim.corrupt_dataset({"root": str(src), "layout": "cityscapes"}, out,
                            corruptions=[corruption], severities=[3], workers=workers)  # fmt: skip
    return m["written"] / (time.perf_counter() - t0)


def corrupt_only_fps(src: Path, corruption: str) -> float:
    ds = sim.FolderDataset({"root": str(src), "layout": "cityscapes"})
    samples = [ds.read(i) for i in range(len(ds))]
    key = stable_int(corruption, 3.0)
    t0 = time.perf_counter()
    for i, s in enumerate(samples):
        rng = np.random.default_rng(np.random.SeedSequence([0, key, i]))
        sim.corrupt_frame(s.image, s.semantic, s.depth, corruption, 3, rng)
    return len(samples) / (time.perf_counter() - t0)


def read_fps(src: Path) -> float:
    ds = sim.FolderDataset({"root": str(src), "layout": "cityscapes"})
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds.read(i)
    return len(ds) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=96)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    import cv2

    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        world = world_fps(a.frames)
        r1 = render_fps(base / "r1", a.frames, 1)
        rw = render_fps(base / "rw", a.frames, a.workers)
        print(f"render-dataset at {H}x{W}: world alone {world:.0f} frames/s; export with 1 worker "
              f"{r1:.0f} frames/s ({r1 / world:.2f}x the world alone), with {a.workers} workers "
              f"{rw:.0f} frames/s ({rw / r1:.2f}x one worker)")  # fmt: skip
        src = base / "r1"
        folder = read_fps(src)
        print(f"reading the exported folder: {folder:.0f} frames/s ({folder / world:.2f}x "
              "rendering the same frames)")  # fmt: skip
        for c in CORRUPTIONS:
            alone = corrupt_only_fps(src, c)
            c1 = corrupt_fps(src, base / "c1", c, 1)
            cw = corrupt_fps(src, base / "cw", c, a.workers)
            print(f"corrupt-dataset {c:>15}: corrupt_frame alone {alone:.0f} frames/s; with 1 "
                  f"worker {c1:.0f} frames/s ({c1 / alone:.2f}x), with {a.workers} workers "
                  f"{cw:.0f} frames/s ({cw / c1:.2f}x one worker)")  # fmt: skip


if __name__ == "__main__":
    main()
