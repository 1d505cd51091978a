"""Your own data as a stream source: a dataset on disk (a scenario's ``data:``) as a
:class:`~scenarios._sources.CleanStream`.

A scenario with ``data: {root, layout, split, ...}`` (``sim.data.DataSpec``) instead of
``world:`` takes its clean frames from the dataset, in file order, at the scenario's
``height x width`` (or the first frame's size with ``height: native``). Everything downstream
is unchanged: protocols arrange the natural frames, shifts corrupt them exactly as they corrupt
rendered ones (``scenarios._shiftframes``), the loop scores them.

- ``frames``: at most this many frames per part, the first ones in file order (``sampling: iid``:
  drawn from the whole part, seeded per seed); left out, every frame.
- ``acdc``: each condition is a *part* (``domain``) of the stream, in the order listed in
  ``data.conditions`` (default fog, night, rain, snow, those present); under
  ``reset_each_shift`` each condition is also a natural shift of its own (a cell labelled
  ``acdc-<condition>``, its frames only, no corruption); a carried protocol without corruptions
  walks the conditions as they are (CoTTA's Cityscapes-to-ACDC loop: ``protocol: continual,
  rounds: 10``).
- Unlabelled data (a video without masks, ``labels: none``): ground truth is all 255 (ignore),
  so mIoU is undefined and only label-free signals (entropy, collapse by entropy) are stored.
- The data are read where the unit runs: ``${VAR}`` in a root is expanded on each worker, so a
  Ray node may hold the dataset at its own path.

``source_data:`` (the same spec) gives the held-out source frames of ``forgetting``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios._cells import Shift, stable_int
from scenarios._sources import CleanStream

__all__ = [
    "DataReader",
    "DataRendering",
    "condition_label",
    "data_clean_stream",
    "data_conditions",
    "data_info",
    "native_size",
    "natural_shift",
]


@dataclass(frozen=True)
class DataRendering:
    """The frames of a dataset at one size: a stream source's "rendering" that needs no cache
    (``FrameReader`` opens it with :meth:`open_reader`)."""

    data: dict[str, Any]  # ``DataSpec.to_dict()``
    height: int
    width: int

    @property
    def key(self) -> str:
        return str(stable_int(json.dumps(self.data, sort_keys=True), self.height, self.width))

    def open_reader(self) -> DataReader:
        return DataReader(self)


class DataReader:
    """Reads frames of a :class:`DataRendering` like ``scenarios._streams.StreamReader``."""

    def __init__(self, rendering: DataRendering) -> None:
        from sim import FolderDataset

        self.size = (rendering.height, rendering.width)
        self.dataset = FolderDataset(rendering.data, rendering.height, rendering.width)

    def read(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Images (n, H, W, 3) uint8, trainIds (n, H, W) uint8 (all 255 without labels), and
        depth (n, H, W) float32 metres, or None when the dataset has no depth."""
        images, labels, depths = [], [], []
        for i in range(start, stop):
            s = self.dataset.read(i)
            images.append(s.image)
            labels.append(
                s.semantic if s.semantic is not None else np.full(self.size, 255, np.uint8)
            )
            depths.append(s.depth)
        depth = None if any(d is None for d in depths) else np.stack(depths).astype(np.float32)
        return np.stack(images), np.stack(labels), depth

    def read_labels(self, i: int) -> np.ndarray:
        """Frame ``i``'s trainIds at the stream's size, without decoding its image."""
        import cv2

        raw = self.dataset.read_labels(i)
        if raw is None:
            return np.full(self.size, 255, np.uint8)
        if raw.shape != self.size:
            raw = cv2.resize(raw, self.size[::-1], interpolation=cv2.INTER_NEAREST)
        return raw

    def close(self) -> None:
        self.dataset.close()


# ------------------------------------------------------------------------------ the dataset
@functools.lru_cache(maxsize=16)
def _scan(data_json: str) -> tuple[int, tuple[tuple[str, int, int], ...], bool, bool]:
    """(frames, ACDC condition ranges, labelled, depth) of a dataset, scanned once per process."""
    from sim import FolderDataset

    ds = FolderDataset(json.loads(data_json))
    return len(ds), tuple(ds.conditions()), ds.labelled, ds.has_depth


def _key(data: Mapping[str, Any]) -> str:
    return json.dumps(dict(data), sort_keys=True)


def data_info(data: Mapping[str, Any]) -> dict[str, Any]:
    """What the scenario's data are: frames, conditions (name, frames), labelled, depth."""
    n, conds, labelled, depth = _scan(_key(data))
    return {"frames": n, "conditions": [(c, b - a) for c, a, b in conds], "labelled": labelled,
            "depth": depth}  # fmt: skip


def data_conditions(data: Mapping[str, Any]) -> list[str]:
    """The ACDC conditions of the data, in stream order ([] for other layouts)."""
    return [c for c, _, _ in _scan(_key(data))[1]]


def native_size(data: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of the dataset's first frame (``height: native``)."""
    from sim import FolderDataset

    with FolderDataset(dict(data)) as ds:
        image = ds.read(0).image
    return int(image.shape[0]), int(image.shape[1])


def condition_label(layout: str, condition: str) -> str:
    """The cell label of a natural shift: ``acdc-fog`` (never a corruption's name)."""
    return f"{layout}-{condition}"


def natural_shift(data: Mapping[str, Any], condition: str | None = None) -> Shift:
    """The data as they are, as a shift (no corruption): one ACDC condition, or all of it
    (what a carried protocol without corruptions walks)."""
    layout = str(data["layout"])
    label = layout if condition is None else condition_label(layout, condition)
    return Shift(kind="world", label=label, schedule_kind="world")


def data_clean_stream(
    data: Mapping[str, Any], seed: int, frames: int, height: int, width: int, *,
    sampling: str = "video", condition: str | None = None,
) -> CleanStream:  # fmt: skip
    """The clean stream of a dataset: at most ``frames`` frames of each part (each ACDC
    condition; the whole dataset otherwise), in file order (``video``) or drawn at random from
    the part (``iid``, seeded by ``seed``). ``condition``: one ACDC condition only."""
    if condition is not None:
        data = {**data, "conditions": [condition]}
    rendering = DataRendering(dict(data), int(height), int(width))
    n, conds, _, _ = _scan(_key(data))
    pieces = [(a, b, c) for c, a, b in conds] or [(0, n, None)]
    refs: list[tuple[int, int]] = []
    parts: list[tuple[int, int, str | None]] = []
    for p, (a, b, label) in enumerate(pieces):
        if sampling == "video":
            chosen = list(range(a, min(b, a + frames)))
        elif sampling == "iid":
            rng = np.random.default_rng(np.random.SeedSequence([seed, stable_int("iid-data", p)]))
            chosen = [a + int(k) for k in rng.permutation(b - a)[:frames]]
        else:
            raise ValueError(f"sampling: {sampling!r}; valid choices: video, iid")
        start = len(refs)
        refs += [(0, i) for i in chosen]
        parts.append((start, len(refs), label if len(pieces) > 1 else None))
    return CleanStream((rendering,), tuple(refs), tuple(parts))  # type: ignore[arg-type]
