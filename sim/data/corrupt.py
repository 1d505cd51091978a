"""A dataset corrupted like Cityscapes-C (``roadshift corrupt-dataset``): seeded, parallel and
resumable.

Every (corruption, severity) becomes a dataset of its own in the input's layout under
``OUT/<corruption>/<severity>/`` (a video becomes a ``pairs`` dataset of PNG frames), readable
again with ``data: {root: OUT/<corruption>/<severity>, layout: ...}``. Labels are written as
trainIds (whatever encoding or ``label_map`` the input used) and depth in the input's format;
corruptions that move pixels move labels (255 where undefined) and depth (no depth where
undefined) with the image.

Randomness: frame ``i`` under (corruption, severity) draws from ``numpy SeedSequence([seed,
stable_int(corruption, severity), i])``; camera-fixed defects (dead pixels, lens dirt) use one
pattern per seed; corruptions that need the previous frame (frame drop) see the previous
*output* frame in file order. So the output does not depend on the worker count, the chunk
size or interruptions: a frame's image is written last, a run killed at any moment resumes
where it stopped (``corrupt_dataset`` on the same folder with the same arguments) and ends with
the same bytes as an uninterrupted one. ``manifest.json`` records what was applied.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from sim.common.seeding import stable_int
from sim.data.dataset import FolderDataset
from sim.data.files import read_image, write_json
from sim.data.layouts import Record, acdc_files, cityscapes_files, pairs_files
from sim.data.render import DATASET_FILE, check_out_folder, write_frame
from sim.data.spec import DataError, DataSpec

__all__ = ["MANIFEST", "corrupt_dataset", "output_files", "severity_folder"]

MANIFEST = "manifest.json"
#: Frames per parallel task (the output does not depend on it).
CHUNK = 8
RNG_RULE = "numpy SeedSequence([seed, stable_int(corruption, severity), frame index])"


def severity_folder(severity: float) -> str:
    """The folder name of a severity: ``3``, ``2.5``."""
    return f"{float(severity):g}"


def output_layout(spec: DataSpec) -> str:
    """The layout a corrupted copy is written in: the input's, ``pairs`` for a video."""
    return "pairs" if spec.layout == "video" else spec.layout


def output_files(spec: DataSpec, record: Record) -> dict[str, PurePosixPath]:
    """The files of ``record``'s corrupted copy, relative to its (corruption, severity) folder:
    the input's names, labels under the layout's trainIds name, images always PNG."""
    parts = record.rel.parts
    if spec.layout == "cityscapes":
        _, split, city, name = parts
        return cityscapes_files(split, city, name[: -len("_leftImg8bit.png")])
    if spec.layout == "acdc":
        condition, split, name = parts[1], parts[2], parts[-1]
        sequence = "/".join(parts[3:-1])
        return acdc_files(condition, split, sequence, name[: -len("_rgb_anon.png")])
    stem = record.rel.name if spec.layout == "video" else PurePosixPath(parts[-1]).stem
    files = pairs_files(stem)
    return {**files, "trainids": files["label"]}


@dataclass(frozen=True)
class _Task:
    corruption: str
    severity: float
    start: int
    stop: int


_WORKER: dict[str, Any] = {}


def _init_worker(
    spec: DataSpec, size: tuple[int, int] | None, records: list[Record], out: str, seed: int
) -> None:
    import cv2

    cv2.setNumThreads(1)  # parallelism comes from the tasks
    dataset = FolderDataset(spec, *(size or (None, None)), records=records)
    _WORKER.update(dataset=dataset, out=Path(out), seed=seed)


def _run_task(task: _Task) -> tuple[int, int]:
    """Corrupt frames [start, stop) of one (corruption, severity); returns the frames it
    covered and how many of them it wrote (the others were written before)."""
    from sim.corruptions.catalogue import corrupt_frame, corruption_info

    dataset: FolderDataset = _WORKER["dataset"]
    folder = _WORKER["out"] / task.corruption / severity_folder(task.severity)
    seed = _WORKER["seed"]
    spec = dataset.spec
    info = corruption_info(task.corruption)
    key = stable_int(task.corruption, float(task.severity))
    previous: np.ndarray | None = None
    written = 0
    if info.needs_previous and task.start > 0:
        previous = read_image(folder / output_files(spec, dataset.records[task.start - 1])["image"])
    for i in range(task.start, task.stop):
        files = output_files(spec, dataset.records[i])
        if (folder / files["image"]).is_file():  # finished before an interruption
            if info.needs_previous:
                previous = read_image(folder / files["image"])
            continue
        sample = dataset.read(i)
        rng = np.random.default_rng(np.random.SeedSequence([seed, key, i]))
        prev = previous if previous is not None and previous.shape == sample.image.shape else None
        image, semantic, depth = corrupt_frame(
            sample.image,
            sample.semantic,
            sample.depth,
            task.corruption,
            task.severity,
            rng,
            previous=prev,
            pattern_seed=stable_int("pattern", seed),
        )
        depth_format, copies = "none", {}
        if sample.record.depth is not None:
            depth_format = "npy" if sample.record.depth.suffix == ".npy" else "png"
        if not info.moves_pixels:  # ground truth unchanged: copy its files rather than encode
            if sample.label_file_is_train_ids:
                copies["trainids"], semantic = sample.record.label, None
            if sample.record.depth is not None and not sample.resized:
                depth_key = "depth_npy" if depth_format == "npy" else "depth"
                copies[depth_key], depth = sample.record.depth, None
        write_frame(
            folder, files, image, semantic, depth, depth_format, colour=False, copies=copies
        )
        previous = image
        written += 1
    return task.stop - task.start, written


def _plan(
    dataset: FolderDataset, corruptions: list[str], severities: list[float], chunk: int
) -> list[_Task]:
    from sim.corruptions.catalogue import corruption_info

    n = len(dataset)
    tasks = []
    for c, s in itertools.product(corruptions, severities):
        # a corruption that sees the previous output frame runs its frames in order; a video
        # is decoded forward from its start, so one task per video avoids decoding it again
        sequential = corruption_info(c).needs_previous or dataset.spec.layout == "video"
        step = n if sequential else chunk
        tasks += [_Task(c, s, a, min(a + step, n)) for a in range(0, n, step)]
    return tasks


def _validate(
    src: DataSpec,
    corruptions: Sequence[str],
    severities: Sequence[float],
    seed: int,
    workers: int,
) -> tuple[list[str], list[float]]:
    from sim.corruptions.catalogue import check_severity, expand_corruptions

    if not corruptions:
        raise DataError("--corruptions: give at least one corruption or group")
    try:
        names = expand_corruptions(corruptions)
    except ValueError as exc:
        raise DataError(f"--corruptions: {exc}") from None
    if not severities:
        raise DataError("--severities: give at least one severity in (0, 5]")
    sevs: list[float] = []
    for s in severities:
        try:
            v = check_severity(s)
        except (TypeError, ValueError):
            v = 0.0
        if v <= 0:
            raise DataError(f"--severities: {s!r} is not a severity; valid: numbers in (0, 5]")
        sevs.append(v)
    if len({severity_folder(s) for s in sevs}) != len(sevs):
        raise DataError(f"--severities: {list(severities)} names a severity twice")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise DataError(f"--seed: must be an integer in [0, 2**32), got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DataError(f"--workers: must be a positive integer, got {workers!r}")
    return names, sevs


def corrupt_dataset(
    src: DataSpec | Mapping[str, Any],
    out: str | Path,
    *,
    corruptions: Sequence[str],
    severities: Sequence[float] = (1, 2, 3, 4, 5),
    seed: int = 0,
    size: tuple[int, int] | None = None,
    workers: int = 1,
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write ``src`` under every corruption (names or groups) and severity into ``out``.

    ``size`` resizes frames first (default: native). ``out`` must be new, empty, or a folder
    this function started with the same arguments (then it resumes). ``progress(done,
    total)`` is called once everything is checked (``done`` 0) and as frames finish.
    Everything (arguments, every label file, depth for depth-aware corruptions) is checked
    before anything is written (``DataError``). Returns the manifest, plus ``written``: the
    frames this call wrote.
    """
    from sim.corruptions.catalogue import corruption_info

    spec = DataSpec.from_any(src)
    names, sevs = _validate(spec, corruptions, severities, seed, workers)
    height, width = size if size is not None else (None, None)
    dataset = FolderDataset(spec, height, width)
    if not dataset.has_depth:
        for c in names:
            if corruption_info(c).needs_depth:
                raise DataError(
                    f"--corruptions: {c} needs depth, and {dataset.root} has none for "
                    f"{sum(r.depth is None for r in dataset.records)} frames (layout "
                    f"{spec.layout}: {spec.expects})"
                )
    out = Path(out)
    manifest = {
        "made_by": "roadshift corrupt-dataset",
        "source": {**spec.to_dict(), "frames": len(dataset), "labelled": dataset.labelled},
        "layout": output_layout(spec),
        "size": list(size) if size is not None else "native",
        "seed": seed,
        "rng": RNG_RULE,
        "pattern_seed": stable_int("pattern", seed),
        "corruptions": [
            {
                "name": c,
                "family": corruption_info(c).family,
                "moves_pixels": bool(corruption_info(c).moves_pixels),
                "needs_depth": bool(corruption_info(c).needs_depth),
                "needs_previous": bool(corruption_info(c).needs_previous),
            }
            for c in names
        ],
        "severities": sevs,
        "labels": "trainids" if dataset.labelled else None,
        "folders": [f"{c}/{severity_folder(s)}" for c, s in itertools.product(names, sevs)],
    }
    resumed = _check_resume(out, manifest)
    dataset.check_labels()  # a bad label value fails here, before anything is written
    if not resumed:
        out.mkdir(exist_ok=True)
        write_json(out / MANIFEST, {**manifest, "complete": False})
    _remove_leftovers(out)

    tasks = _plan(dataset, names, sevs, chunk)
    total = len(names) * len(sevs) * len(dataset)
    init = (spec, size, dataset.records, str(out), seed)
    done = written = 0
    if progress is not None:
        progress(0, total)
    if workers == 1 or len(tasks) == 1:
        _init_worker(*init)
        for task in tasks:
            covered, new = _run_task(task)
            done, written = done + covered, written + new
            if progress is not None:
                progress(done, total)
    else:
        with ProcessPoolExecutor(
            min(workers, len(tasks)), initializer=_init_worker, initargs=init
        ) as pool:
            pending: set[Future[tuple[int, int]]] = {pool.submit(_run_task, t) for t in tasks}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        covered, new = f.result()
                        done, written = done + covered, written + new
                    if progress is not None:
                        progress(done, total)
            finally:
                for f in pending:
                    f.cancel()
    for folder in manifest["folders"]:
        c, s = folder.split("/")
        write_json(
            out / folder / DATASET_FILE,
            {
                "made_by": "roadshift corrupt-dataset",
                "layout": manifest["layout"],
                "corruption": c,
                "severity": float(s),
                "frames": len(dataset),
                "source": manifest["source"],
                "labels": manifest["labels"],
            },
        )
    manifest["complete"] = True
    write_json(out / MANIFEST, manifest)
    return {**manifest, "written": written}


def _check_resume(out: Path, manifest: dict[str, Any]) -> bool:
    """True when ``out`` holds a run of the same arguments; nothing to resume: False; a
    different run or another folder's content: a ``DataError`` naming what differs."""
    path = out / MANIFEST
    if not path.is_file():
        check_out_folder(out)
        return False
    import json

    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(f"OUT {out}: {MANIFEST} is unreadable; give a new folder") from None
    differ = [k for k in manifest if stored.get(k) != manifest[k]]
    if differ:
        raise DataError(
            f"OUT {out}: holds a corrupt-dataset run with other {', '.join(differ)}; give the "
            "same arguments to resume it, or a new folder"
        )
    return True


def _remove_leftovers(out: Path) -> None:
    """Temporary files of a killed run (never read as results)."""
    for path in out.rglob(".*.tmp*"):
        if path.is_file():
            path.unlink(missing_ok=True)
