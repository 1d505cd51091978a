"""Adaptation-method speed: ms/frame and passes per frame of every method, relative to ``source``;
and our TENT step against a bare hand-written TENT loop.

Usage: python benchmarks/bench_adapters.py [--repeats 5] [--batch 16] [--threads 1]
       [--methods tent cotta ...] [--device cpu|cuda]

Runs every registered method on the default model (bundled weights) at 128x256 on real frames:
a rendered urban drive under Gaussian noise (severity 3), so entropy filters and confidence
thresholds behave as in a run. Each method adapts over ``repeats`` + 1 batches (the first is a
warm-up); the methods take turns batch by batch (so a change in machine load hits them all)
and the median batch time is reported per frame, at batch 16 for every method and at batch 1
for those meant for it (SAR, CoTTA's segmentation port, MEMO, DUA). Passes are images through
the network per frame (an augmented view counts as one image, whatever its size), measured by
the adapter's accounting. EATA's one-off Fisher estimate (64 source frames) is timed
separately. DUA is timed while it adapts (it does so on a stream's first 80 frames only, and
costs what ``source`` does afterwards). The TENT overhead ratio times
``create_adapter("tent")`` against a minimal TENT loop on the same batches, interleaved (ABBA),
median; the target is <= 1.05.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

import perception

TARGET_RATIO = 1.05
#: methods also timed at batch 1 (built for single frames, or published at batch size 1)
BATCH_ONE = ("source", "tent", "sar", "cotta", "memo", "dua")


def frames(n: int, height: int, width: int) -> list[np.ndarray]:
    """``n`` frames of an urban drive (seed 7, a test seed) under Gaussian noise, severity 3."""
    import sim

    config = sim.WorldConfig(height=height, width=width, town="urban")
    rng = np.random.default_rng(0)
    return [
        sim.corrupt(f.image, "gaussian_noise", severity=3, seed=int(rng.integers(2**31)))
        for f in sim.render_stream(config, 7, n)
    ]


def to_batches(images: list[np.ndarray], batch: int, device: torch.device) -> list[torch.Tensor]:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return [x[i : i + batch].to(device) for i in range(0, len(x) - batch + 1, batch)]


def source_batches(height: int, width: int, batch: int):
    from scenarios._source_data import SourceFrames

    return SourceFrames(height, width, batch).batches()


class BareTent:
    """The shortest correct TENT loop, as one would write it by hand."""

    def __init__(self, model: nn.Module) -> None:
        self.net = copy.deepcopy(model).eval().requires_grad_(False)
        params = []
        for m in self.net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
                m.track_running_stats = False
                m.running_mean = m.running_var = None
            if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)):
                m.requires_grad_(True)
                params += [p for p in (m.weight, m.bias) if p is not None]
        self.opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        loss = -(out.softmax(1) * out.log_softmax(1)).sum(1).mean()
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return out.detach()


def timed(fn, x: torch.Tensor) -> float:
    if x.is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(x)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def bench_methods(
    names: list[str], model: nn.Module, xs: list[torch.Tensor], prepare_s: dict
) -> dict[str, tuple[float, float, float]]:
    """Per method: (median ms/frame, forward images/frame, backward images/frame) over
    ``xs[1:]``, the methods taking turns batch by batch."""
    adapters = {}
    for name in names:
        options = {"samples": 10**9} if name == "dua" else {}  # time its adapting phase
        adapter = perception.create_adapter(name, model, **options)
        if adapter.needs_source_data:
            t = time.perf_counter()
            adapter.prepare_source(source_batches(xs[0].shape[-2], xs[0].shape[-1], len(xs[0])))
            prepare_s[name] = time.perf_counter() - t
        adapter.predict(xs[0])  # warm-up
        adapters[name] = (adapter, adapter.stats)
    times: dict[str, list[float]] = {name: [] for name in names}
    for x in xs[1:]:
        for name, (adapter, _) in adapters.items():
            times[name].append(timed(adapter.predict, x) / len(x))
    n = sum(len(x) for x in xs[1:])
    rows = {}
    for name, (adapter, before) in adapters.items():
        s = adapter.stats
        fwd = (s["image_forwards"] - before["image_forwards"]) / n
        bwd = (s["image_backwards"] - before["image_backwards"]) / n
        rows[name] = (1000 * statistics.median(times[name]), fwd, bwd)
    return rows


def tent_overhead(model: nn.Module, xs: list[torch.Tensor], repeats: int) -> list[float]:
    ours, bare = perception.create_adapter("tent", model), BareTent(model)
    for x in xs[:2]:  # warm-up
        ours.predict(x)
        bare(x)
    ratios = []
    for r in range(repeats):
        x = xs[r % len(xs)]
        pair = (ours.predict, bare) if r % 2 == 0 else (bare, ours.predict)  # ABBA order
        t = [timed(fn, x) for fn in pair]
        ratios.append(t[0] / t[1] if r % 2 == 0 else t[1] / t[0])
    return ratios


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", nargs="*", default=None, help="default: every registered one")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    model = perception.load_pretrained().to(device)
    methods = a.methods or perception.adapter_names()
    if "source" not in methods:
        methods = ["source", *methods]
    images = frames(a.batch * (a.repeats + 1), a.height, a.width)
    print(
        f"model: {perception.DEFAULT_MODEL} (bundled weights); device {device}, threads {a.threads}"
    )
    print(f"frames {a.height}x{a.width}: urban drive, gaussian_noise severity 3; median of "
          f"{a.repeats} batches after one warm-up\n")  # fmt: skip
    print(f"{'method':<8} {'batch':>5} {'ms/frame':>9} {'x source':>9} {'fwd/frame':>10} "
          f"{'bwd/frame':>10}")  # fmt: skip
    prepare_s: dict[str, float] = {}
    for batch in (a.batch, 1):
        names = methods if batch == a.batch else [m for m in methods if m in BATCH_ONE]
        xs = to_batches(images, batch, device)[: a.repeats + 1]
        rows = bench_methods(names, model, xs, prepare_s)
        base = rows["source"][0]
        for name, (ms, fwd, bwd) in rows.items():
            print(f"{name:<8} {batch:>5} {ms:9.2f} {ms / base:9.2f} {fwd:10.2f} {bwd:10.2f}")
        if batch == 1 == a.batch:
            break
    for name, seconds in prepare_s.items():
        print(f"\n{name}: source data (Fisher information, 64 frames) {seconds:.2f} s once")
    xs = to_batches(images, a.batch, device)
    ratios = tent_overhead(model, xs, max(4 * a.repeats, 20))
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio <= TARGET_RATIO else "TOO SLOW"
    print(
        f"TENT step, ours / bare loop: median ratio {ratio:.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); target <= {TARGET_RATIO}: {verdict}"
    )
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
