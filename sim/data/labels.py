"""Label files to Cityscapes trainIds: the official labelIds table, colour palettes, label maps.

Every dataset reader ends in the suite's label space (``sim.common.classes``: trainIds 0..18,
255 = ignore). Label files come as trainIds, as Cityscapes labelIds (mapped by the official
table below), as colour images (mapped by a palette), or in another id set mapped by a
user's ``label_map`` (ids the map does not name become 255).

The table is the one of cityscapesScripts' ``helpers/labels.py`` (Cordts et al. 2016): 34
labelIds (0..33) and the license plate (id -1, never written into label images).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from sim.common.classes import IGNORE_INDEX, NUM_CLASSES, PALETTE_RGB
from sim.data.errors import DataError

__all__ = [
    "CITYSCAPES_LABELS",
    "LABEL_KINDS",
    "CityscapesLabel",
    "LabelDecoder",
    "labelid_to_trainid",
]


class CityscapesLabel(NamedTuple):
    """One row of the official table: name, labelId, trainId and colour."""

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


_I = IGNORE_INDEX
#: The official Cityscapes label table (cityscapesScripts, ``helpers/labels.py``).
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = tuple(
    CityscapesLabel(*row)
    for row in (
        ("unlabeled", 0, _I, (0, 0, 0)),
        ("ego vehicle", 1, _I, (0, 0, 0)),
        ("rectification border", 2, _I, (0, 0, 0)),
        ("out of roi", 3, _I, (0, 0, 0)),
        ("static", 4, _I, (0, 0, 0)),
        ("dynamic", 5, _I, (111, 74, 0)),
        ("ground", 6, _I, (81, 0, 81)),
        ("road", 7, 0, (128, 64, 128)),
        ("sidewalk", 8, 1, (244, 35, 232)),
        ("parking", 9, _I, (250, 170, 160)),
        ("rail track", 10, _I, (230, 150, 140)),
        ("building", 11, 2, (70, 70, 70)),
        ("wall", 12, 3, (102, 102, 156)),
        ("fence", 13, 4, (190, 153, 153)),
        ("guard rail", 14, _I, (180, 165, 180)),
        ("bridge", 15, _I, (150, 100, 100)),
        ("tunnel", 16, _I, (150, 120, 90)),
        ("pole", 17, 5, (153, 153, 153)),
        ("polegroup", 18, _I, (153, 153, 153)),
        ("traffic light", 19, 6, (250, 170, 30)),
        ("traffic sign", 20, 7, (220, 220, 0)),
        ("vegetation", 21, 8, (107, 142, 35)),
        ("terrain", 22, 9, (152, 251, 152)),
        ("sky", 23, 10, (70, 130, 180)),
        ("person", 24, 11, (220, 20, 60)),
        ("rider", 25, 12, (255, 0, 0)),
        ("car", 26, 13, (0, 0, 142)),
        ("truck", 27, 14, (0, 0, 70)),
        ("bus", 28, 15, (0, 60, 100)),
        ("caravan", 29, _I, (0, 0, 90)),
        ("trailer", 30, _I, (0, 0, 110)),
        ("train", 31, 16, (0, 80, 100)),
        ("motorcycle", 32, 17, (0, 0, 230)),
        ("bicycle", 33, 18, (119, 11, 32)),
        ("license plate", -1, -1, (0, 0, 142)),
    )
)

#: How label files encode classes (``labels:`` in a data spec; ``auto`` decides per file:
#: one channel is ids, three channels are colours).
LABEL_KINDS: tuple[str, ...] = ("auto", "trainids", "labelids", "colour", "none")

# Label files may be 8- or 16-bit: lookup tables cover every 16-bit value.
_TRAIN_IDS_VALID = np.zeros(65536, bool)
_TRAIN_IDS_VALID[:NUM_CLASSES] = True
_TRAIN_IDS_VALID[IGNORE_INDEX] = True
_IDENTITY = (np.arange(65536) % 256).astype(np.uint8)  # only valid (< 256) entries are used


def labelid_to_trainid() -> dict[int, int]:
    """The official labelId -> trainId mapping over the 34 labelIds a label image may hold."""
    return {lab.id: lab.train_id for lab in CITYSCAPES_LABELS if lab.id >= 0}


def _lut(mapping: Mapping[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A 65536-entry lookup table (uint16 label files) and which entries the map names."""
    lut = np.full(65536, IGNORE_INDEX, np.uint8)
    named = np.zeros(65536, bool)
    for k, v in mapping.items():
        lut[k] = v
        named[k] = True
    return lut, named


def _default_palette() -> dict[tuple[int, int, int], int]:
    """Colour -> trainId for Cityscapes colour images: the 19 training colours, and every other
    colour of the official table as ignore (void classes, parking, guard rail, ...). Where two
    labels share a colour the one defined first wins, as in cityscapesScripts (pole before
    polegroup, car before license plate)."""
    palette: dict[tuple[int, int, int], int] = {}
    for lab in CITYSCAPES_LABELS:
        palette.setdefault(lab.color, lab.train_id if lab.train_id >= 0 else IGNORE_INDEX)
    for train_id, rgb in enumerate(PALETTE_RGB):  # the suite's palette is the official one
        assert palette[rgb] == train_id
    return palette


_LABELID_LUT, _LABELID_VALID = _lut(labelid_to_trainid())


def _colour_key(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


class LabelDecoder:
    """Turns label arrays read from files into trainIds, or explains in one line why not.

    ``kind``: one of ``LABEL_KINDS`` (not ``none``). ``label_map``: {file id: trainId} for
    datasets with another id set; ids it does not name become 255. ``palette``: {trainId:
    [r, g, b]} for colour labels in another palette (default: the official Cityscapes colours).
    """

    def __init__(
        self,
        kind: str = "auto",
        label_map: Mapping[int, int] | None = None,
        palette: Mapping[int, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.label_map = None if label_map is None else dict(label_map)
        self._map_lut = None if label_map is None else _lut(label_map)[0]
        if palette is None:
            colours = _default_palette()
        else:
            colours = {tuple(int(c) for c in rgb): int(tid) for tid, rgb in palette.items()}
        self._colour_keys = np.array(
            sorted(_colour_key(np.array(c, np.uint32)) for c in colours), np.uint32
        )
        by_key = {int(_colour_key(np.array(c, np.uint32))): t for c, t in colours.items()}
        self._colour_ids = np.array([by_key[int(k)] for k in self._colour_keys], np.uint8)

    def stores_train_ids(self, raw: np.ndarray, kind: str | None = None) -> bool:
        """Whether ``raw`` already is its decoding (8-bit trainIds, no label map), so a copy
        of its file is a trainIds file."""
        kind = kind or self.kind
        return (
            kind in ("auto", "trainids")
            and raw.ndim == 2
            and raw.dtype == np.uint8
            and self._map_lut is None
        )

    def decode(self, raw: np.ndarray, where: str, kind: str | None = None) -> np.ndarray:
        """``raw`` (a label file as read: (H, W) ids or (H, W, 3) RGB) as uint8 trainIds.

        ``kind`` overrides the decoder's own (a layout knows which file it found). Raises
        ``DataError`` naming ``where`` and the values that are outside the encoding.
        """
        kind = kind or self.kind
        if kind == "auto":
            kind = "colour" if raw.ndim == 3 else "trainids"
        if kind == "colour":
            if raw.ndim != 3 or raw.shape[2] != 3:
                raise DataError(f"{where}: colour labels must be RGB images, got {raw.shape}")
            return self._decode_colour(raw, where)
        if raw.ndim != 2:
            raise DataError(
                f"{where}: id labels must be single-channel images, got shape {raw.shape} "
                "(colour labels: labels: colour)"
            )
        if raw.dtype not in (np.uint8, np.uint16):
            raise DataError(f"{where}: label images must be 8- or 16-bit, got {raw.dtype}")
        if self._map_lut is not None:
            return self._map_lut[raw]
        if kind == "labelids":
            return self._checked(raw, _LABELID_LUT, _LABELID_VALID, where,
                                 "Cityscapes labelIds 0..33")  # fmt: skip
        return self._checked(raw, _IDENTITY, _TRAIN_IDS_VALID, where,
                             f"trainIds 0..{NUM_CLASSES - 1} and {IGNORE_INDEX}")  # fmt: skip

    @staticmethod
    def _checked(
        raw: np.ndarray, lut: np.ndarray, valid: np.ndarray, where: str, expected: str
    ) -> np.ndarray:
        bad = ~valid[raw]
        if bad.any():
            values = np.unique(raw[bad])
            shown = ", ".join(str(int(v)) for v in values[:8]) + (" ..." if len(values) > 8 else "")
            raise DataError(
                f"{where}: label values {shown} are outside {expected}; "
                "give label_map: {id: trainId} for another id set"
            )
        return lut[raw]

    def _decode_colour(self, rgb: np.ndarray, where: str) -> np.ndarray:
        keys = _colour_key(rgb)
        pos = np.searchsorted(self._colour_keys, keys).clip(0, len(self._colour_keys) - 1)
        found = self._colour_keys[pos] == keys
        if not found.all():
            y, x = np.argwhere(~found)[0]
            r, g, b = (int(v) for v in rgb[y, x])
            raise DataError(
                f"{where}: colour ({r}, {g}, {b}) at row {y}, column {x} is not in the palette "
                "(default: the official Cityscapes colours; give palette: {trainId: [r, g, b]})"
            )
        return self._colour_ids[pos]
