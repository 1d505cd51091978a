"""Training-step speed of the default model: what ``roadshift train`` spends per step.

Usage: ``python benchmarks/bench_train.py [--threads 2] [--rounds 8] [--batch 16]``.

Times one optimisation step (batch preparation from uint8 128×256 frames: random 96×192 crop
and flip; forward, hard-mined weighted cross-entropy, backward, AdamW), the settings of the bundled
weights, for the configurations below, all rounds interleaved so the ratios compare like with like
on a noisy machine:

- ``shipped``: what ``perception.train`` does (crop and flip the uint8 frames, then convert);
- ``float-first``: convert the whole frames to float32 (and labels to int64) before cropping;
- ``rows-loss``: the cross-entropy on a row view of the channels-last logits (2-D kernels);
- ``fused-adamw``: the fused AdamW kernel instead of the per-tensor loop.

The last two are faster but not bit-identical to the shipped step, so adopting them means
retraining the bundled weights (a retrain with both landed at mIoU 0.796, under the 0.80 floor
that the bundled model must meet; seed-to-seed noise is about ±1.2 points).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import perception
from perception._models_classes import IGNORE_INDEX
from perception._train import (
    _augment,
    _labels_to_tensor,
    _loss,
    _nchw,
    _to_float,
    images_to_tensor,
)


def _rows_loss(logits, y, weight, hard_fraction):
    rows = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])  # a view when channels-last
    per_pixel = F.cross_entropy(
        rows, y.reshape(-1), weight=weight, ignore_index=IGNORE_INDEX, reduction="none"
    )
    valid = per_pixel[y.reshape(-1) != IGNORE_INDEX]
    return valid.topk(max(1, round(hard_fraction * valid.numel())), sorted=False).values.mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4, help="steps per configuration per round")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (args.batch, 128, 256, 3), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 19, (args.batch, 128, 256), generator=g, dtype=torch.uint8)
    weight = torch.rand(19, generator=g) + 0.5
    cfg = perception.TrainConfig()
    aug_gen = torch.Generator().manual_seed(1)

    def prep():
        x, y = _augment(_nchw(frames), _labels_to_tensor(labels, long=False), cfg, aug_gen)
        return _to_float(x), y.long()

    def prep_float_first():
        return _augment(images_to_tensor(frames), _labels_to_tensor(labels), cfg, aug_gen)

    def setup(fused: bool):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = perception.create_model(perception.DEFAULT_MODEL).train()
        params = [{"params": list(model.parameters()), "weight_decay": 1e-4}]
        opt = torch.optim.AdamW(params, lr=1e-3, fused=fused or None)
        return model, opt

    configs = {
        "shipped": (*setup(False), prep, _loss),
        "float-first": (*setup(False), prep_float_first, _loss),
        "rows-loss": (*setup(False), prep, _rows_loss),
        "fused-adamw": (*setup(True), prep, _loss),
    }
    times: dict[str, list[float]] = {name: [] for name in configs}
    for round_ in range(args.rounds + 1):
        for name, (model, opt, prep_fn, loss_fn) in configs.items():
            for _ in range(args.steps):
                t = time.perf_counter()
                x, y = prep_fn()
                loss = loss_fn(model(x), y, weight, 0.5)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if round_:  # round 0 warms up
                    times[name].append((time.perf_counter() - t) * 1000)
    base = statistics.median(times["shipped"])
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
        "96x192 crops of 128x256 frames"
    )
    print(f"{'configuration':<16}{'median ms':>11}{'best ms':>9}{'x shipped':>11}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<16}{med:>11.1f}{min(ts):>9.1f}{med / base:>11.2f}")
    print(f"steps/s (shipped, median): {1000 / base:.1f}")


if __name__ == "__main__":
    main()
