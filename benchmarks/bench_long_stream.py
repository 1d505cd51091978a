"""Peak memory of a long continual stream: does a run's memory stay flat as the stream grows?

Usage: ``python benchmarks/bench_long_stream.py [--frames 1000 10000 100000] [--method tent]
[--height 64 --width 128] [--no-per-frame] [--device cpu]``.

Each length runs in a fresh process (one worker, in-process): protocol ``continual``, one adapter
carried through ``gaussian_noise`` then ``fog`` at severity 3, ``frames / 2`` frames each, batch
16, no clean cells, no samples; per-frame rows on (the scenario default) unless
``--no-per-frame``. It prints each run's peak resident memory (``ru_maxrss``) and wall time, and
each peak over the shortest run's: the aim is 1.2 or less at 10^5 frames against 10^3.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def scenario(frames: int, method: str, height: int, width: int, per_frame: bool) -> dict:
    return {
        "name": "bench-long-stream",
        "methods": [method],
        "protocol": "continual",
        "corruptions": ["gaussian_noise", "fog"],
        "severities": [3],
        "include_clean": False,
        "frames": max(1, frames // 2),
        "batch_size": 16,
        "height": height,
        "width": width,
        "samples": 0,
        "per_frame": per_frame,
    }


def child(a: argparse.Namespace) -> None:
    from scenarios import run_scenario
    from scenarios._validate import validate_scenario

    sc = validate_scenario(scenario(a.child, a.method, a.height, a.width, a.per_frame))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_scenario(sc, Path(tmp) / "run", workers=1, quiet=True, device=a.device)
        assert summary.ok, summary.failed
    wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": a.child, "peak_rss_mb": rss_kb / 1024, "wall_s": wall}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--method", default="tent")
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--no-per-frame", dest="per_frame", action="store_false")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child(a)
        return
    print(
        f"continual stream ({a.method}; gaussian_noise then fog, severity 3), {a.height}x"
        f"{a.width}, batch 16, per-frame rows {'on' if a.per_frame else 'off'}, one worker, "
        f"device {a.device}; each length in a fresh process"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = None
    for n in sorted(a.frames):
        cmd = [sys.executable, __file__, "--child", str(n), "--method", a.method, "--height",
               str(a.height), "--width", str(a.width), "--device", a.device]  # fmt: skip
        if not a.per_frame:
            cmd.append("--no-per-frame")
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        first = first or rec["peak_rss_mb"]
        print(
            f"  frames {n:7d}: peak RSS {rec['peak_rss_mb']:7.1f} MB "
            f"({rec['peak_rss_mb'] / first:.2f}x the shortest), wall {rec['wall_s']:8.1f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
