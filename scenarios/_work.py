"""Running one work unit: a (shift, seed) whose frames are corrupted once and fed to every method.

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
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios._cells import Unit, stable_int
from scenarios._fastmetrics import add_counts, batch_counts
from scenarios._streams import StreamReader, ensure_stream, node_cache

__all__ = [
    "CellResult",
    "RunContext",
    "init_worker",
    "load_model",
    "model_bytes",
    "run_unit",
]

_MODEL_CACHE: dict[tuple[str, str], Any] = {}


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


def load_model(name: str, state: bytes) -> Any:
    """The run's model (architecture + shipped state), cached per worker process."""
    import torch

    key = (name, hashlib.sha256(state).hexdigest())
    if key not in _MODEL_CACHE:
        model = build_model(name)
        weights = torch.load(io.BytesIO(state), map_location="cpu", weights_only=True)
        model.load_state_dict(weights)
        _MODEL_CACHE.clear()  # one run's model at a time
        _MODEL_CACHE[key] = model.eval()
    return _MODEL_CACHE[key]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _error(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".strip()


class _MethodRun:
    """One method's cell inside a unit: its adapter and its metric accumulators."""

    def __init__(self, cell: dict[str, Any], name: str, options: dict[str, Any], model: Any):
        import perception

        self.cell = cell
        self.error: str | None = None
        self.seconds = 0.0
        self.frames = 0
        self.total = perception.StreamMetrics()
        self.segment = perception.StreamMetrics()
        self.segment_rows: list[dict[str, Any]] = []
        self.frame_rows: list[dict[str, Any]] = []
        self.last_pred: np.ndarray | None = None
        self.batches = 0
        self.adapter: Any = None
        self.traceback: str | None = None
        try:
            self.adapter = perception.create_adapter(name, model, **options)
        except Exception as exc:  # a plugin's constructor may raise anything
            self.error = _error(exc)
            self.traceback = traceback.format_exc()

    @property
    def alive(self) -> bool:
        return self.error is None


def run_unit(
    unit: Unit, ctx: RunContext, pending: frozenset[str] | None, model_state: bytes
) -> list[CellResult]:
    """Run the unit's pending cells (all when ``pending`` is None) and return their results.

    ``model_state`` is the model's serialised state dict (:func:`model_bytes`).
    """
    import torch

    import sim

    init_worker(ctx.torch_threads)
    cells = [c for c in unit.cells if pending is None or c["cell_id"] in pending]
    if not cells:
        return []
    model = load_model(ctx.model_name, model_state)
    methods = {key: (name, options) for key, name, options in ctx.methods}
    runs = [_MethodRun(c, *methods[c["method"]], model) for c in cells]

    shift = unit.shift
    n = unit.stream.frames
    schedule = sim.make_schedule(shift.schedule) if shift.kind == "schedule" else None
    if schedule is not None:
        segments = [(int(a), int(b), str(lbl)) for a, b, lbl in schedule.segments(n)]
        carry = bool(schedule.continual)
    else:
        segments = [(0, n, shift.label)]
        carry = True
    rng = np.random.default_rng(
        np.random.SeedSequence([unit.seed, stable_int(shift.label, shift.severity)])
    )
    previous: np.ndarray | None = None
    pattern_seed = stable_int("pattern", unit.seed)  # one camera per seed: same dirt pattern
    sample: dict[str, np.ndarray] = {}
    shared_error: str | None = None

    try:
        cache = ctx.cache_dir if ctx.cache_dir is not None else node_cache(ctx.run_token)
        folder = ensure_stream(cache, unit.stream)
        reader = StreamReader(folder)
    except Exception as exc:
        shared_error = f"rendering the clean stream failed: {_error(exc)}"
        reader = None

    try:
        for seg_index, (seg_start, seg_stop, seg_label) in enumerate(segments):
            if shared_error is not None or reader is None:
                break
            if seg_index > 0 and not carry:
                for r in runs:
                    if r.alive:
                        r.adapter.reset()  # reset per shift unless the schedule is continual
            seg_corr: list[str] = []
            seg_sev: list[float] = []
            for start in range(seg_start, seg_stop, ctx.batch_size):
                stop = min(start + ctx.batch_size, seg_stop)
                images, labels, depths = reader.read(start, stop)
                observed = np.empty_like(images)
                targets = np.empty_like(labels)
                states = []
                try:
                    for j in range(stop - start):
                        corr, sev = _state(shift, schedule, start + j, n)
                        states.append((corr, sev))
                        if corr is None or sev <= 0:
                            observed[j], targets[j] = images[j], labels[j]
                        else:
                            # camera-fixed defects (dead pixels, lens dirt) stay put all stream
                            img, sem, _ = sim.corrupt_frame(
                                images[j], labels[j], depths[j], corr, sev, rng,
                                previous=previous, pattern_seed=pattern_seed,
                            )  # fmt: skip
                            observed[j], targets[j] = img, sem
                        previous = observed[j]
                except Exception as exc:
                    shared_error = f"corrupting frame {start + j} failed: {_error(exc)}"
                    break
                seg_corr += [c or "clean" for c, _ in states]
                seg_sev += [s for _, s in states]
                x = torch.from_numpy(observed).permute(0, 3, 1, 2).float().div_(255.0)
                y = torch.from_numpy(targets)  # uint8 trainIds; ground truth stays here
                alive = [r for r in runs if r.alive]
                if not alive:
                    break  # every method failed: nothing left to feed
                for k, r in enumerate(alive):
                    # each method gets its own copy: an adapter may modify its input in place
                    xr = x if k == len(alive) - 1 else x.clone()
                    _feed(r, xr, y, start, states, ctx.per_frame, unit.sample and stop == n)
                if unit.sample and stop == n:
                    sample = {
                        "clean": images[-1],
                        "corrupted": observed[-1],
                        "semantic": targets[-1],
                    }
            if shared_error is not None:
                break
            if schedule is not None:
                for r in runs:
                    if r.alive:
                        _close_segment(
                            r, seg_index, seg_start, seg_stop, seg_label, seg_corr, seg_sev
                        )
    finally:
        if reader is not None:
            reader.close()

    results = []
    for r in runs:
        if shared_error is not None and r.alive:
            r.error = shared_error
        result = _result(r, shift)
        if sample and r.alive and r.last_pred is not None:
            result.sample = _sample(r, sample)
        results.append(result)
    return results


def _state(shift: Any, schedule: Any, i: int, n: int) -> tuple[str | None, float]:
    if schedule is not None:
        st = schedule.state(i, n)
        return st.corruption, float(st.severity)
    if shift.kind == "static":
        return shift.corruption, float(shift.severity)
    return None, 0.0


def _feed(
    r: _MethodRun, x: Any, y: Any, start: int, states: list, per_frame: bool,
    keep_prediction: bool,
) -> None:  # fmt: skip
    import torch

    import perception

    try:
        t0 = time.perf_counter()
        logits = r.adapter.predict(x)
        r.seconds += time.perf_counter() - t0
        logits = logits.detach()
        if logits.dim() != 4 or logits.shape[0] != x.shape[0] or logits.shape[2:] != x.shape[2:]:
            raise ValueError(
                f"logits have shape {tuple(logits.shape)}, expected (N, C, H, W) = "
                f"({x.shape[0]}, C, {x.shape[2]}, {x.shape[3]})"
            )
        counts = batch_counts(logits, y, first_frame=start)  # raises on non-finite logits
    except Exception as exc:
        r.error = _error(exc)
        r.traceback = traceback.format_exc()
        return
    for j, frame_counts in enumerate(counts):
        if per_frame:
            corr, sev = states[j]
            r.frame_rows.append(
                {"frame": start + j, "corruption": corr or "clean", "severity": sev,
                 "miou": _finite(float(perception.miou_from_confusion(frame_counts.confusion))),
                 "entropy": frame_counts.entropy_sum / frame_counts.pixels}
            )  # fmt: skip
        add_counts(r.segment, frame_counts)
        add_counts(r.total, frame_counts)
    r.frames += logits.shape[0]
    r.batches += 1
    if keep_prediction:
        r.last_pred = logits[-1].argmax(0).to(torch.uint8).numpy()


def _close_segment(r: _MethodRun, index: int, start: int, stop: int, label: str,
                   corr: list[str], sev: list[float]) -> None:  # fmt: skip
    s = r.segment.compute()
    names = sorted(set(corr))
    r.segment_rows.append(
        {"segment": index, "start_frame": start, "stop_frame": stop, "label": label,
         "corruption": names[0] if len(names) == 1 else "mixed",
         "severity": float(np.mean(sev)) if sev else 0.0,
         "miou": _finite(s["miou"]), "pixel_acc": _finite(s["pixel_acc"]),
         "entropy": _finite(s["entropy"])}
    )  # fmt: skip
    r.segment.reset()


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _result(r: _MethodRun, shift: Any) -> CellResult:
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
        s = r.total.compute()
        cell.update(
            miou=_finite(s["miou"]),
            pixel_acc=_finite(s["pixel_acc"]),
            ece=_finite(s["ece"]),
            entropy=_finite(s["entropy"]),
            per_class_iou=s["per_class_iou"],
            safety_recall=s["safety_recall"],
            confusion=s["confusion"],
        )
        return CellResult(cell, r.segment_rows, r.frame_rows)
    return CellResult(cell, [], [], r.traceback)


def _sample(r: _MethodRun, sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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
