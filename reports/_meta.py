"""The run-metadata contract: what the runner records beside the results, and all a report reads.

A report must be rebuilt from the run folder alone, byte for byte, whatever the installed library
has become since (a corruption renamed or regrouped, a plug-in uninstalled, the palette changed).
So the runner writes, at the start of every run, everything a report needs to name and group what
it shows; ``reports`` reads it from here and never imports ``sim``, ``perception`` or
``scenarios``.

Meta keys (``meta`` table of ``results.sqlite``, JSON values), ``meta_version`` 3:

- ``meta_version``: 3; a folder without it was written by roadshift 0.1's runner (version 1).
- ``protocol``: how adapters meet the shifts, one of :data:`PROTOCOLS`; ``protocol_plan``:
  ``{rounds, orders: [[shift label, ...] per order], shifts: [{label, corruption, severity}],
  stream_frames}``.
- ``stream``: ``{sampling, frames_per_segment, batch_size, window, iid, label_shift}``: where
  the frames come from (``iid``: ``{drives, frames_per_drive, spacing}`` or null;
  ``label_shift``: ``[{label, world}]`` or null).
- ``online``: null, or the compute-aware settings and the cost ratios measured once for the
  run: ``{eta, fps, fallback, batch_frames, source_ms_per_batch, ms_per_batch, cost_ratio,
  skipped_batches, calibration}``.
- ``forgetting``: null, or the held-out clean source-domain frames scored after each stream:
  ``{frames, batch_size, towns, seeds, time_of_day, weather}``.
- ``recovery`` (``{window, band, final_fraction}``) and ``collapse`` (``{class_ratio,
  entropy}``): the definitions behind the segments' ``recovery_frames`` and ``collapse``.
- ``baseline``: label of the reference method for gain, CE and mCE (the scenario's
  ``baseline:``, by default the first method named ``source``), or null.
- ``methods``: ``[{label, name, options}]`` in scenario order; cells use the label.
- ``class_names``: the label space, one name per trainId; ``palette``: one ``[r, g, b]`` each.
- ``corruption_families``: corruption name -> family, for every corruption a cell or a schedule
  segment can show.
- ``cell_id_format``: how cell ids are made (:func:`make_cell_id` is the one implementation).
- ``compute``: ``{executor, workers, torch_threads}``, the conditions of the stored timings.
- ``scenario`` (resolved, plain data), ``model`` (name, weights, parameter count, clean
  validation mIoU, checkpoint metadata), ``versions``, ``seeds`` (how random draws are derived),
  ``expected_cells`` (run order), ``started_at``, ``finished_at`` (null until every cell is
  stored), ``wall_seconds``.

Version 1 folders are read with the defaults 0.1 implied: baseline ``source`` when such a method
ran, protocol ``reset_each_shift``, no palette (the report then colours classes with a fixed
neutral palette and says so). Version 2 folders have no protocol keys beyond ``protocol``: they
read as ``reset_each_shift`` on video streams, with no online evaluation and no forgetting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CELL_ID_FORMAT",
    "META_VERSION",
    "PROTOCOLS",
    "VIDEO_STREAM",
    "MetaError",
    "RunMeta",
    "is_cell_id",
    "make_cell_id",
]

META_VERSION = 3
#: Protocols a run may declare, and what each means.
PROTOCOLS = {
    "reset_each_shift": "every cell starts from a fresh adapter; a schedule stream carries one "
    "adapter through its segments",
    "continual": "one adapter carried through the shift list, round after round (each shift's "
    "segment shows the same frames every round), for each order of the list",
    "gradual": "one adapter carried through CoTTA's gradual schedule: the first corruption at "
    "severity 5 to 1, then 1 to 5 to 1 for each next one",
    "mixed": "one adapter on one stream holding every shift's frames, shuffled; batches mix shifts",
}
#: The default stream description of a folder that recorded none (version 2 and older).
VIDEO_STREAM = {"sampling": "video", "window": None, "iid": None, "label_shift": None}
CELL_ID_FORMAT = (
    "{method}__{corruption}__s{severity:g}__seed{seed}, characters outside [A-Za-z0-9_.+-] -> '-'"
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def make_cell_id(method: str, corruption: str, severity: float, seed: int) -> str:
    """The unique, filename-safe key of one cell: ``method__corruption__s<sev>__seed<seed>``."""
    raw = f"{method}__{corruption}__s{float(severity):g}__seed{int(seed)}"
    return _UNSAFE.sub("-", raw)


def is_cell_id(text: str) -> bool:
    """True for a string :func:`make_cell_id` could return (safe as a file name)."""
    return bool(text) and not text.startswith(".") and _UNSAFE.search(text) is None


class MetaError(ValueError):
    """Run metadata that breaks the contract (a bug in the writer, or a folder from the future)."""


@dataclass(frozen=True)
class RunMeta:
    """The contract's typed view: what the runner must state and what a report may rely on."""

    methods: tuple[Mapping[str, Any], ...]
    class_names: tuple[str, ...]
    corruption_families: Mapping[str, str]
    baseline: str | None = None
    palette: tuple[tuple[int, int, int], ...] | None = None
    protocol: str = "reset_each_shift"
    compute: Mapping[str, Any] = field(default_factory=dict)
    protocol_plan: Mapping[str, Any] = field(default_factory=dict)
    stream: Mapping[str, Any] = field(default_factory=lambda: dict(VIDEO_STREAM))
    online: Mapping[str, Any] | None = None
    forgetting: Mapping[str, Any] | None = None
    recovery: Mapping[str, Any] = field(default_factory=dict)
    collapse: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        methods = tuple(dict(m) for m in self.methods)
        for m in methods:
            if not isinstance(m.get("label"), str) or not m["label"]:
                raise MetaError(f"meta.methods: every method needs a label, got {m!r}")
        object.__setattr__(self, "methods", methods)
        labels = [m["label"] for m in methods]
        if self.baseline is not None and self.baseline not in labels:
            raise MetaError(
                f"meta.baseline: {self.baseline!r} is not a method of the run; "
                f"valid choices: {', '.join(labels)}"
            )
        names = tuple(str(n) for n in self.class_names)  # empty: a run that never started
        object.__setattr__(self, "class_names", names)
        if self.palette is not None:
            palette = tuple(tuple(int(v) for v in rgb) for rgb in self.palette)
            if len(palette) != len(names) or any(
                len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb) for rgb in palette
            ):
                raise MetaError(
                    f"meta.palette: needs one [r, g, b] in 0..255 per class ({len(names)})"
                )
            object.__setattr__(self, "palette", palette)
        families = {str(k): str(v) for k, v in dict(self.corruption_families).items()}
        object.__setattr__(self, "corruption_families", families)
        if not isinstance(self.protocol, str) or not self.protocol:
            raise MetaError(f"meta.protocol: must be a name, got {self.protocol!r}")
        for name in ("compute", "protocol_plan", "stream", "recovery", "collapse"):
            object.__setattr__(self, name, dict(getattr(self, name) or {}))
        for name in ("online", "forgetting"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else dict(value))

    @property
    def method_labels(self) -> list[str]:
        return [m["label"] for m in self.methods]

    def to_meta(self) -> dict[str, Any]:
        """The meta keys this contract owns, ready for ``ResultsStore.set_meta``."""
        return {
            "meta_version": META_VERSION,
            "protocol": self.protocol,
            "baseline": self.baseline,
            "methods": [dict(m) for m in self.methods],
            "class_names": list(self.class_names),
            "palette": None if self.palette is None else [list(rgb) for rgb in self.palette],
            "corruption_families": dict(self.corruption_families),
            "cell_id_format": CELL_ID_FORMAT,
            "compute": dict(self.compute),
            "protocol_plan": dict(self.protocol_plan),
            "stream": dict(self.stream),
            "online": None if self.online is None else dict(self.online),
            "forgetting": None if self.forgetting is None else dict(self.forgetting),
            "recovery": dict(self.recovery),
            "collapse": dict(self.collapse),
        }

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]] = ()) -> RunMeta:
        """Read the contract from a store's meta (upgrading a version 1 folder).

        ``cells`` (stored and expected) only serve version 1 folders, which did not list their
        methods: their method labels are taken from the scenario, then from the cells.
        """
        version = meta.get("meta_version") or 1
        if not isinstance(version, int) or version > META_VERSION:
            raise MetaError(
                f"meta_version: {version!r}; this roadshift reads run folders up to version "
                f"{META_VERSION} (upgrade roadshift to read this one)"
            )
        if version >= 2:
            return cls(
                methods=tuple(meta.get("methods") or ()),
                class_names=tuple(meta.get("class_names") or ()),
                corruption_families=meta.get("corruption_families") or {},
                baseline=meta.get("baseline"),
                palette=meta.get("palette"),
                protocol=meta.get("protocol") or "reset_each_shift",
                compute=meta.get("compute") or {},
                # version 3 keys; a version 2 folder ran video streams, offline, no forgetting
                protocol_plan=meta.get("protocol_plan") or {},
                stream=meta.get("stream") or dict(VIDEO_STREAM),
                online=meta.get("online"),
                forgetting=meta.get("forgetting"),
                recovery=meta.get("recovery") or {},
                collapse=meta.get("collapse") or {},
            )
        return cls._from_version_1(meta, cells)

    @classmethod
    def _from_version_1(
        cls, meta: Mapping[str, Any], cells: Sequence[Mapping[str, Any]]
    ) -> RunMeta:
        scenario = meta.get("scenario") if isinstance(meta.get("scenario"), dict) else {}
        labels: list[str] = []
        for m in scenario.get("methods") or []:
            label = (m.get("label") or m.get("name")) if isinstance(m, dict) else m
            if isinstance(label, str) and label not in labels:
                labels.append(label)
        for c in cells:
            if isinstance(c.get("method"), str) and c["method"] not in labels:
                labels.append(c["method"])
        families = meta.get("corruption_families") or meta.get("families") or {}
        return cls(
            methods=tuple({"label": label, "name": label, "options": {}} for label in labels),
            class_names=tuple(meta.get("class_names") or ()),
            corruption_families=families if isinstance(families, dict) else {},
            baseline="source" if "source" in labels else None,
        )
