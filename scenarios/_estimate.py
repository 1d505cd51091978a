"""``roadshift run --dry-run``: the cells, frames and an estimated wall time, nothing written.

The estimate is arithmetic, not a measurement: each unit costs its frames × Σ over its methods of
(forward passes + 2 × backward passes per frame) × the model's cost per frame, times an overhead
factor for everything around the model (rendering, corrupting, metrics), scaled by pixels from
128×256; units are then scheduled longest-first on the workers.

- The model's cost per frame is the bundled model's measured figure (:data:`MODEL_MS_PER_FRAME`:
  ``benchmarks/bench_models.py``, batch 16 at 128×256, one torch thread, on a loaded 2-core
  machine); other models are assumed to cost as much as the default.
- Passes per frame come from each method's traits (``perception.Adapter.traits``:
  ``forward_per_frame``, ``backward_per_frame``): the first number in each ("3 (9 when
  unsure)" → 3; "65 for the first 80 frames, then 1" → 65 for those frames, then 1); a method
  without traits counts 1 forward pass, plus 1 backward pass if it trains parameters.
- Overhead :data:`OVERHEAD` is ``benchmarks/bench_runner.py``'s grid wall time over the
  model-only time (1.36-1.52 measured). A sliding window multiplies the passes by its width;
  online evaluation adds a second pass of each method (counted in full: the skips are not known
  before the run's calibration); forgetting adds two scorings of its frames per cell.
"""

from __future__ import annotations

import heapq
import re

from scenarios._forgetting import FORGETTING_FRAMES
from scenarios._plan import Unit
from scenarios._schema import Scenario

__all__ = ["MODEL_MS_PER_FRAME", "OVERHEAD", "describe_plan", "estimate_seconds", "passes"]

#: Forward ms per frame at 128×256, batch 16, one thread (loaded 2-core machine; bench_models).
MODEL_MS_PER_FRAME = {"roadseg_s": 4.0, "roadseg_m": 6.0}
DEFAULT_MODEL_MS = 4.0
#: A backward pass costs about two forward passes.
BACKWARD_COST = 2.0
OVERHEAD = 1.45

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WARMUP = re.compile(r"(\d+(?:\.\d+)?)\s+for the first\s+(\d+)\s+frames?,\s*then\s+(\d+(?:\.\d+)?)")


def _per_frame(text: str | None, frames: int, default: float) -> float:
    """Mean passes per frame over ``frames`` frames from a trait's plain words."""
    if not text:
        return default
    warm = _WARMUP.search(text)
    if warm:
        first, n, then = float(warm[1]), int(warm[2]), float(warm[3])
        return (first * min(n, frames) + then * max(frames - n, 0)) / max(frames, 1)
    found = _NUMBER.search(text)
    return float(found[0]) if found else default


def passes(name: str, frames: int) -> tuple[float, float]:
    """Expected (forward, backward) passes per frame of method ``name`` over ``frames`` frames."""
    import perception

    try:
        info = perception.adapter_info(name)
    except (ValueError, KeyError):
        return 1.0, 0.0
    traits = getattr(info, "traits", None)
    trains = "lr" in (info.options or {})  # the optimiser options: the method trains
    fwd = _per_frame(getattr(traits, "forward_per_frame", None), frames, 1.0)
    bwd = _per_frame(getattr(traits, "backward_per_frame", None), frames, 1.0 if trains else 0.0)
    return fwd, bwd


def _unit_seconds(unit: Unit, sc: Scenario, ms: float, names: dict[str, str]) -> float:
    frames = len(unit.stream)
    cost = 0.0
    for cell in unit.cells:
        fwd, bwd = passes(names[cell["method"]], frames)
        per = (fwd + BACKWARD_COST * bwd) * (sc.window or 1)
        if sc.online is not None:
            per *= 2
        cost += frames * per
        if sc.forgetting:
            cost += 2 * FORGETTING_FRAMES
    scale = sc.height * sc.width / (128 * 256)
    return cost * ms * scale * OVERHEAD / 1000.0


def estimate_seconds(units: list[Unit], sc: Scenario, model_name: str, workers: int) -> float:
    """Estimated wall seconds of ``units`` on ``workers`` workers (see the module docstring)."""
    ms = MODEL_MS_PER_FRAME.get(model_name, DEFAULT_MODEL_MS)
    names = {m.key: m.name for m in sc.methods}
    loads = [0.0] * max(1, workers)
    for t in sorted((_unit_seconds(u, sc, ms, names) for u in units), reverse=True):
        heapq.heapreplace(loads, loads[0] + t)
    return max(loads)


def describe_plan(units: list[Unit], sc: Scenario, model_name: str, workers: int) -> list[str]:
    """The lines ``--dry-run`` prints."""
    cells = [c for u in units for c in u.cells]
    lines = [
        f"{sc.name}: protocol {sc.protocol}"
        + (f", {sc.rounds} rounds" if sc.rounds > 1 else "")
        + (f", {sc.orders} orders" if sc.orders > 1 else "")
        + f", sampling {' and '.join(sc.samplings)}, batch {sc.batch_size}"
        + (f", window {sc.window}" if sc.window else "")
        + (", label shift" if sc.label_shift else "")
        + (", online" if sc.online else "")
        + (", forgetting" if sc.forgetting else ""),
        f"{len(cells)} cells in {len(units)} units; frames per segment: {sc.frames}",
        "unit (cells): frames",
    ]
    for u in units:
        lines.append(f"  {u.label} ({len(u.cells)} cells): {len(u.stream)} frames")
    through = sum(len(u.stream) * len(u.cells) for u in units)
    seconds = estimate_seconds(units, sc, model_name, workers)
    basis = "the bundled model's" if model_name in MODEL_MS_PER_FRAME else "the default model's"
    lines += [
        f"frames through adapters: {through}",
        f"estimated time: {_duration(seconds)} with {workers} worker(s) (from {basis} measured "
        "cost per frame and each method's passes per frame; see roadshift run --help)",
        "dry run: nothing was written",
    ]
    return lines


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
