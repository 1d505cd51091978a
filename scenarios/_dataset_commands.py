"""``roadshift render-dataset`` and ``roadshift corrupt-dataset``: datasets out.

The work is ``sim.render_dataset`` and ``sim.corrupt_dataset`` (torch-free); this module parses
the command lines, shows a progress bar and reports throughput. Arguments are validated by
``sim`` before anything is written; a bad one is a ``DataError`` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_dataset_parsers", "cmd_corrupt_dataset", "cmd_render_dataset", "detect_layout"]


def add_dataset_parsers(sub: Any) -> None:
    """Add the two commands to the ``roadshift`` sub-parsers.

    Nothing of ``sim`` is imported here: the parser is built before the CLI checks that ``sim``
    is roadshift's own package, and ``sim`` validates every value (listing the valid choices).
    """
    r = sub.add_parser(
        "render-dataset",
        help="export the world as a dataset (Cityscapes layout: images, labels, depth, "
        "per-frame conditions)",
        description="Render drives of the procedural world into a dataset: trainId and colour "
        "labels, depth, a JSON of each frame's conditions. Drives are towns x seeds x (times of "
        "day x weathers); --paired renders the same drives under every condition.",
    )
    r.add_argument("out", help="the dataset folder to create (new or empty)")
    r.add_argument(
        "--layout", default="cityscapes", help="cityscapes or pairs (default: cityscapes)"
    )
    r.add_argument("--frames", type=int, required=True, help="frames per drive")
    r.add_argument(
        "--towns",
        nargs="+",
        default=["urban"],
        metavar="TOWN",
        help="urban, suburban, highway, rural (default: urban)",
    )
    r.add_argument(
        "--time-of-day",
        nargs="+",
        default=["day"],
        metavar="TIME",
        help="day, dusk, night (default: day)",
    )
    r.add_argument(
        "--weather",
        nargs="+",
        default=["clear"],
        metavar="PRESET",
        help="weather presets: clear, cloudy, rain, fog, ... (default: clear)",
    )
    r.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0],
        metavar="SEED",
        help="one drive per town, seed and condition (default: 0)",
    )
    r.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=[128, 256],
        metavar=("H", "W"),
        help="frame size (default: 128 256)",
    )
    r.add_argument(
        "--paired",
        action="store_true",
        help="the same drives (same world seed) under every time of day and weather",
    )
    r.add_argument("--split", default="val", help="the Cityscapes split folder (default: val)")
    r.add_argument("--traffic", default="medium", help="(default: medium)")
    r.add_argument(
        "--depth",
        default="png",
        help="png: 16-bit millimetres, saturating at 65.535 m; npy: float metres "
        "(exact); none (default: png)",
    )
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel processes (default: the number of CPU cores)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")

    c = sub.add_parser(
        "corrupt-dataset",
        help="corrupt a dataset like Cityscapes-C (seeded, parallel, resumable)",
        description="Write IN under every corruption and severity into OUT/<corruption>/"
        "<severity>/, in IN's layout (a video becomes a pairs dataset). Pixel-moving "
        "corruptions move labels and depth. Run the same command again to resume.",
    )
    c.add_argument(
        "input",
        metavar="IN",
        help="a dataset folder, a video file, or a YAML file holding a data spec "
        "(root, layout, split, label_map, ...)",
    )
    c.add_argument("out", metavar="OUT", help="the output folder (new, empty, or to resume)")
    c.add_argument(
        "--corruptions",
        nargs="+",
        required=True,
        metavar="NAME",
        help="corruptions or groups (roadshift list corruptions)",
    )
    c.add_argument(
        "--severities",
        nargs="+",
        type=float,
        default=[1, 2, 3, 4, 5],
        metavar="S",
        help="severities in (0, 5] (default: 1 2 3 4 5)",
    )
    c.add_argument(
        "--layout",
        default=None,
        help="IN's layout: cityscapes, acdc, pairs or video (default: recognised from its folders)",
    )
    c.add_argument("--split", default=None, help="cityscapes and acdc (default: val)")
    c.add_argument(
        "--conditions",
        nargs="+",
        default=None,
        metavar="CONDITION",
        help="acdc: which conditions (default: all present)",
    )
    c.add_argument(
        "--labels",
        default=None,
        help="label encoding: auto, trainids, labelids, colour, none (default: auto)",
    )
    c.add_argument("--masks", default=None, help="video: a folder with one label PNG per frame")
    c.add_argument("--seed", type=int, default=0, help="(default: 0)")
    c.add_argument(
        "--size",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="resize frames first (default: native size)",
    )
    c.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel processes (default: the number of CPU cores)",
    )
    c.add_argument("--quiet", action="store_true", help="no progress bar")


class _Progress:
    """A progress bar that appears once the work starts (``sim`` checks everything first, so a
    bad argument prints its one line without a bar)."""

    def __init__(self, quiet: bool, desc: str) -> None:
        self.quiet, self.desc, self.bar = quiet, desc, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                unit="frame",
                disable=self.quiet,
                file=sys.stderr,
                dynamic_ncols=True,
                desc=self.desc,
            )
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_render_dataset(a: argparse.Namespace) -> int:
    import sim

    t0 = time.perf_counter()
    progress = _Progress(a.quiet, "render-dataset")
    try:
        description = sim.render_dataset(
            a.out,
            frames=a.frames,
            layout=a.layout,
            towns=a.towns,
            times_of_day=a.time_of_day,
            weathers=a.weather,
            seeds=a.seeds,
            size=tuple(a.size),
            paired=a.paired,
            split=a.split,
            depth=a.depth,
            traffic=a.traffic,
            workers=a.workers or os.cpu_count() or 1,
            progress=progress,
        )
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    n = description["frames"]
    print(f"{n} frames in {a.out} ({n / seconds:.1f} frames/s)")
    return 0


def detect_layout(root: Path) -> str:
    """The layout of the dataset at ``root``, recognised from its folders (``DataError`` when
    none fits)."""
    import json

    import sim
    from sim.data.render import DATASET_FILE
    from sim.data.spec import LAYOUT_EXPECTS

    if root.is_file():
        return "video"
    if (root / DATASET_FILE).is_file():
        try:
            layout = json.loads((root / DATASET_FILE).read_text(encoding="utf-8")).get("layout")
        except (OSError, ValueError, AttributeError):
            layout = None
        if layout in sim.DATA_LAYOUTS:
            return str(layout)
    for folder, layout in (
        ("leftImg8bit", "cityscapes"),
        ("rgb_anon", "acdc"),
        ("images", "pairs"),
    ):
        if (root / folder).is_dir():
            return layout
    if not root.exists():
        raise sim.DataError(f"IN {root}: no such file or folder")
    expected = "; ".join(f"{k}: {v}" for k, v in LAYOUT_EXPECTS.items())
    raise sim.DataError(f"IN {root}: no known layout (give --layout); expected one of {expected}")


def _input_spec(a: argparse.Namespace) -> Any:
    import sim

    given = {
        k: v
        for k, v in (
            ("split", a.split),
            ("labels", a.labels),
            ("masks", a.masks),
            ("conditions", a.conditions),
        )
        if v is not None
    }
    path = Path(a.input)
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise sim.DataError(f"IN {path}: not a YAML data spec ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise sim.DataError(f"IN {path}: must hold a mapping with root and layout")
        data = dict(data.get("data", data))  # a scenario's data: block works too
        if a.layout is not None:
            data["layout"] = a.layout
        try:
            return sim.DataSpec.from_any({**data, **given})
        except sim.DataError as exc:
            raise sim.DataError(f"IN {path}: {exc}") from None
    from sim.data.spec import expand_path

    layout = a.layout or detect_layout(expand_path(a.input, "IN"))
    return sim.DataSpec.from_any({"root": a.input, "layout": layout, **given})


def cmd_corrupt_dataset(a: argparse.Namespace) -> int:
    import sim

    spec = _input_spec(a)
    t0 = time.perf_counter()
    progress = _Progress(a.quiet, "corrupt-dataset")
    try:
        manifest = sim.corrupt_dataset(
            spec,
            a.out,
            corruptions=a.corruptions,
            severities=a.severities,
            seed=a.seed,
            size=tuple(a.size) if a.size else None,
            workers=a.workers or os.cpu_count() or 1,
            progress=progress,
        )
    finally:
        progress.close()
    seconds = time.perf_counter() - t0
    n = len(manifest["folders"]) * int(manifest["source"]["frames"])
    written = manifest["written"]
    print(
        f"{n} frames in {len(manifest['folders'])} datasets under {a.out}; {written} written "
        f"by this run ({written / seconds:.1f} frames/s)"
    )
    return 0
