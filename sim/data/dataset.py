"""A dataset on disk as a sequence of frames: image, trainIds and depth, resized on request.

``FolderDataset(spec, height, width)`` finds the frames once (``sim.data.layouts``) and reads
one frame at a time, so a dataset of any length streams in constant memory. Frames are resized
to ``height x width`` (images with area averaging when shrinking, bilinear when enlarging;
labels and depth by nearest neighbour, so no class or distance is invented) or kept at their
native size when both are None. Ground truth is in the suite's conventions: uint8 trainIds
(255 = ignore), float32 metres with ``+inf`` for no depth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sim.data.files import read_depth, read_image, read_label
from sim.data.labels import LabelDecoder
from sim.data.layouts import Record, find_records
from sim.data.spec import DataError, DataSpec

__all__ = ["FolderDataset", "Sample", "check_size", "resize_frame"]


@dataclass
class Sample:
    """One frame: ``image`` uint8 RGB (H, W, 3), ``semantic`` uint8 trainIds (H, W) or None,
    ``depth`` float32 metres (H, W) or None, and the record it came from. ``resized``: whether
    the frame was resized; ``label_file_is_train_ids``: whether the label file holds exactly
    ``semantic`` (so writers may copy it instead of encoding it again)."""

    image: np.ndarray
    semantic: np.ndarray | None
    depth: np.ndarray | None
    record: Record
    index: int
    resized: bool = False
    label_file_is_train_ids: bool = False


def check_size(height: Any, width: Any) -> tuple[int, int] | None:
    """``(height, width)`` validated (16..4096 each), or None for the native size."""
    if height is None and width is None:
        return None
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 16 <= v <= 4096:
            raise DataError(
                f"{name}: must be an int in [16, 4096] (both None for the native size), got {v!r}"
            )
    return int(height), int(width)


class FolderDataset:
    """The frames of a dataset on disk, in file order (see ``sim.data.DataSpec``)."""

    def __init__(
        self,
        spec: DataSpec | Mapping[str, Any],
        height: int | None = None,
        width: int | None = None,
        *,
        records: list[Record] | None = None,
    ) -> None:
        self.spec = DataSpec.from_any(spec)
        self.size = check_size(height, width)
        self.root = self.spec.root_path()
        # ``records``: frames found before (parallel workers get them instead of searching again)
        self.records: list[Record] = find_records(self.spec) if records is None else records
        kind = "auto" if self.spec.labels == "none" else self.spec.labels
        self.decoder = LabelDecoder(kind, self.spec.label_map, self.spec.palette)
        self._cap: Any = None
        self._cap_pos = 0

    # ------------------------------------------------------------------------------ about
    def __len__(self) -> int:
        return len(self.records)

    @property
    def labelled(self) -> bool:
        """Whether frames have labels (a dataset is labelled throughout or not at all)."""
        return self.records[0].label is not None

    @property
    def has_depth(self) -> bool:
        """Whether every frame has a depth file (depth-aware corruptions need it)."""
        return all(r.depth is not None for r in self.records)

    def conditions(self) -> list[tuple[str, int, int]]:
        """ACDC conditions as ``(name, start, stop)`` frame ranges in order; [] otherwise."""
        out: list[tuple[str, int, int]] = []
        for i, r in enumerate(self.records):
            if r.condition is None:
                return []
            if out and out[-1][0] == r.condition:
                out[-1] = (r.condition, out[-1][1], i + 1)
            else:
                out.append((r.condition, i, i + 1))
        return out

    def describe(self) -> dict[str, Any]:
        """What a report says about the data: root (as given and resolved), layout, split,
        frame count, labels, depth and conditions."""
        return {
            "root": self.spec.root,
            "resolved_root": str(self.root),
            "layout": self.spec.layout,
            "split": self.spec.split,
            "frames": len(self),
            "labelled": self.labelled,
            "depth": self.has_depth,
            "conditions": [c for c, _, _ in self.conditions()],
            "size": list(self.size) if self.size else "native",
        }

    # ------------------------------------------------------------------------------ reading
    def read(self, index: int) -> Sample:
        """Frame ``index``: image, trainIds and depth at the dataset's size."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range: the dataset has {len(self)} frames")
        record = self.records[index]
        image = self._image(record)
        h, w = image.shape[:2]
        semantic = None
        as_stored = False
        if record.label is not None:
            raw = read_label(record.label)
            as_stored = self.decoder.stores_train_ids(raw, record.label_kind)
            semantic = self.decoder.decode(raw, str(record.label), record.label_kind)
            _same_size(semantic, (h, w), record.label, record)
        depth = None
        if record.depth is not None:
            depth = read_depth(record.depth)
            _same_size(depth, (h, w), record.depth, record)
        resized = self.size is not None and self.size != (h, w)
        if resized:
            image, semantic, depth = resize_frame(image, semantic, depth, self.size)
        return Sample(image, semantic, depth, record, index, resized, as_stored and not resized)

    def read_labels(self, index: int) -> np.ndarray | None:
        """Frame ``index``'s trainIds at the native size (no image decoded), or None."""
        record = self.records[index]
        if record.label is None:
            return None
        return self.decoder.decode(read_label(record.label), str(record.label), record.label_kind)

    def check_labels(self, progress: Callable[[int], None] | None = None) -> None:
        """Decode every label file once, so a bad value fails before anything is written
        (``DataError`` naming the file and the values outside the encoding)."""
        for i in range(len(self)):
            self.read_labels(i)
            if progress is not None:
                progress(i + 1)

    def _image(self, record: Record) -> np.ndarray:
        if record.frame is None:
            return read_image(record.image)
        if self._cap is None or record.frame < self._cap_pos:
            self.close()
            self._cap = cv2.VideoCapture(str(record.image))
            self._cap_pos = 0
        while self._cap_pos < record.frame:  # decode forward to the frame (seeking is inexact)
            if not self._cap.grab():
                break
            self._cap_pos += 1
        ok, bgr = self._cap.read()
        if not ok:
            raise DataError(f"{record.image}: OpenCV could not decode frame {record.frame}")
        self._cap_pos += 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> FolderDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _same_size(arr: np.ndarray, size: tuple[int, int], path: Path, record: Record) -> None:
    if arr.shape[:2] != size:
        raise DataError(
            f"{path}: is {arr.shape[0]}x{arr.shape[1]}, its image {record.rel} is "
            f"{size[0]}x{size[1]}; labels and depth must match their image"
        )


def resize_frame(
    image: np.ndarray,
    semantic: np.ndarray | None,
    depth: np.ndarray | None,
    size: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A frame at ``size`` = (height, width): area-averaged when the image shrinks, bilinear
    when it grows; labels and depth by nearest neighbour."""
    h, w = size
    shrink = h <= image.shape[0] and w <= image.shape[1]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if semantic is not None:
        semantic = cv2.resize(semantic, (w, h), interpolation=cv2.INTER_NEAREST)
    if depth is not None:
        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
    return image, semantic, depth
