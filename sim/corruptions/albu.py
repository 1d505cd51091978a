"""albumentations transforms and saved pipelines as shifts.

A *shift spec* is a dict that stands wherever a corruption name does (``sim.corrupt``,
``sim.corrupt_frame``, ``sim.CorruptionWrapper``, a scenario's ``corruptions:`` list):

- ``{albumentations: RandomRain, params: {...}}``: one transform with the same parameters at
  every severity, or ``params: [{...}, {...}, {...}, {...}, {...}]``, one dict per severity
  1-5 (a list, not a dict keyed by severity: YAML keys 1..5 and parameter names would be
  ambiguous). ``p`` defaults to 1 (albumentations' own default is often 0.5, which would
  leave half the frames clean); set it to keep another.
- ``{albumentations_file: pipeline.yaml}`` (or ``.json``; a file ``A.save`` wrote), or a list
  of five such files, one per severity. Paths are relative to the working directory; the
  resolved spec carries the pipelines themselves (``pipelines:``), so workers need no file.
- ``label:`` optional: the name cells, tables and figures use (default: the transform's name
  or the file's stem); it may not be a registered corruption's name.

Severity: integers pick their level. Between levels numeric parameters interpolate linearly
(lists and tuples element-wise); parameters that are not numbers, and saved pipelines, take
the nearest level (ties upwards). Below 1, the level-1 result is blended with the clean image
in proportion to the severity (image-only transforms; geometric ones use level 1 as is).

Geometric (dual) transforms move the labels (255 where undefined) and the depth (NaN where
undefined) with the image. Randomness: every call seeds the pipeline from the caller's
generator (``Compose.set_random_seed``), so the same seed gives the same bits and global
seeds play no part. albumentations is imported on first use (``NO_ALBUMENTATIONS_UPDATE=1``
is set first: nothing is fetched from the network).
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from sim.common.names import unknown_name

FAMILY = "albumentations"
SPEC_KEYS = ("albumentations", "albumentations_file", "params", "pipelines", "label")


class ShiftSpecError(ValueError):
    """An albumentations shift spec that cannot run; one line naming the field."""


def albumentations() -> Any:
    """The albumentations module, imported with its update check switched off."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations as alb

    return alb


def is_spec(value: Any) -> bool:
    """True for a dict shift spec (a corruption given as data rather than by name)."""
    return isinstance(value, dict)


def _transform_names(alb: Any) -> list[str]:
    return sorted(
        n
        for n in dir(alb)
        if isinstance(getattr(alb, n), type)
        and issubclass(getattr(alb, n), alb.BasicTransform)
        and not n.startswith("_")
        and not inspect.isabstract(getattr(alb, n))
        and n not in ("BasicTransform", "DualTransform", "ImageOnlyTransform", "NoOp")
    )


def _check_params(alb: Any, name: str, params: Any, field: str) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise ShiftSpecError(f"{field}: must be a mapping of {name} parameters, got {params!r}")
    cls = getattr(alb, name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self",)]
    valid = [p for p in valid if p not in ("args", "kwargs")]
    for key in params:
        if key not in valid:
            # albumentations only warns about unknown (e.g. 1.x) names and ignores them
            raise ShiftSpecError(f"{field}.{key}: {unknown_name(f'{name} parameter', key, valid)}")
    full = {"p": 1.0, **params}
    try:
        cls(**full)
    except Exception as exc:  # pydantic validation errors and the transforms' own checks
        msg = " ".join(str(exc).split())
        raise ShiftSpecError(f"{field}: {name}({_short(params)}) is invalid: {msg}") from None
    return full


def _short(params: dict[str, Any], limit: int = 60) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _levels(value: Any, field: str) -> list[Any]:
    """One item per severity: a single item repeats; a list must hold five."""
    if isinstance(value, list):
        if len(value) != 5:
            raise ShiftSpecError(
                f"{field}: a list gives one entry per severity 1-5 and must hold 5, "
                f"got {len(value)}"
            )
        return value
    return [value] * 5


def _load_pipeline(alb: Any, path: Any, field: str) -> dict[str, Any]:
    if not isinstance(path, str):
        raise ShiftSpecError(f"{field}: must be a path to an A.save file, got {path!r}")
    p = Path(path)
    fmt = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}.get(p.suffix.lower())
    if fmt is None:
        raise ShiftSpecError(f"{field}: {path!r} must end in .yaml, .yml or .json")
    if not p.is_file():
        raise ShiftSpecError(f"{field}: no such file {path!r}")
    try:
        pipeline = alb.load(str(p), data_format=fmt)
    except Exception as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise ShiftSpecError(f"{field}: cannot load an albumentations pipeline: {msg}") from None
    return alb.to_dict(pipeline)


def resolve_spec(spec: Any, field: str = "corruption") -> dict[str, Any]:
    """The validated, self-contained form of a shift spec (idempotent).

    ``{label, albumentations, params: [5 dicts]}`` or ``{label, albumentations_file,
    pipelines: [5 A.to_dict dicts]}``. Raises :class:`ShiftSpecError` naming the field.
    """
    if not isinstance(spec, dict):
        raise ShiftSpecError(f"{field}: a shift spec is a mapping, got {spec!r}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise ShiftSpecError(
            f"{field}.{unknown[0]}: unknown key; valid keys: {', '.join(SPEC_KEYS)}"
        )
    kinds = [k for k in ("albumentations", "albumentations_file", "pipelines") if k in spec]
    if not kinds or (len(kinds) > 1 and set(kinds) != {"albumentations_file", "pipelines"}):
        raise ShiftSpecError(
            f"{field}: give exactly one of albumentations: <transform name> or "
            "albumentations_file: <A.save file>"
        )
    label = spec.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise ShiftSpecError(f"{field}.label: must be a non-empty string, got {label!r}")
    alb = albumentations()
    if "albumentations" in spec:
        name = spec["albumentations"]
        names = _transform_names(alb)
        if name not in names:
            raise ShiftSpecError(
                f"{field}.albumentations: {unknown_name('albumentations transform', name, names)}"
            )
        given = spec.get("params", {})
        levels = _levels(given, f"{field}.params")
        where = [
            f"{field}.params" + (f"[{i}]" if isinstance(given, list) else "") for i in range(5)
        ]
        params = [_check_params(alb, name, p, at) for p, at in zip(levels, where, strict=True)]
        out = {"label": label or name, "albumentations": name, "params": params}
    else:
        if "params" in spec:
            raise ShiftSpecError(f"{field}.params: only for albumentations: <transform name>")
        if "pipelines" in spec:
            pipes = _levels(spec["pipelines"], f"{field}.pipelines")
            for i, d in enumerate(pipes):
                try:
                    alb.from_dict(d)
                except Exception as exc:
                    msg = " ".join(str(exc).split()) or type(exc).__name__
                    raise ShiftSpecError(f"{field}.pipelines[{i}]: not a pipeline: {msg}") from None
        else:
            files = _levels(spec["albumentations_file"], f"{field}.albumentations_file")
            pipes = [_load_pipeline(alb, f, f"{field}.albumentations_file") for f in files]
        source = spec.get("albumentations_file")
        default = Path(source if isinstance(source, str) else (source or ["pipeline"])[0]).stem
        out = {"label": label or default, "albumentations_file": source, "pipelines": pipes}
    return json.loads(json.dumps(out))  # plain data: tuples become lists, as YAML stores them


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@functools.lru_cache(maxsize=64)
def _resolved(spec_json: str) -> dict[str, Any]:
    return resolve_spec(json.loads(spec_json))


def resolved(spec: dict[str, Any]) -> dict[str, Any]:
    """``resolve_spec`` once per process and spec (a stream calls it for every frame)."""
    return _resolved(_key(spec))


@functools.lru_cache(maxsize=32)
def _compose(level_json: str, kind: str) -> Any:
    alb = albumentations()
    level = json.loads(level_json)
    if kind == "transform":
        name, params = level
        return alb.Compose([getattr(alb, name)(**params)])
    pipeline = alb.from_dict(level)
    return pipeline if isinstance(pipeline, alb.Compose) else alb.Compose([pipeline])


def _transforms(compose: Any) -> list[Any]:
    out = []
    for t in compose.transforms:
        out += _transforms(t) if hasattr(t, "transforms") else [t]
    return out


@functools.lru_cache(maxsize=32)
def _moves_pixels(level_json: str, kind: str) -> bool:
    alb = albumentations()
    return any(isinstance(t, alb.DualTransform) for t in _transforms(_compose(level_json, kind)))


def _lerp(a: Any, b: Any, f: float) -> Any:
    """Numbers interpolate; lists/tuples element-wise; anything else: the nearer level."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a if f < 0.5 else b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        v = (1 - f) * a + f * b
        return round(v) if isinstance(a, int) and isinstance(b, int) else v
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return type(a)(_lerp(x, y, f) for x, y in zip(a, b, strict=True))
    return a if f < 0.5 else b


def _level(spec: dict[str, Any], severity: float) -> tuple[str, str]:
    """(JSON of the level's transform or pipeline, kind) for a severity in (0, 5]."""
    s = max(severity, 1.0)
    lo = min(math.floor(s), 5)
    hi = min(lo + 1, 5)
    f = s - lo
    if "params" in spec:
        a, b = spec["params"][lo - 1], spec["params"][hi - 1]
        keys = list(dict.fromkeys([*a, *b]))
        params = {k: _lerp(a.get(k, b.get(k)), b.get(k, a.get(k)), f) for k in keys}
        return _key([spec["albumentations"], params]), "transform"
    return _key(spec["pipelines"][(hi if f >= 0.5 else lo) - 1]), "pipeline"


def moves_pixels(spec: dict[str, Any]) -> bool:
    """Whether any level of the spec holds a geometric (dual) transform."""
    return any(_moves_pixels(*_level(spec, s)) for s in (1, 2, 3, 4, 5))


def apply(
    spec: dict[str, Any],
    image: np.ndarray,
    semantic: np.ndarray | None,
    depth: np.ndarray | None,
    severity: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Run a resolved spec on a uint8 RGB frame; labels and depth move with dual transforms."""
    level_json, kind = _level(spec, severity)
    compose = _compose(level_json, kind)
    compose.set_random_seed(int(rng.integers(2**31 - 1)))
    dual = _moves_pixels(level_json, kind)
    if not dual:
        out = compose(image=image)["image"]
        if severity < 1:
            out = np.clip(
                (1 - severity) * image.astype(np.float32) + severity * out + 0.5, 0, 255
            ).astype(np.uint8)
        return np.ascontiguousarray(out, dtype=np.uint8), semantic, depth
    h, w = image.shape[:2]
    masks = [np.ones((h, w), np.float32)]  # validity: 0 where pixels came from outside
    if semantic is not None:
        masks.append(semantic.astype(np.float32))
    if depth is not None:
        masks.append(np.asarray(depth, np.float32))
    res = compose(image=image, masks=masks)
    out = np.ascontiguousarray(res["image"], dtype=np.uint8)
    moved = [np.asarray(m) for m in res["masks"]]
    if out.shape[:2] != (h, w):
        raise ValueError(
            f"albumentations shift {spec.get('label')!r} changed the frame size to "
            f"{out.shape[:2]}; shifts must keep (H, W) = {(h, w)}"
        )
    valid = moved[0] > 0.5
    k = 1
    if semantic is not None:
        semantic = np.where(valid, np.rint(moved[k]), 255).astype(np.uint8)
        k += 1
    if depth is not None:
        depth = np.where(valid, moved[k], np.nan).astype(np.float32)
    return out, semantic, depth
