"""Forgetting: the adapted model scored on held-out clean frames of the source domain.

After an adapted stream, a method may have drifted away from what it knew. ``forgetting: true``
scores every method twice on the same held-out clean source-domain frames — clear day in the
training towns (``urban``, ``suburban``) — with :meth:`perception.Adapter.infer` (the current
state, no update): once with the fresh adapter before the stream (``clean_before``) and once as
the stream left it (``clean_after``); forgetting is the difference.

Frames: :data:`FORGETTING_STREAMS` drives (towns alternating) with world seeds
``FORGETTING_SEED_BASE + i`` (850,000 + i), :data:`FRAMES_PER_DRIVE` frames each, every
:data:`STRIDE`-th frame, shuffled with a fixed seed so a batch holds several drives (as i.i.d.
source data). These seeds are disjoint from the bundled weights' training seeds (1,000 +
10,000·k + i, i < 60), their validation seeds (900,000 + i), the source-data frames some methods
take before a stream (800,000 + i), i.i.d. drives (>= 1,000,000) and scenario seeds in the
bundled library (small integers). Scored in batches of the run's batch size (a batch-statistics
method sees source batches as large as its stream's).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios._train_data import SOURCE_TIME_OF_DAY, SOURCE_TOWNS, SOURCE_WEATHER, render_frames

__all__ = [
    "FORGETTING_FRAMES",
    "FORGETTING_SEED_BASE",
    "ForgettingFrames",
    "forgetting_meta",
]

FORGETTING_FRAMES = 64
FORGETTING_SEED_BASE = 850_000
FRAMES_PER_DRIVE = 24
STRIDE = 6  # 4 frames a drive
FORGETTING_STREAMS = 16

# (height, width, frames, source data) -> (images, labels), rendered once per process
_CACHE: dict[tuple[int, int, int, str], tuple[np.ndarray, np.ndarray]] = {}


def forgetting_meta(frames: int, batch_size: int,
                    data: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """``meta.forgetting``: which frames and how they are scored (``data``: a scenario's
    ``source_data``, whose frames replace the world's)."""
    if data is not None:
        draw = f"numpy default_rng({FORGETTING_SEED_BASE}).permutation(dataset frames)"
        return {"frames": frames, "batch_size": batch_size, "source_data": data, "draw": draw}
    return {
        "frames": frames,
        "batch_size": batch_size,
        "towns": list(SOURCE_TOWNS),
        "seeds": [FORGETTING_SEED_BASE, FORGETTING_SEED_BASE + _streams(frames) - 1],
        "time_of_day": SOURCE_TIME_OF_DAY,
        "weather": SOURCE_WEATHER,
    }


def _streams(frames: int) -> int:
    per = len(range(0, FRAMES_PER_DRIVE, STRIDE))
    return max(FORGETTING_STREAMS, -(-frames // per))


class ForgettingFrames:
    """Held-out clean source-domain frames of one size, scored in batches."""

    def __init__(self, height: int, width: int, frames: int = FORGETTING_FRAMES,
                 batch_size: int = 16, data: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.height, self.width = int(height), int(width)
        self.frames, self.batch_size = int(frames), int(batch_size)
        self.data = data  # a scenario's ``source_data``: its frames replace the world's

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Images (N, H, W, 3) and labels (N, H, W), uint8, in scoring order."""
        key = (self.height, self.width, self.frames, repr(self.data))
        if key not in _CACHE and self.data is not None:
            from scenarios._datasource import DataReader, DataRendering

            reader = DataReader(DataRendering(self.data, self.height, self.width))
            try:
                n = len(reader.dataset)
                order = np.random.default_rng(FORGETTING_SEED_BASE).permutation(n)[: self.frames]
                picked = [reader.read(int(i), int(i) + 1) for i in order]
            finally:
                reader.close()
            _CACHE[key] = (np.concatenate([p[0] for p in picked]),
                           np.concatenate([p[1] for p in picked]))  # fmt: skip
        if key not in _CACHE:
            images, labels = [], []
            for i in range(_streams(self.frames)):
                town = SOURCE_TOWNS[i % len(SOURCE_TOWNS)]
                im, lb = render_frames([town], [FORGETTING_SEED_BASE + i], stride=STRIDE,
                                       frames_per_stream=FRAMES_PER_DRIVE, height=self.height,
                                       width=self.width)  # fmt: skip
                images.append(im)
                labels.append(lb)
            im, lb = np.concatenate(images), np.concatenate(labels)
            order = np.random.default_rng(FORGETTING_SEED_BASE).permutation(len(im))[: self.frames]
            _CACHE[key] = (im[order], lb[order])
        return _CACHE[key]

    def score(self, adapter: Any) -> float:
        """mIoU of ``adapter.infer`` (its current state, no update) over the frames."""
        import torch

        import perception

        images, labels = self.arrays()
        metrics = perception.StreamMetrics()
        for start in range(0, len(images), self.batch_size):
            x = torch.from_numpy(images[start : start + self.batch_size])
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            logits = adapter.infer(x)
            metrics.update(logits, torch.from_numpy(labels[start : start + self.batch_size]))
        return float(metrics.compute()["miou"])
