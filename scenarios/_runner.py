"""The batch runner: a scenario in, a resumable run folder out.

Everything is validated before anything is created (scenario, executor, workers, model, method
options, the output folder). Then the run folder gets the resolved scenario, the model's state
and the run metadata (the contract in ``reports._meta``), and work units run on the chosen
executor while the main process, the folder's only writer, stores each finished cell (and its
qualitative sample) in its own transaction. Starting again on the same folder skips the cells
that finished, so a run killed at any moment ends with exactly the uninterrupted results; a
scenario that only adds cells extends the folder (``scenarios._folder``).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from reports import ResultsStore, RunMeta
from scenarios._closed import closed_loop_meta, meta_methods
from scenarios._executors import EXECUTORS, execute
from scenarios._folder import check_out, make_folder
from scenarios._forgetting import FORGETTING_FRAMES, forgetting_meta
from scenarios._measures import collapse_meta, recovery_meta
from scenarios._online import CALIBRATION, calibrate, effective_eta, skipped_batches
from scenarios._plan import Unit, data_meta, plan_units, protocol_plan, stream_meta
from scenarios._schema import Scenario, ScenarioError, dump_yaml
from scenarios._source_data import SourceFrames, source_data_problem
from scenarios._validate import load_scenario
from scenarios._work import RunContext, build_model, model_bytes

__all__ = ["RunSummary", "prepare_run", "run_scenario"]

MODEL_STATE = "model.pt"
#: torch threads per worker: parallelism comes from the workers.
TORCH_THREADS = 1


@dataclass
class RunSummary:
    """What a run did: its folder, cell counts and the failed cells (id -> error)."""

    run_dir: Path
    total: int
    done: int
    skipped: int
    failed: dict[str, str] = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("roadshift", "torch", "numpy", "opencv-python-headless", "pydantic", "ray"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


@dataclass
class Prepared:
    scenario: Scenario
    model_name: str
    model: Any
    model_meta: dict[str, Any]
    units: list[Unit]


def _resolve_model(sc: Scenario, src: str) -> tuple[str, Any, dict[str, Any]]:
    import torch

    import perception

    name = sc.model.name
    weights: str | None = sc.model.weights
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # only reached for architectures whose weights are loaded next
            if weights is not None:  # no name: the checkpoint's own model
                model = perception.load_model(name, weights)
                name = str(getattr(model, "model_name", name))
            elif name is None or name in perception.pretrained_names():
                name = name or perception.DEFAULT_MODEL
                model = perception.load_pretrained(name)
                weights = "bundled"
            else:
                model = build_model(name).eval()
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        msg = str(exc).strip().splitlines()
        raise ScenarioError(f"{src}: model: {msg[0] if msg else type(exc).__name__}") from None
    ckpt = dict(getattr(model, "checkpoint_meta", {}) or {})
    meta = {
        "name": name,
        "weights": weights,
        "params": int(sum(p.numel() for p in model.parameters())),
        "clean_val_miou": (ckpt.get("val_metrics") or {}).get("miou"),
        "checkpoint": {k: v for k, v in ckpt.items() if isinstance(v, (str, int, float, bool))},
    }
    return name, model.eval(), meta


def _probe_model(sc: Scenario, model: Any, name: str, src: str) -> None:
    """One forward pass on a blank frame of the scenario's size: a model that cannot run on
    these frames (or returns the wrong shape) is bad input, not a grid of failed cells."""
    import torch

    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, sc.height, sc.width))
        shape = tuple(out.shape)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise ScenarioError(
            f"{src}: height/width: model {name!r} cannot run on {sc.height}x{sc.width} frames "
            f"({type(exc).__name__}: {msg[0] if msg else ''})"
        ) from None
    if len(shape) != 4 or shape[2:] != (sc.height, sc.width) or shape[1] != 19:
        raise ScenarioError(
            f"{src}: model: {name!r} returns shape {shape} for a {sc.height}x{sc.width} frame; "
            f"expected (N, 19, {sc.height}, {sc.width})"
        )


def _check_methods(sc: Scenario, model: Any, src: str) -> None:
    import perception

    for i, m in enumerate(sc.methods):
        try:
            adapter = perception.create_adapter(m.name, model, **m.options)
        except Exception as exc:
            msg = str(exc).strip().splitlines()
            raise ScenarioError(
                f"{src}: methods[{i}].options: {msg[0] if msg else type(exc).__name__}"
            ) from None
        problem = source_data_problem(sc) if adapter.needs_source_data else None
        if problem is not None:
            raise ScenarioError(
                f"{src}: methods[{i}].name: {m.name!r} needs source-domain images; {problem}"
            )


def prepare_run(
    scenario: Scenario | str | Path, out: str | Path, *, executor: str = "local",
    workers: int | None = None, device: str = "cpu",
) -> Prepared:  # fmt: skip
    """Validate everything a run needs without creating anything (raises ``ScenarioError``)."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    src = str(scenario) if not isinstance(scenario, Scenario) else f"scenario {sc.name!r}"
    if executor not in EXECUTORS:
        raise ScenarioError(f"executor: unknown executor {executor!r}; valid choices: local, ray")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):  # fmt: skip
        raise ScenarioError(f"workers: must be a positive integer, got {workers!r}")
    _check_device(device, Path(out))
    if executor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ScenarioError(
                "executor: 'ray' needs the optional extra: pip install 'roadshift[ray]'"
            ) from None
    check_out(Path(out), sc)
    name, model, meta = _resolve_model(sc, src)
    _check_same_model(Path(out), name, model)
    _probe_model(sc, model, name, src)
    _check_methods(sc, model, src)
    try:
        units = plan_units(sc)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{src}: schedule: {exc}") from None
    return Prepared(sc, name, model, meta, units)


def _check_device(device: str, run_dir: Path) -> None:
    """``device`` must exist here, and a folder is resumed or extended on the kind of device it
    started on: CPU and CUDA results differ in the last bits, so one run never mixes them."""
    import perception

    try:
        kind = perception.resolve_device(device).type
    except ValueError as exc:
        raise ScenarioError(f"device: {exc}") from None
    if (run_dir / "results.sqlite").is_file():
        with ResultsStore(run_dir) as store:
            compute = store.meta().get("compute") or {}
            stored = compute.get("device", "cpu") if store.done_ids() else None
        if stored is not None and stored != kind:
            raise ScenarioError(
                f"{run_dir}: device: folder holds results computed on {stored}, this run would "
                f"use {kind}; CPU and CUDA results differ in the last bits, so give --device "
                f"{stored} or choose another --out"
            )


def _check_same_model(run_dir: Path, name: str, model: Any) -> None:
    """A folder is only resumed or extended with the model it started with (bundled weights may
    have been retrained since): mixing two models in one run would be silently wrong."""
    import torch

    if (run_dir / "results.sqlite").is_file():
        with ResultsStore(run_dir) as store:
            stored = (store.meta().get("model") or {}).get("name")
        if stored is not None and stored != name:
            raise ScenarioError(
                f"{run_dir}: out: folder holds results of model {stored!r}, the scenario's "
                f"model is {name!r} (field model); choose another --out to start a new run"
            )
    saved = run_dir / MODEL_STATE
    if not saved.is_file():
        return
    state = torch.load(saved, map_location="cpu", weights_only=True)
    current = model.state_dict()
    same = state.keys() == current.keys() and all(torch.equal(state[k], current[k]) for k in state)
    if not same:
        raise ScenarioError(
            f"{run_dir}: out: folder was started with other model weights than the scenario's "
            "model has now (field model); choose another --out to start a new run"
        )


def _logger(run_dir: Path) -> tuple[logging.Logger, logging.Handler]:
    log = logging.getLogger(f"roadshift.run.{id(run_dir)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.FileHandler(run_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return log, handler


def run_scenario(
    scenario: Scenario | str | Path, out: str | Path, *, executor: str = "local",
    workers: int | None = None, quiet: bool = False, device: str = "cpu",
) -> RunSummary:  # fmt: skip
    """Run (or resume) ``scenario`` into the folder ``out``; see the module docstring.

    ``workers`` defaults to the number of CPU cores. Results do not depend on ``workers`` or
    the executor. ``device``: ``"cpu"`` (the default; bit-reproducible), ``"auto"`` (CUDA when
    present), ``"cuda"`` or ``"cuda:N"``: the model and every adapter run there (rendering,
    corruption and metrics stay on the CPU); CUDA results differ from CPU results in the last
    bits (``perception.resolve_device`` says what is reproducible where), so a folder keeps the
    kind of device it started on. Returns a :class:`RunSummary`; failed cells are stored, not
    raised.
    """
    import torch
    from tqdm import tqdm

    import perception

    prep = prepare_run(scenario, out, executor=executor, workers=workers, device=device)
    device = str(perception.resolve_device(device))
    workers = workers or os.cpu_count() or 1
    sc = prep.scenario
    run_dir = Path(out)

    # ---- everything validated: create the run folder
    make_folder(run_dir)
    lock = _lock(run_dir)
    _remove_leftovers(run_dir)
    store = ResultsStore.create(run_dir)
    log, handler = _logger(run_dir)
    t_start = time.perf_counter()
    try:
        store.drop_unfinished_rows()  # segments of streams a killed run left running
        meta = store.meta()
        expected = [c for u in prep.units for c in u.cells]
        done = store.done_ids()
        jobs = []
        for u in prep.units:
            pending = frozenset(c["cell_id"] for c in u.cells if c["cell_id"] not in done)
            if pending:
                jobs.append((u, pending))
        # workers running at once (the local executor runs a single unit in-process)
        at_once = workers if executor == "ray" else min(workers, max(len(jobs), 1))
        online = _online_meta(sc, prep.model, meta.get("online"))
        contract = _run_meta(sc, executor, at_once, online, device).to_meta()
        if not jobs and meta.get("compute"):
            contract["compute"] = meta["compute"]  # nothing runs: the stored timings' conditions
        store.update_meta({
            **({} if "started_at" in meta else {"started_at": _now()}),
            **contract,
            "scenario": sc.resolved(),
            "versions": versions(),
            "model": prep.model_meta,
            "data": data_meta(sc),
            "expected_cells": expected,
            "seeds": {
                "scenario": list(sc.seeds),
                "corruption": "numpy SeedSequence([seed, sha256(shift label, severity)[:4]])",
                "model_init": 0,
            },
            "closed_loop": closed_loop_meta(sc),
            "finished_at": None,
        })  # fmt: skip
        (run_dir / "scenario.yaml").write_text(dump_yaml(sc), encoding="utf-8")
        state_path = run_dir / MODEL_STATE
        if not state_path.is_file():
            tmp = run_dir / f".{MODEL_STATE}.tmp"
            torch.save(prep.model.state_dict(), tmp)
            tmp.replace(state_path)

        skipped = sum(1 for c in expected if c["cell_id"] in done)
        log.info(
            "run %s: %d cells, %d already done, %d units to run on %s with %d worker(s)",
            sc.name, len(expected), skipped, len(jobs), executor, workers,
        )  # fmt: skip
        ctx = RunContext(
            model_name=prep.model_name,
            methods=tuple((m.key, m.name, dict(m.options)) for m in sc.methods),
            batch_size=sc.batch_size,
            per_frame=sc.per_frame,
            cache_dir=str((run_dir / "cache").resolve()),  # the local workers' shared cache
            torch_threads=TORCH_THREADS,
            device=device,
            window=sc.window,
            online=None if online is None else {"fallback": online["fallback"],
                                                "skip": online["skipped_batches"]},
            forgetting=None if not sc.forgetting else {
                "frames": FORGETTING_FRAMES, "batch_size": sc.window or sc.batch_size,
                "data": sc.source_data},
            source_data=sc.source_data,
        )  # fmt: skip
        finished: set[str] = set()

        def on_segment(cell_id: str, row: dict[str, Any]) -> None:
            if cell_id not in finished:  # a late row of a cell already stored is dropped
                store.write_segment(cell_id, row)

        failed: dict[str, str] = {}
        bar = tqdm(total=len(expected), initial=skipped, unit="cell", disable=quiet,
                   file=sys.stderr, dynamic_ncols=True, desc=sc.name)  # fmt: skip
        try:
            running = {u.index: u.label for u, _ in jobs}  # the bar names the oldest unfinished
            if running:
                bar.set_postfix_str(next(iter(running.values())))
            state = model_bytes(prep.model)
            for unit, results in execute(jobs, ctx, state, executor, workers, on_segment):
                for res in results:
                    cid = res.cell["cell_id"]
                    finished.add(cid)
                    if res.sample is not None:  # before its cell: a stored cell has its sample
                        store.write_sample(cid, res.sample)
                    if res.record is not None:  # likewise its drives' traces and strip
                        store.write_drive_record(cid, res.record)
                    store.write_cell(res.cell, res.segments, res.frames, res.drives)
                    if res.cell["status"] == "failed":
                        failed[cid] = res.cell["error"] or "failed"
                        log.error("cell %s failed: %s", cid, failed[cid])
                        if res.traceback:
                            log.error("%s", res.traceback.rstrip())
                    else:
                        log.info("cell %s done: miou %.4f, %.2f ms/frame", cid,
                                 res.cell.get("miou") or float("nan"),
                                 res.cell.get("ms_per_frame") or float("nan"))  # fmt: skip
                    bar.update(1)
                running.pop(unit.index, None)
                if running:
                    bar.set_postfix_str(next(iter(running.values())))
        finally:
            bar.close()
        # failed cells recorded earlier (in a previous invocation) still count as failed
        for c in store.cells("failed"):
            failed.setdefault(c["cell_id"], c["error"] or "failed")
        wall = time.perf_counter() - t_start + float(meta.get("wall_seconds") or 0.0)
        store.set_meta("wall_seconds", wall)
        if not store.missing_cells():
            store.set_meta("finished_at", _now())
            shutil.rmtree(run_dir / "cache", ignore_errors=True)
        log.info("run %s finished: %d failed cell(s), %.1f s", sc.name, len(failed), wall)
        return RunSummary(run_dir, len(expected), len(expected) - len(failed), skipped,
                          failed, wall)  # fmt: skip
    finally:
        log.removeHandler(handler)
        handler.close()
        store.close()
        lock.close()


def _lock(run_dir: Path) -> Any:
    """An exclusive lock on the run folder for the life of the run (released by the OS even on
    SIGKILL), so two runs never write the same folder at once."""
    f = open(run_dir / ".lock", "a")
    try:
        import fcntl

        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # pragma: no cover - no fcntl (Windows): no cross-process lock
        pass
    except OSError:
        f.close()
        raise ScenarioError(f"{run_dir}: out: another run is writing this folder") from None
    return f


def _remove_leftovers(run_dir: Path) -> None:
    """Half-written files of a killed run (temporary names; never read as results)."""
    leftovers = ("cache/.*.tmp", "samples/.*.tmp.npz", "drives/.*.tmp.npz", f".{MODEL_STATE}.tmp")
    for pattern in leftovers:
        for p in run_dir.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _calibration_batch(sc: Scenario, frames: int) -> Any:
    """Clean frames of the scenario's world (its first seed) in the run's batch shape."""
    import numpy as np
    import torch

    import sim

    config = sim.WorldConfig(height=sc.height, width=sc.width, **sc.world)
    images = np.stack([f.image for f in sim.render_stream(config, sc.seeds[0], frames)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def _online_meta(sc: Scenario, model: Any, stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """``meta.online``: the setting and each method's cost ratio, measured once per run (a
    resumed or extended run reuses the stored ratios and measures only new methods)."""
    if sc.online is None:
        return None
    spec = sc.online.model_dump()
    batch_frames = sc.window or sc.batch_size
    same = isinstance(stored, dict) and all(
        stored.get(k) == v for k, v in {**spec, "batch_frames": batch_frames}.items()
    )
    ms = dict(stored.get("ms_per_batch") or {}) if same else {}
    ratio = dict(stored.get("cost_ratio") or {}) if same else {}
    source_ms = stored.get("source_ms_per_batch") if same else None
    missing = [m for m in sc.methods if m.key not in ratio]
    if missing:
        source = SourceFrames(sc.height, sc.width, sc.batch_size, data=sc.source_data)
        measured = calibrate(
            model, [(m.key, m.name, dict(m.options)) for m in missing],
            _calibration_batch(sc, batch_frames),
            prepare=lambda a: a.prepare_source(source.batches()) if a.needs_source_data else None,
        )  # fmt: skip
        ms.update(measured["ms_per_batch"])
        ratio.update(measured["cost_ratio"])
        source_ms = source_ms if source_ms is not None else measured["source_ms_per_batch"]
    eta = effective_eta(spec, float(source_ms) / 1000.0, batch_frames)
    return {
        **spec,
        "eta_effective": round(eta, 6),
        "batch_frames": batch_frames,
        "source_ms_per_batch": source_ms,
        "ms_per_batch": ms,
        "cost_ratio": ratio,
        "skipped_batches": {m.key: skipped_batches(ratio[m.key], eta) for m in sc.methods},
        "calibration": dict(CALIBRATION),
    }


def _run_meta(sc: Scenario, executor: str, workers: int,
              online: dict[str, Any] | None = None, device: str = "cpu") -> RunMeta:  # fmt: skip
    """The run-metadata contract: everything a report needs, so it never asks the library."""
    import sim

    keys = {m.key for m in sc.methods}
    return RunMeta(
        methods=tuple(
            {**m, "traits": _traits(m["name"])} if m["label"] in keys else m
            for m in meta_methods(sc)  # the closed loop's oracle is no adaptation method
        ),
        class_names=tuple(sim.CLASS_NAMES),
        palette=tuple(tuple(int(v) for v in rgb) for rgb in sim.PALETTE),
        corruption_families=_families(sc),
        baseline=sc.baseline,
        protocol=sc.protocol,
        compute={
            "executor": executor,
            "workers": workers,
            "torch_threads": TORCH_THREADS,
            "device": device.split(":")[0],
        },
        protocol_plan=protocol_plan(sc),
        stream=stream_meta(sc),
        online=online,
        forgetting=forgetting_meta(FORGETTING_FRAMES, sc.window or sc.batch_size, sc.source_data)
        if sc.forgetting
        else None,
        recovery=recovery_meta(),
        collapse=collapse_meta(),
    )


def _traits(name: str) -> str:
    """What the method does, in words (``AdapterInfo.summary``), for the report's compute
    section: stored so that the report never asks the installed library."""
    import perception

    info = perception.adapter_info(name)
    return "" if info.error else info.summary()


def _families(sc: Scenario) -> dict[str, str]:
    """Corruption -> family of every corruption a cell or a schedule segment can show."""
    import sim

    items = list(sc.corruptions)  # names, or albumentations specs (named by their label)
    for spec in sc.schedule:
        data = sim.make_schedule(spec.spec).to_dict()
        items += [c for c in [data.get("corruption"), *(data.get("corruptions") or [])] if c]
    infos = [sim.corruption_info(c) for c in items]
    return {i.name: i.family for i in sorted(infos, key=lambda i: i.name)}
