"""Inference speed of every registered model: ms per 128×256 frame at batch 16 on the CPU.

Usage: ``python benchmarks/bench_models.py [--threads 2] [--repeats 10] [--batch 16]``.
Prints parameters, median and best ms/frame, and the ratio to the default model. The default model
is also timed with ``head="bilinear"`` (a 1×1 classifier plus bilinear upsampling instead of the
transposed-convolution head), all rounds interleaved so the ratios compare like with like.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import perception


def bench(
    models: dict[str, torch.nn.Module], batch: int, height: int, width: int, repeats: int
) -> dict[str, tuple[int, float, float]]:
    """Median and best ms/frame of each model, one forward of each per round (interleaved)."""
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():
            model.eval()
            for _ in range(2):
                model(x)
        for _ in range(repeats):
            for name, model in models.items():
                t = time.perf_counter()
                model(x)
                times[name].append((time.perf_counter() - t) / batch * 1000)
    rows = {}
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        rows[name] = (params, statistics.median(times[name]), min(times[name]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = {n: perception.create_model(n) for n in perception.model_names()}
    models[f"{perception.DEFAULT_MODEL}[bilinear]"] = perception.create_model(
        perception.DEFAULT_MODEL, head="bilinear"
    )
    rows = bench(models, args.batch, args.height, args.width, args.repeats)
    base = rows[perception.DEFAULT_MODEL][1]
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
        f"{args.height}x{args.width}"
    )
    print(f"{'model':<20}{'params':>10}{'ms/frame':>10}{'best':>8}{'vs default':>12}")
    for name, (params, med, best) in rows.items():
        print(f"{name:<20}{params:>10,}{med:>10.2f}{best:>8.2f}{med / base:>11.2f}x")


if __name__ == "__main__":
    main()
