"""The report's figures, drawn with matplotlib's object API (Figure + Agg canvas, never pyplot).

Each function returns a finished ``Figure`` or ``None`` when the run has nothing to draw;
``to_png`` renders it at a capped size so a report stays small and fast to build.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ._analysis import Grid, per_class
from ._load import CLEAN, RunData

DPI = 90
MAX_INCHES = 16.0
_TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
BASELINE_COLOR = "#555555"
_FIXED = {"bn": "#1f77b4", "tent": "#ff7f0e"}
# Marker and dash per method position, so a method drawn exactly on top of another still shows
# (its marker differs and sits beside the other's, see ``offsets``).
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
_DASHES = ("-", "--", "-.", ":")


def method_style(k: int) -> dict:
    """Line style of the k-th method of a figure: marker, dash and hollow markers after the
    first round of them, so coincident lines stay distinguishable."""
    return {
        "marker": _MARKERS[k % len(_MARKERS)],
        "linestyle": _DASHES[k % len(_DASHES)],
        "markerfacecolor": "white" if k % 2 else None,
        "markersize": 5 + (k % 3),
    }


def offsets(n: int, width: float) -> list[float]:
    """Horizontal offsets spreading n methods over ``width`` around each x position."""
    if n <= 1:
        return [0.0] * n
    return [(k - (n - 1) / 2) * width / (n - 1) for k in range(n)]


def method_colors(methods: Sequence[str], baseline: str | None = None) -> dict[str, str]:
    """One colour per method, stable across every figure of a report (the baseline grey)."""
    free = [c for c in _TAB10 if c not in _FIXED.values()]
    out, k = {}, 0
    for m in methods:
        if m == baseline:
            out[m] = BASELINE_COLOR
        elif m in _FIXED:
            out[m] = _FIXED[m]
        else:
            out[m] = free[k % len(free)]
            k += 1
    return out


def to_png(fig: Figure) -> bytes:
    w, h = fig.get_size_inches()
    scale = min(1.0, MAX_INCHES / max(w, h))
    if scale < 1.0:
        fig.set_size_inches(w * scale, h * scale)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _esc(text: object) -> str:
    """Names from scenarios and plugins shown verbatim: no mathtext for ``$``, and a leading
    underscore (which hides a legend entry) kept visible."""
    s = str(text).replace("$", r"\$")
    return "\u200b" + s if s.startswith("_") else s


def _sev_label(sev: float) -> str:
    return str(int(sev)) if float(sev).is_integer() else f"{sev:g}"


def _grid_axes(fig: Figure, n: int, ncols: int):
    nrows = (n + ncols - 1) // ncols
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return flat[:n]


def heatmaps(
    grid: Grid, methods: list[str], corruptions: list[str], severities: list[float]
) -> Figure | None:
    """Corruption × severity mIoU for each method, one panel each, one shared colour scale."""
    mats = {}
    for m in methods:
        means = grid.mean_over_seeds(m)
        mat = np.array(
            [[means.get((c, s), np.nan) for s in severities] for c in corruptions], dtype=float
        )
        if np.isfinite(mat).any():
            mats[m] = mat
    if not mats or not severities:
        return None
    ncols = min(len(mats), 3)
    nrows = (len(mats) + ncols - 1) // ncols
    fig = Figure(
        figsize=(1.2 + 3.6 * ncols, 0.8 + (0.26 * len(corruptions) + 0.9) * nrows),
        layout="constrained",
    )
    axes = _grid_axes(fig, len(mats), ncols)
    im = None
    for ax, (m, mat) in zip(axes, mats.items(), strict=False):
        im = ax.imshow(100 * mat, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        _annotate_cells(ax, 100 * mat, lambda v: v > 55)
        _label_heatmap(ax, corruptions, severities)
        ax.set_title(f"{_esc(m)}: mIoU (%)")
    fig.colorbar(im, ax=axes, label="mIoU (%)", shrink=0.8)
    fig.suptitle("mIoU under corruption (mean over seeds)")
    return fig


def delta_heatmaps(
    grid: Grid,
    methods: list[str],
    corruptions: list[str],
    severities: list[float],
    baseline: str | None,
) -> Figure | None:
    """mIoU difference to the baseline per cell (percentage points), diverging colour scale."""
    if baseline is None:
        return None
    base = grid.mean_over_seeds(baseline)
    if not base or not severities:
        return None
    mats = {}
    for m in methods:
        if m == baseline:
            continue
        means = grid.mean_over_seeds(m)
        mat = np.array(
            [
                [means.get((c, s), np.nan) - base.get((c, s), np.nan) for s in severities]
                for c in corruptions
            ],
            dtype=float,
        )
        if np.isfinite(mat).any():
            mats[m] = 100 * mat
    if not mats:
        return None
    lim = max(float(np.nanmax(np.abs(np.stack(list(mats.values()))))), 1.0)
    ncols = min(len(mats), 3)
    nrows = (len(mats) + ncols - 1) // ncols
    fig = Figure(
        figsize=(1.2 + 3.6 * ncols, 0.8 + (0.26 * len(corruptions) + 0.9) * nrows),
        layout="constrained",
    )
    axes = _grid_axes(fig, len(mats), ncols)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    im = None
    for ax, (m, mat) in zip(axes, mats.items(), strict=False):
        im = ax.imshow(mat, cmap="RdBu", norm=norm, aspect="auto")
        _annotate_cells(ax, mat, lambda v: abs(v) <= 0.6 * lim, fmt="{:+.0f}")
        _label_heatmap(ax, corruptions, severities)
        ax.set_title(f"{_esc(m)} − {_esc(baseline)} (pp)")
    fig.colorbar(
        im, ax=axes, label=f"mIoU change vs {_esc(baseline)} (percentage points)", shrink=0.8
    )
    fig.suptitle(f"Gain over {_esc(baseline)} (blue = better, red = worse)")
    return fig


def _annotate_cells(ax, mat, dark, fmt="{:.0f}") -> None:
    if mat.size > 200:
        return
    for (i, j), v in np.ndenumerate(mat):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                fmt.format(round(v) + 0.0),  # + 0.0: no "-0"
                ha="center",
                va="center",
                fontsize=7,
                color="black" if dark(v) else "white",
            )
        else:
            ax.text(j, i, "–", ha="center", va="center", fontsize=7, color="grey")


def _label_heatmap(ax, corruptions, severities) -> None:
    ax.set_xticks(range(len(severities)), [_sev_label(s) for s in severities])
    ax.set_yticks(range(len(corruptions)), [_esc(c) for c in corruptions], fontsize=8)
    ax.set_xlabel("severity")
    ax.set_ylabel("corruption")


def severity_curves(
    data: RunData,
    grid: Grid,
    methods: list[str],
    corruptions: list[str],
    severities: list[float],
    colors: dict[str, str],
) -> Figure | None:
    """Mean mIoU against severity (0 = clean) per corruption family, one line per method."""
    by_family: dict[str, list[str]] = defaultdict(list)
    for c in corruptions:
        by_family[data.families.get(c, "other")].append(c)
    if not by_family or not severities:
        return None
    ncols = len(by_family) if len(by_family) <= 5 else 4
    nrows = (len(by_family) + ncols - 1) // ncols
    fig = Figure(figsize=(max(7.0, 0.6 + 3.0 * ncols), 0.6 + 2.8 * nrows), layout="constrained")
    axes = _grid_axes(fig, len(by_family), ncols)
    xs = [0.0, *severities]
    gap = min(np.diff(xs)) if len(xs) > 1 else 1.0
    shift = offsets(len(methods), 0.25 * gap)
    for ax, (fam, names) in zip(axes, by_family.items(), strict=False):
        for k, m in enumerate(methods):
            means = grid.mean_over_seeds(m)
            ys = [means.get((CLEAN, 0.0), np.nan)]
            for s in severities:
                vals = [means[(c, s)] for c in names if (c, s) in means]
                ys.append(np.mean(vals) if vals else np.nan)
            ys_arr = 100 * np.array(ys, dtype=float)
            if np.isfinite(ys_arr).any():
                ax.plot(
                    [x + shift[k] for x in xs],
                    ys_arr,
                    color=colors[m],
                    label=_esc(m),
                    lw=1.4,
                    **method_style(k),
                )
        ax.set_title(f"{_esc(fam)} ({len(names)} corruption{'s' if len(names) > 1 else ''})")
        ax.set_xticks(xs, ["clean", *[_sev_label(s) for s in severities]])
        ax.set_xlabel("severity")
        ax.set_ylabel("mIoU (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "Severity curves per corruption family (mean over corruptions and seeds; "
        "methods offset sideways so coincident curves stay visible)"
    )
    return fig


def class_iou(
    data: RunData, grid: Grid, methods: list[str], colors: dict[str, str]
) -> Figure | None:
    """Per-class IoU under corruption per method, with each class's clean IoU as a marker."""
    rows = {m: per_class(data, grid, m) for m in methods}
    keep = [
        i
        for i in range(len(data.class_names))
        if any(rows[m][0][i] is not None or rows[m][1][i] is not None for m in methods)
    ]
    if not keep:
        return None
    fig = Figure(
        figsize=(max(6.0, 0.55 * len(keep) * max(1, len(methods)) ** 0.5 + 2), 3.8),
        layout="constrained",
    )
    ax = fig.add_subplot()
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(keep))
    ref = methods[0]
    for k, m in enumerate(methods):
        shift = np.array([np.nan if rows[m][1][i] is None else rows[m][1][i] for i in keep])
        ax.bar(
            x + (k - (len(methods) - 1) / 2) * width,
            100 * shift,
            width,
            color=colors[m],
            label=f"{_esc(m)} under corruption",
        )
    clean = np.array([np.nan if rows[ref][0][i] is None else rows[ref][0][i] for i in keep])
    ax.scatter(
        x, 100 * clean, marker="_", s=300, color="black", zorder=3, label=f"{_esc(ref)} clean"
    )
    ax.set_xticks(x, [_esc(data.class_names[i]) for i in keep], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 118)
    ax.set_yticks(range(0, 101, 20))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(methods) + 1, 4), loc="upper right")
    ax.set_title(
        "Per-class IoU: clean (black bar) vs mean under corruption — which classes collapse"
    )
    return fig


def _load_sample(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError):
        return None
    for key in ("clean", "corrupted", "semantic", "prediction"):
        if key not in out:
            return None
    meta = {}
    for key in ("method", "corruption", "severity", "seed"):
        if key in out:
            meta[key] = out[key].item() if out[key].ndim == 0 else out[key]
    out["meta"] = meta
    return out


def qualitative(data: RunData, methods: list[str]) -> Figure | None:
    """Rows of clean | corrupted | ground truth | baseline | other predictions, with a legend."""
    groups: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for path in data.samples:
        s = _load_sample(path)
        if s is None:
            continue
        meta = s["meta"]
        key = (
            str(meta.get("corruption", "?")),
            float(meta.get("severity", 0) or 0),
            int(meta.get("seed", 0) or 0),
        )
        groups[key][str(meta.get("method", path.stem))] = s
    if not groups:
        return None
    # Prefer shifts with the most methods, then the most severe, at most four rows.
    keys = sorted(groups, key=lambda k: (-len(groups[k]), k[0] == CLEAN, -k[1], k))[:4]
    shown = [m for m in methods if any(m in groups[k] for k in keys)]
    shown += sorted({m for k in keys for m in groups[k]} - set(shown))
    if data.baseline in shown:
        shown.remove(data.baseline)
    pred_cols = [data.baseline, *shown] if data.baseline is not None else shown
    ncols = 3 + len(pred_cols)
    h, w = next(iter(groups[keys[0]].values()))["clean"].shape[:2]
    pw = 2.2
    fig = Figure(figsize=(pw * ncols, pw * h / w * len(keys) + 1.4), layout="constrained")
    axes = fig.subplots(len(keys), ncols, squeeze=False)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(data.palette)] = data.palette
    present: set[int] = set()
    for r, key in enumerate(keys):
        any_s = next(iter(groups[key].values()))
        present |= {int(v) for v in np.unique(any_s["semantic"]) if v < len(data.class_names)}
        panels = [any_s["clean"], any_s["corrupted"], lut[any_s["semantic"]]]
        for m in pred_cols:
            s = groups[key].get(m)
            panels.append(None if s is None else lut[s["prediction"]])
            if s is not None:
                present |= {int(v) for v in np.unique(s["prediction"]) if v < len(data.class_names)}
        titles = [
            "clean",
            f"{key[0]} s{_sev_label(key[1])}" if key[1] else key[0],
            "ground truth",
            *[f"{m} prediction" for m in pred_cols],
        ]
        for c, (img, title) in enumerate(zip(panels, titles, strict=False)):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if img is None:
                ax.text(0.5, 0.5, "no sample", ha="center", va="center", transform=ax.transAxes)
            else:
                ax.imshow(img, interpolation="nearest")
            ax.set_title(_esc(title), fontsize=8)
    handles = [
        Patch(
            facecolor=np.asarray(data.palette[i]) / 255.0,
            edgecolor="0.3",
            label=_esc(data.class_names[i]),
        )
        for i in sorted(present)
    ]
    if handles:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 10),
            fontsize=7,
            frameon=False,
        )
    colours = "the run's class colours" if data.stored_palette else "stand-in class colours"
    fig.suptitle(f"Qualitative examples ({colours}; black = ignore)")
    return fig
