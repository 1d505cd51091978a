"""Inference speed of every registered model: ms per 128×256 frame at batch 16 on the CPU.

Usage: ``python benchmarks/bench_models.py [--threads 2] [--repeats 10] [--batch 16]``.
Prints parameters, median and best ms/frame, and the ratio to the default model.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import perception


def bench(name: str, batch: int, height: int, width: int, repeats: int) -> tuple[int, float, float]:
    model = perception.create_model(name).eval()
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        for _ in range(2):
            model(x)
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t) / batch * 1000)
    return sum(p.numel() for p in model.parameters()), statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = {
        n: bench(n, args.batch, args.height, args.width, args.repeats)
        for n in perception.model_names()
    }
    base = rows[perception.DEFAULT_MODEL][1]
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
        f"{args.height}x{args.width}"
    )
    print(f"{'model':<14}{'params':>10}{'ms/frame':>10}{'best':>8}{'vs default':>12}")
    for name, (params, med, best) in rows.items():
        print(f"{name:<14}{params:>10,}{med:>10.2f}{best:>8.2f}{med / base:>11.2f}x")


if __name__ == "__main__":
    main()
