"""Loading a scenario: parse it with the schema, then validate it against the live registries.

Corruption and group names, method names and ``module:Class`` paths, model names and weights,
world fields and schedules; corruption groups are expanded and default labels filled in. Every
problem is one ``ScenarioError`` line naming the file, the field and the valid choices. (This
module depends on ``_schema``, never the reverse.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scenarios._closed import check_closed_loop
from scenarios._schema import (
    Scenario,
    ScenarioError,
    _pydantic_message,
    _read_yaml,
    _resolve_source,
)
from sim.common import load_object, unknown_name

__all__ = ["apply_override", "check_names", "load_scenario", "validate_scenario"]


def _choices_error(src: str, field: str, kind: str, name: Any, valid: list[str]) -> ScenarioError:
    return ScenarioError(f"{src}: {field}: {unknown_name(kind, name, valid)}")


def check_names(sc: Scenario, src: str) -> Scenario:
    """The scenario with groups expanded and labels filled in, or a ScenarioError."""
    import sim
    from sim.corruptions.catalogue import expand_corruptions

    # corruptions: names, groups or albumentations shifts, expanded in order, without repeats
    for i, c in enumerate(sc.corruptions):
        try:
            expand_corruptions([c])
        except ValueError as exc:
            # an albumentations spec's error names its field from "corruption." on
            msg = _one_line(exc).removeprefix("corruption.").removeprefix("corruption: ")
            raise ScenarioError(f"{src}: corruptions[{i}]: {msg}") from None
    expanded = expand_corruptions(sc.corruptions)
    # data alone run under a carried protocol, and ACDC's conditions are shifts of their own
    natural = sc.data is not None and (
        sc.protocol != "reset_each_shift" or sc.data.get("layout") == "acdc"
    )
    if not (expanded or sc.schedule or sc.world_shifts or sc.include_clean or natural):
        raise ScenarioError(
            f"{src}: corruptions: nothing to run (no corruptions, schedule, world_shifts or clean)"
        )

    # world fields -> a WorldConfig must accept them
    _check_world(src, "world", sc.world, sc)
    for i, ws in enumerate(sc.world_shifts):
        _check_world(src, f"world_shifts[{i}]", {**sc.world, **ws.world}, sc)
    for i, part in enumerate(sc.label_shift):
        _check_world(src, f"label_shift[{i}]", {**sc.world, **part.world}, sc)
    parts = [
        p.model_copy(update={"label": p.label or _world_label(p.world)}) for p in sc.label_shift
    ]
    part_labels = [p.label for p in parts]
    if len(set(part_labels)) != len(part_labels):
        raise ScenarioError(f"{src}: label_shift: parts repeat a label: {', '.join(part_labels)}")

    # schedules
    labels: list[str] = []
    schedules = []
    for i, spec in enumerate(sc.schedule):
        try:
            sched = sim.make_schedule(spec.spec)
        except (ValueError, TypeError, KeyError) as exc:
            raise ScenarioError(f"{src}: schedule[{i}]: {_one_line(exc)}") from None
        in_sim = any(sched.state(k, sc.frames).world is not None for k in (0, sc.frames - 1))
        if in_sim and (sc.samplings != ["video"] or sc.label_shift):
            raise ScenarioError(
                f"{src}: schedule[{i}]: an in-sim schedule ({sched.kind}) changes one drive "
                "as it renders; it needs sampling: video and no label_shift"
            )
        label = spec.label or _schedule_label(sched)
        schedules.append(spec.model_copy(update={"label": label}))
        labels.append(label)
    shifts = [
        ws.model_copy(update={"label": ws.label or _world_label(ws.world)})
        for ws in sc.world_shifts
    ]
    labels += [ws.label for ws in shifts]
    shift_names = [sim.corruption_info(c).name for c in expanded]  # an albumentations label
    all_labels = labels + shift_names + (["clean"] if sc.include_clean else [])
    dup = sorted({x for x in all_labels if all_labels.count(x) > 1})
    if dup:
        raise ScenarioError(f"{src}: schedule/world_shifts: labels repeat: {', '.join(dup)}")

    data_fields = _check_data(src, sc, expanded) if sc.data is not None or sc.source_data else {}

    # methods, and the baseline among them
    _check_methods(src, sc)
    baseline = _baseline(src, sc)

    # model
    _check_model(src, sc)

    return sc.model_copy(
        update={
            "corruptions": expanded,
            "schedule": schedules,
            "world_shifts": shifts,
            "baseline": baseline,
            "label_shift": parts,
            **data_fields,
        }
    )


def _data_error(src: str, key: str, exc: Exception) -> ScenarioError:
    return ScenarioError(f"{src}: {key}: {_one_line(exc)}")


def _check_data(src: str, sc: Scenario, corruptions: list[str]) -> dict[str, Any]:
    """``data:``/``source_data:`` checked against the disk (root, layout, frames, the label
    values of the frames the run uses, depth for depth-aware corruptions); returns the
    normalised specs and, when ``frames`` was left out, the frames of the longest part."""
    import sim
    from scenarios._datasource import data_clean_stream, data_info

    out: dict[str, Any] = {}
    for key in ("data", "source_data"):
        raw = getattr(sc, key)
        if raw is None:
            continue
        try:
            spec = sim.DataSpec.from_any(raw)
            info = data_info(spec.to_dict())
        except sim.DataError as exc:
            raise _data_error(src, key, exc) from None
        out[key] = spec.to_dict()
        if key == "source_data" and not info["labelled"]:
            raise ScenarioError(f"{src}: source_data: {spec.root} has no labels; held-out "
                                "source frames are scored against their labels")  # fmt: skip
    if sc.data is None:
        return out
    data = out["data"]
    info = data_info(data)
    if "frames" not in sc.model_fields_set:
        parts = [n for _, n in info["conditions"]] or [info["frames"]]
        out["frames"] = max(parts)
    frames = out.get("frames", sc.frames)
    for i, spec in enumerate(sc.schedule):
        sched = sim.make_schedule(spec.spec)
        if any(sched.state(k, frames).world is not None for k in (0, frames - 1)):
            raise ScenarioError(
                f"{src}: schedule[{i}]: an in-sim schedule ({sched.kind}) changes the world "
                "as it renders; the frames of data: are recorded"
            )
    if not info["depth"]:
        for c in corruptions:
            if sim.corruption_info(c).needs_depth:
                raise ScenarioError(
                    f"{src}: corruptions: {c} needs depth, and the data at {sc.data.get('root')} "
                    f"have none (layout {data['layout']}: {sim.DataSpec.from_any(data).expects})"
                )
    # every label file the run reads decodes, so a bad value fails here, not in a worker
    try:
        used: set[int] = set()
        for sampling in sc.samplings:
            for seed in sc.seeds:
                stream = data_clean_stream(data, seed, frames, sc.height, sc.width,
                                           sampling=sampling)  # fmt: skip
                used |= {i for _, i in stream.refs}
        if info["labelled"]:
            dataset = sim.FolderDataset(data)
            for i in sorted(used):
                dataset.read_labels(i)
    except sim.DataError as exc:
        raise _data_error(src, "data", exc) from None
    return out


def _baseline(src: str, sc: Scenario) -> str | None:
    """The reference method's label: as given, else the first method named ``source``."""
    keys = sc.method_keys()
    if sc.baseline is not None:
        if sc.baseline not in keys:
            raise _choices_error(src, "baseline", "method label", sc.baseline, keys)
        return sc.baseline
    return next((m.key for m in sc.methods if m.name == "source"), None)


def _schedule_label(sched: Any) -> str:
    """Default label of a schedule cell: its kind, plus its corruption when it has one."""
    corruption = sched.to_dict().get("corruption")
    return f"{sched.kind}-{corruption}" if isinstance(corruption, str) else sched.kind


def _world_label(world: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(world.items()) if not isinstance(v, dict))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_world(src: str, field: str, world: dict[str, Any], sc: Scenario) -> None:
    import sim

    valid = [
        f.name for f in dataclasses.fields(sim.WorldConfig) if f.name not in ("height", "width")
    ]
    for key in world:
        if key not in valid:
            raise _choices_error(src, f"{field}.{key}", "world field", key, valid)
    try:
        sim.WorldConfig(height=sc.height, width=sc.width, **world)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(f"{src}: {field}: {_one_line(exc)}") from None


def _check_methods(src: str, sc: Scenario) -> None:
    import perception

    valid = list(perception.adapter_names())
    keys: list[str] = []
    for i, m in enumerate(sc.methods):
        if ":" in m.name:
            try:
                load_object(m.name, "method path", "module:Class")
            except ValueError as exc:
                raise ScenarioError(f"{src}: methods[{i}].name: {_one_line(exc)}") from None
        elif m.name not in valid:
            raise _choices_error(src, f"methods[{i}].name", "method", m.name, valid)
        keys.append(m.key)
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ScenarioError(
            f"{src}: methods: method {', '.join(dup)} listed twice; give each a distinct label"
        )


def _check_model(src: str, sc: Scenario) -> None:
    import perception

    name = sc.model.name
    if name is not None and ":" not in name and name not in perception.model_names():
        raise _choices_error(src, "model.name", "model", name, list(perception.model_names()))
    if sc.model.weights is not None and not Path(sc.model.weights).is_file():
        raise ScenarioError(f"{src}: model.weights: no such file {sc.model.weights!r}")


def load_scenario(
    source: str | Path, *, check: bool = True, overrides: Sequence[str] = ()
) -> Scenario:
    """Load a scenario from a bundled name or a YAML path and validate it.

    ``check`` (default) also validates names against the registries of ``sim`` and
    ``perception`` (corruptions, groups, methods, models, world fields, schedules).
    ``overrides`` are ``KEY=VALUE`` strings (``roadshift run --set``): VALUE is YAML, KEY a
    scenario key or a dotted path into nested fields (``online.eta``, ``world.town``,
    ``methods.1.options.lr``); the result is validated like the file.
    Raises ``ScenarioError`` (a ``ValueError``) with one line naming the file and field, or the
    ``--set`` that made the scenario invalid.
    """
    path = _resolve_source(source)
    data = _read_yaml(path)
    if not overrides:
        return validate_scenario(data, source=path, check=check)
    changed = data
    for text in overrides:
        changed = apply_override(changed, text)
    try:
        return validate_scenario(changed, source=path, check=check)
    except ScenarioError:
        pass
    # name the culprit: the file itself, or the first --set after which it no longer validates
    validate_scenario(data, source=path, check=check)
    for text in overrides:
        data = apply_override(data, text)
        validate_scenario(data, source=f"--set {text}", check=check)
    raise AssertionError("unreachable: the scenario failed to validate, then validated")


def apply_override(data: dict[str, Any], text: str) -> dict[str, Any]:
    """``data`` with one ``KEY=VALUE`` override applied (a new dict; ``data`` is unchanged)."""
    import copy

    import yaml

    key, sep, raw = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(f"--set {text}: expected KEY=VALUE (e.g. frames=64, online.eta=2)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"--set {text}: VALUE is not YAML: {problem}") from None
    out = copy.deepcopy(data)
    node: Any = out
    parts = key.split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(
                    f"--set {text}: {where}: index {part!r} out of range "
                    f"(the list has {len(node)} items)"
                )
            index: Any = int(part)
        elif isinstance(node, dict):
            index = part
        else:
            raise ScenarioError(
                f"--set {text}: {'.'.join(parts[:depth])} is a {type(node).__name__}, "
                "not a mapping: cannot set a key inside it"
            )
        if last:
            node[index] = value
        else:
            if isinstance(node, dict) and node.get(index) is None:
                node[index] = {}
            node = node[index]
            if isinstance(node, str):  # ``methods: [bn]`` items may be bare names
                raise ScenarioError(
                    f"--set {text}: {where} is a plain value ({node!r}), not a mapping"
                )
    return out


def validate_scenario(
    data: dict[str, Any], *, source: str | Path = "<scenario>", check: bool = True
) -> Scenario:
    """Validate a scenario given as plain data (see ``load_scenario``)."""
    data = _native(data, source, check)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_pydantic_message(source, exc)) from None
    scenario = check_closed_loop(scenario, str(source))
    if check:
        scenario = check_names(scenario, str(source))
    return scenario


def _native(data: dict[str, Any], source: str | Path, check: bool) -> dict[str, Any]:
    """``height: native`` (or ``width: native``): both become the first frame's size of the
    scenario's ``data`` (read from disk, so only when ``check``; otherwise the defaults)."""
    if "native" not in (data.get("height"), data.get("width")):
        return data
    out = {k: v for k, v in data.items() if k not in ("height", "width")}
    if not isinstance(data.get("data"), dict):
        raise ScenarioError(f"{source}: height: native is the size of a dataset's frames; it "
                            "needs data: {root, layout}")  # fmt: skip
    if not check:
        return out
    import sim
    from scenarios._datasource import native_size

    try:
        out["height"], out["width"] = native_size(sim.DataSpec.from_any(data["data"]).to_dict())
    except sim.DataError as exc:
        raise _data_error(str(source), "data", exc) from None
    return out
