"""A scenario on a folder stream against the same scenario on the world stream.

Usage: ``python benchmarks/bench_folder_scenario.py [--frames N] [--workers W] [--repeats R]``.
Exports one drive with ``render_dataset`` (Cityscapes layout, ``paired`` so its world seed is
the scenario's seed) and runs one scenario on it side by side: ``world: {town: urban}`` and
``data:`` on the export, interleaved ``R`` times. Prints each run's wall time (the runner's
``wall_seconds``: rendering or reading, corrupting, adapting, scoring), the fastest of each and
their ratio, and whether the two stores hold the same numbers (they must: the frames are the
same bits).

Absolute times on a shared machine vary with its load; compare the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import sim
from scenarios import ResultsStore, run_scenario
from scenarios._validate import validate_scenario

H, W = 128, 256


def scenario(frames: int, **source: object) -> dict:
    return {
        "name": "bench-folder",
        "methods": ["source", "bn", "tent"],
        "corruptions": ["gaussian_noise", "contrast", "glass_blur"],
        "severities": [3],
        "frames": frames,
        "batch_size": 8,
        "height": H,
        "width": W,
        "samples": 0,
        **source,
    }


def numbers(out: Path) -> list:
    with ResultsStore(out) as store:
        return [(c["cell_id"], c["miou"], c["entropy"]) for c in store.cells()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=64)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-folder-"))
    try:
        root = tmp / "export"
        sim.render_dataset(root, frames=args.frames, seeds=[0], towns=["urban"], size=(H, W),
                           paired=True)  # fmt: skip
        runs = {
            "world": scenario(args.frames, world={"town": "urban"}),
            "folder": scenario(args.frames, data={"root": str(root), "layout": "cityscapes"}),
        }
        wall: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(args.repeats):  # interleaved, so a change in the machine's load hits both
            for name, data in runs.items():
                out = tmp / f"{name}{r}"
                run_scenario(validate_scenario(data), out, workers=args.workers, quiet=True)
                with ResultsStore(out) as store:
                    wall[name].append(float(store.meta()["wall_seconds"]))
        same = numbers(tmp / "world0") == numbers(tmp / "folder0")
        cells = len(numbers(tmp / "world0"))
        print("wall seconds of each repeat: " + "; ".join(
            f"{k} {', '.join(f'{v:.1f}' for v in vs)}" for k, vs in wall.items()))  # fmt: skip
        best = {k: min(vs) for k, vs in wall.items()}
        print(f"{cells} cells, {args.frames} frames of {H}x{W} each, {args.workers} worker(s)")
        print(f"fastest of {args.repeats} repeats:")
        print(f"world stream  : {best['world']:7.2f} s")
        print(f"folder stream : {best['folder']:7.2f} s  ({best['folder'] / best['world']:.2f}x)")
        print(f"identical results: {'yes' if same else 'NO'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
