"""Source-domain training and evaluation on any stream of (image, label) batches.

``perception`` never imports the simulator: the caller feeds batches (``scenarios._train_data``
renders them from the world). Training is deterministic for a given ``TrainConfig.seed`` and batch
stream: the model (when given by name) is initialised and augmented from generators seeded by it.

The built-in augmentation is geometric (random crop, horizontal flip), the recipe of the bundled
``roadseg_s``: photometric augmentation would immunise the source model against some of the very
shifts the suite measures. A caller may add a pixel-level augmentation (``augment``): a callable
that maps the cropped and flipped uint8 frames, with a seeded ``numpy.random.Generator``, to new
frames (``roadshift train --augment photometric``) or to several views of them, trained with a
Jensen–Shannon consistency term as in AugMix (``--augment augmix``). ``perception`` only runs the
callable; the pipelines themselves live with the data (``scenarios``), which may use albumentations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._device import resolve_device
from ._metrics import StreamMetrics
from ._models import create_model
from ._models_classes import CLASS_NAMES, IGNORE_INDEX
from ._models_io import save_checkpoint

Batch = tuple[Any, Any]
#: A pixel-level training augmentation: ``augment(frames, rng)`` gets the cropped and flipped uint8
#: (N, H, W, 3) frames of a batch and a seeded generator and returns uint8 frames of the same shape
#: to train on instead, or a tuple of such views: the first carries the cross-entropy, and the
#: Jensen–Shannon divergence among all of them, weighted by ``TrainConfig.consistency_weight``, is
#: added (AugMix: the clean frames and two augmented ones). Labels never pass through it: it may
#: change pixels, never their positions. A ``config`` attribute (JSON-like) is recorded in the
#: checkpoint's metadata.
BatchAugment = Callable[[np.ndarray, np.random.Generator], "np.ndarray | tuple[np.ndarray, ...]"]
#: Spawn key of the augmentation's generator, so its draws never coincide with other streams seeded
#: by the same ``TrainConfig.seed`` (the data order, the crops).
_AUGMENT_STREAM = 1


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; recorded verbatim in the checkpoint's metadata."""

    steps: int = 3000
    lr: float = 8e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    crop: tuple[int, int] | None = (96, 192)
    hflip: bool = True
    seed: int = 0
    val_every: int = 0  # 0: validate once, at the end
    #: Per-class loss weights (one per class) or None for plain cross-entropy.
    class_weights: tuple[float, ...] | None = None
    #: Online hard-example mining: average the loss over this fraction of the hardest labelled
    #: pixels only (1.0: all pixels). Helps thin and small classes that plain averaging drowns.
    hard_fraction: float = 0.5
    #: Weight of the Jensen–Shannon consistency term when the augmentation returns several views
    #: (AugMix's published 12); unused otherwise.
    consistency_weight: float = 12.0

    def __post_init__(self) -> None:
        for name in ("steps", "warmup_steps", "val_every", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be a non-negative int; got {v!r}")
        if self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1; got {self.steps}")
        for name in ("lr", "weight_decay", "consistency_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or v < 0 or (name == "lr" and v == 0):
                kind = "positive" if name == "lr" else "non-negative"
                raise ValueError(f"TrainConfig.{name} must be a {kind} number; got {v!r}")
        if self.crop is not None:
            if len(self.crop) != 2 or not all(isinstance(c, int) and c > 0 for c in self.crop):
                raise ValueError(
                    f"TrainConfig.crop must be None or (height, width) ints; got {self.crop!r}"
                )
            object.__setattr__(self, "crop", tuple(self.crop))
        if not isinstance(self.hard_fraction, (int, float)) or not 0 < self.hard_fraction <= 1:
            raise ValueError(
                f"TrainConfig.hard_fraction must be in (0, 1]; got {self.hard_fraction!r}"
            )
        if self.class_weights is not None:
            w = tuple(float(v) for v in self.class_weights)
            if not w or not all(math.isfinite(v) and v >= 0 for v in w):
                raise ValueError("TrainConfig.class_weights must be None or non-negative numbers")
            object.__setattr__(self, "class_weights", w)


@dataclass
class TrainResult:
    """What ``train`` returns: the trained model (eval mode), checkpoint metadata, loss history."""

    model: nn.Module
    meta: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None


def images_to_tensor(images: Any) -> torch.Tensor:
    """uint8 (N, H, W, 3) images (array or tensor) → float32 NCHW in [0, 1]; float NCHW passes."""
    return _to_float(_nchw(images))


def _nchw(images: Any) -> torch.Tensor:
    """The images as an NCHW tensor of their own dtype (uint8 images: a permuted view, no copy)."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a numpy array or torch.Tensor, got {type(images).__name__}"
        )
    if images.dtype == torch.uint8:
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"uint8 images must be (N, H, W, 3); got {tuple(images.shape)}")
        return images.permute(0, 3, 1, 2)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"float images must be (N, 3, H, W); got {tuple(images.shape)}")
    return images


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def _labels_to_tensor(labels: Any, long: bool = True) -> torch.Tensor:
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    if not isinstance(labels, torch.Tensor) or labels.dim() != 3:
        raise ValueError("labels must be an (N, H, W) array or tensor of trainIds")
    return labels.long() if long else labels


def _augment(
    x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    n, _, h, w = x.shape
    if cfg.crop is not None and (cfg.crop[0] < h or cfg.crop[1] < w):
        ch, cw = min(cfg.crop[0], h), min(cfg.crop[1], w)
        tops = torch.randint(0, h - ch + 1, (n,), generator=gen).tolist()
        lefts = torch.randint(0, w - cw + 1, (n,), generator=gen).tolist()
        x = torch.stack(
            [
                x[i, :, t : t + ch, s : s + cw]
                for i, (t, s) in enumerate(zip(tops, lefts, strict=True))
            ]
        )
        y = torch.stack(
            [y[i, t : t + ch, s : s + cw] for i, (t, s) in enumerate(zip(tops, lefts, strict=True))]
        )
    if cfg.hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
        y = torch.where(flip.view(n, 1, 1), y.flip(-1), y)
    return x, y


def _loss(
    logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, hard_fraction: float
) -> torch.Tensor:
    if hard_fraction >= 1.0:
        return F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE_INDEX)
    per_pixel = F.cross_entropy(
        logits, y, weight=weight, ignore_index=IGNORE_INDEX, reduction="none"
    )
    valid = per_pixel[y != IGNORE_INDEX]
    if valid.numel() == 0:
        return per_pixel.sum() * 0.0
    k = max(1, round(hard_fraction * valid.numel()))
    return valid.topk(k, sorted=False).values.mean()


def _jensen_shannon(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """AugMix's consistency term: the Jensen–Shannon divergence among the views' predictions.

    As in the reference (google-research/augmix, ``cifar.py``): the mixture of the softmaxes is
    clamped to [1e-7, 1] before its log, and the mean over views of KL(p_view ‖ mixture) is taken.
    The reference averages the class-summed KL over images (``batchmean``); for dense prediction it
    is averaged over every pixel of every image (consistency needs no label, so ignored pixels
    count too).
    """
    probs = [z.softmax(1) for z in logits]
    log_mixture = torch.clamp(sum(probs) / len(probs), 1e-7, 1.0).log()
    kls = [F.kl_div(log_mixture, p, reduction="none").sum(1).mean() for p in probs]
    return sum(kls) / len(kls)


def _augmented_views(
    augment: BatchAugment, x: torch.Tensor, rng: np.random.Generator
) -> list[torch.Tensor]:
    """Run ``augment`` on the uint8 NCHW batch; its view(s) as uint8 NCHW tensors."""
    if x.dtype != torch.uint8:
        raise ValueError(
            f"augment needs uint8 (N, H, W, 3) frames; the batches hold {x.dtype} images"
        )
    frames = x.permute(0, 2, 3, 1).contiguous().numpy()
    out = augment(frames, rng)
    views = list(out) if isinstance(out, (tuple, list)) else [out]
    for v in views:
        if not isinstance(v, np.ndarray) or v.dtype != np.uint8 or v.shape != frames.shape:
            got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
            raise ValueError(
                f"augment must return uint8 frames of shape {frames.shape} (or a tuple of them); "
                f"got {got}"
            )
    return [
        torch.from_numpy(np.ascontiguousarray(v)).permute(0, 3, 1, 2).contiguous() for v in views
    ]


def _describe_augment(augment: BatchAugment | None) -> Any:
    if augment is None:
        return None
    config = getattr(augment, "config", None)
    if config is not None:
        return config
    return getattr(augment, "__qualname__", None) or type(augment).__qualname__


@torch.inference_mode()
def evaluate(model: nn.Module, batches: Iterable[Batch], num_classes: int | None = None) -> dict:
    """Run ``model`` in eval mode over ``(images, labels)`` batches; the metrics summary."""
    was_training = model.training
    model.eval()
    metrics = StreamMetrics(num_classes or getattr(model, "num_classes", len(CLASS_NAMES)))
    device = _model_device(model)
    try:
        for images, labels in batches:
            x = _to_float(_nchw(images).to(device))
            metrics.update(model(x), _labels_to_tensor(labels))
    finally:
        model.train(was_training)
    return metrics.compute()


def _model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _summary(metrics: dict) -> dict[str, Any]:
    keys = ("miou", "pixel_acc", "ece", "entropy", "per_class_iou", "safety_recall", "frames")
    return {k: metrics[k] for k in keys}


def train(
    model: nn.Module | str,
    batches: Iterable[Batch],
    config: TrainConfig | None = None,
    *,
    val_batches: Iterable[Batch] | Callable[[], Iterable[Batch]] | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    meta: dict[str, Any] | None = None,
    augment: BatchAugment | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train ``model`` (a module or a registered name) on ``config.steps`` batches from ``batches``.

    ``batches`` yields ``(images, labels)``: uint8 (N, H, W, 3) or float (N, 3, H, W) images and
    (N, H, W) trainIds (255 ignored). ``val_batches`` (re-iterable, or a callable returning an
    iterable) gives the held-out clean validation metrics stored with the checkpoint at ``out``.
    ``meta`` (e.g. a description of the data) is merged into the checkpoint metadata.
    ``augment`` (see :data:`BatchAugment`) adds a pixel-level augmentation after the crop and flip,
    drawing from its own generator seeded by ``config.seed``; without it, training is exactly the
    geometric-only recipe of the bundled ``roadseg_s``.

    ``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (see ``resolve_device``); None
    trains where the model already is. Batches are cropped and flipped on the CPU (the same
    random draws on every device) and moved to the device as uint8. Training is bit-reproducible
    on the CPU only.
    """
    cfg = config or TrainConfig()
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(cfg).__name__}")
    if isinstance(model, str):
        # Seeded initialisation without touching the caller's global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = create_model(model)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be an nn.Module or a registered name, got {type(model).__name__}"
        )
    if device is not None:
        model.to(resolve_device(device))
    dev = _model_device(model)
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(_AUGMENT_STREAM,)))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )

    def lr_factor(step: int) -> float:  # linear warm-up, then cosine decay to 1% of lr
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    weight = None
    if cfg.class_weights is not None:
        n_cls = getattr(model, "num_classes", len(cfg.class_weights))
        if len(cfg.class_weights) != n_cls:
            raise ValueError(
                f"TrainConfig.class_weights has {len(cfg.class_weights)} entries, "
                f"the model has {n_cls} classes"
            )
        weight = torch.tensor(cfg.class_weights, dtype=torch.float32, device=dev)
    val_source = val_batches if callable(val_batches) else (lambda: val_batches)
    history: list[dict[str, float]] = []
    input_size: list[int] | None = None
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, desc="train", unit="step", disable=not progress, leave=False)
    start = time.perf_counter()
    model.train()
    it: Iterator[Batch] = iter(batches)
    for step in range(cfg.steps):
        try:
            images, labels = next(it)
        except StopIteration:
            break
        # Crop and flip in the stored dtype (uint8 frames: a quarter of the bytes), then convert:
        # the same values and random draws as converting first, several ms less per step.
        x, y = _nchw(images), _labels_to_tensor(labels, long=False)
        if input_size is None:
            input_size = [int(x.shape[-2]), int(x.shape[-1])]
        x, y = _augment(x, y, cfg, gen)
        # pixel augmentations run on the CPU (uint8), then every view moves to the device
        views = [x] if augment is None else _augmented_views(augment, x, aug_rng)
        views = [_to_float(v.to(dev, non_blocking=True)) for v in views]
        y = y.to(dev, non_blocking=True).long()
        if len(views) == 1:
            loss = _loss(model(views[0]), y, weight, cfg.hard_fraction)
        else:  # AugMix: one forward over all views (BatchNorm sees them together, as there)
            logits = model(torch.cat(views)).split(len(y))
            loss = _loss(logits[0], y, weight, cfg.hard_fraction)
            loss = loss + cfg.consistency_weight * _jensen_shannon(logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        history.append({"step": step, "loss": loss_value, "lr": sched.get_last_lr()[0]})
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}")
        if (
            cfg.val_every
            and val_batches is not None
            and (step + 1) % cfg.val_every == 0
            and step + 1 < cfg.steps
        ):
            m = evaluate(model, val_source())
            history[-1]["val_miou"] = m["miou"]
            bar.write(f"step {step + 1}: val mIoU {m['miou']:.3f}")
    bar.close()
    seconds = time.perf_counter() - start
    model.eval()
    result_meta: dict[str, Any] = {
        "model": getattr(model, "model_name", type(model).__name__),
        "classes": list(CLASS_NAMES),
        "input_size": input_size,
        "train_config": {
            **asdict(cfg),
            "crop": list(cfg.crop) if cfg.crop else None,
            "class_weights": list(cfg.class_weights) if cfg.class_weights else None,
        },
        "augment": _describe_augment(augment),
        "steps_done": len(history),
        "train_seconds": round(seconds, 1),
        "final_loss": history[-1]["loss"] if history else None,
        "device": dev.type,
    }
    if val_batches is not None:
        result_meta["val_metrics"] = _summary(evaluate(model, val_source()))
    result_meta.update(meta or {})
    path = save_checkpoint(model, out, result_meta) if out is not None else None
    return TrainResult(model=model, meta=result_meta, history=history, path=path)
