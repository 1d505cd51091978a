"""The procedural world exported as a dataset (``roadshift render-dataset``).

Drives are (town, condition, seed) with condition = (time of day, weather). Each drive is
rendered into one Cityscapes "city" named ``<town>-<time>-<weather>`` (or the ``pairs``
layout), frame files named ``<city>_<seed:06d>_<frame:06d>``: the image, trainIds and colour
labels, depth (16-bit millimetre PNG, or ``.npy`` metres), and a JSON of the frame's
conditions (town, time of day, weather parameters, traffic, camera, world seed, frame, pose).

Without ``paired`` every drive has its own world: its world seed is derived from (seed, town,
time of day, weather), so the conditions never show the same street twice. With ``paired`` the
world seed is the seed itself in every condition: the same drive, frame for frame the same
geometry, labels and depth, under each listed time of day and weather (counterfactual
weather).

A dataset-level ``roadshift_dataset.json`` records how the dataset was made.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from sim.common.seeding import stable_int
from sim.data.files import copy_file, depth_to_png, write_file, write_json
from sim.data.layouts import cityscapes_files, pairs_files
from sim.data.spec import DataError

__all__ = ["DATASET_FILE", "DEPTH_FORMATS", "WRITE_LAYOUTS", "Drive", "render_dataset"]

#: The file at a written dataset's root that says how it was made.
DATASET_FILE = "roadshift_dataset.json"
#: Layouts roadshift writes.
WRITE_LAYOUTS: tuple[str, ...] = ("cityscapes", "pairs")
#: How depth is written: 16-bit millimetre PNG (saturates at 65.535 m), float metres, or not.
DEPTH_FORMATS: tuple[str, ...] = ("png", "npy", "none")


@dataclass(frozen=True)
class Drive:
    """One drive of the export: a world (town, time of day, weather, seed) and where it goes."""

    town: str
    time_of_day: str
    weather: str
    seed: int
    world_seed: int

    @property
    def city(self) -> str:
        # Cityscapes names split on "_": a city name must not contain one
        return f"{self.town}-{self.time_of_day}-{self.weather}".replace("_", "-")


def plan_drives(
    towns: Sequence[str],
    times_of_day: Sequence[str],
    weathers: Sequence[str],
    seeds: Sequence[int],
    paired: bool,
) -> list[Drive]:
    """Every drive, in output order: town, then seed, then condition."""
    drives = []
    for town, seed in itertools.product(towns, seeds):
        for tod, weather in itertools.product(times_of_day, weathers):
            world_seed = seed if paired else stable_int("render-dataset", seed, town, tod, weather)
            drives.append(Drive(town, tod, weather, int(seed), int(world_seed)))
    return drives


def frame_files(layout: str, split: str, drive: Drive, frame: int) -> dict[str, PurePosixPath]:
    """The files of one exported frame in ``layout``."""
    prefix = f"{drive.city}_{drive.seed:06d}_{frame:06d}"
    if layout == "cityscapes":
        return cityscapes_files(split, drive.city, prefix)
    files = pairs_files(prefix)
    return {**files, "trainids": files["label"]}


def write_frame(
    root: Path,
    files: dict[str, PurePosixPath],
    image: np.ndarray,
    semantic: np.ndarray | None,
    depth: np.ndarray | None,
    depth_format: str,
    conditions: dict[str, Any] | None = None,
    colour: bool = True,
    copies: dict[str, Path] | None = None,
) -> None:
    """Write one frame's files; the image goes last, so a frame whose image exists is whole.

    ``copies``: files to copy byte for byte instead of encoding an array (file key -> source),
    for ground truth a corruption left unchanged.
    """
    from sim.render.palette import colorize

    for key, source in (copies or {}).items():
        copy_file(source, root / files[key])

    if semantic is not None:
        write_file(root / files["trainids"], semantic)
        if colour:
            write_file(root / files["colour"], colorize(semantic))
    if depth is not None and depth_format == "png":
        write_file(root / files["depth"], depth_to_png(depth))
    elif depth is not None and depth_format == "npy":
        write_file(root / files["depth_npy"], np.asarray(depth, np.float32))
    if conditions is not None:
        write_json(root / files["conditions"], conditions)
    write_file(root / files["image"], image)


@dataclass(frozen=True)
class _Job:
    out: str
    layout: str
    split: str
    drive: Drive
    frames: int
    height: int
    width: int
    depth: str
    paired: bool
    traffic: str


def _render_drive(job: _Job) -> int:
    import cv2

    from sim.world.config import WorldConfig
    from sim.world.world import render_stream

    cv2.setNumThreads(1)  # parallelism comes from the drives
    d = job.drive
    config = WorldConfig(
        height=job.height,
        width=job.width,
        town=d.town,
        time_of_day=d.time_of_day,
        weather=d.weather,
        traffic=job.traffic,
    )
    root = Path(job.out)
    for frame in render_stream(config, d.world_seed, job.frames):
        conditions = {
            **frame.conditions,
            "weather_preset": d.weather,
            "seed": d.seed,
            "world_seed": d.world_seed,
            "paired": job.paired,
            "frame": frame.index,
            "pose": frame.pose,
        }
        files = frame_files(job.layout, job.split, d, frame.index)
        write_frame(root, files, frame.image, frame.semantic, frame.depth, job.depth, conditions)
    return job.frames


def check_out_folder(out: Path, field: str = "OUT") -> None:
    """``out`` must be absent or an empty folder whose parent exists (nothing is overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "is a file" if not out.is_dir() else "exists and is not empty"
        raise DataError(f"{field} {out}: {what}; give a new folder")
    if not out.parent.is_dir():
        raise DataError(f"{field} {out}: its parent folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise DataError(f"{field} {out}: cannot write in {out.parent} (permission denied)")


def render_dataset(
    out: str | Path,
    *,
    frames: int,
    layout: str = "cityscapes",
    towns: Sequence[str] = ("urban",),
    times_of_day: Sequence[str] = ("day",),
    weathers: Sequence[str] = ("clear",),
    seeds: Sequence[int] = (0,),
    size: tuple[int, int] = (128, 256),
    paired: bool = False,
    split: str = "val",
    depth: str = "png",
    traffic: str = "medium",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Render drives of the world into a dataset at ``out`` (a new or empty folder).

    ``frames`` per drive; drives are towns x seeds x (times of day x weathers), see the
    module docstring for ``paired``. ``workers`` processes render drives in parallel; the
    files do not depend on it. ``progress(done, total)`` is called once everything is
    checked (``done`` 0) and as frames finish.
    Returns the dataset description written to ``roadshift_dataset.json``. Every argument is
    checked before anything is created (``DataError``, one line).
    """
    from sim.world.config import TIMES_OF_DAY, TOWNS, TRAFFIC_LEVELS, WEATHER_PRESETS, WorldConfig

    out = Path(out)
    if layout not in WRITE_LAYOUTS:
        raise DataError(
            f"--layout: cannot write {layout!r}; valid choices: {', '.join(WRITE_LAYOUTS)}"
        )
    if depth not in DEPTH_FORMATS:
        raise DataError(f"--depth: unknown {depth!r}; valid choices: {', '.join(DEPTH_FORMATS)}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise DataError(f"--frames: must be a positive integer, got {frames!r}")
    for flag, values, valid in (
        ("--towns", towns, TOWNS),
        ("--time-of-day", times_of_day, TIMES_OF_DAY),
        ("--weather", weathers, WEATHER_PRESETS),
    ):
        if not values:
            raise DataError(f"{flag}: give at least one of {', '.join(valid)}")
        for v in values:
            if v not in valid:
                raise DataError(f"{flag}: unknown {v!r}; valid choices: {', '.join(valid)}")
        if len(set(values)) != len(values):
            raise DataError(f"{flag}: {' '.join(values)} names a value twice")
    if traffic not in TRAFFIC_LEVELS:
        raise DataError(
            f"--traffic: unknown {traffic!r}; valid choices: {', '.join(TRAFFIC_LEVELS)}"
        )
    if not seeds or any(
        isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**31 for s in seeds
    ):
        raise DataError(f"--seeds: must be integers in [0, 2**31), got {list(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise DataError(f"--seeds: {list(seeds)} names a seed twice")
    if not isinstance(split, str) or not split or "/" in split:
        raise DataError(f"--split: must be a folder name such as val, got {split!r}")
    try:
        WorldConfig(height=size[0], width=size[1])
    except (TypeError, ValueError) as exc:
        raise DataError(f"--size: {exc}") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"--workers: must be a positive integer, got {workers!r}")
    check_out_folder(out)

    drives = plan_drives(towns, times_of_day, weathers, seeds, paired)
    description = {
        "made_by": "roadshift render-dataset",
        "layout": layout,
        "split": split if layout == "cityscapes" else None,
        "frames": frames * len(drives),
        "frames_per_drive": frames,
        "drives": [{**asdict(d), "city": d.city} for d in drives],
        "size": [int(size[0]), int(size[1])],
        "paired": paired,
        "traffic": traffic,
        "labels": "trainids",
        "depth": {
            "png": "16-bit PNG, millimetres, 0 = sky (no depth), saturates at 65.535 m",
            "npy": "float32 .npy, metres, +inf = sky",
            "none": None,
        }[depth],
    }
    out.mkdir(exist_ok=True)
    jobs = [
        _Job(str(out), layout, split, d, frames, int(size[0]), int(size[1]), depth, paired, traffic)
        for d in drives
    ]
    done, total = 0, frames * len(drives)
    if progress is not None:
        progress(0, total)
    if workers == 1 or len(jobs) == 1:
        results: Any = map(_render_drive, jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)))
        results = pool.map(_render_drive, jobs)
    try:
        for n in results:
            done += n
            if progress is not None:
                progress(done, total)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    write_json(out / DATASET_FILE, description)
    return description
