"""Source-domain training data from the world, and the one call behind ``roadshift train``.

The **source domain** is clear daytime driving in the urban and suburban towns; every other town,
time of day, weather and camera corruption is a test domain. Frames are rendered once per run and
cached in memory (uint8), then served as shuffled minibatches from a seeded generator. Training
and validation use disjoint world seeds, so the validation mIoU stored in the checkpoint is the
clean, held-out source-domain score.

Reproducing the bundled weights (31 minutes measured on a shared 2-core machine with 2 threads;
about 23 at its undisturbed rate: 50 s rendering 2880 training + 576 validation frames, then
12000 steps at 6.5 to 9 steps per second)::

    roadshift train --model roadseg_s --out roadseg_s.pt --threads 2

which calls :func:`train_default` with its defaults. The second bundled model, ``roadseg_s_photo``,
is the same recipe plus photometric augmentation (``scenarios._train_augment``)::

    roadshift train --model roadseg_s_photo --augment photometric \
        --out roadseg_s_photo.pt --threads 2

The same seed and thread count give the same bits; across thread counts results match to float
rounding only. On a busy machine, one thread is the robust choice (two threads fighting other
processes for two cores run several times slower).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._train_augment import make_augment

#: Towns and conditions of the source domain.
SOURCE_TOWNS: tuple[str, ...] = ("urban", "suburban")
SOURCE_TIME_OF_DAY = "day"
SOURCE_WEATHER = "clear"
#: World seeds: training streams use TRAIN_SEED_BASE + i, validation VAL_SEED_BASE + i (disjoint).
TRAIN_SEED_BASE = 1000
VAL_SEED_BASE = 900_000
#: Optimisation steps and batch size of the bundled weights.
DEFAULT_STEPS = 12000
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class SourceData:
    """Which frames are rendered: ``streams`` drives per town, every ``stride``-th frame kept."""

    towns: tuple[str, ...] = SOURCE_TOWNS
    streams: int = 60
    frames_per_stream: int = 72
    stride: int = 3
    val_streams: int = 12
    height: int = 128
    width: int = 256

    def __post_init__(self) -> None:
        for name in ("streams", "frames_per_stream", "stride", "val_streams", "height", "width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int; got {v!r}")
        if isinstance(self.towns, str) or not self.towns:
            raise ValueError(
                f"towns must be a non-empty sequence of town names; got {self.towns!r}"
            )
        object.__setattr__(self, "towns", tuple(self.towns))

    @property
    def train_frames(self) -> int:
        """Training frames rendered: towns × drives × the kept frames of a drive."""
        return len(self.towns) * self.streams * len(range(0, self.frames_per_stream, self.stride))


def render_frames(
    towns: Sequence[str],
    seeds: Sequence[int],
    *,
    frames_per_stream: int,
    stride: int = 1,
    height: int = 128,
    width: int = 256,
    progress: bool = False,
    desc: str = "render",
) -> tuple[np.ndarray, np.ndarray]:
    """Render clear-day streams for every (town, seed); keep every ``stride``-th frame.

    Returns ``images`` uint8 (N, H, W, 3) and ``labels`` uint8 (N, H, W) trainIds.
    """
    from tqdm.auto import tqdm

    import sim

    keep = len(range(0, frames_per_stream, stride))
    n = len(towns) * len(seeds) * keep
    images = np.empty((n, height, width, 3), dtype=np.uint8)
    labels = np.empty((n, height, width), dtype=np.uint8)
    i = 0
    jobs = [(town, seed) for seed in seeds for town in towns]
    for town, seed in tqdm(jobs, desc=desc, unit="stream", disable=not progress, leave=False):
        config = sim.WorldConfig(
            height=height,
            width=width,
            town=town,
            time_of_day=SOURCE_TIME_OF_DAY,
            weather=SOURCE_WEATHER,
        )
        for k, frame in enumerate(sim.render_stream(config, int(seed), frames_per_stream)):
            if k % stride == 0:
                images[i] = frame.image
                labels[i] = frame.semantic
                i += 1
    return images[:i], labels[:i]


def shuffled_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless minibatches: a fresh permutation of the cache each epoch, from a seeded generator."""
    if batch_size < 1 or batch_size > len(images):
        raise ValueError(f"batch_size must be in [1, {len(images)}]; got {batch_size}")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(images))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = np.sort(order[start : start + batch_size])
            yield images[idx], labels[idx]


def ordered_batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cache in order, as a re-iterable list of batches (for validation)."""
    return [
        (images[s : s + batch_size], labels[s : s + batch_size])
        for s in range(0, len(images), batch_size)
    ]


def balanced_class_weights(
    labels: np.ndarray, num_classes: int = 19, power: float = 0.25, max_weight: float = 10.0
) -> tuple[float, ...]:
    """Loss weights ``∝ frequency^-power`` (pixel-weighted mean 1, capped at ``max_weight``).

    mIoU weighs every class equally, so rare classes (poles, riders, bicycles) need a push, but
    IoU also punishes false positives: the square root (``power=0.5``) made the source model
    paint persons and signs where there were none (precision ~0.3). The fourth root, together
    with hard-pixel mining in the loss, scored higher on held-out frames.
    """
    counts = np.bincount(labels[labels < num_classes].ravel(), minlength=num_classes)
    freq = counts / max(1, counts.sum())
    w = np.where(freq > 0, np.power(np.maximum(freq, 1e-12), -power), 0.0)
    w = w / max(1e-12, float((freq * w).sum()))
    return tuple(float(v) for v in np.minimum(w, max_weight).round(4))


def _check_towns(towns: Sequence[str], height: int, width: int) -> None:
    import sim

    for town in towns:
        try:
            sim.WorldConfig(height=height, width=width, town=town)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"towns: {str(exc).strip().splitlines()[0]}") from None


def train_default(
    out: str | Path,
    *,
    model: str | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    streams: int | None = None,
    towns: Sequence[str] | None = None,
    frames_per_stream: int | None = None,
    val_streams: int | None = None,
    threads: int | None = None,
    augment: str | None = None,
    quiet: bool = False,
    device: str = "cpu",
) -> Any:
    """Render the source domain, train ``model`` on it and write the checkpoint to ``out``.

    Every argument left ``None`` takes the documented default (the settings of the bundled
    weights): model ``perception.DEFAULT_MODEL``, 12000 steps of batch 16 on random 96×192 crops
    (a smaller batch when fewer frames are asked for), seed 0, 60 drives per town in urban and
    suburban, no pixel-level augmentation (``augment``: one of
    ``scenarios._train_augment.AUGMENT_NAMES``; ``photometric`` trained the bundled
    ``roadseg_s_photo``); torch's thread count is left alone (the bundled weights used 2). Every
    option is checked before rendering starts. ``device``: ``"auto"``, ``"cpu"`` (the default:
    the bundled weights are reproduced bit for bit on the CPU only), ``"cuda"`` or ``"cuda:N"``.
    Returns
    ``perception.TrainResult``; the checkpoint's metadata holds the clean validation metrics.
    """
    import torch

    import perception

    model = perception.DEFAULT_MODEL if model is None else model
    seed = 0 if seed is None else seed
    overrides = {
        "towns": None if towns is None else tuple(towns),
        "streams": streams,
        "frames_per_stream": frames_per_stream,
        "val_streams": val_streams,
    }
    data = SourceData(**{k: v for k, v in overrides.items() if v is not None})
    # every option is checked here, before minutes of rendering
    if batch_size is None:  # the default fits whatever data was asked for
        batch_size = min(DEFAULT_BATCH_SIZE, data.train_frames)
    elif batch_size > data.train_frames:
        raise ValueError(
            f"batch_size: {batch_size} is more than the {data.train_frames} training frames "
            f"({len(data.towns)} towns × {data.streams} drives × "
            f"{data.train_frames // (len(data.towns) * data.streams)} frames kept per drive); "
            "lower it or render more (streams, frames_per_stream)"
        )
    steps = DEFAULT_STEPS if steps is None else steps
    perception.TrainConfig(steps=steps, seed=seed)
    perception.create_model(model)  # an unknown name lists the valid ones
    _check_towns(data.towns, data.height, data.width)
    pixel_augment = make_augment("none" if augment is None else augment)
    dev = perception.resolve_device(device)  # a missing GPU is reported before rendering
    if threads is not None:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    train_seeds = [TRAIN_SEED_BASE + seed * 10_000 + i for i in range(data.streams)]
    val_seeds = [VAL_SEED_BASE + i for i in range(data.val_streams)]

    def render(seeds: list[int], desc: str) -> tuple:
        return render_frames(
            data.towns,
            seeds,
            frames_per_stream=data.frames_per_stream,
            stride=data.stride,
            height=data.height,
            width=data.width,
            progress=not quiet,
            desc=desc,
        )

    images, labels = render(train_seeds, "render train")
    val_images, val_labels = render(val_seeds, "render val")
    render_seconds = time.perf_counter() - start
    config = perception.TrainConfig(
        steps=steps, seed=seed, class_weights=balanced_class_weights(labels)
    )
    meta = {
        "data": {
            **asdict(data),
            "towns": list(data.towns),
            "time_of_day": SOURCE_TIME_OF_DAY,
            "weather": SOURCE_WEATHER,
            "train_seeds": [train_seeds[0], train_seeds[-1]],
            "val_seeds": [val_seeds[0], val_seeds[-1]],
            "train_frames": len(images),
            "val_frames": len(val_images),
            "batch_size": batch_size,
        },
        "render_seconds": round(render_seconds, 1),
        "threads": torch.get_num_threads(),
    }
    result = perception.train(
        model,
        shuffled_batches(images, labels, batch_size, seed),
        config,
        val_batches=ordered_batches(val_images, val_labels, 32),
        out=out,
        progress=not quiet,
        meta=meta,
        augment=pixel_augment,
        device=dev,
    )
    result.meta["total_seconds"] = round(time.perf_counter() - start, 1)
    perception.save_checkpoint(result.model, out, result.meta)
    return result
