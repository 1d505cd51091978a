"""Digests of frames rendered across towns, times of day, weathers and sizes: pixel exactness.

Usage: ``python benchmarks/render_digest.py [--save FILE | --compare FILE] [--frames N]``.
Renders ``N`` consecutive frames (default 40) of each setting below and prints one SHA-256 per
setting over every frame's image, labels and depth bytes. ``--save`` writes the digests to a JSON
file; ``--compare`` checks them against one written before (exit status 1 on any difference).
A change to the renderer that is meant to be a pure speed-up must leave every digest unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys

from sim.world.config import TIMES_OF_DAY, TOWNS, WorldConfig
from sim.world.world import render_stream

WEATHERS = ("clear", "cloudy", "wet", "rain", "heavy_rain", "fog", "dense_fog")
# extra settings: other sizes, a camera pitch, high traffic, a low sun straight ahead (glare)
EXTRA: dict[str, dict] = {
    "urban-day-clear-64x128": {"height": 64, "width": 128},
    "suburban-dusk-rain-256x512": {
        "height": 256,
        "width": 512,
        "town": "suburban",
        "time_of_day": "dusk",
        "weather": "rain",
    },
    "urban-night-wet-96x320-pitch": {
        "height": 96,
        "width": 320,
        "time_of_day": "night",
        "weather": "wet",
        "camera_pitch_deg": -5.0,
    },
    "urban-day-clear-high-traffic": {"traffic": "high"},
    "highway-glare": {
        "town": "highway",
        "weather": {"cloudiness": 0.0, "sun_altitude_deg": 8.0, "sun_azimuth_deg": 0.0},
    },
    "rural-glare-fov120": {
        "town": "rural",
        "fov_deg": 120.0,
        "weather": {"cloudiness": 20.0, "sun_altitude_deg": 20.0, "sun_azimuth_deg": 10.0},
    },
}


def settings() -> dict[str, dict]:
    out = {
        f"{town}-{tod}-{weather}": {"town": town, "time_of_day": tod, "weather": weather}
        for town, tod, weather in itertools.product(TOWNS, TIMES_OF_DAY, WEATHERS)
    }
    out.update(EXTRA)
    return out


def digest(config: dict, frames: int, seed: int = 0) -> str:
    h = hashlib.sha256()
    for frame in render_stream(WorldConfig(**config), seed, frames):
        for a in (frame.image, frame.semantic, frame.depth):
            h.update(a.tobytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--only", default="", help="only the settings whose name contains this")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--save", help="write the digests to this JSON file")
    g.add_argument("--compare", help="compare with digests saved before")
    args = ap.parse_args()
    chosen = {n: c for n, c in settings().items() if args.only in n}
    found = {name: digest(cfg, args.frames) for name, cfg in chosen.items()}
    for name, d in found.items():
        print(f"{name:<34} {d[:16]}")
    if args.save:
        with open(args.save, "w") as fh:
            json.dump({"frames": args.frames, "digests": found}, fh, indent=1)
    if args.compare:
        with open(args.compare) as fh:
            saved = json.load(fh)
        if saved["frames"] != args.frames:
            sys.exit(f"{args.compare}: saved with --frames {saved['frames']}, not {args.frames}")
        bad = [n for n in found if saved["digests"].get(n) != found[n]]
        print(f"{len(found) - len(bad)}/{len(found)} settings identical")
        if bad:
            print("DIFFERENT: " + ", ".join(bad))
            sys.exit(1)


if __name__ == "__main__":
    main()
