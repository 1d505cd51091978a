"""Scenario files: the YAML schema (pydantic, unknown keys rejected), loading and validation.

A scenario says *what* to measure: methods x shifts x severities x seeds on streams of ``frames``
frames of one world. Loading validates everything a run needs (names against the live registries,
world fields, schedules, method options) so a bad file fails before any run folder exists, with
one line naming the file, the field and the valid choices.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from reports import PROTOCOLS
from sim.common import did_you_mean

__all__ = [
    "ClosedLoopSpec",
    "LabelShiftPart",
    "MethodSpec",
    "ModelSpec",
    "OnlineSpec",
    "Scenario",
    "ScenarioError",
    "ScheduleSpec",
    "WorldShiftSpec",
    "bundled_scenarios",
    "scenario_names",
]


#: Files taken as checkpoints where a model is expected (``model: m.pt``).
CHECKPOINT_SUFFIXES = (".pt", ".pth")
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


class ScenarioError(ValueError):
    """A scenario that cannot run; the message is one line naming the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MethodSpec(_Strict):
    """One adaptation method: a registered name or ``module:Class``, with options."""

    name: str = Field(min_length=1)
    label: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """The name cells and reports use (``label`` if given, else ``name``)."""
        return self.label or self.name


class ModelSpec(_Strict):
    """The source model: a registered name (or ``module:factory``) and/or a weights file.

    A roadshift checkpoint records its model's name, so ``weights`` alone is enough for it.
    """

    name: str | None = None
    weights: str | None = None


class ScheduleSpec(_Strict):
    """A non-static shift schedule (see ``sim.make_schedule``) run as one cell per method/seed."""

    spec: dict[str, Any] | str
    label: str | None = None


class WorldShiftSpec(_Strict):
    """A shift of the world itself (another town, time of day, weather): clean frames, no
    corruption, scored against the base world's clean cell."""

    label: str | None = None
    world: dict[str, Any]


class ClosedLoopSpec(_Strict):
    """How a closed-loop scenario drives (``sim.ClosedLoop``): ``drives`` cars per cell step
    together (the methods' batch), each scored over ``distance_m`` metres; after a failure the
    autopilot drives for ``takeover_s`` seconds; standing ``stall_s`` seconds with the road
    clear is a failure."""

    drives: int = Field(default=4, ge=1, le=256)
    distance_m: float = Field(default=400.0, gt=0, le=100_000)
    takeover_s: float = Field(default=3.0, gt=0, le=600)
    stall_s: float = Field(default=3.0, gt=0, le=600)


class OnlineSpec(_Strict):
    """Compute-aware evaluation (Alfarra et al., ICML 2024): frames arrive at ``eta`` times the
    source model's rate (or at ``fps`` frames per second); a method whose step costs r times the
    source forward misses the next ceil(r * eta) - 1 batches, scored with its latest prediction
    (``fallback: last``) or the un-adapted model (``fallback: source``)."""

    eta: float | None = Field(default=None, gt=0, le=1000)
    fps: float | None = Field(default=None, gt=0, le=1_000_000)
    fallback: Literal["last", "source"] = "last"

    @model_validator(mode="after")
    def _one_rate(self) -> OnlineSpec:
        if (self.eta is None) == (self.fps is None):
            raise ValueError("give exactly one of eta (a rate relative to the source model) "
                             "and fps (frames per second)")  # fmt: skip
        return self


class LabelShiftPart(_Strict):
    """One part of a label-shift stream: world overrides (town, traffic, ...) and a label."""

    label: str | None = None
    world: dict[str, Any]


#: The default label-shift stream: urban -> highway -> rural drives (class priors drift).
DEFAULT_LABEL_SHIFT = ({"town": "urban"}, {"town": "highway"}, {"town": "rural"})
#: Protocols that carry one adapter through a list of shifts.
CARRIED = ("continual", "gradual", "mixed")


class Scenario(_Strict):
    """A validated scenario (YAML keys; unknown keys are rejected).

    - ``name``, ``description`` (one line, shown by ``roadshift list scenarios``).
    - ``methods``: names (``roadshift list methods``), ``module:Class`` paths, or
      ``{name, label, options}``; ``label`` tells two configurations of one method apart.
    - ``corruptions``: names or groups (``imagenet-c``, ``noise``, ``weather``, ``driving``,
      ...), or albumentations shifts (``{albumentations: RandomRain, params: {...}}``,
      ``{albumentations_file: pipeline.yaml}``, optional ``label``; see
      ``sim.corruptions.albu``); expanded in order without repeats. ``severities``: numbers in
      (0, 5].
    - ``scaling``: ``relative`` (default: spatial constants times min(H, W) / 224) or
      ``absolute`` (the published constants in pixels, as Cityscapes-C).
    - ``schedule``: ``static`` (default: the corruption x severity grid) or one or more
      ``sim.make_schedule`` specs (``{kind: continual, corruptions: [...]}``, ``gradual``,
      ``day_to_night``, ...), each run as one stream per method and seed with per-segment rows;
      a ``label`` key names its cells (default: the kind, plus its corruption if it has one).
    - ``world_shifts``: world overrides (``{town: rural}``, optional ``label``) run as clean
      shifted streams.
    - ``frames`` per cell, ``batch_size``, ``seeds``, ``height``, ``width``.
    - ``world``: ``sim.WorldConfig`` fields (town, time_of_day, weather, traffic, ...).
    - ``data``: instead of the world, a dataset on disk (``{root, layout: cityscapes | acdc |
      pairs | video, split, ...}``, ``sim.data.DataSpec``; ``${VAR}`` in a path reads an
      environment variable); ``frames`` then caps the frames per part (all when left out) and
      ``height: native`` keeps the first frame's size (``scenarios._datasource``).
      ``source_data``: the same for held-out source frames (``forgetting``).
    - ``model``: a registered name or ``module:factory`` (default: the bundled default), a
      checkpoint path (``m.pt``: the checkpoint names its model), or ``{name, weights}``.
    - ``baseline``: the label of the reference method for gain and mCE (default: the first
      method named ``source``, whatever its label; none without one).
    - ``include_clean`` (default true): a ``clean`` cell per method and seed.
    - ``per_frame`` (default true): per-frame rows for timelines; ``samples``: how many shifts
      get qualitative sample images (plus clean).
    - ``loop``: ``open`` (default: the model sees recorded frames) or ``closed`` (each method's
      predictions drive the car through the lane-keeping controller; ``scenarios._closed``),
      with ``closed_loop``: ``{drives, distance_m, takeover_s, stall_s}`` (a
      :class:`ClosedLoopSpec`; ``drives`` replaces ``batch_size``, ``distance_m`` ``frames``).
    - ``protocol`` (``reset_each_shift``, ``continual``, ``gradual``, ``mixed``), ``rounds``,
      ``orders``, ``sampling`` (``video``/``iid``, or both as a list: the second one's
      cells are labelled ``<shift>.iid``), ``label_shift``, ``window``,
      ``forgetting``, ``online`` (with ``fallback``): how shifts become adapted streams and
      how they are scored (docs/architecture.md, "Protocols"). ``frames`` counts the frames of
      one segment (one shift, one label-shift part).
    """

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    methods: list[MethodSpec] = Field(min_length=1)
    baseline: str | None = None
    corruptions: list[str | dict[str, Any]] = Field(default_factory=list)
    severities: list[float] = Field(default_factory=lambda: [3.0])
    scaling: Literal["relative", "absolute"] = "relative"
    schedule: list[ScheduleSpec] = Field(default_factory=list)
    world_shifts: list[WorldShiftSpec] = Field(default_factory=list)
    frames: int = Field(default=64, gt=0, le=1_000_000)
    batch_size: int = Field(default=8, gt=0, le=4096)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    height: int = Field(default=128, ge=16, le=4096)
    width: int = Field(default=256, ge=16, le=4096)
    world: dict[str, Any] = Field(default_factory=dict)
    data: dict[str, Any] | None = None
    source_data: dict[str, Any] | None = None
    model: ModelSpec = Field(default_factory=ModelSpec)
    include_clean: bool = True
    per_frame: bool = True
    samples: int = Field(default=4, ge=0, le=1000)
    loop: Literal["open", "closed"] = "open"
    closed_loop: ClosedLoopSpec | None = None
    protocol: Literal["reset_each_shift", "continual", "gradual", "mixed"] = "reset_each_shift"
    rounds: int = Field(default=1, ge=1, le=1000)
    orders: int = Field(default=1, ge=1, le=1000)
    sampling: Literal["video", "iid"] | list[Literal["video", "iid"]] = "video"
    label_shift: list[LabelShiftPart] = Field(default_factory=list)
    window: int | None = Field(default=None, ge=2, le=256)
    forgetting: bool = False
    online: OnlineSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _fallback(cls, data: Any) -> Any:
        # ``fallback:`` may sit at the top level (beside ``online:``); it is one key of online
        if not isinstance(data, dict) or "fallback" not in data:
            return data
        data = dict(data)
        fallback = data.pop("fallback")
        online = data.get("online")
        if not isinstance(online, dict):
            raise ValueError("fallback: only applies with online: {eta: ...} or {fps: ...}")
        if "fallback" in online and online["fallback"] != fallback:
            raise ValueError("fallback: given twice (top level and online.fallback), differently")
        data["online"] = {**online, "fallback": fallback}
        return data

    @field_validator("sampling")
    @classmethod
    def _sampling(cls, v: Any) -> Any:
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("a list of samplings needs distinct items: [video, iid]")
        return v

    @property
    def samplings(self) -> list[str]:
        """The samplings run, the first one primary (its cells keep plain labels)."""
        return list(self.sampling) if isinstance(self.sampling, list) else [self.sampling]

    @field_validator("label_shift", mode="before")
    @classmethod
    def _label_shift(cls, v: Any) -> Any:
        if v is None or v is False:
            return []
        if v is True:
            v = [dict(p) for p in DEFAULT_LABEL_SHIFT]
        if not isinstance(v, list):
            return v
        out = []
        for item in v:  # ``- {town: rural, label: r}`` is ``{label: r, world: {town: rural}}``
            if isinstance(item, dict) and "world" not in item:
                rest = {k: x for k, x in item.items() if k != "label"}
                item = {"label": item.get("label"), "world": rest}
            out.append(item)
        if len(out) == 1:
            raise ValueError("needs at least two parts (a label shift is a change of domain)")
        return out

    @model_validator(mode="after")
    def _protocol_fields(self) -> Scenario:
        p = self.protocol
        if p not in PROTOCOLS:  # the run-metadata contract names every protocol
            raise ValueError(f"protocol: {p!r} has no meaning in the run contract")
        if p not in ("continual", "gradual"):
            for key in ("rounds", "orders"):
                if getattr(self, key) != 1:
                    raise ValueError(f"{key}: applies to protocol continual or gradual, not {p}")
        if p in CARRIED:
            if self.schedule or self.world_shifts:
                raise ValueError(
                    f"protocol: {p} shapes the corruptions x severities list; schedule and "
                    "world_shifts run only under reset_each_shift"
                )
            if not self.corruptions and self.data is None:
                raise ValueError(f"protocol: {p} needs corruptions to carry an adapter through")
        if p == "mixed" and self.label_shift:
            raise ValueError("label_shift: protocol mixed shuffles frames, so parts would mix")
        if p == "mixed" and len(self.corruptions) * len(self.severities) < 2:
            raise ValueError("protocol: mixed needs at least two shifts to mix")
        if self.label_shift and self.world_shifts:
            raise ValueError("label_shift: both label_shift and world_shifts change the world; "
                             "use one")  # fmt: skip
        if p == "gradual" and "severities" in self.model_fields_set:
            raise ValueError(
                "severities: protocol gradual walks CoTTA's integer severities (5..1, then "
                "1..5..1 per type); remove severities"
            )
        if self.data is not None:
            for key in ("world", "world_shifts", "label_shift"):
                if getattr(self, key):
                    raise ValueError(
                        f"data: frames come from the dataset, so {key} (the procedural world) "
                        "does not apply; remove one of them"
                    )
        if self.window is not None and self.batch_size != 1:
            raise ValueError(
                f"window: a sliding window of frames replaces the batch; set batch_size: 1 "
                f"(got {self.batch_size})"
            )
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # the default run folder is runs/<name>: a name is one plain folder name, never a path
        if not _SAFE_NAME.fullmatch(v):
            raise ValueError(
                "must be a plain folder name (letters, digits, '_', '.', '+', '-'; "
                "not starting with '.' or '-')"
            )
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, v: Any) -> Any:
        if isinstance(v, (str, dict)):
            v = [v]
        if isinstance(v, list):
            return [{"name": m} if isinstance(m, str) else m for m in v]
        return v

    @field_validator("corruptions", "seeds", "severities", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        single = isinstance(v, (str, int, float, dict)) and not isinstance(v, bool)
        return [v] if single else v

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[float]) -> list[float]:
        for s in v:
            if not 0 < s <= 5:
                raise ValueError(f"severity {s:g} out of range; valid: numbers in (0, 5]")
        if len(set(v)) != len(v):
            raise ValueError("severities repeat a value")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 or s >= 2**32 for s in v):
            raise ValueError("seeds must be integers in [0, 2**32)")
        if len(set(v)) != len(v):
            raise ValueError("seeds repeat a value")
        return v

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, v: Any) -> Any:
        if v is None or v == "static" or v == {"kind": "static"}:
            return []
        items = v if isinstance(v, list) else [v]
        out = []
        for item in items:
            if (
                isinstance(item, dict)
                and ("label" in item or "spec" in item)
                and set(item)
                <= {
                    "label",
                    "spec",
                }
            ):
                out.append(item)
            elif isinstance(item, dict) and "label" in item:
                rest = {k: x for k, x in item.items() if k != "label"}
                out.append({"spec": rest, "label": item["label"]})
            else:
                out.append({"spec": item})
        return [o for o in out if o["spec"] not in ("static", {"kind": "static"})]

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str) and v.lower().endswith(CHECKPOINT_SUFFIXES):
            return {"weights": v}  # a checkpoint names its own model
        return {"name": v} if isinstance(v, str) else v

    @field_validator("world_shifts", mode="before")
    @classmethod
    def _world_shifts(cls, v: Any) -> Any:
        # ``- {town: rural, label: r}`` is shorthand for ``{label: r, world: {town: rural}}``
        if not isinstance(v, list):
            return v
        out = []
        for item in v:
            if isinstance(item, dict) and "world" not in item:
                rest = {k: x for k, x in item.items() if k != "label"}
                item = {"label": item.get("label"), "world": rest}
            out.append(item)
        return out

    def method_keys(self) -> list[str]:
        return [m.key for m in self.methods]

    def resolved(self) -> dict[str, Any]:
        """The scenario as plain data (what is saved beside the results)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- bundled library
def _library() -> Path:
    return Path(str(resources.files("scenarios") / "library"))


def bundled_scenarios() -> dict[str, Path]:
    """Bundled scenario names -> their YAML files."""
    return {p.stem: p for p in sorted(_library().glob("*.yaml"))}


def scenario_names() -> list[str]:
    """Names of the bundled scenarios (``roadshift list scenarios``)."""
    return sorted(bundled_scenarios())


def describe_bundled() -> dict[str, str]:
    """Bundled scenario name -> its one-line description."""
    out = {}
    for name, path in bundled_scenarios().items():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            out[name] = str(data.get("description", "")).strip().splitlines()[0]
        except (yaml.YAMLError, IndexError, AttributeError):
            out[name] = ""
    return out


# --------------------------------------------------------------------------- loading
def _resolve_source(source: str | Path) -> Path:
    """An existing file wins; then a bundled name; then the right 'not found' message."""
    s = str(source)
    path = Path(s)
    if path.is_file():
        return path
    bundled = bundled_scenarios()
    if s in bundled:
        return bundled[s]
    if path.suffix in (".yaml", ".yml") or "/" in s or "\\" in s or path.exists():
        what = "is a folder, not a scenario file" if path.is_dir() else "no such file"
        raise ScenarioError(f"{s}: scenario: {what}")
    raise ScenarioError(
        f"{s}: scenario: no such file or bundled scenario{did_you_mean(s, bundled)}; "
        f"bundled: {', '.join(sorted(bundled))}"
    )


def _read_yaml(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if b"\x00" in raw:
        raise ScenarioError(f"{path}: not a text YAML file (binary content)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a text YAML file (not UTF-8)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(f"{path}: YAML syntax error{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{path}: top level must be a mapping of scenario keys, got {type(data).__name__}"
        )
    return data


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "(" in str(part):  # pydantic's union-member tags
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _pydantic_message(path: Path | str, err: ValidationError) -> str:
    e = err.errors()[0]
    field = _loc(tuple(e["loc"]))
    if e["type"] == "extra_forbidden":
        model = Scenario
        parts = [p for p in e["loc"] if not isinstance(p, int)][:-1]
        sub = {
            ("methods",): MethodSpec,
            ("model",): ModelSpec,
            ("schedule",): ScheduleSpec,
            ("world_shifts",): WorldShiftSpec,
            ("closed_loop",): ClosedLoopSpec,
        }
        model = sub.get(tuple(parts), model)
        valid = ", ".join(model.model_fields)
        return f"{path}: {field}: unknown key; valid keys: {valid}"
    if e["type"] == "missing":
        return f"{path}: {field}: required key is missing"
    msg = e["msg"].removeprefix("Value error, ")
    return f"{path}: {field}: {msg} (got {e.get('input')!r})".replace("\n", " ")


def dump_yaml(sc: Scenario) -> str:
    """The resolved scenario as YAML text (saved as ``scenario.yaml`` in the run folder)."""
    return yaml.safe_dump(sc.resolved(), sort_keys=False)
