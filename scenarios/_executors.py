"""Executors: where work units run. ``local`` (a process pool, or in-process for one worker) and
``ray`` (a local Ray cluster with N CPUs, the cluster in ``RAY_ADDRESS``, or a Ray session the
caller already started).

Both run units and yield each unit's results (qualitative samples included) as it finishes; the
caller (the main process) is the only writer of the run folder. Locally, the rows of each
finished segment of a long carried stream also come back while the unit runs (``on_segment``,
called in the main process), so a running continual stream is queryable segment by segment; on
Ray they come back with the unit. Workers get the model as bytes,
never from a path: the local pool as a task argument, Ray through its object store (one
``ray.put``), so Ray workers need no shared filesystem. Local workers render every clean stream
once into the run folder's cache before the units run; Ray workers render what they need into a
temporary folder of their node, removed from every node when the run ends. Workers fix torch to
one thread each: parallelism comes from the workers, and float results do not depend on how many
there are.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import queue as _queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from scenarios._plan import Unit
from scenarios._streams import ensure_stream, remove_node_cache
from scenarios._work import CellResult, RunContext, init_worker, run_unit

__all__ = ["EXECUTORS", "execute"]

EXECUTORS = ("local", "ray")
Job = tuple[Unit, frozenset[str]]
#: ``on_segment(cell_id, row)``: a segment of a running carried stream has finished.
SegmentSink = Callable[[str, dict[str, Any]], None]
#: The queue a pool worker sends segment rows through (set by the pool's initializer).
_PROGRESS: Any = None


class _Direct:
    """A progress "queue" that hands each item straight to the sink (in-process units)."""

    def __init__(self, sink: SegmentSink) -> None:
        self.sink = sink

    def put(self, item: tuple[str, str, dict[str, Any]]) -> None:
        self.sink(item[1], item[2])


def execute(
    jobs: Sequence[Job], ctx: RunContext, model_state: bytes, executor: str = "local",
    workers: int = 1, on_segment: SegmentSink | None = None,
) -> Iterator[tuple[Unit, list[CellResult]]]:  # fmt: skip
    """Run ``jobs`` (unit, pending cell ids) and yield ``(unit, results)`` as units finish.

    ``model_state`` is the model's serialised state dict (``scenarios._work.model_bytes``).
    ``on_segment`` is called in this process with each finished segment of a carried stream
    while its unit runs (local executor only).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: unknown executor {executor!r}; valid choices: local, ray")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be a positive integer, got {workers!r}")
    if not jobs:
        return iter(())
    if executor == "ray":
        return _ray(jobs, ctx, model_state, workers)
    if workers == 1 or len(jobs) == 1:
        return _inline(jobs, ctx, model_state, on_segment)
    return _pool(jobs, ctx, model_state, workers, on_segment)


def _streams(jobs: Sequence[Job]) -> list:
    seen: dict[str, object] = {}
    for unit, _ in jobs:
        for spec in unit.clean.renderings:
            seen.setdefault(spec.key, spec)
    return list(seen.values())


def _pool_worker_init(threads: int, progress: Any = None) -> None:
    """Pool worker set-up: thread counts, the progress queue, and exit when the run's main
    process is gone (a killed run must not leave workers computing into a folder that is about
    to be resumed)."""
    global _PROGRESS
    init_worker(threads)
    _PROGRESS = progress
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="roadshift-parent-watch", daemon=True).start()


def render_quietly(cache: str, spec: object) -> str | None:
    """Render a stream ahead of its units; a failure is left for the units to record as
    failed cells (they retry and store the error) instead of stopping the whole run."""
    try:
        ensure_stream(cache, spec)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _inline(
    jobs: Sequence[Job], ctx: RunContext, model_state: bytes, on_segment: SegmentSink | None
) -> Iterator[tuple[Unit, list[CellResult]]]:
    init_worker(ctx.torch_threads)
    progress = _Direct(on_segment) if on_segment is not None else None
    for unit, pending in jobs:
        yield unit, run_unit(unit, ctx, pending, model_state, progress)


def _pool_run_unit(
    unit: Unit, ctx: RunContext, pending: frozenset[str], model_state: bytes
) -> list[CellResult]:
    return run_unit(unit, ctx, pending, model_state, _PROGRESS)


def _drain(progress: Any, on_segment: SegmentSink | None) -> None:
    while True:
        try:
            _, cell_id, row = progress.get_nowait()
        except _queue.Empty:
            return
        if on_segment is not None:
            on_segment(cell_id, row)


def _pool(
    jobs: Sequence[Job], ctx: RunContext, model_state: bytes, workers: int,
    on_segment: SegmentSink | None,
) -> Iterator[tuple[Unit, list[CellResult]]]:  # fmt: skip
    # spawn: fresh interpreters, no inherited torch thread pools or locks from the parent
    mp = multiprocessing.get_context("spawn")
    n = min(workers, len(jobs))
    progress = mp.Queue() if on_segment is not None else None
    pool = ProcessPoolExecutor(
        n, mp_context=mp, initializer=_pool_worker_init, initargs=(ctx.torch_threads, progress)
    )
    try:
        if ctx.cache_dir is not None:  # a cache every worker reaches: render each stream once
            streams = _streams(jobs)
            for fut in [pool.submit(render_quietly, ctx.cache_dir, s) for s in streams]:
                fut.result()
        futures = {
            pool.submit(_pool_run_unit, unit, ctx, pending, model_state): unit
            for unit, pending in jobs
        }
        remaining = set(futures)
        while remaining:
            done, remaining = wait(remaining, timeout=0.5, return_when=FIRST_COMPLETED)
            if progress is not None:
                _drain(progress, on_segment)
            for fut in sorted(done, key=lambda f: futures[f].index):
                yield futures[fut], fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if progress is not None:
            progress.close()


def _ray(
    jobs: Sequence[Job], ctx: RunContext, model_state: bytes, workers: int
) -> Iterator[tuple[Unit, list[CellResult]]]:
    try:
        import ray
    except ImportError:
        raise ValueError(
            "executor: 'ray' needs the optional extra: pip install 'roadshift[ray]'"
        ) from None
    started = False
    if not ray.is_initialized():
        # Ray's own authentication settings (RAY_AUTH_MODE, RAY_AUTH_TOKEN) apply unchanged.
        env = {"OMP_NUM_THREADS": "1"}
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        address = os.environ.get("RAY_ADDRESS")
        if address:  # a cluster's nodes have roadshift (and any plug-in) installed themselves
            ray.init(address=address, runtime_env={"env_vars": env}, **kwargs)
        else:  # a local cluster: workers get the driver's import path (plug-ins, test helpers)
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
            ray.init(num_cpus=workers, runtime_env={"env_vars": env}, **kwargs)
        started = True
    # no shared disk: the workers of a node share a temporary cache named after this run
    ctx = dataclasses.replace(ctx, cache_dir=None, run_token=uuid.uuid4().hex[:12])
    try:
        state = ray.put(model_state)  # once, through the object store, not once per task
        work = ray.remote(num_cpus=1)(run_unit)
        refs = {work.remote(unit, ctx, pending, state): unit for unit, pending in jobs}
        remaining = list(refs)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            for ref in done:
                yield refs[ref], ray.get(ref)
    finally:
        _remove_node_caches(ray, ctx.run_token)
        if started:
            ray.shutdown()


def _remove_node_caches(ray: Any, run_token: str) -> None:
    """One small task pinned to each live node removes the run's stream cache there."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remove = ray.remote(num_cpus=0)(remove_node_cache)
    try:
        refs = [
            remove.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(run_token)
            for node in ray.nodes()
            if node.get("Alive")
        ]
        ray.get(refs, timeout=60)
    except Exception:  # a node gone or busy: its temporary folder is the OS's to clear
        pass
