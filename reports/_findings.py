"""Findings: results the test-time adaptation literature reports, checked against this run.

Each finding states its exact test (which cells, which threshold) and is decided from this run's
stored numbers only. A finding whose protocol or cells the run does not hold is *omitted* (listed
with what it needs), never guessed. Methods are recognised by their registered name in the run's
metadata (``meta.methods``), whatever their labels: ``source``; ``bn`` batch-only (no
``prior_strength``, no ``momentum``); ``bn`` with ``prior_strength`` N > 0; ``tent``.

(a) BN beats source under strong covariate shift (Schneider et al. 2020; Nado et al. 2020).
(b) Batch statistics cost accuracy on correlated (video) frames against i.i.d. frames
    (the batch-size and label-correlation failures of BN-based methods; RoTTA, NOTE, LAME).
(c) TENT degrades over continual rounds (CoTTA's 10-round Cityscapes→ACDC table).
(d) A compute budget reorders methods (Alfarra et al., ICML 2024).
(e) Source-prior mixing trades clean for shifted accuracy (Schneider et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._analysis import Grid
from ._load import CLEAN, RunData
from ._notes import source_label
from ._protocol import online, protocol_results, sampling_comparison

#: A difference of one point of mIoU (0.01) decides (a), (b), (c) and (e).
POINT = 0.01
#: Severity from which a corruption counts as a strong covariate shift, for (a).
STRONG_SEVERITY = 4.0
#: For (d): each of the two gaps of a swapped pair must be at least half a point.
REORDER_GAP = 0.005

INTRO = (
    "Results the test-time adaptation literature reports, each checked against this run's own "
    "numbers with the test stated beside it. 'Holds here' and 'does not hold here' speak of "
    "this run only: its model, world, stream lengths and batch size. A finding whose protocol "
    "or cells were not run is listed as not tested."
)


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str
    test: str
    holds: bool
    evidence: str

    @property
    def title(self) -> str:
        return f"({self.key}) {self.claim}"

    @property
    def verdict(self) -> str:
        return "holds here" if self.holds else "does not hold here"

    @property
    def css(self) -> str:
        return "holds" if self.holds else "fails"


def _p(v: float) -> str:
    return f"{100 * v:.1f}"


def _pp(v: float) -> str:
    return f"{100 * v:+.1f}"


def _mean(vals) -> float:
    return float(np.mean(list(vals)))


def _labels(data: RunData, test: Callable[[str, dict[str, Any]], bool]) -> list[str]:
    out = []
    for m in data.meta.get("methods") or []:
        if isinstance(m, dict) and isinstance(m.get("label"), str):
            name, options = data.method_spec(m["label"])
            if test(name, options):
                out.append(m["label"])
    return out


def _batch_only_bn(data: RunData) -> str | None:
    found = _labels(
        data,
        lambda n, o: n == "bn" and not o.get("prior_strength") and o.get("momentum") is None,
    )
    return found[0] if found else None


# ---------------------------------------------------------------- (a)
def _stream_pairs(data: RunData, a: str, b: str) -> list[tuple[str, float, float]]:
    """(shift, mIoU of a, mIoU of b) of stream segments at a strong severity, paired by stream,
    seed and segment; first round only (later rounds repeat the same frames)."""
    segs: dict[str, dict[tuple, tuple[str, float]]] = {a: {}, b: {}}
    for c in data.done:
        rows = data.segments.get(c["cell_id"], [])
        if c["method"] not in segs or not rows:
            continue
        first = min(int(s.get("round") or 0) for s in rows)
        for s in rows:
            sev, v = s.get("severity"), s.get("miou")
            if sev is None or v is None or float(sev) < STRONG_SEVERITY:
                continue
            if int(s.get("round") or 0) != first:
                continue
            key = (c.get("schedule"), c.get("corruption"), c.get("seed"), s.get("segment"))
            segs[c["method"]][key] = (str(s.get("corruption") or s.get("label")), float(v))
    return [
        (segs[a][k][0], segs[a][k][1], segs[b][k][1])
        for k in sorted(segs[a], key=str)
        if k in segs[b]
    ]


def bn_beats_source(data: RunData, grid: Grid) -> Finding | str:
    claim = "BN re-estimation beats the source model under strong covariate shift"
    need = f"(a) {claim}: needs source and batch-only bn on corruptions at severity ≥ 4"
    src, bn = source_label(data), _batch_only_bn(data)
    if src is None or bn is None:
        return need
    pairs: list[tuple[str, float, float]] = []
    for seed in grid.seeds(bn):
        ours, ref = grid.corrupted(bn, seed), grid.corrupted(src, seed)
        for key in sorted(ours):
            if key in ref and key[1] >= STRONG_SEVERITY:
                pairs.append((key[0], ours[key], ref[key]))
    what = "corruption cells"
    if not pairs:  # no grid: the segments of streams (BN keeps no state between batches)
        pairs, what = _stream_pairs(data, bn, src), "stream segments"
    if not pairs:
        return need
    counted = f"{len(pairs)} {what}" if len(pairs) > 1 else f"1 {what[:-1]}"
    diff = _mean(a - b for _, a, b in pairs)
    ahead = sum(a > b for _, a, b in pairs)
    names = sorted({c for c, _, _ in pairs})
    return Finding(
        "a",
        claim,
        f"holds if the mean over the {what} at severity ≥ {STRONG_SEVERITY:g} of "
        f"({bn} − {src}) mIoU is at least 1 point (paired by shift, severity and seed"
        + (", first round" if what == "stream segments" else "")
        + ").",
        diff >= POINT,
        f"Over {counted} at severity ≥ {STRONG_SEVERITY:g} ({', '.join(names)}): "
        f"{bn} {_p(_mean(a for _, a, _ in pairs))} vs {src} "
        f"{_p(_mean(b for _, _, b in pairs))} mIoU, {_pp(diff)} points; {bn} ahead in "
        f"{ahead} of {len(pairs)}.",
    )


# ---------------------------------------------------------------- (b)
def video_vs_iid(data: RunData) -> Finding | str:
    claim = "batch statistics cost more on correlated (video) frames than on i.i.d. frames"
    need = (
        f"(b) {claim}: needs source and batch-only bn run with sampling: [video, iid] (the same "
        "shifts under both)"
    )
    src, bn = source_label(data), _batch_only_bn(data)
    cmp = sampling_comparison(data)
    if src is None or bn is None or cmp is None or set(cmp.samplings) != {"video", "iid"}:
        return need
    # (shift, seed) with source and bn under both samplings
    keys = [
        (shift, seed)
        for shift in cmp.shifts
        for seed in sorted(cmp.paired.get((src, shift), {}))
        if seed in cmp.paired.get((bn, shift), {})
    ]
    clean = [k for k in keys if k[0][0] == CLEAN]
    use = clean or keys
    if not use:
        return need

    def cost(mode: str) -> float:
        return _mean(
            cmp.paired[(src, sh)][seed][mode] - cmp.paired[(bn, sh)][seed][mode] for sh, seed in use
        )

    video, iid = cost("video"), cost("iid")
    n = len(use)
    where = f"{n} clean cell{'s' if n > 1 else ''}" if clean else f"{n} paired cells"
    return Finding(
        "b",
        claim,
        f"holds if {bn}'s loss to {src} on video frames exceeds its loss on i.i.d. frames by at "
        f"least 1 point: ({src} − {bn})_video − ({src} − {bn})_iid ≥ 1 point, over the clean "
        "cells (else every shift) run with both samplings, paired by seed.",
        video - iid >= POINT,
        f"Over {where} per sampling: {bn} loses {_p(video)} points of mIoU to {src} on video "
        f"frames and {_p(iid)} on i.i.d. frames, a difference of {_pp(video - iid)} points.",
    )


# ---------------------------------------------------------------- (c)
def tent_degrades(data: RunData) -> Finding | str:
    claim = "TENT degrades over continual rounds"
    need = f"(c) {claim}: needs tent in a continual or gradual run with rounds ≥ 2"
    tents = _labels(data, lambda n, o: n == "tent")
    results = [r for r in protocol_results(data) if r.protocol in ("continual", "gradual")]
    for res in results:
        for tent in tents:
            if tent not in res.first_last or res.rounds < 2:
                continue
            first, last = res.first_last[tent]
            change = last.mean - first.mean
            others = [
                f"{m} {_p(fl[0].mean)} → {_p(fl[1].mean)}"
                for m, fl in res.first_last.items()
                if m != tent
            ]
            spread = f" ({res.streams} streams: seeds × orders)" if res.streams > 1 else ""
            return Finding(
                "c",
                claim,
                f"holds if {tent}'s mIoU in the last round is at least 1 point below its mIoU in "
                "the first round (frame-weighted over each round's segments, paired per stream).",
                change <= -POINT,
                f"{res.protocol}, {res.rounds} rounds{spread}: {tent} {_p(first.mean)} in "
                f"round 1 → {_p(last.mean)} in round {res.rounds} ({_pp(change)} points)"
                + (f"; for comparison {', '.join(others)}." if others else "."),
            )
    return need


# ---------------------------------------------------------------- (d)
def budget_reorders(data: RunData) -> Finding | str:
    claim = "a compute budget reorders methods"
    need = f"(d) {claim}: needs online evaluation (online: {{eta: ...}}) of at least two methods"
    rows = online(data)
    if len(rows) < 2:
        return need
    off = {r.method: r.offline.mean for r in rows}
    on = {r.method: r.online.mean for r in rows}
    swaps = [
        (a, b)
        for a in off
        for b in off
        if off[a] - off[b] >= REORDER_GAP and on[b] - on[a] >= REORDER_GAP
    ]

    def ranking(values: dict[str, float]) -> str:
        return " > ".join(f"{m} {_p(v)}" for m, v in sorted(values.items(), key=lambda x: -x[1]))

    swapped = "; ".join(
        f"{a} ahead of {b} offline ({_pp(off[a] - off[b])}) but behind online "
        f"({_pp(on[a] - on[b])})"
        for a, b in swaps
    )
    return Finding(
        "d",
        claim,
        "holds if some pair of methods changes order: one ahead of the other by at least 0.5 "
        "points offline and behind it by at least 0.5 points online (same cells).",
        bool(swaps),
        f"Offline: {ranking(off)}. Online: {ranking(on)}."
        + (f" {swapped}." if swaps else " No pair changes order by the test's margins."),
    )


# ---------------------------------------------------------------- (e)
def prior_trade(data: RunData, grid: Grid) -> Finding | str:
    claim = "source-prior mixing trades clean accuracy for shifted accuracy"
    need = (
        f"(e) {claim}: needs batch-only bn and bn with prior_strength > 0 on the clean stream and "
        "corruption cells"
    )
    base = _batch_only_bn(data)
    priors = _labels(
        data,
        lambda n, o: n == "bn" and (o.get("prior_strength") or 0) > 0 and o.get("momentum") is None,
    )
    priors = [p for p in priors if grid.seeds(p)]
    if base is None or not priors or not grid.seeds(base):
        return need
    prior = max(priors, key=lambda p: float(data.method_spec(p)[1]["prior_strength"]))
    strength = float(data.method_spec(prior)[1]["prior_strength"])
    clean_d, shift_pairs = [], []
    for seed in grid.seeds(prior):
        cp, cb = grid.clean(prior, seed), grid.clean(base, seed)
        if cp is not None and cb is not None:
            clean_d.append(cp - cb)
        ours, ref = grid.corrupted(prior, seed), grid.corrupted(base, seed)
        shift_pairs += [(ours[k], ref[k]) for k in sorted(ours) if k in ref]
    if not clean_d or not shift_pairs:
        return need
    clean_gain = _mean(clean_d)
    shift_cost = _mean(b - a for a, b in shift_pairs)
    return Finding(
        "e",
        claim,
        f"holds if {prior} (prior_strength {strength:g}, the strongest prior run) scores at "
        f"least 1 point above {base} on the clean stream and at least 1 point below it on the "
        "mean over the corruption cells (paired by seed, corruption and severity).",
        clean_gain >= POINT and shift_cost >= POINT,
        f"Clean: {prior} {_pp(clean_gain)} points against {base}; corrupted "
        f"({len(shift_pairs)} cells): {_pp(-shift_cost)} points.",
    )


def findings(data: RunData, grid: Grid) -> tuple[list[Finding], list[str]]:
    """(findings tested, in order a–e; what each untested one needs)."""
    results = [
        bn_beats_source(data, grid),
        video_vs_iid(data),
        tent_degrades(data),
        budget_reorders(data),
        prior_trade(data, grid),
    ]
    tested = [r for r in results if isinstance(r, Finding)]
    omitted = [r for r in results if isinstance(r, str)]
    return tested, omitted
