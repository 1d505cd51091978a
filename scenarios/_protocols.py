"""Protocols: how shifts become adapted streams (order, rounds, segments, resets, batches).

An :class:`AdaptedStream` is what one adapter sees: *segments* (each shows a range of its
shift's natural frames, see ``scenarios._sources``) and *steps*, the (segment, natural frame)
pairs in the order the adapter meets them, with the positions where the adapter is reset. The
execution loop (``scenarios._loop``) batches the steps, crossing segment boundaries except at
resets. Nothing here touches frames, adapters or metrics.

- ``reset_each_shift``: one stream per shift from a fresh adapter; a ``schedule:`` stream's
  segments follow the schedule (a ``static`` schedule resets at its boundaries).
- ``continual``: the shift list in one order, ``rounds`` times; every segment of a shift shows
  the same natural frames (the shift's whole clean stream), so each round repeats the frames.
- ``gradual``: :func:`gradual_schedule` over the corruptions, then as ``continual``.
- ``mixed``: every shift's frames in one stream, shuffled (seeded per scenario seed).

Orders: order 0 is the listed order; order k >= 1 is the permutation of
:func:`order_permutation`, the same for every seed, so seeds and orders cross.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from scenarios._cells import Shift, stable_int
from scenarios._sources import CleanStream

__all__ = [
    "AdaptedStream",
    "Segment",
    "carried_stream",
    "gradual_schedule",
    "mixed_stream",
    "order_permutation",
    "reset_stream",
    "stream_label",
]


@dataclass(frozen=True)
class Segment:
    """A piece of an adapted stream: natural frames ``[start, stop)`` of one shift."""

    index: int
    label: str
    shift: Shift
    start: int
    stop: int
    round: int = 1  # 1-based pass over the shift list
    order: int = 0
    domain: str | None = None

    @property
    def frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class AdaptedStream:
    """What one adapter meets, in order; ``resets`` holds the positions (besides 0) where the
    adapter returns to its initial state (and a batch must start)."""

    label: str
    protocol: str
    segments: tuple[Segment, ...]
    steps: tuple[tuple[int, int], ...]  # (segment index, natural frame) per stream position
    resets: frozenset[int] = frozenset()
    order: int = 0
    rounds: int = 1
    contiguous: bool = True  # every segment occupies consecutive positions

    def __len__(self) -> int:
        return len(self.steps)

    def shifts(self) -> list[Shift]:
        """The distinct shifts of the stream, in order of first appearance."""
        seen: dict[tuple[str, float], Shift] = {}
        for seg in self.segments:
            seen.setdefault((seg.shift.label, seg.shift.severity), seg.shift)
        return list(seen.values())

    def positions(self, segment: int) -> range | None:
        """The stream positions of a segment when they are consecutive, else None."""
        if not self.contiguous:
            return None
        start = sum(s.frames for s in self.segments[:segment])
        return range(start, start + self.segments[segment].frames)


def stream_label(protocol: str, order: int, orders: int) -> str:
    """A carried stream's cell label: the protocol, plus ``.o<k>`` when there are orders."""
    return protocol if orders <= 1 else f"{protocol}.o{order}"


def order_permutation(n: int, order: int) -> list[int]:
    """Order ``order`` of a list of ``n`` shifts: 0 is the listed order, k >= 1 a permutation
    drawn from ``SeedSequence([stable_int("order"), k])`` (independent of the scenario seed)."""
    if order == 0:
        return list(range(n))
    rng = np.random.default_rng(np.random.SeedSequence([stable_int("order"), order]))
    return [int(i) for i in rng.permutation(n)]


def gradual_schedule(corruptions: Sequence[str]) -> list[tuple[str, int]]:
    """CoTTA's gradual schedule: the first corruption at severities 5, 4, 3, 2, 1, then each next
    one at 1, 2, 3, 4, 5, 4, 3, 2, 1 (the type changes at severity 1)."""
    out: list[tuple[str, int]] = []
    for k, c in enumerate(corruptions):
        levels = [5, 4, 3, 2, 1] if k == 0 else [1, 2, 3, 4, 5, 4, 3, 2, 1]
        out += [(c, s) for s in levels]
    return out


def _split_by_parts(start: int, stop: int, clean: CleanStream) -> list[tuple[int, int, str | None]]:
    """``[start, stop)`` cut where the clean stream's domain parts change."""
    out = []
    for a, b, domain in clean.parts:
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            out.append((lo, hi, domain if len(clean.parts) > 1 else None))
    return out


def _label(base: str, domain: str | None) -> str:
    return base if domain is None else f"{base} {domain}"


def reset_stream(
    shift: Shift, clean: CleanStream,
    schedule_segments: Sequence[tuple[int, int, str]] | None = None, carry: bool = True,
) -> AdaptedStream:  # fmt: skip
    """A ``reset_each_shift`` stream: the shift over the whole clean stream, from a fresh adapter.

    ``schedule_segments`` are a schedule's (start, stop, label) pieces; ``carry`` False resets
    the adapter at each of them."""
    pieces = schedule_segments or [(0, clean.frames, shift.label)]
    segments: list[Segment] = []
    resets: set[int] = set()
    for a, b, base in pieces:
        if a > 0 and not carry:
            resets.add(a)
        for lo, hi, domain in _split_by_parts(a, b, clean):
            segments.append(Segment(len(segments), _label(base, domain), shift, lo, hi,
                                    domain=domain))  # fmt: skip
    steps = tuple((s.index, i) for s in segments for i in range(s.start, s.stop))
    return AdaptedStream(shift.label, "reset_each_shift", tuple(segments), steps,
                         frozenset(resets))  # fmt: skip


def carried_stream(
    protocol: str, shifts: Sequence[Shift], clean: CleanStream, *, rounds: int = 1,
    order: int = 0, label: str | None = None,
) -> AdaptedStream:  # fmt: skip
    """``shifts`` (already in this order's sequence) ``rounds`` times, one adapter throughout;
    each shift's segments show its whole clean stream, split at the label-shift parts."""
    segments: list[Segment] = []
    for r in range(1, rounds + 1):
        for shift in shifts:
            base = f"{shift.label} s{shift.severity:g}" + (f" r{r}" if rounds > 1 else "")
            for lo, hi, domain in _split_by_parts(0, clean.frames, clean):
                segments.append(Segment(len(segments), _label(base, domain), shift, lo, hi,
                                        round=r, order=order, domain=domain))  # fmt: skip
    steps = tuple((s.index, i) for s in segments for i in range(s.start, s.stop))
    return AdaptedStream(label or protocol, protocol, tuple(segments), steps, frozenset(),
                         order=order, rounds=rounds)  # fmt: skip


def mixed_stream(shifts: Sequence[Shift], clean: CleanStream, seed: int) -> AdaptedStream:
    """Every shift's frames in one stream, shuffled with ``SeedSequence([seed,
    stable_int("mixed")])``; one segment per shift, its frames scattered over the stream."""
    segments = tuple(
        Segment(k, f"{s.label} s{s.severity:g}", s, 0, clean.frames) for k, s in enumerate(shifts)
    )
    steps = [(s.index, i) for s in segments for i in range(s.start, s.stop)]
    rng = np.random.default_rng(np.random.SeedSequence([seed, stable_int("mixed")]))
    shuffled = tuple(steps[int(k)] for k in rng.permutation(len(steps)))
    return AdaptedStream("mixed", "mixed", segments, shuffled, frozenset(), contiguous=False)
