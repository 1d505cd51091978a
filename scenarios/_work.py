"""Running one work unit: its clean stream, its shifts' frames, the loop, and the cells' results.

``run_unit`` wires the three pieces of a run (docs/architecture.md, "Protocols"): the unit's
stream source (``scenarios._sources``: clean frames in natural order), its adapted stream
(``scenarios._protocols``: which shift's frames, in which order, with which resets) and the
execution loop (``scenarios._loop``: batches → adapters → metrics). Each shift's frames are
corrupted once, in natural order (``scenarios._shiftframes``), and shared by every method.

Runs inside a worker process (local pool or Ray task). Everything random is derived from the
cell's seed and shift, never from the worker, so results do not depend on which worker (or how
many) ran the unit. Ground truth stays here: adapters only ever see the observed images.

A worker never reads or writes the run folder: the model's weights arrive as bytes (a task
argument, or Ray's object store), the clean stream is rendered into the cache the context names
(the run folder's ``cache/`` for local workers, which share the driver's disk; a temporary
folder of the worker's node on Ray), and results and qualitative samples go back to the driver,
the run folder's only writer.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios._forgetting import ForgettingFrames
from scenarios._loop import MethodRun, OnlinePass, SourceOracle, error_line, run_stream
from scenarios._plan import Unit
from scenarios._shiftframes import ShiftFrames
from scenarios._source_data import SourceFrames
from scenarios._sources import FrameReader
from scenarios._streams import node_cache

__all__ = [
    "CellResult",
    "RunContext",
    "init_worker",
    "load_model",
    "model_bytes",
    "run_unit",
]

_MODEL_CACHE: dict[tuple[str, str, str], Any] = {}
#: Built-in adapters a worker keeps between units, idle, by (method, options): building one
#: copies the model (tens of ms a cell), and ``Adapter.restart`` returns a used one to its
#: freshly built state bit for bit (tests/perception/test_restart.py holds every built-in
#: method to it). Plug-in methods and methods that take source data are always built afresh.
_IDLE_ADAPTERS: dict[tuple[str, str], list[Any]] = {}


@dataclass(frozen=True)
class RunContext:
    """What every unit needs besides itself and the model's bytes; small and picklable."""

    model_name: str
    methods: tuple[tuple[str, str, dict[str, Any]], ...]  # (key, name, options)
    batch_size: int
    per_frame: bool
    #: Where clean streams are cached: a folder every worker can reach (the run folder's
    #: ``cache/`` for the local executor), or None for a temporary folder on each worker's node.
    cache_dir: str | None = None
    #: Names this run's node caches (``scenarios._streams.node_cache``) when ``cache_dir`` is None.
    run_token: str = "local"
    torch_threads: int = 1
    #: Where models run: "cpu" (bit-reproducible) or a CUDA device ("cuda", "cuda:N").
    device: str = "cpu"
    #: Sliding window of frames at batch size 1 (``window:``), or None.
    window: int | None = None
    #: Online evaluation: ``{"fallback": "last" | "source", "skip": {method label: batches}}``.
    online: dict[str, Any] | None = None
    #: Forgetting: ``{"frames": n, "batch_size": b}`` of held-out clean source frames, or None.
    forgetting: dict[str, Any] | None = None
    #: A scenario's ``source_data`` (the source frames of methods that need them), or None.
    source_data: dict[str, Any] | None = None


@dataclass
class CellResult:
    cell: dict[str, Any]
    segments: list[dict[str, Any]]
    frames: list[dict[str, Any]]
    traceback: str | None = None  # of a failed cell, for the run log
    sample: dict[str, np.ndarray] | None = None  # qualitative sample, for the driver to store
    #: A closed-loop cell's drives (rows of the store's ``drives`` table) and drive record.
    drives: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, np.ndarray] | None = None


def init_worker(threads: int = 1) -> None:
    """Fix torch's (and OpenCV's) thread count in this process so parallel workers do not
    oversubscribe the cores (and so float results do not depend on the worker count)."""
    import cv2
    import torch

    torch.set_num_threads(max(1, int(threads)))
    cv2.setNumThreads(max(1, int(threads)))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def build_model(name: str) -> Any:
    """The model architecture, initialised from a fixed seed without touching global RNG state."""
    import torch

    import perception

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = perception.create_model(name)
    return model


def model_bytes(model: Any) -> bytes:
    """The model's state dict serialised for shipping to workers (``torch.save`` format)."""
    import torch

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def load_model(name: str, state: bytes, device: str = "cpu") -> Any:
    """The run's model (architecture + shipped state) on ``device``, cached per worker process."""
    import torch

    key = (name, hashlib.sha256(state).hexdigest(), device)
    if key not in _MODEL_CACHE:
        model = build_model(name)
        weights = torch.load(io.BytesIO(state), map_location="cpu", weights_only=True)
        model.load_state_dict(weights)
        _MODEL_CACHE.clear()  # one run's model at a time
        _IDLE_ADAPTERS.clear()  # they hold copies of the previous model
        _MODEL_CACHE[key] = model.to(device).eval()
    return _MODEL_CACHE[key]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class _FrameError(Exception):
    """Making a frame of the stream failed (rendering or corrupting): every cell fails."""


def _make_adapter(
    name: str, options: dict[str, Any], model: Any, source: SourceFrames
) -> Callable[[], Any]:
    def make() -> Any:
        import perception

        idle = _IDLE_ADAPTERS.get(_pool_key(name, options))
        if idle:
            adapter = idle.pop()
            adapter.restart()
            return adapter
        adapter = perception.create_adapter(name, model, **options)
        if adapter.needs_source_data:  # e.g. EATA's Fisher information, once per adapter
            adapter.prepare_source(source.batches())
        return adapter

    return make


def _pool_key(name: str, options: dict[str, Any]) -> tuple[str, str]:
    return name, repr(sorted(options.items()))


def _release(runs: list[MethodRun], methods: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Keep the adapters of the cells that finished cleanly for the worker's next units."""
    for r in runs:
        if not r.alive:  # a method that raised may have left any state behind
            continue
        name, options = methods[r.cell["method"]]
        for adapter in (r.adapter, r.online.adapter if r.online is not None else None):
            if (adapter is not None and type(adapter).__module__.startswith("perception.")
                    and not adapter.needs_source_data):  # fmt: skip
                _IDLE_ADAPTERS.setdefault(_pool_key(name, options), []).append(adapter)


def _keeps(unit: Unit) -> dict[tuple[str, float], bool]:
    """Shifts whose frames the stream shows more than once or out of natural order."""
    asked: dict[tuple[str, float], list[int]] = {}
    for seg, natural in unit.stream.steps:
        shift = unit.stream.segments[seg].shift
        asked.setdefault((shift.label, shift.severity), []).append(natural)
    return {k: v != list(range(len(v))) for k, v in asked.items()}


def run_unit(
    unit: Unit, ctx: RunContext, pending: frozenset[str] | None, model_state: bytes,
    progress: Any = None,
) -> list[CellResult]:  # fmt: skip
    """Run the unit's pending cells (all when ``pending`` is None) and return their results.

    ``model_state`` is the model's serialised state dict (:func:`model_bytes`). ``progress``
    (anything with ``put``) receives ``("segment", cell_id, row)`` as each segment of a carried
    stream finishes, so the driver can store it before the cell ends.
    """
    init_worker(ctx.torch_threads)
    cells = [c for c in unit.cells if pending is None or c["cell_id"] in pending]
    if not cells:
        return []
    model = load_model(ctx.model_name, model_state, ctx.device)
    methods = {key: (name, options) for key, name, options in ctx.methods}
    height, width = unit.clean.renderings[0].height, unit.clean.renderings[0].width
    source = SourceFrames(height, width, ctx.batch_size, data=ctx.source_data)
    runs = [MethodRun(c, _make_adapter(*methods[c["method"]], model, source)) for c in cells]
    oracle = None
    if ctx.online is not None:
        for r in runs:
            skip = ctx.online["skip"][r.cell["method"]]
            if r.alive and skip == 0:  # never misses a batch: its online pass is its offline one
                r.online_mirror = True
            elif r.alive:
                online = r.guard(_make_adapter(*methods[r.cell["method"]], model, source))
                r.online = OnlinePass(online, skip, ctx.online["fallback"])
        if ctx.online["fallback"] == "source":
            oracle = SourceOracle(model)
    forgetting = None
    if ctx.forgetting is not None:
        forgetting = ForgettingFrames(height, width, **ctx.forgetting)
        for r in runs:
            if r.alive:  # a fresh adapter's score: before the stream touches it
                r.extra["clean_before"] = r.guard(lambda a=r.adapter: forgetting.score(a))

    shared_error: str | None = None
    reader = None
    shift_frames: dict[tuple[str, float], ShiftFrames] = {}
    sample: dict[str, np.ndarray] = {}
    cache = ctx.cache_dir if ctx.cache_dir is not None else node_cache(ctx.run_token)
    try:
        reader = FrameReader(unit.clean, cache)
        fixed = reader.class_set()
    except Exception as exc:
        shared_error = f"rendering the clean stream failed: {error_line(exc)}"
    try:
        if reader is not None and shared_error is None:
            keeps = _keeps(unit)
            folder = tempfile.gettempdir() if ctx.cache_dir is None else ctx.cache_dir
            os.makedirs(folder, exist_ok=True)  # a dataset's stream renders nothing into it
            for shift in unit.stream.shifts():
                key = (shift.label, shift.severity)
                shift_frames[key] = ShiftFrames(shift, reader, unit.seed, keep=keeps[key],
                                                folder=folder)  # fmt: skip

            def frames(position: int) -> Any:
                seg, natural = unit.stream.steps[position]
                shift = unit.stream.segments[seg].shift
                try:
                    return shift_frames[(shift.label, shift.severity)].get(natural)
                except Exception as exc:
                    raise _FrameError(
                        f"corrupting frame {position} failed: {error_line(exc)}"
                    ) from None

            def on_segment(r: MethodRun, row: dict[str, Any]) -> None:
                if progress is not None and unit.carried:
                    progress.put(("segment", r.cell["cell_id"], row))

            try:
                sample = run_stream(
                    unit.stream, frames, runs, batch_size=ctx.batch_size, window=ctx.window,
                    per_frame=ctx.per_frame, fixed=fixed, oracle=oracle, on_segment=on_segment,
                    sample=unit.sample,
                )  # fmt: skip
                if sample:
                    natural = unit.stream.steps[int(sample["position"])][1]
                    sample["clean"] = reader.read(natural)[0]
            except _FrameError as exc:
                shared_error = str(exc)
    finally:
        for sf in shift_frames.values():
            sf.close()
        if reader is not None:
            reader.close()

    if forgetting is not None and shared_error is None:
        for r in runs:
            if r.alive:  # the adapter as the stream left it, scored without adapting further
                r.extra["clean_after"] = r.guard(lambda a=r.adapter: forgetting.score(a))
    results = []
    for r in runs:
        if shared_error is not None and r.alive:
            r.error = shared_error
        result = _result(r, None if shared_error is not None else fixed)
        if sample and r.alive and r.last_pred is not None:
            result.sample = _sample(r, sample)
        results.append(result)
    _release(runs, methods)
    return results


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _result(r: MethodRun, fixed: np.ndarray | None) -> CellResult:
    from scenarios._measures import miou_over

    cell = dict(r.cell)
    stats = r.adapter.stats if r.adapter is not None else {}
    cell.update(
        status="done" if r.alive else "failed",
        error=r.error,
        frames=r.frames,
        ms_per_frame=1000.0 * r.seconds / r.frames if r.frames else None,
        forward_passes=int(stats.get("forward_passes", 0)),
        backward_passes=int(stats.get("backward_passes", 0)),
        batches=r.batches,
        finished_at=_now(),
    )
    if r.alive:
        s = r.scores.total.compute()
        cell.update(
            miou=_finite(s["miou"]),
            pixel_acc=_finite(s["pixel_acc"]),
            ece=_finite(s["ece"]),
            entropy=_finite(s["entropy"]),
            per_class_iou=s["per_class_iou"],
            safety_recall=s["safety_recall"],
            confusion=s["confusion"],
            clean_before=r.extra.get("clean_before"),
            clean_after=r.extra.get("clean_after"),
        )
        if fixed is not None:
            cell["miou_fixed"] = miou_over(np.asarray(s["confusion"]), fixed)
        if r.online is not None:
            cell.update(
                online_miou=_finite(r.online.scores.total.compute()["miou"]),
                skipped_frames=r.online.scores.skipped,
            )
        elif r.online_mirror:
            cell.update(online_miou=cell["miou"], skipped_frames=0)
        return CellResult(cell, r.segment_rows, r.frame_rows)
    return CellResult(cell, [], [], r.traceback)


def _sample(r: MethodRun, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays of ``samples/<cell_id>.npz`` for the report's qualitative grid."""
    return {
        "clean": np.asarray(sample["clean"], np.uint8),
        "corrupted": np.asarray(sample["corrupted"], np.uint8),
        "semantic": np.asarray(sample["semantic"], np.uint8),
        "prediction": np.asarray(r.last_pred, np.uint8),
        "method": np.array(r.cell["method"]),
        "corruption": np.array(r.cell["corruption"]),
        "severity": np.array(float(r.cell["severity"])),
        "seed": np.array(int(r.cell["seed"])),
    }
