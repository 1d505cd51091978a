"""The execution loop: an adapted stream's frames in batches → adapters → metrics.

:func:`run_stream` walks an :class:`~scenarios._protocols.AdaptedStream` position by position.
Batches hold ``batch_size`` consecutive positions and **span segment boundaries**; a position
where the stream resets the adapter starts a new batch. With ``window`` W (batch size 1) the
adapter's input at each position is the last W frames since the last reset and the newest
frame's prediction is scored (W forward passes, and W images through any backward pass, per
frame). Every method is a :class:`MethodRun`: its adapter, its metric accumulators and, with
online evaluation, an :class:`OnlinePass` (a second adapter that misses batches, see
``scenarios._online``). Frames come from a provider (``frames(position) -> (image, ground
truth, (corruption, severity))``), so the loop never knows where they come from; ground truth
never reaches an adapter.

When the last frame of a segment has been scored, the segment's row is built for every method
and handed to ``on_segment`` (the runner stores rows of long streams as they finish).
"""

from __future__ import annotations

import math
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scenarios._fastmetrics import FrameCounts, add_counts, batch_counts
from scenarios._measures import class_prior, collapsed, miou_over, recovery_frames
from scenarios._protocols import AdaptedStream

__all__ = ["MethodRun", "OnlinePass", "SourceOracle", "batches_of", "error_line", "run_stream"]

Frame = tuple[np.ndarray, np.ndarray, tuple[str | None, float]]


def error_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".strip()


def finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def batches_of(stream: AdaptedStream, batch_size: int) -> list[list[int]]:
    """Stream positions grouped into batches: ``batch_size`` consecutive positions, crossing
    segment boundaries, with a new batch wherever the stream resets the adapter."""
    out: list[list[int]] = []
    current: list[int] = []
    for p in range(len(stream)):
        if current and (len(current) == batch_size or p in stream.resets):
            out.append(current)
            current = []
        current.append(p)
    if current:
        out.append(current)
    return out


@dataclass
class _SegmentScores:
    metrics: Any
    miou: list[float | None] = field(default_factory=list)
    pred_classes: list[int] = field(default_factory=list)
    gt_classes: list[int] = field(default_factory=list)
    skipped: int = 0


class _Scores:
    """Per-frame counts accumulated per cell and per segment."""

    def __init__(self) -> None:
        import perception

        self.total = perception.StreamMetrics()
        self.segments: dict[int, _SegmentScores] = {}
        self.skipped = 0

    def add(self, segment: int, counts: FrameCounts, skipped: bool = False) -> float | None:
        import perception

        seg = self.segments.get(segment)
        if seg is None:
            seg = self.segments[segment] = _SegmentScores(perception.StreamMetrics())
        add_counts(seg.metrics, counts)
        add_counts(self.total, counts)
        cm = counts.confusion
        miou = finite(float(perception.miou_from_confusion(cm)))
        seg.miou.append(miou)
        seg.pred_classes.append(int((cm.sum(0) > 0).sum()))
        seg.gt_classes.append(int((cm.sum(1) > 0).sum()))
        if skipped:
            seg.skipped += 1
            self.skipped += 1
        return miou


class SourceOracle:
    """The un-adapted source model's logits for a batch, computed once for every method that
    falls back to it (``fallback: source``)."""

    def __init__(self, model: Any) -> None:
        import perception

        self.adapter = perception.create_adapter("source", model)
        self._key: int | None = None
        self._logits: Any = None

    def logits(self, batch: int, x: Any) -> Any:
        if self._key != batch:
            self._key, self._logits = batch, self.adapter.predict(x.clone())
        return self._logits


class OnlinePass:
    """A method under a compute budget: a second adapter that processes batch b only when
    ``b % (skip + 1) == 0`` and scores the others with the fallback."""

    def __init__(self, adapter: Any, skip: int, fallback: str) -> None:
        self.adapter = adapter
        self.skip = int(skip)
        self.fallback = fallback
        self.scores = _Scores()
        self._last: Any = None  # logits of the newest frame it processed, (1, C, H, W)

    def logits(
        self, batch: int, x: Any, newest: int, oracle: SourceOracle | None
    ) -> tuple[Any, bool]:
        if batch % (self.skip + 1) == 0:
            out = self.adapter.predict(x).detach()[-newest:]
            self._last = out[-1:]
            return out, False
        if self.fallback == "source" and oracle is not None:
            return oracle.logits(batch, x)[-newest:], True
        return self._last.expand(newest, *self._last.shape[1:]), True


class MethodRun:
    """One method's cell in a unit: its adapter, accumulators, rows and errors."""

    def __init__(self, cell: dict[str, Any], make_adapter: Callable[[], Any]) -> None:
        self.cell = cell
        self.error: str | None = None
        self.traceback: str | None = None
        self.adapter: Any = None
        self.online: OnlinePass | None = None
        #: under online evaluation, a method that misses no batch: online = offline, exactly
        #: (the same adapter on the same batches), so no second pass runs
        self.online_mirror = False
        self.scores = _Scores()
        self.seconds = 0.0
        self.frames = 0
        self.batches = 0
        self.segment_rows: list[dict[str, Any]] = []
        self.frame_rows: list[dict[str, Any]] = []
        self.last_pred: np.ndarray | None = None
        self.extra: dict[str, Any] = {}  # clean_before / clean_after
        self.guard(lambda: setattr(self, "adapter", make_adapter()))

    @property
    def alive(self) -> bool:
        return self.error is None

    def guard(self, work: Callable[[], Any]) -> Any:
        """Run ``work``; a failure marks the cell failed (a plug-in may raise anything)."""
        try:
            return work()
        except Exception as exc:
            self.error = error_line(exc)
            self.traceback = traceback.format_exc()
            return None

    def reset(self) -> None:
        self.guard(self.adapter.reset)
        if self.online is not None:
            self.guard(self.online.adapter.reset)


def _check_logits(logits: Any, n: int, x: Any) -> None:
    if logits.dim() != 4 or logits.shape[0] != n or logits.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"logits have shape {tuple(logits.shape)}, expected (N, C, H, W) = "
            f"({n}, C, {x.shape[2]}, {x.shape[3]})"
        )


def _feed(r: MethodRun, b: int, x: Any, y: Any, positions: Sequence[int], segs: Sequence[int],
          states: Sequence[tuple[str | None, float]], oracle: SourceOracle | None,
          per_frame: bool, keep_prediction: bool) -> None:  # fmt: skip
    import torch

    n = len(positions)
    try:
        x_online = x.clone() if r.online is not None else None  # before any in-place change
        t0 = time.perf_counter()
        logits = r.adapter.predict(x)
        r.seconds += time.perf_counter() - t0
        logits = logits.detach()
        if logits.shape[0] == x.shape[0] and x.shape[0] > n:  # a window: score the newest frame
            logits = logits[-n:]
        _check_logits(logits, n, x)
        counts = batch_counts(logits, y, first_frame=positions[0])  # raises on non-finite
        online = None
        if r.online is not None:
            online_logits, skipped = r.online.logits(b, x_online, n, oracle)
            _check_logits(online_logits, n, x)
            online = (batch_counts(online_logits, y, first_frame=positions[0]), skipped)
    except Exception as exc:
        r.error = error_line(exc)
        r.traceback = traceback.format_exc()
        return
    for j, frame_counts in enumerate(counts):
        miou = r.scores.add(segs[j], frame_counts)
        if per_frame:
            corr, sev = states[j]
            entropy = frame_counts.entropy_sum / frame_counts.pixels
            r.frame_rows.append({"frame": positions[j], "corruption": corr or "clean",
                                 "severity": sev, "miou": miou, "entropy": entropy,
                                 "segment": segs[j]})  # fmt: skip
        if online is not None:
            r.online.scores.add(segs[j], online[0][j], skipped=online[1])
    r.frames += n
    r.batches += 1
    if keep_prediction:
        r.last_pred = logits[-1].argmax(0).to(torch.uint8).numpy()


def segment_row(stream: AdaptedStream, index: int, r: MethodRun, fixed: np.ndarray,
                states: Sequence[tuple[str | None, float]]) -> dict[str, Any]:  # fmt: skip
    """The stored row of one finished segment for one method (see docs: Protocols)."""
    seg = stream.segments[index]
    acc = r.scores.segments[index]
    s = acc.metrics.compute()
    names = sorted({c or "clean" for c, _ in states})
    positions = stream.positions(index)
    pred = float(np.mean(acc.pred_classes)) if acc.pred_classes else 0.0
    gt = float(np.mean(acc.gt_classes)) if acc.gt_classes else 0.0
    entropy = finite(s["entropy"])
    online = r.online.scores.segments.get(index) if r.online is not None else None
    mirror = r.online_mirror
    return {
        "segment": index,
        "start_frame": positions.start if positions is not None else None,
        "stop_frame": positions.stop if positions is not None else None,
        "label": seg.label,
        "corruption": names[0] if len(names) == 1 else "mixed",
        "severity": float(np.mean([v for _, v in states])) if states else 0.0,
        "miou": finite(s["miou"]),
        "pixel_acc": finite(s["pixel_acc"]),
        "entropy": entropy,
        "round": seg.round,
        "order": seg.order,
        "domain": seg.domain,
        "frames": acc.metrics.frames,
        "miou_fixed": miou_over(acc.metrics.confusion, fixed),
        "online_miou": finite(online.metrics.compute()["miou"])
        if online
        else (finite(s["miou"]) if mirror else None),
        "skipped_frames": online.skipped if online else (0 if mirror else None),
        "pred_classes": round(pred, 4),
        "gt_classes": round(gt, 4),
        "recovery_frames": recovery_frames(acc.miou) if positions is not None else None,
        "collapse": int(collapsed(pred, gt, entropy)),
        "class_prior": class_prior(acc.metrics.confusion),
    }


def run_stream(
    stream: AdaptedStream,
    frames: Callable[[int], Frame],
    runs: Sequence[MethodRun],
    *,
    batch_size: int,
    window: int | None = None,
    per_frame: bool = True,
    fixed: np.ndarray | None = None,
    oracle: SourceOracle | None = None,
    on_segment: Callable[[MethodRun, dict[str, Any]], None] | None = None,
    sample: bool = False,
) -> dict[str, np.ndarray]:
    """Feed ``stream`` to every run. With ``sample``, returns the last frame's corrupted image,
    ground truth and stream position (for the qualitative grid). Failures stay in the runs."""
    import torch

    fixed = np.ones(19, bool) if fixed is None else fixed
    remaining = [s.frames for s in stream.segments]
    seg_states: dict[int, list[tuple[str | None, float]]] = {}
    recent: deque[Any] = deque(maxlen=window or 1)
    out: dict[str, np.ndarray] = {}
    total = len(stream)
    for b, positions in enumerate(batches_of(stream, 1 if window else batch_size)):
        alive = [r for r in runs if r.alive]
        if not alive:
            break
        if positions[0] in stream.resets:
            for r in alive:
                r.reset()
            recent.clear()
        observed, targets, states, segs = [], [], [], []
        for p in positions:
            image, target, state = frames(p)
            observed.append(image)
            targets.append(target)
            states.append(state)
            segs.append(stream.steps[p][0])
            seg_states.setdefault(stream.steps[p][0], []).append(state)
        x = torch.from_numpy(np.stack(observed)).permute(0, 3, 1, 2).float().div_(255.0)
        y = torch.from_numpy(np.stack(targets))  # uint8 trainIds; ground truth stays here
        if window:
            recent.append(x)
            x = torch.cat(list(recent))
        last = positions[-1] == total - 1
        for k, r in enumerate(alive):
            # each method gets its own copy: an adapter may modify its input in place
            xr = x if k == len(alive) - 1 else x.clone()
            _feed(r, b, xr, y, positions, segs, states, oracle, per_frame, sample and last)
        if sample and last:
            out = {"corrupted": observed[-1], "semantic": targets[-1], "position": positions[-1]}
        for s in segs:
            remaining[s] -= 1
        for s in sorted(set(segs)):
            if remaining[s] == 0:
                for r in runs:
                    if r.alive and s in r.scores.segments:
                        row = segment_row(stream, s, r, fixed, seg_states[s])
                        r.segment_rows.append(row)
                        if on_segment is not None:
                            on_segment(r, row)
                seg_states.pop(s, None)
    return out
