"""Stream sources: where a unit's clean frames come from, and in which natural order.

A :class:`CleanStream` is the clean frame sequence every shift of a unit corrupts: a list of
*renderings* (``StreamSpec``: one drive, rendered once per run into the stream cache) and the
stream's frames as ``(rendering, frame)`` references in their *natural order*, cut into
*parts* (the domains of a label-shift stream; one part otherwise). Protocols
(``scenarios._protocols``) arrange these natural frames into adapted streams; they never ask
where a frame comes from. Another source (a dataset on disk, ``scenarios._datasource``) is
another way to build a ``CleanStream``.

Sampling:

- ``video``: the ``frames`` consecutive 10 Hz frames of one drive per seed (and per part).
- ``iid``: the same number of frames drawn from many drives: drive *d* contributes
  :data:`IID_FRAMES_PER_DRIVE` frames spaced :data:`IID_SPACING` frames (0.8 s) apart, so a
  stream of F frames comes from ceil(F / 4) drives; the frames are then shuffled (the
  Cityscapes-C / ImageNet-C setting, where a batch holds unrelated images). Drive *d*'s world
  seed is derived from (seed, part, d) and is at least 1,000,000, so it never meets a scenario
  seed, a training seed (1,000 + 10,000·k + i) or the source-data seeds (800,000 + i, 900,000 + i).
- ``label_shift``: the parts are drives of different worlds (towns, traffic) one after another,
  ``frames`` frames each, so class priors drift within one stream.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scenarios._cells import StreamSpec, stable_int
from scenarios._streams import StreamReader, ensure_stream

__all__ = [
    "IID_FRAMES_PER_DRIVE",
    "IID_SPACING",
    "IID_WORLD_SEED_MIN",
    "CleanStream",
    "FrameReader",
    "clean_stream",
    "iid_description",
]

#: Frames one drive contributes to an i.i.d. stream, and the frames between two of them.
IID_FRAMES_PER_DRIVE = 4
IID_SPACING = 8
#: World seeds of i.i.d. drives are at least this (disjoint from every other seed family).
IID_WORLD_SEED_MIN = 1_000_000


@dataclass(frozen=True)
class CleanStream:
    """A unit's clean frames: renderings, natural order and domain parts."""

    renderings: tuple[StreamSpec, ...]  # or ``_datasource.DataRendering``s (a dataset)
    refs: tuple[tuple[int, int], ...]  # natural order: (rendering index, frame index)
    parts: tuple[tuple[int, int, str | None], ...]  # (start, stop, domain label) natural ranges

    @property
    def frames(self) -> int:
        return len(self.refs)

    def domain(self, natural: int) -> str | None:
        for start, stop, label in self.parts:
            if start <= natural < stop:
                return label
        raise IndexError(f"natural frame {natural} outside the stream of {self.frames}")


def iid_description(frames: int) -> dict[str, int]:
    """What ``sampling: iid`` draws for a stream part of ``frames`` frames (stored in meta)."""
    return {
        "drives": math.ceil(frames / IID_FRAMES_PER_DRIVE),
        "frames_per_drive": IID_FRAMES_PER_DRIVE,
        "spacing": IID_SPACING,
    }


def _iid_world_seed(seed: int, part: int, drive: int) -> int:
    return IID_WORLD_SEED_MIN + stable_int("iid", seed, part, drive) % (2**31 - IID_WORLD_SEED_MIN)


def clean_stream(
    world: dict[str, Any], seed: int, frames: int, height: int, width: int, *,
    sampling: str = "video", parts: Sequence[tuple[str, dict[str, Any]]] = (),
    conditions: dict[str, Any] | None = None,
) -> CleanStream:  # fmt: skip
    """The clean stream of one seed: ``parts`` are label-shift parts (label, world overrides);
    none gives one part of ``world``. ``conditions`` is an in-sim schedule (video, one part)."""
    if conditions is not None and (sampling != "video" or parts):
        raise ValueError("in-sim schedules need sampling: video and no label_shift")
    pieces = list(parts) or [(None, {})]
    renderings: list[StreamSpec] = []
    refs: list[tuple[int, int]] = []
    ranges: list[tuple[int, int, str | None]] = []
    for p, (label, overrides) in enumerate(pieces):
        part_world = {**world, **overrides}
        start = len(refs)
        if sampling == "video":
            renderings.append(StreamSpec(part_world, seed, frames, height, width, conditions))
            refs += [(len(renderings) - 1, i) for i in range(frames)]
        elif sampling == "iid":
            drive_frames = (IID_FRAMES_PER_DRIVE - 1) * IID_SPACING + 1
            drawn: list[tuple[int, int]] = []
            for d in range(iid_description(frames)["drives"]):
                spec = StreamSpec(part_world, _iid_world_seed(seed, p, d), drive_frames,
                                  height, width)  # fmt: skip
                renderings.append(spec)
                keep = range(0, drive_frames, IID_SPACING)
                drawn += [(len(renderings) - 1, i) for i in keep]
            rng = np.random.default_rng(np.random.SeedSequence([seed, stable_int("iid", p)]))
            order = rng.permutation(len(drawn))[:frames]
            refs += [drawn[int(k)] for k in order]
        else:
            raise ValueError(f"sampling: {sampling!r}; valid choices: video, iid")
        ranges.append((start, len(refs), label))
    return CleanStream(tuple(renderings), tuple(refs), tuple(ranges))


class FrameReader:
    """Reads the clean frames of a :class:`CleanStream` by natural index, rendering each of its
    drives into ``cache`` first if needed (once per run: the cache is shared)."""

    def __init__(self, stream: CleanStream, cache: str | Path) -> None:
        self.stream = stream
        # a rendering that needs no cache (a dataset on disk, ``scenarios._datasource``) opens
        # its own reader; a drive of the world is rendered into the cache once
        self._readers = [
            spec.open_reader() if hasattr(spec, "open_reader")
            else StreamReader(ensure_stream(cache, spec))
            for spec in stream.renderings
        ]  # fmt: skip

    def read(self, natural: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Image (H, W, 3) uint8, labels (H, W) uint8, depth (H, W) float32 of one frame
        (depth None for a dataset without depth)."""
        r, i = self.stream.refs[natural]
        images, labels, depths = self._readers[r].read(i, i + 1)
        return images[0], labels[0], None if depths is None else depths[0]

    def labels(self, natural: int) -> np.ndarray:
        """Labels (H, W) uint8 of one frame (a dataset's without decoding its image)."""
        r, i = self.stream.refs[natural]
        reader = self._readers[r]
        if hasattr(reader, "read_labels"):
            return reader.read_labels(i)
        return reader.read(i, i + 1)[1][0]

    def class_set(self, num_classes: int = 19) -> np.ndarray:
        """Which classes the ground truth of the whole stream holds (bool, one per class)."""
        present = np.zeros(num_classes, bool)
        for natural in range(self.stream.frames):
            labels = self.labels(natural)
            counts = np.bincount(labels.ravel(), minlength=256)[:num_classes]
            present |= counts > 0
        return present

    def close(self) -> None:
        for r in self._readers:
            r.close()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
