"""Compute-aware (online) evaluation after Alfarra et al. (ICML 2024).

Frames arrive at η times the rate at which the source model processes them. A method whose step
costs r times the source model's forward pass on the same batch is busy for r·η batch intervals,
so after each batch it processes it misses the next ⌈r·η⌉ − 1 batches; each missed batch is
scored with the method's latest available prediction (``fallback: last``: the prediction of the
newest frame it processed, for every frame of the missed batch) or with the un-adapted source
model (``fallback: source``), and the method does not adapt on it. With ``fps: F`` instead of η,
a batch of B frames arrives every B / F seconds, i.e. η = F · t_source / B.

r is measured once per run (:func:`calibrate`: a few batches of the run's own shape, every
method interleaved with the source model, medians) and stored in the run's meta; a resumed run
reuses it, so the skip schedule — and every stored bit — does not depend on machine noise
within a run. A method named ``source`` costs r = 1 by definition.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CALIBRATION",
    "calibrate",
    "effective_eta",
    "processed_batches",
    "skipped_batches",
]

#: Warm-up batches per method, then timed rounds (each method and the source once per round).
CALIBRATION = {"warmup": 2, "batches": 5}


def skipped_batches(cost_ratio: float, eta: float) -> int:
    """Batches missed after each processed one: ⌈r·η⌉ − 1 (never negative)."""
    return max(0, math.ceil(round(cost_ratio * eta, 9)) - 1)


def effective_eta(online: dict[str, Any], source_seconds_per_batch: float,
                  batch_frames: int) -> float:  # fmt: skip
    """η of an ``online`` setting: as given, or from ``fps`` and the source model's speed."""
    if online.get("eta") is not None:
        return float(online["eta"])
    return float(online["fps"]) * source_seconds_per_batch / batch_frames


def processed_batches(n_batches: int, skip: int) -> list[bool]:
    """Which of ``n_batches`` consecutive batches a method processes when it misses ``skip``
    batches after each processed one (batch 0 is always processed)."""
    return [b % (skip + 1) == 0 for b in range(n_batches)]


def calibrate(
    model: Any, methods: Sequence[tuple[str, str, dict[str, Any]]], batch: Any,
    prepare: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Median ms per batch of each method's ``predict`` and of the source model on ``batch``,
    measured interleaved, and each method's cost ratio r to the source model.

    ``methods`` are (label, name, options); ``prepare(adapter)`` readies an adapter that needs
    source data. Returns ``{source_ms_per_batch, ms_per_batch, cost_ratio}``."""
    import torch

    import perception

    adapters: dict[str, Any] = {}
    for label, name, options in methods:
        adapter = perception.create_adapter(name, model, **options)
        if prepare is not None:
            prepare(adapter)
        adapters[label] = adapter
    source = perception.create_adapter("source", model)
    runners = {**adapters, "\0source": source}
    times: dict[str, list[float]] = {k: [] for k in runners}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run
    try:
        for adapter in runners.values():
            for _ in range(CALIBRATION["warmup"]):
                adapter.predict(batch.clone())
        for _ in range(CALIBRATION["batches"]):
            for key, adapter in runners.items():
                x = batch.clone()
                start = time.perf_counter()
                adapter.predict(x)
                times[key].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    source_ms = 1000.0 * statistics.median(times.pop("\0source"))
    ms = {k: 1000.0 * statistics.median(v) for k, v in times.items()}
    names = {label: name for label, name, _ in methods}
    ratio = {k: (1.0 if names[k] == "source" else round(v / source_ms, 4)) for k, v in ms.items()}
    return {
        "source_ms_per_batch": round(source_ms, 4),
        "ms_per_batch": {k: round(v, 4) for k, v in ms.items()},
        "cost_ratio": ratio,
    }
