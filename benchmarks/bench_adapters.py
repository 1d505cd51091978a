"""Adaptation-method speed: ms/frame per method, and our TENT step against a bare TENT loop.

Usage: python benchmarks/bench_adapters.py [--repeats 15] [--batch 16] [--device cpu|cuda]

Runs every method on the default model (bundled weights if present, else the default
architecture freshly initialised, else a local stand-in of similar size) at batch 16,
128x256. The TENT overhead ratio times ``create_adapter("tent")`` against a minimal
hand-written TENT loop on the same model and batches, interleaved (ABBA order), and reports
the median; the target is <= 1.05.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
from torch import nn

import perception

TARGET_RATIO = 1.05


def default_model() -> tuple[nn.Module, str]:
    """The default model; falls back so the benchmark runs before weights exist."""
    try:
        return perception.load_pretrained(), f"{perception.DEFAULT_MODEL} (bundled weights)"
    except Exception:  # no bundled weights yet
        pass
    try:
        return perception.create_model(perception.DEFAULT_MODEL), (
            f"{perception.DEFAULT_MODEL} (random init)"
        )
    except Exception:
        g = torch.Generator().manual_seed(0)
        layers: list[nn.Module] = []
        c = 3
        for w in (32, 64, 64, 32):
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU()]
            c = w
        net = nn.Sequential(*layers, nn.Conv2d(c, 19, 1))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
        return net, "local stand-in (4 conv-BN blocks)"


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)

    model, label = default_model()
    model = model.to(device)
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand((a.batch, 3, a.height, a.width), generator=g).to(device) for _ in range(4)]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {label}, {n_params} parameters; device {device}, threads {a.threads}")
    print(f"batch {a.batch} x 3 x {a.height} x {a.width}, {a.repeats} repeats, median\n")

    methods = {
        "source": {},
        "bn": {},
        "bn prior_strength=16": {"prior_strength": 16},
        "bn momentum=0.1": {"momentum": 0.1},
        "tent": {},
    }
    adapters = {k: perception.create_adapter(k.split()[0], model, **o) for k, o in methods.items()}
    bare = BareTent(model)
    ours = adapters["tent"]
    for x in xs[:2]:  # warm-up (allocator, autograd graph caches)
        for ad in adapters.values():
            ad.predict(x)
        bare(x)

    per_method: dict[str, list[float]] = {k: [] for k in adapters}
    ours_t, bare_t, ratios = [], [], []
    for r in range(a.repeats):
        x = xs[r % len(xs)]
        for k, ad in adapters.items():
            if k != "tent":
                per_method[k].append(timed(ad.predict, x))
        # ABBA interleaving cancels slow drifts in machine load
        pair = (ours.predict, bare) if r % 2 == 0 else (bare, ours.predict)
        t = [timed(fn, x) for fn in pair]
        t_ours, t_bare = (t[0], t[1]) if r % 2 == 0 else (t[1], t[0])
        ours_t.append(t_ours)
        bare_t.append(t_bare)
        ratios.append(t_ours / t_bare)
    per_method["tent"] = ours_t

    print(f"{'method':<22} {'ms/frame':>9} {'ms/batch':>9}")
    for k, ts in per_method.items():
        med = statistics.median(ts)
        print(f"{k:<22} {1000 * med / a.batch:9.2f} {1000 * med:9.1f}")
    print(
        f"{'bare TENT loop':<22} {1000 * statistics.median(bare_t) / a.batch:9.2f} "
        f"{1000 * statistics.median(bare_t):9.1f}"
    )
    ratio = statistics.median(ratios)
    verdict = "ok" if ratio <= TARGET_RATIO else "TOO SLOW"
    print(
        f"\nTENT step, ours / bare loop: median ratio {ratio:.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}); target <= {TARGET_RATIO}: {verdict}"
    )
    print(f"accounting: {ours.stats}")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
