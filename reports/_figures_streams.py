"""Figures of adapted streams: the timeline of a schedule or protocol stream, and per-round
curves of a continual run. Each draws mIoU on top and, below, each method's difference to the
baseline, so two methods whose curves coincide still read apart (markers and offsets help too).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ._analysis import Stream
from ._figures import _esc, method_style, offsets
from ._protocol import ProtocolResult


def _reference(methods: list[str], baseline: str | None) -> str | None:
    """The method differences are taken against: the baseline, else none (one method)."""
    if baseline in methods:
        return baseline
    return methods[0] if len(methods) > 1 else None


def _axes(fig: Figure, with_diff: bool):
    if not with_diff:
        return fig.add_subplot(), None
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1.6])
    return top, bottom


def _diff_axis(ax, ref: str) -> None:
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_ylabel(f"− {_esc(ref)} (pp)")
    ax.grid(alpha=0.3)


def timeline(stream: Stream, colors: dict[str, str], baseline: str | None) -> Figure | None:
    """Per-segment mIoU along a stream, one line per method, segments labelled; below, each
    method's per-segment difference to the baseline."""
    if not stream.traces and not stream.frame_traces:
        return None
    methods = list(stream.traces) or list(stream.frame_traces)
    ref = _reference(list(stream.traces), baseline) if stream.traces else None
    fig = Figure(figsize=(10, 5.2 if ref else 3.6), layout="constrained")
    ax, dax = _axes(fig, ref is not None)
    segs: list[tuple[int, int, str]] = []
    widths = [b - a for tr in stream.traces.values() for a, b, _, _ in tr if b > a]
    # markers of coincident methods sit side by side within their segment
    shift = offsets(len(stream.traces), 0.3 * min(widths, default=1))
    for k, (m, trace) in enumerate(stream.traces.items()):
        xs, ys = [], []
        for start, stop, _label, v in trace:
            xs += [start, stop]
            ys += [100 * v, 100 * v]
        style = method_style(k)
        ax.plot(xs, ys, color=colors.get(m, "black"), lw=1.6, linestyle=style["linestyle"])
        mids = [(a + b) / 2 + shift[k] for a, b, _, _ in trace]
        ax.plot(
            mids,
            [100 * v for *_, v in trace],
            color=colors.get(m, "black"),
            linestyle="none",
            label=_esc(m),
            **{k2: v for k2, v in style.items() if k2 != "linestyle"},
        )
        if len(trace) > len(segs):
            segs = [(a, b, lab) for a, b, lab, _ in trace]
    if ref is not None and dax is not None:
        base = {(a, b): v for a, b, _, v in stream.traces[ref]}
        for k, m in enumerate(stream.traces):
            if m == ref:
                continue
            pts = [
                ((a + b) / 2 + shift[k], 100 * (v - base[(a, b)]))
                for a, b, _, v in stream.traces[m]
                if (a, b) in base
            ]
            if pts:
                style = method_style(k)
                dax.plot(*zip(*pts, strict=True), color=colors.get(m, "black"), lw=1.2, **style)
        _diff_axis(dax, ref)
    n_frame_traces = len(stream.frame_traces)
    for k, (m, ftrace) in enumerate(stream.frame_traces.items()):
        fx = np.array([f for f, _ in ftrace])
        fy = 100 * np.array([v for _, v in ftrace])
        win = max(1, len(fy) // 40)
        if win > 1:  # moving average, renormalised at the ends so the edges do not sag
            kernel = np.ones(win)
            fy = np.convolve(fy, kernel, "same") / np.convolve(np.ones_like(fy), kernel, "same")
        style: dict = {}
        if not stream.traces:
            # the per-frame lines are the whole figure: each method's own dash, and markers
            # staggered along the line, so a method on top of another stays visible
            every = max(1, len(fx) // 12)
            style = dict(method_style(k), markevery=((k * every) // n_frame_traces, every))
        ax.plot(
            fx,
            fy,
            color=colors.get(m, "black"),
            lw=0.8 if stream.traces else 1.2,
            alpha=0.35 if stream.traces else 1.0,
            label=None if stream.traces else f"{_esc(m)} (per frame, smoothed)",
            **style,
        )
    if not segs:
        segs = _segments_from_frames(stream)
    for axis in (ax, dax):
        if axis is None:
            continue
        for k, (start, stop, _label) in enumerate(segs):
            if k % 2:
                axis.axvspan(start, stop, color="0.92", zorder=0)
    if segs and len(segs) <= 60:
        top = ax.secondary_xaxis("top")
        top.set_xticks(
            [(a + b) / 2 for a, b, _ in segs],
            [_esc(lab) for _, _, lab in segs],
            rotation=35 if len(segs) > 4 else 0,
            ha="left" if len(segs) > 4 else "center",
            fontsize=7,
        )
        top.tick_params(length=0)
        for lab in top.get_xticklabels():
            lab.set_rotation_mode("anchor")
    ax.set_ylim(0, 100)
    (dax or ax).set_xlabel("frame")
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left", ncols=min(len(methods), 4))
    ax.set_title(f"{_esc(stream.kind)} '{_esc(stream.label)}': mIoU along the stream")
    return fig


def _segments_from_frames(stream: Stream) -> list[tuple[int, int, str]]:
    """Segments where no segment rows exist: the frame range as one segment."""
    frames = [f for trace in stream.frame_traces.values() for f, _ in trace]
    return [(min(frames), max(frames) + 1, stream.label)] if frames else []


def round_curves(
    res: ProtocolResult, colors: dict[str, str], baseline: str | None
) -> Figure | None:
    """mIoU per round per method (error bars: spread over streams), and each method's
    difference to the baseline per round."""
    methods = [m for m, stats in res.per_round.items() if any(s.mean is not None for s in stats)]
    if res.rounds < 2 or not methods:
        return None
    ref = _reference(methods, baseline)
    fig = Figure(figsize=(8.5, 5.2 if ref else 3.6), layout="constrained")
    ax, dax = _axes(fig, ref is not None)
    rounds = np.arange(1, res.rounds + 1)
    shift = offsets(len(methods), 0.3)
    for k, m in enumerate(methods):
        stats = res.per_round[m]
        ys = np.array([np.nan if s.mean is None else 100 * s.mean for s in stats])
        err = np.array([0.0 if s.std is None else 100 * s.std for s in stats])
        style = method_style(k)
        ax.errorbar(
            rounds + shift[k],
            ys,
            yerr=err if err.any() else None,
            color=colors.get(m, "black"),
            label=_esc(m),
            lw=1.4,
            capsize=2,
            **style,
        )
        if ref is not None and dax is not None and m != ref:
            base = np.array(
                [np.nan if s.mean is None else 100 * s.mean for s in res.per_round[ref]]
            )
            dax.plot(rounds + shift[k], ys - base, color=colors.get(m, "black"), lw=1.2, **style)
    if dax is not None and ref is not None:
        _diff_axis(dax, ref)
    ax.set_ylabel("mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(methods), 4))
    (dax or ax).set_xlabel("round")
    (dax or ax).set_xticks(rounds if res.rounds <= 20 else rounds[:: max(1, res.rounds // 10)])
    ax.set_title(f"{_esc(res.protocol)}: mIoU per round (the same frames every round)")
    return fig
