"""Robustness of the bundled models, side by side: clean, ImageNet-C at severity 3, driving weather.

Usage: ``python benchmarks/robustness_bundled.py [--models roadseg_s roadseg_s_photo]
[--threads 1] [--frames 64] [--json results.json]``.

Prints, for each model (no adaptation, the ``source`` method):

- **clean mIoU on the held-out validation set** of ``roadshift train`` (576 frames: 12 clear-day
  drives per source town, every third of 72 frames, world seeds disjoint from training): the figure
  the README quotes and the checkpoints record;
- **mIoU under each of the 15 ImageNet-C corruptions at severity 3** on a fixed held-out stream
  (one clear-day drive in each source town, ``--frames`` consecutive frames each, world seeds
  disjoint from training and validation), their mean (mPC) and mPC / clean on the same stream (rPC);
- **driving weather** (``fog_depth``, ``rain``, ``night``, ``sun_flare``) at severities 1, 3 and 5
  on the same stream, as a fraction of that stream's clean mIoU.

Every condition is corrupted once, from a generator seeded by (drive, corruption, severity), and
the same frames go to every model. mIoU averages the classes present in the ground truth or the
prediction (``perception.StreamMetrics``). Deterministic: the same arguments print the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import zlib

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch

import perception
import sim
from scenarios._train_data import (
    SOURCE_TIME_OF_DAY,
    SOURCE_TOWNS,
    SOURCE_WEATHER,
    VAL_SEED_BASE,
    SourceData,
    render_frames,
)

#: The corruption stream: one drive per source town, seeds disjoint from training and validation.
STREAM_SEED = 700_000
WEATHER = ("fog_depth", "rain", "night", "sun_flare")
WEATHER_SEVERITIES = (1, 3, 5)


def render_stream(frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels and depth of the held-out corruption stream (one drive per source town)."""
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


def corrupt_stream(
    images: np.ndarray, labels: np.ndarray, depths: np.ndarray, name: str, severity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt every frame (ground truth moved with pixel-moving corruptions); one seeded draw."""
    rng = np.random.default_rng([STREAM_SEED, zlib.crc32(name.encode()), severity])
    out_images, out_labels = np.empty_like(images), np.empty_like(labels)
    for j in range(len(images)):
        img, sem, _ = sim.corrupt_frame(
            images[j], labels[j], depths[j], name, severity, rng, pattern_seed=STREAM_SEED
        )
        out_images[j], out_labels[j] = img, sem
    return out_images, out_labels


def miou(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, batch: int = 32) -> dict:
    batches = [(images[s : s + batch], labels[s : s + batch]) for s in range(0, len(images), batch)]
    return perception.evaluate(model, batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["roadseg_s", "roadseg_s_photo"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=64, help="frames per drive of the stream")
    ap.add_argument("--json", default=None, help="also write every number to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    models = {name: perception.load_pretrained(name) for name in args.models}
    results: dict[str, dict] = {name: {} for name in models}

    data = SourceData()
    val_images, val_labels = render_frames(
        data.towns,
        [VAL_SEED_BASE + i for i in range(data.val_streams)],
        frames_per_stream=data.frames_per_stream,
        stride=data.stride,
        height=data.height,
        width=data.width,
    )
    for name, model in models.items():
        m = miou(model, val_images, val_labels)
        results[name]["validation"] = {
            "frames": len(val_images),
            "miou": m["miou"],
            "per_class_iou": dict(zip(perception.CLASS_NAMES, m["per_class_iou"], strict=True)),
        }

    images, labels, depths = render_stream(args.frames)
    conditions = [("clean", 0)] + [(c, 3) for c in sim.corruption_groups()["imagenet-c"]]
    conditions += [(c, s) for c in WEATHER for s in WEATHER_SEVERITIES]
    for corruption, severity in conditions:
        if corruption == "clean":
            x, y = images, labels
        else:
            x, y = corrupt_stream(images, labels, depths, corruption, severity)
        for name, model in models.items():
            results[name][f"{corruption}@{severity}"] = miou(model, x, y)["miou"]

    names = list(models)
    width = max(len(n) for n in names) + 2

    def row(label: str, values: list[float], fmt: str = "{:.3f}") -> None:
        print(f"{label:<22}" + "".join(f"{fmt.format(v):>{width}}" for v in values))

    print(f"{'':<22}" + "".join(f"{n:>{width}}" for n in names))
    row(f"validation ({len(val_images)} fr.)", [results[n]["validation"]["miou"] for n in names])
    row(f"stream clean ({len(images)} fr.)", [results[n]["clean@0"] for n in names])
    print("ImageNet-C, severity 3 (mIoU)")
    for corruption in sim.corruption_groups()["imagenet-c"]:
        row(f"  {corruption}", [results[n][f"{corruption}@3"] for n in names])
    for n in names:
        scores = [results[n][f"{c}@3"] for c in sim.corruption_groups()["imagenet-c"]]
        results[n]["mPC@3"] = float(np.mean(scores))
        results[n]["rPC@3"] = results[n]["mPC@3"] / results[n]["clean@0"]
    row("  mPC", [results[n]["mPC@3"] for n in names])
    row("  rPC = mPC / clean", [results[n]["rPC@3"] for n in names])
    print("Driving weather (fraction of the stream's clean mIoU), severities 1 / 3 / 5")
    for corruption in WEATHER:
        fractions = {
            n: [results[n][f"{corruption}@{s}"] / results[n]["clean@0"] for s in WEATHER_SEVERITIES]
            for n in names
        }
        for n in names:
            results[n][f"{corruption}_fraction"] = fractions[n]
        print(
            f"  {corruption:<20}"
            + "".join(f"{' / '.join(f'{v:.2f}' for v in fractions[n]):>{width + 6}}" for n in names)
        )
    print(f"({time.perf_counter() - start:.0f} s, {args.threads} torch thread(s))")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
