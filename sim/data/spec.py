"""What a dataset on disk is: a data spec (root, layout, split, ...) and its one-line errors.

A spec is plain data (a scenario's ``data:`` mapping, the arguments of
``roadshift/FolderStream-v0``) validated here once, so every reader and every error speaks of
the same fields. ``${VAR}`` in a path reads an environment variable when the path is resolved
(bundled scenarios say ``${CITYSCAPES_ROOT}``), so a spec stays portable between machines.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.common.classes import IGNORE_INDEX, NUM_CLASSES
from sim.data.errors import DataError
from sim.data.labels import LABEL_KINDS

__all__ = ["DATA_LAYOUTS", "LAYOUT_EXPECTS", "DataError", "DataSpec", "expand_path"]

#: The dataset layouts roadshift reads.
DATA_LAYOUTS: tuple[str, ...] = ("cityscapes", "acdc", "pairs", "video")

#: What each layout expects on disk, for error messages (one line each).
LAYOUT_EXPECTS: dict[str, str] = {
    "cityscapes": "leftImg8bit/<split>/<city>/*_leftImg8bit.png with "
    "gtFine/<split>/<city>/*_gtFine_labelTrainIds.png (or *_gtFine_labelIds.png)",
    "acdc": "rgb_anon/<condition>/<split>/<sequence>/*_rgb_anon.png with "
    "gt/<condition>/<split>/<sequence>/*_gt_labelTrainIds.png (or *_gt_labelIds.png)",
    "pairs": "images/<stem>.png|.jpg with labels/<stem>.png (trainIds or colours) and optional "
    "depth/<stem>.png (16-bit, millimetres) or depth/<stem>.npy (metres)",
    "video": "a video file OpenCV can read, with optional masks: a folder holding one label "
    "PNG per frame",
}

#: The ACDC conditions in the order the CoTTA Cityscapes-to-ACDC protocol visits them.
ACDC_CONDITIONS: tuple[str, ...] = ("fog", "night", "rain", "snow")

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_path(text: str, field: str, expects: str = "") -> Path:
    """``text`` with ``${VAR}`` replaced by environment variables and ``~`` expanded.

    A variable that is not set is a ``DataError`` naming it and, via ``expects``, what the
    folder should hold.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        got = os.environ.get(name)
        if not got:
            hint = f" to the folder holding {expects}" if expects else ""
            raise DataError(
                f"{field} {text!r}: environment variable {name} is not set; set it{hint}"
            )
        return got

    return Path(os.path.expanduser(_VAR.sub(value, text)))


def _int_key(value: Any, field: str) -> int:
    """An id given as an int or a string of digits (JSON keys are strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise DataError(f"{field}: ids must be integers, got {value!r}")


def _check_train_id(value: Any, field: str) -> int:
    tid = _int_key(value, field)
    if not (0 <= tid < NUM_CLASSES or tid == IGNORE_INDEX):
        raise DataError(
            f"{field}: {value!r} is not a trainId; valid: 0..{NUM_CLASSES - 1} or {IGNORE_INDEX}"
        )
    return tid


@dataclass(frozen=True)
class DataSpec:
    """A dataset on disk.

    - ``root``: the dataset folder (for ``video``: the video file); ``${VAR}`` reads an
      environment variable.
    - ``layout``: one of ``DATA_LAYOUTS``.
    - ``split``: ``cityscapes`` and ``acdc`` only (default ``val``).
    - ``conditions``: ``acdc`` only: which conditions, in order (default: those present, in
      the order fog, night, rain, snow); each is a natural shift of its own.
    - ``labels``: how label files encode classes: ``auto`` (default: single-channel files are
      ids, RGB files colours), ``trainids``, ``labelids`` (Cityscapes ids, mapped by the
      official table), ``colour`` (mapped by ``palette``), or ``none`` (no labels: label-free
      signals only).
    - ``label_map``: {id: trainId} for label files in another id set; ids it does not name
      become 255 (ignore).
    - ``palette``: {trainId: [r, g, b]} for colour labels in another palette (default: the
      official Cityscapes colours).
    - ``masks``: ``video`` only: a folder with one label PNG per frame, in file-name order.
    """

    root: str
    layout: str
    split: str | None = None
    conditions: tuple[str, ...] | None = None
    labels: str = "auto"
    label_map: Mapping[int, int] | None = None
    palette: Mapping[int, tuple[int, int, int]] | None = None
    masks: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.root, (str, os.PathLike)) or not str(self.root).strip():
            raise DataError(f"root: must be a path, got {self.root!r}")
        object.__setattr__(self, "root", str(self.root))
        if self.layout not in DATA_LAYOUTS:
            raise DataError(
                f"layout: unknown layout {self.layout!r}; valid choices: {', '.join(DATA_LAYOUTS)}"
            )
        split_layouts = ("cityscapes", "acdc")
        if self.split is not None and self.layout not in split_layouts:
            raise DataError(f"split: only layouts {', '.join(split_layouts)} have splits")
        if self.split is None and self.layout in split_layouts:
            object.__setattr__(self, "split", "val")
        if self.split is not None and (not isinstance(self.split, str) or "/" in self.split):
            raise DataError(f"split: must be a folder name such as val, got {self.split!r}")
        if self.conditions is not None:
            if self.layout != "acdc":
                raise DataError("conditions: only layout acdc has conditions")
            conds = [self.conditions] if isinstance(self.conditions, str) else self.conditions
            if not conds or not all(isinstance(c, str) and c for c in conds):
                raise DataError(f"conditions: must be a list of names, got {self.conditions!r}")
            if len(set(conds)) != len(conds):
                raise DataError(f"conditions: {list(conds)} names a condition twice")
            object.__setattr__(self, "conditions", tuple(conds))
        if self.labels not in LABEL_KINDS:
            raise DataError(
                f"labels: unknown label encoding {self.labels!r}; valid choices: "
                f"{', '.join(LABEL_KINDS)}"
            )
        if self.masks is not None and self.layout != "video":
            raise DataError("masks: only layout video takes a masks folder")
        if self.label_map is not None:
            if not isinstance(self.label_map, Mapping) or not self.label_map:
                raise DataError(f"label_map: must map ids to trainIds, got {self.label_map!r}")
            lm = {}
            for k, v in self.label_map.items():
                key = _int_key(k, "label_map")
                if not 0 <= key < 65536:
                    raise DataError(f"label_map: id {k!r} is outside 0..65535 (8/16-bit labels)")
                lm[key] = _check_train_id(v, f"label_map[{k!r}]")
            object.__setattr__(self, "label_map", lm)
        if self.palette is not None:
            if not isinstance(self.palette, Mapping) or not self.palette:
                raise DataError(f"palette: must map trainIds to [r, g, b], got {self.palette!r}")
            pal: dict[int, tuple[int, int, int]] = {}
            seen: dict[tuple[int, int, int], int] = {}
            for k, rgb in self.palette.items():
                tid = _check_train_id(k, "palette")
                if (
                    not isinstance(rgb, (list, tuple))
                    or len(rgb) != 3
                    or not all(isinstance(c, int) and 0 <= c <= 255 for c in rgb)
                ):
                    raise DataError(f"palette[{k!r}]: must be [r, g, b] in 0..255, got {rgb!r}")
                colour = (int(rgb[0]), int(rgb[1]), int(rgb[2]))
                if colour in seen:
                    raise DataError(
                        f"palette: colour {list(colour)} given for {seen[colour]} and {tid}"
                    )
                seen[colour] = tid
                pal[tid] = colour
            object.__setattr__(self, "palette", pal)

    # ------------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_any(cls, value: DataSpec | Mapping[str, Any]) -> DataSpec:
        """A spec from a mapping (unknown keys are a ``DataError`` listing the valid ones)."""
        if isinstance(value, DataSpec):
            return value
        if not isinstance(value, Mapping):
            raise DataError(
                f"must be a mapping with root and layout ({', '.join(DATA_LAYOUTS)}), "
                f"got {type(value).__name__}"
            )
        valid = cls.fields()
        for key in value:
            if key not in valid:
                raise DataError(f"{key}: unknown key; valid keys: {', '.join(valid)}")
        for key in ("root", "layout"):
            if key not in value:
                raise DataError(f"{key}: required key is missing")
        return cls(**dict(value))

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (JSON/YAML): only the keys that differ from the defaults."""
        out: dict[str, Any] = {"root": self.root, "layout": self.layout}
        if self.split is not None:
            out["split"] = self.split
        if self.conditions is not None:
            out["conditions"] = list(self.conditions)
        if self.labels != "auto":
            out["labels"] = self.labels
        if self.label_map is not None:
            out["label_map"] = {int(k): int(v) for k, v in self.label_map.items()}
        if self.palette is not None:
            out["palette"] = {int(k): list(v) for k, v in self.palette.items()}
        if self.masks is not None:
            out["masks"] = self.masks
        return out

    @property
    def expects(self) -> str:
        """What this layout expects on disk (for messages)."""
        return LAYOUT_EXPECTS[self.layout]

    def root_path(self) -> Path:
        """The root with ``${VAR}`` and ``~`` expanded (``DataError`` for an unset variable)."""
        return expand_path(self.root, "root", self.expects)

    def masks_path(self) -> Path | None:
        return None if self.masks is None else expand_path(self.masks, "masks", "label PNGs")
