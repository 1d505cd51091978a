"""Source-domain frames for adaptation methods that need them before the stream.

Some methods look at source data once, before adapting (EATA's Fisher information; see
``perception.Adapter.needs_source_data`` and ``prepare_source``). The runner gives them frames
of the world's **source domain** — clear daytime drives in the training towns (``urban`` and
``suburban``: :data:`scenarios._train_data.SOURCE_TOWNS`), the domain the bundled weights were
trained on — at the scenario's frame size and batch size.

Seeds: stream *i* is town ``SOURCE_TOWNS[i % 2]`` with world seed ``SOURCE_SEED_BASE + i``
(800,000 + i), every ``STRIDE``-th of its first ``FRAMES_PER_STREAM`` frames. These are
disjoint from the bundled weights' training seeds (1,000 + 10,000·seed + i, i < 60), from
their validation seeds (900,000 + i) and from the scenario seeds used anywhere in the bundled
library (small integers); a scenario that picks seeds near 800,000 would meet them again.
Rendering is deterministic and lazy (only the frames a method takes are rendered), and cached
per worker process, so every cell of a run sees the same source frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from scenarios._train_data import SOURCE_TOWNS, render_frames

__all__ = [
    "FRAMES_PER_STREAM",
    "MAX_SOURCE_FRAMES",
    "SOURCE_SEED_BASE",
    "STRIDE",
    "SourceFrames",
    "source_data_problem",
]

#: World seed of the first source-data stream (see the module docstring).
SOURCE_SEED_BASE = 800_000
#: Frames rendered per stream, and the stride of the frames kept (8 per stream).
FRAMES_PER_STREAM = 24
STRIDE = 3
#: The most frames one adapter may take (EATA's default takes 64).
MAX_SOURCE_FRAMES = 512

# (height, width) -> frames rendered so far in this process, in stream order
_CACHE: dict[tuple[int, int], list[np.ndarray]] = {}


class SourceFrames:
    """Source-domain frames of one size, served as float32 NCHW batches in [0, 1].

    ``data``: a scenario's ``source_data`` (a dataset on disk, ``sim.data.DataSpec``): its
    frames in file order replace the world's, at most as many as it holds."""

    def __init__(
        self, height: int, width: int, batch_size: int, max_frames: int = MAX_SOURCE_FRAMES,
        data: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.height, self.width = int(height), int(width)
        self.batch_size = int(batch_size)
        self.max_frames = int(max_frames)
        self.data = data
        self._reader: Any = None
        if data is not None:
            from scenarios._datasource import data_info

            self.max_frames = min(self.max_frames, int(data_info(data)["frames"]))

    def frame(self, index: int) -> np.ndarray:
        """Frame ``index`` (uint8 H×W×3), rendering further streams when needed."""
        if self.data is not None:
            if self._reader is None:
                from scenarios._datasource import DataReader, DataRendering

                self._reader = DataReader(DataRendering(self.data, self.height, self.width))
            return self._reader.read(index, index + 1)[0][0]
        frames = _CACHE.setdefault((self.height, self.width), [])
        while len(frames) <= index:
            stream = len(frames) // len(range(0, FRAMES_PER_STREAM, STRIDE))
            images, _ = render_frames(
                [SOURCE_TOWNS[stream % len(SOURCE_TOWNS)]],
                [SOURCE_SEED_BASE + stream],
                frames_per_stream=FRAMES_PER_STREAM,
                stride=STRIDE,
                height=self.height,
                width=self.width,
            )
            frames.extend(images)
        return frames[index]

    def batches(self) -> Iterator[Any]:
        """Batches of ``batch_size`` frames (the last may be smaller), up to ``max_frames``."""
        import torch

        for start in range(0, self.max_frames, self.batch_size):
            stop = min(start + self.batch_size, self.max_frames)
            images = np.stack([self.frame(i) for i in range(start, stop)])
            yield torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def source_data_problem(scenario: Any) -> str | None:
    """Why ``scenario`` cannot give source-domain frames to methods that need them, or None.

    A scenario on the world renders its source domain. A scenario on your data (``data:``)
    needs ``source_data:``: the world is not the source domain of a model for your data."""
    data, source = getattr(scenario, "data", None), getattr(scenario, "source_data", None)
    if data is not None and source is None:
        return (
            "the frames come from data:, so the source frames come from source_data: {root, "
            "layout, split} (your source split); add it"
        )
    return None
