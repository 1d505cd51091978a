"""Frames per second of the driving world, through ``env.step`` in one process.

Usage: ``python benchmarks/bench_world.py [--steps N] [--device auto|cpu|cuda] [--procs N]
[--threads N]``.
Prints env.step frames/s at 128x256 and 256x512 for a clean urban day drive (the floor is 300
frames/s at 128x256), a few other domains at 128x256, and -- once a model is available -- the
ratio of one frame's production time to one frame of the default model's inference at batch 16
on ``--device`` (the aim: 0.5 at 128x256). With ``--procs N`` (N > 1) it also renders N drives
in N processes at once and prints that wall time per frame over the model's: what a runner
with N rendering processes feeding one model would see.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import gymnasium as gym

import sim  # noqa: F401  (registers the env)


def env_fps(height: int, width: int, steps: int, **kwargs: object) -> tuple[float, float]:
    """(frames per second over the whole run, frames per second of the best 30-step chunk).

    On a machine shared with other jobs the whole-run figure drops with their load; the best
    chunk shows what the renderer does when it has a core to itself.
    """
    env = gym.make(
        "roadshift/DrivingStream-v0",
        height=height,
        width=width,
        max_episode_steps=steps + 200,
        **kwargs,
    )
    env.reset(seed=0)
    action = env.action_space.sample()
    for _ in range(100):  # warm up: lookup tables for road markings are built lazily
        env.step(action)
    chunks = []
    t_start = time.perf_counter()
    for _ in range(max(1, steps // 30)):
        t0 = time.perf_counter()
        for _ in range(30):
            env.step(action)
        chunks.append(time.perf_counter() - t0)
    total = time.perf_counter() - t_start
    env.close()
    return 30 * len(chunks) / total, 30 / min(chunks)


def _render_drive(args: tuple[int, int, int, int, int]) -> tuple[float, float]:
    """(start, end) on the system-wide monotonic clock of one process rendering ``steps``
    frames of drive ``seed``, after building the world and ``warmup`` frames."""
    height, width, steps, seed, warmup = args
    from sim.world.config import WorldConfig
    from sim.world.world import World

    world = World(WorldConfig(height=height, width=width), seed)
    for _ in range(warmup):
        world.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        world.step()
    return t0, time.perf_counter()


def parallel_frame_seconds(
    height: int, width: int, steps: int, procs: int, warmup: int = 100
) -> float:
    """Wall seconds per frame when ``procs`` processes each render ``steps`` frames at once:
    from the first process's start to the last one's end (conservative when starts differ)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(procs) as pool:
        jobs = [(height, width, steps, s, warmup) for s in range(procs)]
        spans = pool.map(_render_drive, jobs)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    return wall / (procs * steps)


def model_inference_seconds(
    height: int, width: int, batch: int = 16, device: str = "cpu"
) -> float | None:
    """Seconds per frame of the bundled default model at batch 16 on ``device`` (median of
    10), or None without torch.

    torch is imported here only: ``sim`` itself stays torch-free.
    """
    try:
        import torch

        import perception
        from perception._device import synchronize
    except ImportError:
        return None
    dev = perception.resolve_device(device)
    model = perception.load_pretrained().to(dev)
    x = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(0)).to(dev)
    times = []
    with torch.inference_mode():
        for i in range(13):
            synchronize(dev)
            t0 = time.perf_counter()
            model(x)
            synchronize(dev)
            if i >= 3:  # warm-up
                times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    ap.add_argument("--procs", type=int, default=1, help="also render in this many processes")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the model "
                    "(default: torch's own choice; 1 compares one core with one core)")  # fmt: skip
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"{'env.step, setting':<34} {'frames/s':>9} {'best chunk':>11}")
    results = {}
    for h, w in ((128, 256), (256, 512)):
        n = args.steps if h == 128 else max(50, args.steps // 3)
        fps, peak = env_fps(h, w, n)
        results[(h, w)] = (fps, peak)
        print(f"{f'urban day clear {h}x{w}':<34} {fps:9.1f} {peak:11.1f}")
    for town, tod, weather in (
        ("suburban", "day", "clear"),
        ("highway", "day", "clear"),
        ("rural", "dusk", "cloudy"),
        ("urban", "night", "rain"),
        ("urban", "day", "fog"),
    ):
        fps, peak = env_fps(
            128, 256, max(50, args.steps // 2), town=town, time_of_day=tod, weather=weather
        )
        print(f"{f'{town} {tod} {weather} 128x256':<34} {fps:9.1f} {peak:11.1f}")
    floor, best = results[(128, 256)]
    print(
        f"floor 300 frames/s at 128x256: {'met' if floor >= 300 else 'NOT met'} "
        f"(whole run {floor:.0f}, best chunk {best:.0f})"
    )
    for (h, w), (fps, _) in results.items():
        inf = model_inference_seconds(h, w, device=args.device)
        if inf is None:
            print(f"{h}x{w}: model inference ratio n/a (no model hooked up)")
            continue
        print(
            f"{h}x{w}: frame production / model inference ({args.device}) = {(1 / fps) / inf:.3f}"
            f"  (model {1000 * inf:.2f} ms/frame, one render process {1000 / fps:.2f} ms/frame)"
        )
        if args.procs > 1:
            par = parallel_frame_seconds(h, w, args.steps if h == 128 else args.steps // 3,
                                         args.procs)  # fmt: skip
            print(
                f"{h}x{w}: with {args.procs} render processes: {1000 * par:.2f} ms/frame of wall "
                f"time, / model inference = {par / inf:.3f}"
            )


if __name__ == "__main__":
    main()
