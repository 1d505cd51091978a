"""Test doubles for the runner: adapters that fail in the ways real methods can."""

from __future__ import annotations

import torch

import perception


class FailingAdapter(perception.Adapter):
    """Raises on its second batch, as a buggy method would mid-stream."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls >= 2:
            raise RuntimeError("adapter exploded on purpose")
        return self.model(x)


class NaNAdapter(perception.Adapter):
    """Returns non-finite logits (a diverged method)."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x).clone()
        out[:, 0, 0, 0] = float("nan")
        return out


class InputRecorder(perception.Adapter):
    """Source model that checks what the runner hands an adapter: only images, in [0, 1]."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.dim() == 4
        assert x.shape[1] == 3 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        return self.model(x)


class CountingAdapter(perception.Adapter):
    """Confidence grows with the batches seen since construction or the last ``reset()``, so
    per-frame entropy shows when the runner carried or reset the adapter."""

    def __init__(self, model: torch.nn.Module, **options: object) -> None:
        super().__init__(model, **options)
        self.seen = 0

    def reset(self) -> None:
        super().reset()
        self.seen = 0

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        logits = torch.zeros(n, 19, h, w)
        logits[:, 0] = float(self.seen)  # entropy falls as ``seen`` grows
        self.seen += 1
        return logits


def wrong_model() -> torch.nn.Module:
    """A model factory whose output is not (N, 19, H, W): 3 channels at half resolution."""
    return torch.nn.Conv2d(3, 3, kernel_size=2, stride=2)


class InPlaceAdapter(perception.Adapter):
    """Scribbles over its input batch (allowed: the batch is its own) before predicting."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        x.zero_()
        return self.model(x)


def no_hook_model() -> torch.nn.Module:
    """A ``module:factory`` segmentation model without the feature hook (features/head)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 19, 1),
    ).eval()


#: (batch size, first pixel value) of every ``BatchRecorder.predict`` call in this process.
CALLS: list[tuple[int, float]] = []


class BatchRecorder(perception.Adapter):
    """The source model, recording the size of each batch it is fed (in-process runs only)."""

    uses_optimizer = False

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        CALLS.append((int(x.shape[0]), float(x[-1, 0, 0, 0])))
        return self.model(x)


class ClassCycler(perception.Adapter):
    """Predicts one class everywhere: ``seen % 19``, ``seen`` counting its own predict calls
    since construction or reset, so which batch a prediction came from shows in the scores."""

    uses_optimizer = False

    def __init__(self, model: torch.nn.Module, **options: object) -> None:
        super().__init__(model, **options)
        self.seen = 0

    def reset(self) -> None:
        super().reset()
        self.seen = 0

    def _constant(self, x: torch.Tensor, cls: int) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], 19, x.shape[2], x.shape[3])
        logits[:, cls] = 5.0
        return logits

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self._constant(x, self.seen % 19)
        self.seen += 1
        return out

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self._constant(x, self.seen % 19)


class SlowSource(perception.Adapter):
    """The source model, 0.3 s per batch: long enough to kill a run between two segments."""

    uses_optimizer = False

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        import time

        time.sleep(0.3)
        return self.model(x)
