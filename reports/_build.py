"""``build_report``: a run folder in, ``report.html`` + ``report.md`` + ``figures/*.png`` out.

The HTML is self-contained (inline CSS, figures as PNG data URIs, no external resources) and every
text from a scenario, model or plugin passes through Jinja2's autoescaping.
"""

from __future__ import annotations

import base64
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from . import _closed_loop as cl
from . import _figures as figs
from ._analysis import corruption_order, method_order, severity_order
from ._load import RunData, load_run
from ._meta import PROTOCOLS
from ._tables import DASH, all_tables, cell_name

_TEMPLATES = Path(__file__).parent / "templates"
MAX_MISSING_LISTED = 60


@dataclass
class FigureRef:
    name: str
    title: str
    caption: str
    data_uri: str
    path: str  # relative to the run folder, for the Markdown report


def _md_escape(value: Any) -> Any:
    """Markdown output: neutralise HTML and table syntax in any text we did not write."""
    if value is None:
        return ""
    if isinstance(value, (markupsafe.Markup, jinja2.Undefined)):
        return value  # output of our own macros (already escaped inside), or undefined
    text = str(value)
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.FileSystemLoader(str(_TEMPLATES))
    html = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
    md = jinja2.Environment(
        loader=loader,
        autoescape=False,
        finalize=_md_escape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return html, md


def _fmt_seconds(sec: float | None) -> str:
    if sec is None:
        return DASH
    if sec < 120:
        return f"{sec:.1f} s"
    if sec < 7200:
        return f"{sec / 60:.1f} min"
    return f"{sec / 3600:.2f} h"


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _protocol(name: str) -> str:
    meaning = PROTOCOLS.get(name)
    return f"{name}: {meaning}" if meaning else name


def _header(data: RunData, methods: list[str], corruptions: list[str]) -> dict[str, Any]:
    meta, sc = data.meta, data.scenario
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    spec = sc.get("model")
    spec_name = spec.get("name") if isinstance(spec, dict) else spec
    model_name = str(model.get("name") or spec_name or DASH)
    params = model.get("params")
    if isinstance(params, (int, float)):
        model_name += f" ({int(params):,} parameters)"
    model_metrics = ", ".join(
        f"{k}: {_scalar(v)}"
        for k, v in model.items()
        if k not in ("name", "params") and isinstance(v, (int, float, str)) and v is not None
    )
    cells = data.cells + data.expected
    seeds = sorted({int(c["seed"]) for c in cells if c.get("seed") is not None})
    frame_counts = sorted({int(c["frames"]) for c in data.done if c.get("frames")})
    frames = sc.get("frames")
    if frames is None and frame_counts:
        frames = (
            str(frame_counts[0])
            if len(frame_counts) == 1
            else f"{frame_counts[0]}–{frame_counts[-1]}"
        )
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    n_expected = len(data.expected) or len(data.cells)
    return {
        "scenario": str(sc.get("name") or meta.get("scenario_name") or data.run_dir.name),
        "description": str(sc.get("description") or ""),
        "rows": [
            ("model", model_name),
            ("model clean metrics", model_metrics or DASH),
            ("methods", ", ".join(methods) or DASH),
            ("baseline", data.baseline or "none (no gain, CE or mCE)"),
            ("protocol", _protocol(data.protocol)),
            (
                "corruptions",
                f"{len(corruptions)}: " + ", ".join(corruptions) if corruptions else DASH,
            ),
            ("seeds", ", ".join(map(str, seeds)) or DASH),
            ("frames per cell", DASH if frames is None else str(frames)),
            ("library versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or DASH),
            ("started", str(meta.get("started_at") or DASH)),
            ("finished", str(meta.get("finished_at") or "not finished")),
            ("wall time", _fmt_seconds(meta.get("wall_seconds"))),
            (
                "cells",
                f"{len(data.done)} done, {len(data.failed)} failed, "
                f"{len(data.missing)} missing of {n_expected} expected",
            ),
        ],
    }


def _figures(data: RunData, tables: dict[str, Any], methods, corruptions, colors) -> list:
    """(name, title, caption, Figure) for every figure the run's content supports."""
    grid, gm = tables["grid"], tables["grid_methods"]
    sevs = severity_order(grid.cells)
    out = [
        (
            "heatmap_miou",
            "mIoU heat maps",
            "Corruption × severity mIoU per method (mean over seeds).",
            figs.heatmaps(grid, gm, corruptions, sevs),
        ),
        (
            "heatmap_gain",
            f"Difference to {data.baseline}",
            f"mIoU of each method minus {data.baseline}'s, per corruption and severity.",
            figs.delta_heatmaps(grid, gm, corruptions, sevs, data.baseline),
        ),
        (
            "severity_curves",
            "Severity curves",
            "Mean mIoU against severity per corruption family; severity 0 is the clean stream.",
            figs.severity_curves(data, grid, gm, corruptions, sevs, colors),
        ),
        (
            "class_iou",
            "Per-class IoU",
            "Per-class IoU under corruption per method; the black bar is the clean IoU.",
            figs.class_iou(data, grid, gm, colors),
        ),
    ]
    for k, (stream, _table) in enumerate(tables["streams"]):
        out.append(
            (
                f"timeline_{k}",
                f"Timeline: {stream.label}",
                "mIoU per segment along the stream; shaded bands and labels mark the shift.",
                figs.timeline(stream, colors),
            )
        )
    out.append(
        (
            "samples",
            "Qualitative examples",
            "clean | corrupted | ground truth | "
            + (f"{data.baseline} prediction | " if data.baseline else "")
            + "other methods' predictions.",
            figs.qualitative(data, methods),
        )
    )
    return [o for o in out if o[3] is not None]


def _closed_loop_section(
    data: RunData, methods: list[str], corruptions: list[str], colors: dict[str, str]
) -> tuple[dict[str, Any] | None, list[tuple[str, str, str, Any]]]:
    """The closed-loop tables and (name, title, caption, Figure) figures; (None, []) for a run
    without closed-loop cells."""
    results = cl.closed_loop(data, methods, corruptions)
    if not results.stats:
        return None, []
    figures = [
        (
            "closed_loop_offsets",
            "Lateral offset over distance",
            "Each method's first drive of the first seed, under clean frames and each corruption "
            "at its highest severity: offset from the lane's centre (m, + right); × marks a "
            "failure, after which the autopilot drives for a while (shaded).",
            cl.offset_figure(data, results, colors),
        )
    ]
    for method, caption, fig in cl.strip_figures(data, results):
        figures.append(
            (f"closed_loop_strip_{len(figures)}", f"First failure: {method}", caption, fig)
        )
    tables = {
        "interventions": cl.interventions_table(results),
        "drives": cl.drive_table(results),
        "strips": [f"closed_loop_strip_{k}" for k in range(1, len(figures))],
    }
    return tables, [f for f in figures if f[3] is not None]


def _generator_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"roadshift {version('roadshift')}"
    except PackageNotFoundError:  # pragma: no cover - a bare checkout
        return "roadshift"


def build_report(run_dir: str | Path, *, quiet: bool = False) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``figures/*.png`` into a run folder.

    Reads only the folder's results store, so it works on a finished, a failed-only or a still
    running (partial) run. Returns ``{"html": ..., "markdown": ..., "figures": ...}`` paths.
    Raises ``scenarios.NoResultsError`` (a ``ValueError``) when the folder holds no results.
    """
    t0 = time.perf_counter()
    data = load_run(run_dir)
    run_dir = data.run_dir
    methods = method_order(data)
    corruptions = corruption_order(data)
    colors = figs.method_colors(methods, data.baseline)
    tables = all_tables(data, methods, corruptions)
    tables["closed_loop"], loop_figures = _closed_loop_section(data, methods, corruptions, colors)

    fig_dir = run_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    for old in fig_dir.glob("*.png"):  # figures of an earlier build of this report
        old.unlink()
    figures: list[FigureRef] = []
    all_figures = _figures(data, tables, methods, corruptions, colors) + loop_figures
    for name, title, caption, fig in all_figures:
        png = figs.to_png(fig)
        (fig_dir / f"{name}.png").write_bytes(png)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        figures.append(FigureRef(name, title, caption, uri, f"figures/{name}.png"))
    static = (
        "heatmap_miou",
        "heatmap_gain",
        "severity_curves",
        "class_iou",
        "samples",
        "closed_loop_offsets",
    )
    by_name: dict[str, FigureRef | None] = dict.fromkeys(static)
    by_name.update({f.name: f for f in figures})

    missing = [cell_name(c) for c in data.missing]
    ctx = {
        "header": _header(data, methods, corruptions),
        "partial": data.partial,
        "unfinished": not data.meta.get("finished_at"),
        "missing": missing[:MAX_MISSING_LISTED],
        "missing_more": max(len(missing) - MAX_MISSING_LISTED, 0),
        "n_done": len(data.done),
        "n_failed": len(data.failed),
        "static_done": bool(tables["grid"].cells),
        "schedule_only": tables["has_schedule_cells"] and not tables["grid"].cells,
        "t": tables,
        "fig": by_name,
        "streams": [
            (s, t, by_name.get(f"timeline_{k}")) for k, (s, t) in enumerate(tables["streams"])
        ],
        "collapsing": tables["collapsing"],
        "colors": colors,
        # the generator, not the wall clock: the same run folder always gives the same bytes
        "generated": _generator_version(),
    }
    html_env, md_env = _environments()
    html_path, md_path = run_dir / "report.html", run_dir / "report.md"
    html_path.write_text(html_env.get_template("report.html.j2").render(**ctx), encoding="utf-8")
    md_path.write_text(md_env.get_template("report.md.j2").render(**ctx), encoding="utf-8")
    if not quiet:
        missing_note = f", {len(missing)} cells missing" if missing else ""
        print(
            f"roadshift report: {len(figures)} figures, {len(data.done)} cells done, "
            f"{len(data.failed)} failed{missing_note}{', partial run' if data.partial else ''} "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
    return {"html": html_path, "markdown": md_path, "figures": fig_dir}
