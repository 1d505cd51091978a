"""Driving a closed-loop cell (planned by ``scenarios._closed``) in a worker: the method's
adapter predicts on the batch of the drives' frames, its label maps steer the cars, and the
drives come back as store rows and a drive record."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

import numpy as np

from scenarios._closed import ORACLE, ClosedUnit, drive_seeds, shift_seed
from scenarios._fastmetrics import add_counts, batch_counts
from scenarios._loop import error_line
from scenarios._source_data import SourceFrames
from scenarios._work import CellResult, RunContext, _make_adapter, _now, init_worker, load_model

__all__ = ["drive_record", "run_closed_unit"]


def run_closed_unit(
    unit: ClosedUnit, ctx: RunContext, pending: frozenset[str] | None, model_state: bytes
) -> list[CellResult]:
    """Drive the unit's cell (if pending) and return its ``CellResult`` (a failed method is a
    failed cell with its error, never an exception)."""
    import torch

    import perception
    import sim

    init_worker(ctx.torch_threads)
    cell = dict(unit.cell)
    if pending is not None and cell["cell_id"] not in pending:
        return []
    spec = unit.spec
    config = sim.WorldConfig(height=unit.height, width=unit.width, **unit.world)
    corruption = None if cell["corruption"] == "clean" else cell["corruption"]
    loop = sim.ClosedLoop(
        config,
        drive_seeds(unit.seed, spec.drives),
        corruption=corruption,
        severity=cell["severity"],
        shift_seed=shift_seed(cell["corruption"], cell["severity"], unit.seed),
        distance_m=spec.distance_m,
        takeover_s=spec.takeover_s,
        stall_s=spec.stall_s,
    )
    adapter = None
    metrics = perception.StreamMetrics()
    seconds, frames, error, trace = 0.0, 0, None, None
    try:
        if cell["method"] != ORACLE:
            methods = {key: (name, options) for key, name, options in ctx.methods}
            name, options = methods[cell["method"]]
            model = load_model(ctx.model_name, model_state)
            # a method that needs source data gets it in batches of the drives' size
            source = SourceFrames(unit.height, unit.width, spec.drives)
            adapter = _make_adapter(name, options, model, source)()
        while not loop.done:
            images = loop.observe()
            truth = loop.ground_truth()
            if adapter is None:
                labels = truth
            else:
                x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
                t0 = time.perf_counter()
                logits = adapter.predict(x).detach()
                seconds += time.perf_counter() - t0
                if logits.dim() != 4 or logits.shape[:1] + logits.shape[2:] != (
                    x.shape[:1] + x.shape[2:]
                ):
                    raise ValueError(
                        f"logits have shape {tuple(logits.shape)}, expected (N, C, H, W) = "
                        f"({x.shape[0]}, C, {x.shape[2]}, {x.shape[3]})"
                    )
                for counts in batch_counts(logits, torch.from_numpy(truth), first_frame=frames):
                    add_counts(metrics, counts)  # raised above on non-finite logits
                labels = logits.argmax(1).to(torch.uint8).numpy()
            frames += len(images)
            loop.act(labels)
    except Exception as exc:  # a plugin method may raise anything: its cell fails, not the run
        error, trace = error_line(exc), traceback.format_exc()
    stats = adapter.stats if adapter is not None else {}
    cell.update(
        status="done" if error is None else "failed",
        error=error,
        frames=frames,
        ms_per_frame=1000.0 * seconds / frames if frames and adapter is not None else None,
        forward_passes=int(stats.get("forward_passes", 0)),
        backward_passes=int(stats.get("backward_passes", 0)),
        batches=loop.step,
        finished_at=_now(),
    )
    if error is not None:
        return [CellResult(cell, [], [], trace)]
    if adapter is not None and frames:
        s = metrics.compute()
        cell.update(
            {k: _finite(s[k]) for k in ("miou", "pixel_acc", "ece", "entropy")},
            per_class_iou=s["per_class_iou"],
            safety_recall=s["safety_recall"],
            confusion=s["confusion"],
        )
    results = loop.results()
    drives = [r.row() for r in results]
    return [CellResult(cell, [], [], drives=drives, record=drive_record(results, cell))]


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def drive_record(results: list[Any], cell: dict[str, Any]) -> dict[str, np.ndarray]:
    """``drives/<cell_id>.npz``: every drive's per-step trace stacked (drive, step), and the
    frames around the cell's earliest failure (the first by step, then by drive)."""
    out: dict[str, np.ndarray] = {
        k: np.stack([r.trace[k] for r in results])
        for k in ("distance", "offset", "speed", "auto", "event")
    }
    out.update(
        method=np.array(cell["method"]),
        corruption=np.array(cell["corruption"]),
        severity=np.array(float(cell["severity"])),
        seed=np.array(int(cell["seed"])),
    )
    failed = [(r.failures[0].step, b) for b, r in enumerate(results) if r.strip is not None]
    if failed:
        _, b = min(failed)
        first, strip = results[b].failures[0], results[b].strip
        out.update({f"strip_{k}": v for k, v in strip.items()})
        out.update(
            strip_drive=np.array(b),
            strip_kind=np.array(first.kind),
            strip_distance=np.array(float(first.distance_m)),
        )
    return out
