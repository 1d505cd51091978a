"""The report's run header: what ran, under which protocol and stream, and how it went."""

from __future__ import annotations

from typing import Any

from ._load import RunData
from ._meta import PROTOCOLS
from ._tables import DASH


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
        return f"{v:.3f}" if 0 <= v <= 1 else f"{v:.4g}"
    return str(v)


def _protocol(data: RunData) -> str:
    name = data.protocol
    meaning = PROTOCOLS.get(name)
    text = f"{name}: {meaning}" if meaning else name
    plan = data.meta.get("protocol_plan")
    if isinstance(plan, dict) and plan:
        rounds, orders = plan.get("rounds"), plan.get("orders")
        n_orders = len(orders) if isinstance(orders, list) else orders
        shifts = plan.get("shifts") if isinstance(plan.get("shifts"), list) else []
        labels = [str(x.get("label")) for x in shifts if isinstance(x, dict)]
        bits = []
        if labels:
            shown = ", ".join(labels[:12]) + (
                f", … ({len(labels)} in all)" if len(labels) > 12 else ""
            )
            bits.append(f"shifts {shown}")
        if isinstance(rounds, int) and rounds > 1:
            bits.append(f"{rounds} rounds")
        if isinstance(n_orders, int) and n_orders > 1:
            bits.append(f"{n_orders} orders (order 0 as listed, the others seeded permutations)")
        if bits:
            text += " — " + "; ".join(bits)
    return text


def _data_rows(data: RunData) -> list[tuple[str, str]]:
    """Header rows of a run on a dataset on disk (``meta.data``): where its frames came from."""
    d = data.data_source
    if d is None:
        return []
    split = f", split {d['split']}" if d.get("split") else ""
    text = f"{d.get('root')} (layout {d.get('layout')}{split}): {d.get('dataset_frames')} frames"
    conds = d.get("conditions") if isinstance(d.get("conditions"), list) else []
    if conds:
        text += " in conditions " + ", ".join(
            f"{c.get('name')} ({c.get('frames')})" for c in conds if isinstance(c, dict)
        )
    size = d.get("size")
    if isinstance(size, list) and len(size) == 2:
        text += f"; a stream takes {d.get('stream_frames')} of them, at {size[0]}×{size[1]}"
    rows = [("data", text)]
    if d.get("labelled") is False:
        rows.append(
            ("labels", "none: mIoU is undefined; only label-free signals (entropy, collapse "
             "by entropy) are reported")
        )  # fmt: skip
    return rows


def _stream_rows(data: RunData) -> list[tuple[str, str]]:
    """Header rows for the protocol contract's stream, online and forgetting settings."""
    meta = data.meta
    stream = meta.get("stream") if isinstance(meta.get("stream"), dict) else {}
    sampling = stream.get("sampling") or data.scenario.get("sampling")
    rows: list[tuple[str, str]] = []
    iid = stream.get("iid") if isinstance(stream.get("iid"), dict) else {}
    detail = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in iid.items() if v is not None)
    words = {
        "video": "consecutive frames of one drive per seed",
        "iid": "frames drawn from many drives and shuffled" + (f" ({detail})" if detail else ""),
    }
    if data.data_source is not None:
        words = {
            "video": "the dataset's frames in file order",
            "iid": "the dataset's frames in a random order, seeded per seed",
        }
    rows += _data_rows(data)
    if isinstance(sampling, list) and sampling:
        first, *rest = (str(x) for x in sampling)
        text = f"{first}: {words.get(first, first)}; " + "; ".join(
            f"{x}: {words.get(x, x)}, cells labelled <shift>.{x}" for x in rest
        )
        rows.append(("sampling", text))
    elif sampling:
        rows.append(("sampling", f"{sampling}: {words.get(str(sampling), sampling)}"))
    if stream.get("window"):
        rows.append(("window", f"batch size 1, the last {stream['window']} frames as the batch"))
    parts = stream.get("label_shift")
    if isinstance(parts, list) and parts:
        labels = [str(p.get("label") or p.get("world")) for p in parts if isinstance(p, dict)]
        rows.append(("label shift", " → ".join(labels)))
    online = meta.get("online")
    if isinstance(online, dict) and online:
        rate = (
            f"η = {online['eta']:g}"
            if isinstance(online.get("eta"), (int, float))
            else f"{online.get('fps')} fps"
        )
        ratios = online.get("cost_ratio") if isinstance(online.get("cost_ratio"), dict) else {}
        measured = ", ".join(
            f"{m} {r:.2f}" for m, r in ratios.items() if isinstance(r, (int, float))
        )
        rows.append(
            (
                "online",
                f"{rate}, fallback {online.get('fallback') or 'last'}"
                + (f"; cost ratios r measured once: {measured}" if measured else ""),
            )
        )
    forget = meta.get("forgetting")
    if isinstance(forget, dict) and forget:
        rows.append(
            (
                "forgetting",
                f"after each stream, {forget.get('frames', '?')} held-out clean "
                "source-domain frames scored with no update",
            )
        )
    return rows


def header(data: RunData, methods: list[str], corruptions: list[str]) -> dict[str, Any]:
    """The run header: scenario name, description and the rows of the Run table."""
    meta, sc = data.meta, data.scenario
    model = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    spec = sc.get("model")
    spec_name = spec.get("name") if isinstance(spec, dict) else spec
    model_name = str(model.get("name") or spec_name or DASH)
    params = model.get("params")
    if isinstance(params, (int, float)):
        model_name += f" ({int(params):,} parameters)"
    if isinstance(model.get("weights"), str):
        model_name += f", {model['weights']} weights"
    stated = [
        (k.removeprefix("clean_val_").replace("_", " "), v)
        for k, v in model.items()
        if k not in ("name", "params", "weights") and isinstance(v, (int, float, str))
    ]
    words = {"miou": "mIoU", "pixel acc": "pixel accuracy", "ece": "ECE"}
    model_metrics = ", ".join(f"{words.get(k, k)} {_scalar(v)}" for k, v in stated)
    if any(k.startswith("clean_val_") for k in model):
        model_metrics += " (on its held-out clean validation frames)"
    cells = data.cells + data.expected
    seeds = sorted({int(c["seed"]) for c in cells if c.get("seed") is not None})
    frame_counts = sorted({int(c["frames"]) for c in data.done if c.get("frames")})
    stream = meta.get("stream") if isinstance(meta.get("stream"), dict) else {}
    frames = sc.get("frames")
    if frames is None and isinstance(stream.get("frames_per_segment"), int):
        frames = stream["frames_per_segment"]
    if frames is None and frame_counts:
        frames = (
            str(frame_counts[0])
            if len(frame_counts) == 1
            else f"{frame_counts[0]}–{frame_counts[-1]}"
        )
    # a carried protocol or a label-shift stream counts ``frames`` per segment, not per cell
    plan = meta.get("protocol_plan") if isinstance(meta.get("protocol_plan"), dict) else {}
    per_segment = data.protocol != "reset_each_shift" or bool(stream.get("label_shift"))
    frames_text = DASH if frames is None else str(frames)
    if per_segment and frames is not None and isinstance(plan.get("stream_frames"), int):
        frames_text += f"; each adapted stream {plan['stream_frames']} frames"
    # a protocol run has no grid: its shifts are the scenario's corruptions all the same
    if not corruptions:
        listed = sc.get("corruptions")
        corruptions = [str(x) for x in listed] if isinstance(listed, list) else []
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    n_expected = len(data.expected) + len(data.expected_controls) or len(data.cells)
    return {
        "scenario": str(sc.get("name") or meta.get("scenario_name") or data.run_dir.name),
        "description": str(sc.get("description") or ""),
        "rows": [
            ("model", model_name),
            ("model's stated clean metrics", model_metrics or DASH),
            ("methods", ", ".join(methods) or DASH),
            ("baseline", data.baseline or "none (no gain, CE or mCE)"),
            ("protocol", _protocol(data)),
            *_stream_rows(data),
            (
                "corruptions",
                f"{len(corruptions)}: " + ", ".join(corruptions) if corruptions else DASH,
            ),
            ("seeds", ", ".join(map(str, seeds)) or DASH),
            ("frames per segment" if per_segment else "frames per cell", frames_text),
            ("library versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or DASH),
            ("started", str(meta.get("started_at") or DASH)),
            ("finished", str(meta.get("finished_at") or "not finished")),
            ("wall time", _fmt_seconds(meta.get("wall_seconds"))),
            (
                "cells",
                f"{len(data.all_done)} done, {len(data.all_failed)} failed, "
                f"{len(data.missing)} missing of {n_expected} expected",
            ),
        ],
    }
