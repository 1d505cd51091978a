"""Shift schedules: every kind, serialisation, purity and validation."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import yaml

import sim

N = 60


def states(spec, n=N):
    s = sim.make_schedule(spec)
    return s, [s.state(i, n) for i in range(n)]


def check_segments(s, n=N):
    segs = s.segments(n)
    assert segs[0][0] == 0 and segs[-1][1] == n
    for (_, b, _), (c, _, _) in itertools.pairwise(segs):
        assert b == c  # contiguous
    for i in range(n):
        st = s.state(i, n)
        a, b, label = segs[st.segment]
        assert a <= i < b and st.label == label
    return segs


def test_all_kinds_listed_and_round_trip_through_yaml():
    kinds = sim.schedule_kinds()
    assert {
        "static",
        "gradual",
        "continual",
        "mixed",
        "transition",
        "drift_and_return",
        "day_to_night",
        "clear_to_fog",
        "clear_to_rain",
    } <= set(kinds)
    for kind in kinds:
        s = sim.make_schedule(kind)
        assert s.kind == kind
        d = s.to_dict()
        back = sim.make_schedule(yaml.safe_load(yaml.safe_dump(d)))
        assert back == s and back.to_dict() == d
        assert [back.state(i, 17) for i in range(17)] == [s.state(i, 17) for i in range(17)]
        check_segments(s, 17)
        st = s.state(3, 17)
        assert dataclasses.is_dataclass(st) and 0 <= st.severity <= 5
        with pytest.raises(dataclasses.FrozenInstanceError):
            st.severity = 1.0


def test_static():
    s, st = states({"kind": "static", "corruption": "fog", "severity": 4})
    assert all(x.corruption == "fog" and x.severity == 4 and x.world is None for x in st)
    assert s.segments(N) == [(0, N, "fog s4")]
    assert s.continual is False
    assert sim.make_schedule("snow") == sim.make_schedule({"kind": "static", "corruption": "snow"})


def test_gradual_ramps_up_and_down():
    s, st = states({"kind": "gradual", "corruption": "gaussian_noise"}, n=61)
    sev = [x.severity for x in st]
    assert (
        sev[0] == pytest.approx(1) and sev[30] == pytest.approx(5) and sev[-1] == pytest.approx(1)
    )
    assert all(b >= a for a, b in itertools.pairwise(sev[:31]))
    assert all(b <= a for a, b in itertools.pairwise(sev[30:]))
    assert s.continual
    labels = [lab for _, _, lab in check_segments(s, 61)]
    assert labels[0] == "gaussian_noise s1" and "gaussian_noise s5" in labels


def test_gradual_discrete_and_periodic():
    _, st = states({"kind": "gradual", "corruption": "fog", "discrete": True}, n=90)
    sev = [x.severity for x in st]
    assert set(sev) == {1, 2, 3, 4, 5}
    steps = [sev[0]] + [b for a, b in itertools.pairwise(sev) if b != a]
    assert steps == [1, 2, 3, 4, 5, 4, 3, 2, 1]
    _, st = states({"kind": "gradual", "corruption": "fog", "period": 20})
    sev = [x.severity for x in st]
    assert sev[:20] == sev[20:40] == sev[40:60]


def test_continual_sequence():
    corr = ["fog", "snow", "contrast"]
    s, st = states({"kind": "continual", "corruptions": corr, "severity": 5})
    assert [x.corruption for x in st] == ["fog"] * 20 + ["snow"] * 20 + ["contrast"] * 20
    assert s.segments(N) == [(0, 20, "fog"), (20, 40, "snow"), (40, 60, "contrast")]
    s, st = states({"kind": "continual", "corruptions": corr, "frames_per": 10})
    assert [x.corruption for x in st[:30]] == [x.corruption for x in st[30:]]  # repeats
    assert s.segments(N)[3] == (30, 40, "fog round 2")
    default = sim.make_schedule("continual")
    assert list(default.corruptions) == sim.corruption_groups()["imagenet-c"]


def test_mixed_is_a_pure_function_of_frame_and_seed():
    spec = {"kind": "mixed", "corruptions": ["fog", "snow", "frost", "contrast"], "seed": 3}
    s = sim.make_schedule(spec)
    forward = [s.state(i, N).corruption for i in range(N)]
    backward = [s.state(i, N).corruption for i in reversed(range(N))][::-1]
    assert forward == backward == [sim.make_schedule(spec).state(i, N).corruption for i in range(N)]
    assert len(set(forward)) == 4  # varies per frame
    other = [sim.make_schedule({**spec, "seed": 4}).state(i, N).corruption for i in range(N)]
    assert other != forward
    held = sim.make_schedule({**spec, "hold": 5})
    h = [held.state(i, N).corruption for i in range(N)]
    assert all(len(set(h[i : i + 5])) == 1 for i in range(0, N, 5))
    counts = np.unique(forward, return_counts=True)[1]
    assert counts.min() >= 5  # roughly uniform


@pytest.mark.parametrize("curve", ["linear", "sigmoid", "cosine", "ease_in", "ease_out", "step"])
def test_transition_follows_curve(curve):
    spec = {"kind": "transition", "corruption": "fog", "curve": curve, "start": 0.2, "stop": 0.8}
    s, st = states(spec, n=100)
    sev = [x.severity for x in st]
    assert sev[:20] == [0.0] * 20 and sev[80:] == [5.0] * 20
    assert all(b >= a for a, b in itertools.pairwise(sev))
    assert [lab for _, _, lab in s.segments(100)] == ["fog before", "fog ramp", "fog after"]
    mid = sev[50]
    expect = {"linear": 2.5, "sigmoid": 2.5, "cosine": 2.5, "step": 5.0}
    if curve in expect:
        assert mid == pytest.approx(expect[curve], abs=0.15)
    elif curve == "ease_in":
        assert mid < 2.0
    else:
        assert mid > 3.0


def test_drift_and_return():
    s, st = states({"kind": "drift_and_return", "corruption": "snow", "severity": 4, "hold": 0.2})
    sev = [x.severity for x in st]
    assert sev[0] < 0.5 and sev[-1] < 0.5 and max(sev) == 4
    peak = [i for i, v in enumerate(sev) if v == 4]
    assert peak[0] == 24 and peak[-1] == 35
    labels = [lab for _, _, lab in s.segments(N)]
    assert labels == ["snow drift", "snow peak", "snow return"]


@pytest.mark.parametrize(
    ("kind", "field", "first", "last"),
    [
        ("day_to_night", "sun_altitude_deg", 55.0, -25.0),
        ("clear_to_fog", "fog_density", 0.0, 60.0),
        ("clear_to_rain", "precipitation", 0.0, 95.0),
    ],
)
def test_world_schedules(kind, field, first, last):
    _, st = states(kind, n=101)
    assert all(x.corruption is None and x.world is not None for x in st)
    vals = [x.world[field] for x in st]
    assert vals[0] == pytest.approx(first, abs=abs(last - first) * 0.01 + 1e-9)
    assert vals[-1] == pytest.approx(last, abs=abs(last - first) * 0.01 + 1e-9)
    assert all((b - a) * (last - first) >= 0 for a, b in itertools.pairwise(vals))
    assert st[0].severity < 0.1 and st[-1].severity > 4.9
    custom = sim.make_schedule({"kind": kind, "end": {field: (first + last) / 2}})
    assert custom.state(100, 101).world[field] == pytest.approx((first + last) / 2, abs=1)
    weather_cls = getattr(sim, "Weather", None)
    if weather_cls is not None:  # the fields are the world's own weather fields
        for x in st[::25]:
            weather_cls().replaced(**x.world)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"kind": "gradul"}, r"'kind'.*did you mean gradual"),
        ({"corruption": "fog"}, "needs a 'kind'"),
        ({"kind": "static", "corruption": "fgo"}, r"'corruption'.*did you mean fog"),
        ({"kind": "static", "sev": 3}, r"unknown field 'sev'.*valid fields: corruption, severity"),
        ({"kind": "static", "severity": 7}, r"'severity'.*\[0, 5\]"),
        ({"kind": "transition", "curve": "zig"}, r"'curve' must be one of linear"),
        ({"kind": "transition", "start": 0.8, "stop": 0.2}, "'start'"),
        ({"kind": "continual", "corruptions": []}, "'corruptions'"),
        ({"kind": "continual", "frames_per": 0}, "'frames_per'"),
        ({"kind": "mixed", "hold": -1}, "'hold'"),
        ({"kind": "gradual", "min_severity": 4, "max_severity": 2}, "'min_severity'"),
        ({"kind": "day_to_night", "end": {"fog": 1}}, r"'end'.*valid: sun_altitude_deg"),
        ("no_such_thing", "neither a schedule kind"),
    ],
)
def test_validation_errors_name_the_field(spec, match):
    with pytest.raises(ValueError, match=match) as err:
        sim.make_schedule(spec)
    assert "\n" not in str(err.value)


def test_state_arguments_are_checked():
    s = sim.make_schedule("static")
    with pytest.raises(ValueError, match="frame_index"):
        s.state(10, 10)
    with pytest.raises(ValueError, match="n_frames"):
        s.state(0, 0)
    with pytest.raises(TypeError, match="schedule spec"):
        sim.make_schedule(3)
