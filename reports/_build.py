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
from . import _figures_streams as sfigs
from . import _protocol as proto
from . import _protocol_tables as ptables
from ._analysis import LABEL_SHIFT, corruption_order, method_order, severity_order
from ._findings import INTRO as FINDINGS_INTRO
from ._findings import findings
from ._header import header
from ._load import RunData, load_run
from ._notes import explain
from ._tables import Table, all_tables, cell_name

_TEMPLATES = Path(__file__).parent / "templates"
MAX_MISSING_LISTED = 60


@dataclass
class FigureRef:
    name: str
    title: str
    caption: str
    data_uri: str
    path: str  # relative to the run folder, for the Markdown report


@dataclass
class Block:
    """One piece of a section, rendered alike in HTML and Markdown: ``kind`` is table, figure,
    text (a paragraph of explanation), emphasis (``value`` = (lead-in, bold text)), findings
    (the tested ones) or omitted (what each untested finding needs)."""

    kind: str
    value: Any


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block]


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


def _figures(data: RunData, tables: dict[str, Any], methods, corruptions, colors) -> list:
    """(name, title, caption, Figure) for every figure the run's content supports."""
    grid, gm = tables["grid"], tables["grid_methods"]
    sevs = severity_order(grid.cells)
    out = []
    if tables["corrupted"]:
        out += [
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
                "Mean mIoU against severity per corruption family; severity 0 is the clean "
                "stream. Each method has its own marker and dash and is offset sideways, so a "
                "method whose curve coincides with another's stays visible.",
                figs.severity_curves(data, grid, gm, corruptions, sevs, colors),
            ),
            (
                "class_iou",
                "Per-class IoU",
                "Per-class IoU under corruption per method; the black bar is the clean IoU.",
                figs.class_iou(data, grid, gm, colors),
            ),
        ]
    for res in tables["protocols"]:
        out.append(
            (
                f"rounds_{res.protocol}",
                f"{res.protocol}: mIoU per round",
                "mIoU per round and method (error bars: spread over seeds and orders; methods "
                "offset sideways so coincident curves stay visible); below, each method minus "
                f"{data.baseline or 'the first method'}, in points.",
                sfigs.round_curves(res, colors, data.baseline),
            )
        )
    for k, (stream, _table) in enumerate(tables["streams"]):
        out.append(
            (
                f"timeline_{k}",
                f"Timeline: {stream.label}",
                (
                    "mIoU per segment along the stream (markers at segment centres); shaded "
                    "bands and labels mark the shifts; below, each method minus "
                    f"{data.baseline or 'the first method'} per segment, in points."
                    if stream.traces
                    else "Per-frame mIoU along the stream, smoothed (its shifts are mixed "
                    "frame by frame, so there are no segments to mark)."
                ),
                sfigs.timeline(stream, colors, data.baseline),
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


def _protocol_tables(data: RunData, tables: dict[str, Any]) -> None:
    """Add the protocol contract's tables (empty for runs without its columns)."""
    grid = tables["grid"]
    tables["protocols"] = proto.protocol_results(data)
    tables["round_tables"] = {r.protocol: ptables.round_table(r) for r in tables["protocols"]}
    tables["shift_tables"] = {r.protocol: ptables.shift_table(r, grid) for r in tables["protocols"]}
    ls = proto.label_shift(data)
    what = "Label shift" if data.data_source is None else "Conditions"
    tables["label_shift"] = ptables.label_shift_tables(ls, data.class_names, what) if ls else []
    forget = data.meta.get("forgetting")
    tables["forgetting"] = ptables.forgetting_table(
        proto.forgetting(data), forget if isinstance(forget, dict) else None
    )
    tables["recovery"] = ptables.recovery_table(proto.recovery(data), data.meta)
    cmp = proto.sampling_comparison(data)
    tables["sampling"] = ptables.sampling_table(cmp, method_order(data)) if cmp else None
    online = data.meta.get("online")
    tables["online"] = ptables.online_table(
        proto.online(data), online if isinstance(online, dict) else None
    )


def _sections(data: RunData, tables: dict[str, Any], fig: dict[str, FigureRef]) -> list[Section]:
    """The report's sections, the run's own measurement first.

    A carried protocol (continual, gradual, mixed) opens with its rounds and shifts; then a
    label-shift stream, compute-aware and forgetting results; then the corruption grid (only
    with corruption cells: never an empty table), world shifts, schedule streams. Findings
    follow the first section; examples, compute and problems close the report.
    """

    def tab(t: Table | None) -> list[Block]:
        return [Block("table", t)] if t is not None and t.rows else []

    def pic(name: str) -> list[Block]:
        return [Block("figure", fig[name])] if name in fig else []

    streams = tables["streams"]
    kinds = {r.protocol for r in tables["protocols"]}  # streams of a carried protocol
    carried = [(k, s, t) for k, (s, t) in enumerate(streams) if s.kind in kinds]
    scheduled = [
        (k, s, t) for k, (s, t) in enumerate(streams) if s.kind not in (*kinds, LABEL_SHIFT)
    ]
    content: list[Section] = []
    loop = tables.get("closed_loop")
    if loop is not None:  # closed-loop cells: what the run measured about driving
        blocks = tab(loop["interventions"]) + tab(loop["drives"]) + pic("closed_loop_offsets")
        blocks += [b for name in loop["strips"] for b in pic(name)]
        content.append(Section("closed-loop-section", "Closed loop: perception drives the car",
                               blocks))  # fmt: skip
    label_shift = [b for t in tables["label_shift"] for b in tab(t)]
    # a label-shift stream's timelines: its domain tables above hold the numbers
    for k, (s, _t) in enumerate(streams):
        if s.kind == LABEL_SHIFT:
            label_shift += pic(f"timeline_{k}")
    for res in tables["protocols"]:
        # a label-shift stream's domains are what it measures: they lead its section
        blocks, label_shift = label_shift, []
        blocks += tab(tables["round_tables"][res.protocol]) + pic(f"rounds_{res.protocol}")
        if len(res.shifts) > 1:  # one shift: its mean is the stream's mIoU, shown above
            blocks += tab(tables["shift_tables"][res.protocol])
        for k, s, _t in carried:  # the round and shift tables above hold its numbers
            if s.kind == res.protocol:
                blocks += pic(f"timeline_{k}")
        title = f"{res.protocol.capitalize()} protocol"
        if res.rounds > 1:
            title += f": {res.rounds} rounds"
        content.append(Section(f"protocol-{res.protocol}", title, blocks))
    if tables["sampling"] is not None:  # an i.i.d. control beside the video streams
        content.append(
            Section("sampling-section", tables["sampling"].title, tab(tables["sampling"]))
        )
    if label_shift:  # a label-shift stream outside a carried protocol
        title = "Label shift" if data.data_source is None else "Conditions of the data"
        content.append(Section("label-shift", title, label_shift))
    if tables["online"] is not None:
        content.append(
            Section("online-section", "Compute-aware (online) evaluation", tab(tables["online"]))
        )
    if tables["forgetting"] is not None:
        content.append(Section("forgetting-section", "Forgetting", tab(tables["forgetting"])))
    if tables["corrupted"] or (
        tables["headline"] is not None and not (content or streams or tables["world"])
    ):
        blocks = tab(tables["headline"])
        blocks += [Block("text", n) for n in tables["notes"]]
        for name in ("heatmap_miou", "heatmap_gain", "severity_curves"):
            blocks += pic(name)
        blocks += tab(tables["per_corruption"])
        title = "Robustness under corruption" if tables["corrupted"] else "Clean frames"
        content.append(Section("robustness", title, blocks))
        classes = pic("class_iou") + tab(tables["per_class"]) + tab(tables["safety"])
        if classes:
            if tables["collapsing"]:
                lead = ("Largest drops under corruption:", ", ".join(tables["collapsing"]))
                classes.insert(0, Block("emphasis", lead))
            content.append(Section("classes", "Which classes fail", classes))
    if tables["world"] is not None:
        blocks = tab(tables["world"])
        if not tables["corrupted"]:
            blocks += [Block("text", n) for n in tables["notes"]]
        title = "Shifts of the world" if data.data_source is None else "Natural shifts of the data"
        content.append(Section("world", title, blocks))
    if scheduled:
        blocks = [b for k, _s, t in scheduled for b in tab(t) + pic(f"timeline_{k}")]
        if not (tables["corrupted"] or tables["world"]):
            blocks += [Block("text", n) for n in tables["notes"]]
        content.append(Section("schedules", "Shift schedules", blocks))
    if tables["recovery"] is not None:
        content.append(
            Section("recovery-section", "Recovery and collapse", tab(tables["recovery"]))
        )
    tested, omitted = tables["findings"]
    if tested or omitted:
        intro = FINDINGS_INTRO
        if data.data_source is not None:  # a run on your data says nothing of the world
            intro = intro.replace("its model, world,", "its model, data,")
        blocks = [Block("text", intro), Block("findings", tested)]
        if omitted:
            blocks.append(Block("omitted", omitted))
        content.insert(min(1, len(content)), Section("findings", "Findings", blocks))
    closing = []
    if "samples" in fig:
        closing.append(Section("qualitative", "Qualitative examples", pic("samples")))
    if tables["compute"] is not None or tables["traits"] is not None:
        blocks = tab(tables["compute"]) + tab(tables["traits"])
        closing.append(Section("compute-section", "Compute cost", blocks))
    if tables["failed"] is not None or data.partial:
        closing.append(Section("problems", "Problems", tab(tables["failed"])))
    return content + closing


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

    _protocol_tables(data, tables)
    tables["findings"] = findings(data, tables["grid"])
    tables["notes"] = explain(data, tables)
    tables["closed_loop"], loop_figures = _closed_loop_section(data, methods, corruptions, colors)

    fig_dir = run_dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    for old in fig_dir.glob("*.png"):  # figures of an earlier build of this report
        old.unlink()
    by_name: dict[str, FigureRef] = {}
    all_figures = _figures(data, tables, methods, corruptions, colors) + loop_figures
    for name, title, caption, fig in all_figures:
        png = figs.to_png(fig)
        (fig_dir / f"{name}.png").write_bytes(png)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        by_name[name] = FigureRef(name, title, caption, uri, f"figures/{name}.png")

    missing = [cell_name(c) for c in data.missing]
    ctx = {
        "header": header(data, methods, corruptions),
        "partial": data.partial,
        "unfinished": not data.meta.get("finished_at"),
        "missing": missing[:MAX_MISSING_LISTED],
        "missing_more": max(len(missing) - MAX_MISSING_LISTED, 0),
        "n_done": len(data.all_done),
        "n_failed": len(data.all_failed),
        "sections": _sections(data, tables, by_name),
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
            f"roadshift report: {len(by_name)} figures, {len(data.all_done)} cells done, "
            f"{len(data.all_failed)} failed{missing_note}{', partial run' if data.partial else ''} "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
    return {"html": html_path, "markdown": md_path, "figures": fig_dir}
