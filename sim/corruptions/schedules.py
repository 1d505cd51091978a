"""Shift schedules: how the corruption (or the world's weather) evolves along a drive.

A schedule is plain data (``to_dict()`` round-trips through ``make_schedule`` and YAML) and
a pure function ``state(frame_index, n_frames) -> ShiftState``. Kinds:

- ``static``: one corruption at one severity.
- ``gradual``: severity ramps 1 -> 5 -> 1 (``period`` frames per cycle; default the stream),
  continuous or in integer steps (``discrete``), as in gradual continual-TTA benchmarks.
- ``continual``: a sequence of corruptions, each for ``frames_per`` frames (default: an equal
  share of the stream), repeated while the stream lasts.
- ``mixed``: a random corruption per frame (held ``hold`` frames), drawn from a generator
  seeded with ``(seed, frame block)`` so the state is a pure function of its arguments.
- ``transition``: intensity follows ``curve`` from ``from_severity`` to ``to_severity`` between
  the fractions ``start`` and ``stop`` of the stream (fog rolling in).
- ``drift_and_return``: clean -> ``severity`` -> clean, ramps of shape ``curve``, holding the
  peak for the fraction ``hold`` of the stream (SHIFT-style continuous domain shift).
- ``day_to_night``, ``clear_to_fog``, ``clear_to_rain``: in-sim shifts; ``ShiftState.world``
  holds the weather fields to pass to ``World.set_conditions`` (no post-process corruption).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sim.common.registry import Registry
from sim.corruptions import albu
from sim.corruptions.catalogue import IMAGENET_C, check_severity, corruption_names
from sim.corruptions.registry import CORRUPTIONS

CURVES = ("linear", "sigmoid", "cosine", "ease_in", "ease_out", "step")


@dataclass(frozen=True)
class ShiftState:
    """The shift at one frame: corruption (None = clean), severity, segment index and label,
    and in-sim weather fields for ``World.set_conditions`` (None for post-process shifts)."""

    corruption: str | None
    severity: float
    segment: int
    label: str
    world: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def curve(name: str, t: float) -> float:
    """Map progress t in [0, 1] through a named easing curve (0 -> 0, 1 -> 1)."""
    t = min(max(t, 0.0), 1.0)
    if name == "linear":
        return t
    if name == "sigmoid":
        lo, hi = 1 / (1 + math.exp(6)), 1 / (1 + math.exp(-6))
        return (1 / (1 + math.exp(-12 * (t - 0.5))) - lo) / (hi - lo)
    if name == "cosine":
        return (1 - math.cos(math.pi * t)) / 2
    if name == "ease_in":
        return t * t
    if name == "ease_out":
        return 1 - (1 - t) ** 2
    if name == "step":
        return 1.0 if t >= 0.5 else 0.0
    raise ValueError(f"curve must be one of {', '.join(CURVES)}, got {name!r}")


SCHEDULES: Registry[type[Schedule]] = Registry("schedule kind")


def _check_corruption(value: Any, fieldname: str = "corruption") -> str:
    if not isinstance(value, str):
        raise TypeError(f"schedule field {fieldname!r} must be a corruption name string")
    if value not in corruption_names():
        raise ValueError(f"schedule field {fieldname!r}: {CORRUPTIONS.unknown(value)}")
    return value


def _check_corruption_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not value:
        raise ValueError("schedule field 'corruptions' must be a non-empty list of names")
    return tuple(_check_corruption(c, "corruptions") for c in value)


def _check_fraction(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
        raise ValueError(f"schedule field {name!r} must be a fraction in [0, 1], got {v!r}")
    return float(v)


def _check_count(name: str, v: Any, allow_none: bool = True) -> int | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1:
        raise ValueError(f"schedule field {name!r} must be a positive int, got {v!r}")
    return int(v)


def _check_sev(name: str, v: Any) -> float:
    try:
        return check_severity(v)
    except (TypeError, ValueError):
        raise ValueError(
            f"schedule field {name!r} must be a severity in [0, 5], got {v!r}"
        ) from None


def _check_curve(v: Any) -> str:
    if v not in CURVES:
        raise ValueError(f"schedule field 'curve' must be one of {', '.join(CURVES)}, got {v!r}")
    return v


def _runs(values: list[Any]) -> list[tuple[int, int, Any]]:
    """Runs of equal consecutive values as (start, stop, value)."""
    out: list[tuple[int, int, Any]] = []
    for i, v in enumerate(values):
        if out and out[-1][2] == v:
            out[-1] = (out[-1][0], i + 1, v)
        else:
            out.append((i, i + 1, v))
    return out


@dataclass(frozen=True)
class Schedule:
    """Base class: subclasses define ``kind``, their fields and ``_at(frame, n)``."""

    kind: ClassVar[str] = ""
    continual: ClassVar[bool] = True

    def to_dict(self) -> dict[str, Any]:
        """Serialisable spec; ``make_schedule(s.to_dict())`` rebuilds an equal schedule."""
        d: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def _at(self, frame: int, n: int) -> tuple[str | None, float, str, dict | None]:
        raise NotImplementedError

    def state(self, frame_index: int, n_frames: int) -> ShiftState:
        """The shift at ``frame_index`` of a stream of ``n_frames`` frames."""
        n = _check_count("n_frames", n_frames, allow_none=False)
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)):
            raise TypeError(f"frame_index must be an int, got {type(frame_index).__name__}")
        if not 0 <= frame_index < n:
            raise ValueError(f"frame_index must lie in [0, {n - 1}], got {frame_index}")
        segs = self.segments(n)
        seg = bisect.bisect_right([a for a, _, _ in segs], int(frame_index)) - 1
        corr, sev, _, world = self._at(int(frame_index), n)
        return ShiftState(corr, float(sev), seg, segs[seg][2], world)

    def segments(self, n_frames: int) -> list[tuple[int, int, str]]:
        """Contiguous (start, stop, label) pieces covering the stream, for per-segment metrics."""
        n = _check_count("n_frames", n_frames, allow_none=False)
        cache = self.__dict__.setdefault("_segments_cache", {})  # frozen: bypass __setattr__
        if n not in cache:
            cache[n] = _runs([self._at(i, n)[2] for i in range(n)])
        return list(cache[n])


def _schedule(cls: type[Schedule]) -> type[Schedule]:
    SCHEDULES.register(cls, name=cls.kind)
    return cls


@_schedule
@dataclass(frozen=True)
class Static(Schedule):
    kind: ClassVar[str] = "static"
    continual: ClassVar[bool] = False
    corruption: str | dict = "gaussian_noise"  # a name, or an albumentations shift spec
    severity: float = 3

    def __post_init__(self) -> None:
        if albu.is_spec(self.corruption):
            try:
                object.__setattr__(self, "corruption", albu.resolved(self.corruption))
            except ValueError as exc:
                raise ValueError(f"schedule field 'corruption': {exc}") from None
        else:
            _check_corruption(self.corruption)
        object.__setattr__(self, "severity", _check_sev("severity", self.severity))

    def _at(self, frame, n):
        name = self.corruption["label"] if albu.is_spec(self.corruption) else self.corruption
        return self.corruption, self.severity, f"{name} s{self.severity:g}", None


@_schedule
@dataclass(frozen=True)
class Gradual(Schedule):
    kind: ClassVar[str] = "gradual"
    corruption: str = "gaussian_noise"
    period: int | None = None
    min_severity: float = 1
    max_severity: float = 5
    discrete: bool = False

    def __post_init__(self) -> None:
        _check_corruption(self.corruption)
        _check_count("period", self.period)
        lo = _check_sev("min_severity", self.min_severity)
        hi = _check_sev("max_severity", self.max_severity)
        if lo > hi:
            raise ValueError(f"schedule field 'min_severity' ({lo:g}) exceeds 'max_severity'")
        if not isinstance(self.discrete, bool):
            raise ValueError(
                f"schedule field 'discrete' must be true or false, got {self.discrete!r}"
            )
        object.__setattr__(self, "min_severity", lo)
        object.__setattr__(self, "max_severity", hi)

    def _at(self, frame, n):
        period = self.period or n
        phase = (frame % period) / max(period - 1, 1) if period > 1 else 0.0
        tri = 1 - abs(2 * phase - 1)  # 0 -> 1 -> 0
        sev = self.min_severity + tri * (self.max_severity - self.min_severity)
        if self.discrete:
            # Equal-length integer steps: 1 2 3 4 5 4 3 2 1 for the default range.
            lo, hi = round(self.min_severity), round(self.max_severity)
            k = 2 * (hi - lo) + 1
            idx = min(int(phase * k), k - 1)
            sev = float(lo + (hi - lo) - abs(idx - (hi - lo)))
        return self.corruption, sev, f"{self.corruption} s{round(sev)}", None


@dataclass(frozen=True)
class _CorruptionSequence(Schedule):
    """Base of the schedules that pick among several corruptions at one severity."""

    corruptions: tuple[str, ...] = IMAGENET_C
    severity: float = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "corruptions", _check_corruption_list(self.corruptions))
        object.__setattr__(self, "severity", _check_sev("severity", self.severity))


@_schedule
@dataclass(frozen=True)
class Continual(_CorruptionSequence):
    kind: ClassVar[str] = "continual"
    frames_per: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_count("frames_per", self.frames_per)

    def _at(self, frame, n):
        k = len(self.corruptions)
        per = self.frames_per or max(1, n // k)
        block = frame // per
        if self.frames_per is None:
            block = min(block, k - 1)  # the remainder frames stay with the last corruption
        c = self.corruptions[block % k]
        rnd = block // k
        return c, self.severity, c if rnd == 0 else f"{c} round {rnd + 1}", None


@_schedule
@dataclass(frozen=True)
class Mixed(_CorruptionSequence):
    kind: ClassVar[str] = "mixed"
    seed: int = 0
    hold: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"schedule field 'seed' must be an int, got {self.seed!r}")
        if self.seed < 0:
            raise ValueError(f"schedule field 'seed' must be >= 0, got {self.seed!r}")
        _check_count("hold", self.hold, allow_none=False)

    def _at(self, frame, n):
        rng = np.random.default_rng([int(self.seed), frame // self.hold])
        c = self.corruptions[int(rng.integers(len(self.corruptions)))]
        return c, self.severity, c, None


def _ramp_window(start: float, stop: float, frame: int, n: int) -> tuple[float, str]:
    """Progress in [0, 1] through the window [start, stop) (fractions of the stream)."""
    a, b = start * n, stop * n
    pos = frame + 0.5
    if pos < a:
        return 0.0, "before"
    if pos >= b:
        return 1.0, "after"
    return (pos - a) / max(b - a, 1e-9), "ramp"


@_schedule
@dataclass(frozen=True)
class Transition(Schedule):
    kind: ClassVar[str] = "transition"
    corruption: str = "fog"
    curve: str = "sigmoid"
    from_severity: float = 0
    to_severity: float = 5
    start: float = 0.25
    stop: float = 0.75

    def __post_init__(self) -> None:
        _check_corruption(self.corruption)
        _check_curve(self.curve)
        object.__setattr__(self, "from_severity", _check_sev("from_severity", self.from_severity))
        object.__setattr__(self, "to_severity", _check_sev("to_severity", self.to_severity))
        a, b = _check_fraction("start", self.start), _check_fraction("stop", self.stop)
        if a >= b:
            raise ValueError(f"schedule field 'start' ({a:g}) must be below 'stop' ({b:g})")

    def _at(self, frame, n):
        t, phase = _ramp_window(self.start, self.stop, frame, n)
        sev = self.from_severity + curve(self.curve, t) * (self.to_severity - self.from_severity)
        return self.corruption, sev, f"{self.corruption} {phase}", None


@_schedule
@dataclass(frozen=True)
class DriftAndReturn(Schedule):
    kind: ClassVar[str] = "drift_and_return"
    corruption: str = "fog"
    severity: float = 5
    curve: str = "linear"
    hold: float = 0.2

    def __post_init__(self) -> None:
        _check_corruption(self.corruption)
        _check_curve(self.curve)
        object.__setattr__(self, "severity", _check_sev("severity", self.severity))
        if _check_fraction("hold", self.hold) >= 1.0:
            raise ValueError(f"schedule field 'hold' must be below 1, got {self.hold!r}")

    def _at(self, frame, n):
        ramp = (1 - self.hold) / 2
        t = (frame + 0.5) / n
        if t < ramp:
            u, phase = t / ramp, "drift"
        elif t < ramp + self.hold:
            u, phase = 1.0, "peak"
        else:
            u, phase = max(0.0, 1 - (t - ramp - self.hold) / ramp), "return"
        return (
            self.corruption,
            curve(self.curve, u) * self.severity,
            f"{self.corruption} {phase}",
            None,
        )


# --- in-sim world schedules -------------------------------------------------------------------

# Weather fields (sim.Weather, 0-100 scales) at the two ends of each world shift.
WORLD_SHIFTS: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "day_to_night": ({"sun_altitude_deg": 55.0}, {"sun_altitude_deg": -25.0}),
    "clear_to_fog": ({"fog_density": 0.0, "cloudiness": 10.0},
                     {"fog_density": 60.0, "cloudiness": 90.0}),
    "clear_to_rain": ({"precipitation": 0.0, "wetness": 0.0, "cloudiness": 10.0,
                       "wind_intensity": 10.0},
                      {"precipitation": 95.0, "wetness": 100.0, "cloudiness": 100.0,
                       "wind_intensity": 60.0}),
}  # fmt: skip


@dataclass(frozen=True)
class _WorldSchedule(Schedule):
    curve: str = "linear"
    start: float = 0.0
    stop: float = 1.0
    end: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_curve(self.curve)
        a, b = _check_fraction("start", self.start), _check_fraction("stop", self.stop)
        if a >= b:
            raise ValueError(f"schedule field 'start' ({a:g}) must be below 'stop' ({b:g})")
        if not isinstance(self.end, dict):
            raise ValueError("schedule field 'end' must be a dict of weather fields")
        valid = tuple(WORLD_SHIFTS[self.kind][1])
        for k, v in self.end.items():
            if k not in valid:
                raise ValueError(
                    f"schedule field 'end' has unknown key {k!r}; valid: {', '.join(valid)}"
                )
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"schedule field 'end.{k}' must be a number, got {v!r}")

    def endpoints(self) -> tuple[dict[str, float], dict[str, float]]:
        a, b = WORLD_SHIFTS[self.kind]
        return a, {**b, **{k: float(v) for k, v in self.end.items()}}

    def _at(self, frame, n):
        t, phase = _ramp_window(self.start, self.stop, frame, n)
        u = curve(self.curve, t)
        a, b = self.endpoints()
        world = {k: a[k] + u * (b[k] - a[k]) for k in a}
        return None, 5.0 * u, f"{self.kind} {phase}", world


@_schedule
@dataclass(frozen=True)
class DayToNight(_WorldSchedule):
    kind: ClassVar[str] = "day_to_night"


@_schedule
@dataclass(frozen=True)
class ClearToFog(_WorldSchedule):
    kind: ClassVar[str] = "clear_to_fog"


@_schedule
@dataclass(frozen=True)
class ClearToRain(_WorldSchedule):
    kind: ClassVar[str] = "clear_to_rain"


def schedule_kinds() -> list[str]:
    """Names of the schedule kinds."""
    return SCHEDULES.names()


def make_schedule(spec: dict | str | Schedule) -> Schedule:
    """Build a schedule from a dict (``kind`` plus fields), a kind name, a corruption name
    (static at severity 3) or a Schedule (returned as is)."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        if spec in SCHEDULES:
            return SCHEDULES.get(spec)()
        if spec in corruption_names():
            return Static(corruption=spec)
        raise ValueError(
            f"schedule {spec!r} is neither a schedule kind ({', '.join(schedule_kinds())}) "
            "nor a corruption name"
        )
    if not isinstance(spec, dict):
        raise TypeError(
            f"schedule spec must be a dict, a kind name or a Schedule, got {type(spec).__name__}"
        )
    data = dict(spec)
    kind = data.pop("kind", None)
    if kind is None:
        raise ValueError(
            f"schedule spec needs a 'kind'; valid kinds: {', '.join(schedule_kinds())}"
        )
    try:
        cls = SCHEDULES.get(kind)
    except ValueError as err:
        raise ValueError(f"schedule field 'kind': {err}") from None
    valid = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in valid:
            raise ValueError(
                f"unknown field {k!r} for schedule kind {kind!r}; valid fields: {', '.join(valid)}"
            )
    if isinstance(data.get("corruptions"), list):
        data["corruptions"] = tuple(data["corruptions"])
    return cls(**data)
