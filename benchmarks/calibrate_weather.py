"""Calibrate the driving weather: relative mIoU per condition and severity on a held-out stream.

    python benchmarks/calibrate_weather.py --model roadseg_s_photo [--frames 64] [--search]

For a model (a registered name or a checkpoint), renders a fixed held-out stream (one clear-day
drive per source town, ``--frames`` frames each, world seeds 700000+ as in
``robustness_bundled.py``: disjoint from training and validation), and prints for ``fog_depth``,
``rain``, ``night`` and ``sun_flare`` the fraction of the stream's clean mIoU kept at
severities 1-5, beside the ACDC target at severity 3 (``docs/calibration.md``).

``--search`` also scans each condition's severity-3 anchor (fog extinction, rain rate, night
illuminance) on a log grid and prints the anchor whose severity-3 fraction meets the target
(log-linear interpolation between grid points): the numbers ``driving_weather`` pins.
Deterministic: every condition is corrupted from a generator seeded by (condition, severity).
"""

from __future__ import annotations

import argparse
import os
import time
import zlib

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch

import perception
import sim
from scenarios._train_data import SOURCE_TIME_OF_DAY, SOURCE_TOWNS, SOURCE_WEATHER
from sim.corruptions import driving_weather as dw

STREAM_SEED = 700_000
#: Fraction of clean mIoU a Cityscapes-trained model keeps on ACDC (docs/calibration.md).
TARGETS = {"fog_depth": 0.84, "rain": 0.72, "night": 0.49}
#: The anchor each search scans: (module constant, table, ratio per level, grid).
ANCHORS = {
    "fog_depth": ("FOG_BETA", 2.0, np.geomspace(0.002, 0.08, 11)),
    "rain": ("RAIN_RATE", 2.0, np.geomspace(5.0, 400.0, 11)),
    "night": ("NIGHT_LUX", 0.25, np.geomspace(0.1, 300.0, 13)),
}


def held_out_stream(frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels, depths = [], [], []
    for i, town in enumerate(SOURCE_TOWNS):
        config = sim.WorldConfig(
            height=128, width=256, town=town, time_of_day=SOURCE_TIME_OF_DAY, weather=SOURCE_WEATHER
        )
        for frame in sim.render_stream(config, STREAM_SEED + i, frames):
            images.append(frame.image)
            labels.append(frame.semantic)
            depths.append(frame.depth)
    return np.stack(images), np.stack(labels), np.stack(depths)


def miou(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    batches = [(images[s : s + 32], labels[s : s + 32]) for s in range(0, len(images), 32)]
    return float(perception.evaluate(model, batches)["miou"])


def relative(model, stream, clean: float, name: str, severity: float) -> float:
    images, labels, depths = stream
    rng = np.random.default_rng([STREAM_SEED, zlib.crc32(name.encode()), round(severity * 100)])
    out = np.empty_like(images)
    for j in range(len(images)):
        out[j], _, _ = sim.corrupt_frame(images[j], labels[j], depths[j], name, severity, rng,
                                         pattern_seed=STREAM_SEED)  # fmt: skip
    return miou(model, out, labels) / clean


def search(model, stream, clean: float, name: str) -> float:
    """The severity-3 anchor meeting the target, by log-linear interpolation on the grid."""
    attr, ratio, grid = ANCHORS[name]
    saved = getattr(dw, attr)
    fractions = []
    try:
        for anchor in grid:
            setattr(dw, attr, dw.ladder(float(anchor), ratio))
            fractions.append(relative(model, stream, clean, name, 3))
            print(f"  {name} anchor {anchor:.4g}: {fractions[-1]:.3f}", flush=True)
    finally:
        setattr(dw, attr, saved)
    target = TARGETS[name]
    f = np.array(fractions)
    # damage grows along the grid for fog and rain, shrinks for night (more light)
    order = np.argsort(f)
    return float(np.exp(np.interp(target, f[order], np.log(grid)[order])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="roadseg_s_photo", help="a model name or checkpoint")
    ap.add_argument("--frames", type=int, default=64, help="frames per drive")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--search", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = (perception.load_model(args.model) if args.model.endswith((".pt", ".pth"))
             else perception.load_pretrained(args.model))  # fmt: skip
    stream = held_out_stream(args.frames)
    clean = miou(model, stream[0], stream[1])
    print(f"# {args.model}: clean mIoU {clean:.3f} on {len(stream[0])} held-out frames\n")
    if args.search:
        for name in ANCHORS:
            print(f"{name}: severity-3 anchor for {TARGETS[name]:.2f} of clean: "
                  f"{search(model, stream, clean, name):.4g}", flush=True)  # fmt: skip
        print()
    print("| condition | target s3 | s1 | s2 | s3 | s4 | s5 |")
    print("|---|---|---|---|---|---|---|")
    for name in ("fog_depth", "rain", "night", "sun_flare"):
        row = [relative(model, stream, clean, name, s) for s in (1, 2, 3, 4, 5)]
        target = f"{TARGETS[name]:.2f}" if name in TARGETS else "-"
        print(f"| {name} | {target} | " + " | ".join(f"{v:.3f}" for v in row) + " |", flush=True)
    print(f"\n({time.perf_counter() - start:.0f} s, {args.threads} torch thread(s))")


if __name__ == "__main__":
    main()
