"""Protocol semantics without a model: streams, orders, batches, sources, skips, measures."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from scenarios._cells import Shift
from scenarios._loop import batches_of
from scenarios._measures import class_prior, collapsed, miou_over, recovery_frames
from scenarios._online import processed_batches, skipped_batches
from scenarios._plan import plan_units
from scenarios._protocols import (
    carried_stream,
    gradual_schedule,
    mixed_stream,
    order_permutation,
    reset_stream,
)
from scenarios._sources import IID_SPACING, IID_WORLD_SEED_MIN, clean_stream
from scenarios._validate import validate_scenario

from .conftest import tiny

FOG, NIGHT = Shift("static", "fog", 5.0, "fog"), Shift("static", "night", 5.0, "night")


def _video(frames: int = 4, parts=()):
    return clean_stream({}, 0, frames, 64, 128, parts=parts)


def test_continual_walks_the_list_round_after_round_showing_the_same_frames():
    stream = carried_stream("continual", [FOG, NIGHT], _video(4), rounds=3)
    assert [(s.label, s.round) for s in stream.segments] == [
        ("fog s5 r1", 1), ("night s5 r1", 1), ("fog s5 r2", 2), ("night s5 r2", 2),
        ("fog s5 r3", 3), ("night s5 r3", 3),
    ]  # fmt: skip
    # each segment shows its shift's natural frames 0..3, in every round
    per_segment = {}
    for seg, natural in stream.steps:
        per_segment.setdefault(seg, []).append(natural)
    assert all(v == [0, 1, 2, 3] for v in per_segment.values()) and len(stream) == 24
    assert stream.resets == frozenset()  # one adapter throughout
    assert [list(stream.positions(k)) for k in (0, 1)] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_orders_are_seeded_permutations_shared_by_every_seed():
    assert order_permutation(5, 0) == [0, 1, 2, 3, 4]  # order 0: the listed order
    perms = [order_permutation(5, k) for k in range(1, 6)]
    assert all(sorted(p) == [0, 1, 2, 3, 4] for p in perms)
    assert len({tuple(p) for p in perms}) > 1 and perms[0] == order_permutation(5, 1)
    sc = validate_scenario(
        tiny(
            protocol="continual",
            orders=3,
            seeds=[0, 1],
            corruptions=["fog", "night", "contrast"],
            include_clean=False,
        )
    )
    units = plan_units(sc)
    assert {u.cells[0]["corruption"] for u in units} == {"continual.o0", "continual.o1",
                                                         "continual.o2"}  # fmt: skip
    by = {(u.seed, u.stream.order, u.cells[0]["method"]): u for u in units}
    for order in range(3):  # the same order of shifts whatever the seed
        labels = [[s.label for s in by[(seed, order, "bn")].stream.segments] for seed in (0, 1)]
        assert labels[0] == labels[1]
        assert labels[0] == [["fog", "night", "contrast"][i] + " s3"
                             for i in order_permutation(3, order)]  # fmt: skip
    # one unit per (seed, order, method): long streams of different methods run in parallel
    assert len(units) == 2 * 3 * 3 and all(len(u.cells) == 1 for u in units)
    assert all(u.cells[0]["order"] == u.stream.order for u in units)


def test_gradual_is_cottas_schedule():
    assert gradual_schedule(["a", "b", "c"]) == (
        [("a", 5), ("a", 4), ("a", 3), ("a", 2), ("a", 1)]
        + [("b", s) for s in (1, 2, 3, 4, 5, 4, 3, 2, 1)]
        + [("c", s) for s in (1, 2, 3, 4, 5, 4, 3, 2, 1)]
    )
    data = tiny(protocol="gradual", corruptions=["fog", "night"], include_clean=False,
                methods=["bn"])  # fmt: skip
    del data["severities"]  # gradual walks its own severities
    sc = validate_scenario(data)
    [unit] = plan_units(sc)
    labels = [s.label for s in unit.stream.segments]
    assert labels[:6] == ["fog s5", "fog s4", "fog s3", "fog s2", "fog s1", "night s1"]
    assert len(labels) == 14 and unit.cells[0]["protocol"] == "gradual"
    with pytest.raises(ValueError, match="severities: protocol gradual"):
        validate_scenario(tiny(protocol="gradual"), check=False)


def test_mixed_shuffles_every_shifts_frames_into_one_stream():
    clean = _video(6)
    a = mixed_stream([FOG, NIGHT], clean, seed=0)
    assert sorted(a.steps) == sorted((s, i) for s in (0, 1) for i in range(6))  # each once
    assert list(a.steps) != sorted(a.steps) and not a.contiguous
    assert a.positions(0) is None  # scattered: no start/stop
    assert a.steps == mixed_stream([FOG, NIGHT], clean, seed=0).steps  # seeded
    assert a.steps != mixed_stream([FOG, NIGHT], clean, seed=1).steps
    # batches of 3 mix shifts
    mixes = [len({a.steps[p][0] for p in b}) for b in batches_of(a, 3)]
    assert max(mixes) == 2


def test_batches_span_segment_boundaries_except_at_resets():
    stream = carried_stream("continual", [FOG, NIGHT], _video(4))
    assert batches_of(stream, 3) == [[0, 1, 2], [3, 4, 5], [6, 7]]  # [3, 4, 5] crosses
    pieces = [(0, 2, "a"), (2, 4, "b")]
    carried = reset_stream(FOG, _video(4), pieces, carry=True)
    assert batches_of(carried, 3) == [[0, 1, 2], [3]]
    reset = reset_stream(FOG, _video(4), pieces, carry=False)  # resets at 2: a new batch there
    assert reset.resets == frozenset({2}) and batches_of(reset, 3) == [[0, 1], [2, 3]]


def test_iid_draws_few_frames_from_each_of_many_drives_and_shuffles_them():
    video = clean_stream({}, 7, 16, 64, 128)
    assert len(video.renderings) == 1 and video.refs == tuple((0, i) for i in range(16))
    iid = clean_stream({}, 7, 16, 64, 128, sampling="iid")
    assert len(iid.renderings) == 4  # ceil(16 / 4) drives
    seeds = [spec.seed for spec in iid.renderings]
    assert len(set(seeds)) == 4 and min(seeds) >= IID_WORLD_SEED_MIN
    per_drive: dict[int, list[int]] = {}
    for r, i in iid.refs:
        per_drive.setdefault(r, []).append(i)
    assert all(sorted(v) == [0, IID_SPACING, 2 * IID_SPACING, 3 * IID_SPACING]
               for v in per_drive.values())  # fmt: skip
    # shuffled: consecutive frames mostly come from different drives
    assert sum(a[0] != b[0] for a, b in itertools.pairwise(iid.refs)) >= 8
    assert clean_stream({}, 7, 16, 64, 128, sampling="iid") == iid  # deterministic per seed
    other = clean_stream({}, 8, 16, 64, 128, sampling="iid")
    assert not {s.seed for s in other.renderings} & set(seeds)


def test_label_shift_streams_are_town_parts_one_after_another():
    parts = [("town=urban", {"town": "urban"}), ("town=rural", {"town": "rural"})]
    clean = _video(3, parts)
    assert [s.world for s in clean.renderings] == [{"town": "urban"}, {"town": "rural"}]
    assert clean.parts == ((0, 3, "town=urban"), (3, 6, "town=rural"))
    stream = carried_stream("continual", [FOG], clean, rounds=2)
    assert [(s.label, s.domain) for s in stream.segments] == [
        ("fog s5 r1 town=urban", "town=urban"), ("fog s5 r1 town=rural", "town=rural"),
        ("fog s5 r2 town=urban", "town=urban"), ("fog s5 r2 town=rural", "town=rural"),
    ]  # fmt: skip
    sc = validate_scenario(tiny(label_shift=True), check=True)
    assert [p.label for p in sc.label_shift] == ["town=urban", "town=highway", "town=rural"]


@pytest.mark.parametrize(
    "ratio, eta, skip, pattern",
    [
        (1.0, 1.0, 0, "PPPPPPP"),
        (0.4, 1.0, 0, "PPPPPPP"),
        (1.01, 1.0, 1, "P-P-P-P"),
        (2.5, 1.0, 2, "P--P--P"),
        (3.0, 1.0, 2, "P--P--P"),
        (1.5, 2.0, 2, "P--P--P"),
        (0.5, 0.5, 0, "PPPPPPP"),
    ],
)
def test_online_skip_schedule_matches_a_hand_computed_one(ratio, eta, skip, pattern):
    # ceil(r * eta) - 1 batches missed after each processed one
    assert skipped_batches(ratio, eta) == skip == math.ceil(ratio * eta) - 1
    assert "".join("P" if p else "-" for p in processed_batches(7, skip)) == pattern


def test_recovery_is_the_frames_before_the_smoothed_miou_stays_in_the_band():
    # 10 frames at 0.2, then 30 at 0.6: the 8-frame trailing mean enters 0.6 +- 0.05 at the
    # frame whose window holds at most one frame at 0.2 (mean 0.55), i.e. frame 10 + 6 = 16
    per_frame = [0.2] * 10 + [0.6] * 30
    assert recovery_frames(per_frame) == 16
    assert recovery_frames([0.6] * 40) == 0
    assert recovery_frames([0.6] * 15) is None  # shorter than twice the window
    noisy = [0.6 + (0.04 if i % 2 else -0.04) for i in range(40)]
    assert recovery_frames(noisy) == 0  # noise inside the band settles at once


def test_collapse_flags_few_classes_or_no_entropy():
    assert collapsed(4.0, 10.0, 0.2) and not collapsed(6.0, 10.0, 0.2)
    assert collapsed(9.0, 10.0, 0.001) and not collapsed(9.0, 10.0, None)


def test_fixed_class_miou_and_class_prior_against_a_hand_computation():
    cm = np.zeros((19, 19), np.int64)
    cm[0, 0], cm[0, 1], cm[1, 1] = 8, 2, 5  # classes 0 and 1 in the ground truth
    cm[2, 2] = 0
    cm[3, 4] = 0
    cm[1, 5] = 5  # class 5 only predicted
    classes = np.zeros(19, bool)
    classes[[0, 1, 7]] = True  # 7: in the set, absent everywhere: skipped
    iou0, iou1 = 8 / (8 + 2), 5 / (5 + 2 + 5)
    assert miou_over(cm, classes) == pytest.approx((iou0 + iou1) / 2)
    assert class_prior(cm)[:2] == [pytest.approx(10 / 20), pytest.approx(10 / 20)]
