"""Scenario files: bundled library, valid files, and one-line errors for every kind of bad input."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim
from scenarios import Scenario, ScenarioError, load_scenario, scenario_names
from scenarios._schema import describe_bundled
from scenarios._validate import validate_scenario

from .conftest import tiny, write_yaml

BUNDLED = ("quick", "imagenet-c", "weather", "continual", "gradual", "day-to-night",
           "town-shift", "batch-size-1", "cityscapes-c", "acdc")  # fmt: skip


def test_bundled_library_is_complete_and_every_file_validates(bundled_data):
    assert set(BUNDLED) <= set(scenario_names())
    descriptions = describe_bundled()
    for name in scenario_names():
        sc = load_scenario(name)
        assert isinstance(sc, Scenario) and sc.name == name
        assert descriptions[name] and "\n" not in descriptions[name]


def test_quick_spans_the_families_at_two_severities():
    sc = load_scenario("quick")
    assert {m.name for m in sc.methods} >= {"source", "bn", "tent"}
    families = {sim.corruption_info(c).family for c in sc.corruptions}
    assert {"noise", "blur", "weather", "digital", "driving"} <= families
    assert len(sc.corruptions) >= 5 and len(sc.severities) == 2 and sc.include_clean


def test_imagenet_c_group_expands_to_the_fifteen():
    sc = load_scenario("imagenet-c")
    assert sc.corruptions == list(sim.corruption_groups()["imagenet-c"])
    assert len(sc.corruptions) == 15 and sc.severities == [1, 2, 3, 4, 5] and sc.frames == 256


def test_valid_file_with_groups_options_and_defaults(tmp_path):
    data = tiny(
        corruptions=["noise", "gaussian_noise", "fog"],
        methods=["source", {"name": "bn", "options": {"prior_strength": 16}},
                 {"name": "tent", "label": "tent-slow", "options": {"lr": 1e-4}}],
    )  # fmt: skip
    sc = load_scenario(write_yaml(tmp_path / "s.yaml", data))
    noise = sim.corruption_groups()["noise"]
    assert sc.corruptions == [*noise, "fog"]  # groups expand in order, without repeats
    assert sc.method_keys() == ["source", "bn", "tent-slow"]
    assert sc.methods[1].options == {"prior_strength": 16}
    assert sc.seeds == [0] and sc.include_clean is True


def _err(tmp_path: Path, data, name="bad.yaml") -> str:
    path = write_yaml(tmp_path / name, data)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


@pytest.mark.parametrize(
    "changes, field, needle",
    [
        ({"colour": "red"}, "colour", "valid keys"),
        ({"corruptions": ["gaussian_noize"]}, "corruptions[0]", "gaussian_noise"),
        ({"methods": ["source", "tnet"]}, "methods[1].name", "tent"),
        ({"methods": [{"name": "bn", "optoins": {}}]}, "methods[0].optoins", "valid keys"),
        ({"model": "no_such_model"}, "model.name", "test_bn"),
        ({"severities": [0]}, "severities", "(0, 5]"),
        ({"severities": [6]}, "severities", "(0, 5]"),
        ({"frames": 0}, "frames", "greater than 0"),
        ({"height": -4}, "height", "16"),
        ({"batch_size": "many"}, "batch_size", "integer"),
        ({"protocol": "continuous"}, "protocol", "'reset_each_shift', 'continual'"),
        ({"rounds": 3}, "rounds", "applies to protocol continual or gradual"),
        ({"protocol": "mixed", "orders": 2}, "orders", "applies to protocol continual"),
        ({"protocol": "continual", "rounds": 0}, "rounds", "greater than or equal to 1"),
        ({"sampling": "random"}, "sampling", "'video' or 'iid'"),
        ({"window": 4}, "window", "set batch_size: 1"),
        ({"online": {"eta": 1, "fps": 10}}, "online", "exactly one of eta"),
        ({"online": {"eta": 0}}, "online.eta", "greater than 0"),
        ({"online": {"eta": 1, "fallback": "stale"}}, "online.fallback", "'last' or 'source'"),
        ({"fallback": "source"}, "(top level)", "fallback: only applies with online"),
        ({"label_shift": [{"town": "rural"}]}, "label_shift", "at least two parts"),
        ({"label_shift": [{"town": "rural"}, {"town": "mars"}]}, "label_shift[1]", "rural"),
        ({"protocol": "mixed", "label_shift": True}, "label_shift", "parts would mix"),
        ({"protocol": "continual", "schedule": "gradual"}, "protocol", "only under reset"),
        ({"protocol": "continual", "corruptions": []}, "protocol", "needs corruptions"),
        ({"protocol": "gradual"}, "severities", "remove severities"),
        ({"forgetting": "yes please"}, "forgetting", "boolean"),
        ({"world": {"town": "atlantis"}}, "world", "urban"),
        ({"world": {"towns": "urban"}}, "world.towns", "town"),
        ({"methods": ["bn", "bn"]}, "methods", "label"),
        ({"methods": ["nosuchmodule_xyz:Cls"]}, "methods[0].name", "cannot import"),
    ],
)
def test_bad_values_name_the_field_and_choices(tmp_path, changes, field, needle):
    msg = _err(tmp_path, tiny(**changes))
    assert field in msg and needle in msg


def test_missing_required_key(tmp_path):
    data = tiny()
    del data["methods"]
    assert "methods: required key is missing" in _err(tmp_path, data)


def test_syntax_error_binary_file_not_mapping(tmp_path):
    bad = tmp_path / "syntax.yaml"
    bad.write_text("name: x\nmethods: [source\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"syntax\.yaml: YAML syntax error at line"):
        load_scenario(bad)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    with pytest.raises(ScenarioError, match="binary"):
        load_scenario(binary)
    listy = write_yaml(tmp_path / "list.yaml", ["a", "b"])
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(listy)


def test_missing_file_and_unknown_bundled_name(tmp_path):
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(ScenarioError, match=r"did you mean quick.*bundled: .*imagenet-c"):
        load_scenario("quik")


def _not_a_count(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return True
    return not (math.isfinite(value) and value > 0 and value.is_integer())


_FIELDS = {
    # text that reads as a positive integer ("1") is a valid frame count to pydantic: not drawn
    "frames": st.one_of(
        st.integers(max_value=0), st.text(max_size=3).filter(_not_a_count), st.floats(0.1, 0.9)
    ),
    "batch_size": st.one_of(st.integers(max_value=0), st.just([1])),
    "height": st.one_of(st.integers(max_value=15), st.just(None)),
    "width": st.integers(min_value=4097, max_value=10**9),
    "severities": st.lists(
        st.one_of(st.floats(max_value=0, allow_nan=False), st.floats(min_value=5.0001)),
        min_size=1,
        max_size=3,
    ),
    "seeds": st.one_of(st.just([]), st.lists(st.integers(max_value=-1), min_size=1, max_size=2)),
    "include_clean": st.one_of(st.integers(min_value=2), st.just("maybe"), st.just([True])),
    "samples": st.integers(max_value=-1),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_hypothesis_bad_values_always_give_one_line_naming_the_field(data):
    field = data.draw(st.sampled_from(sorted(_FIELDS)))
    value = data.draw(_FIELDS[field])
    with pytest.raises(ScenarioError) as info:
        validate_scenario(tiny(**{field: value}), source="gen.yaml", check=False)
    msg = str(info.value)
    assert msg.startswith("gen.yaml: ") and field in msg and "\n" not in msg


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["corruptions", "methods", "model"]),
    name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=12),
)
def test_hypothesis_unknown_names_list_the_valid_choices(field, name):
    import perception

    known = {
        "corruptions": set(sim.corruption_names()) | set(sim.corruption_groups()),
        "methods": set(perception.adapter_names()),
        "model": set(perception.model_names()),
    }[field]
    if name in known:
        return
    value = [name] if field != "model" else name
    with pytest.raises(ScenarioError) as info:
        validate_scenario(tiny(**{field: value}), source="gen.yaml")
    msg = str(info.value)
    assert msg.startswith("gen.yaml: ") and field in msg and "valid choices" in msg
    assert "\n" not in msg and repr(name) in msg


def test_every_bundled_scenario_prepares_without_creating_anything(tmp_path, bundled_data):
    from scenarios._runner import prepare_run

    for name in scenario_names():
        prep = prepare_run(name, tmp_path / name)
        assert prep.units and not (tmp_path / name).exists()
        cells = [c for u in prep.units for c in u.cells]
        assert len({c["cell_id"] for c in cells}) == len(cells)


def test_a_checkpoint_alone_is_a_model(tmp_path, monkeypatch):
    """``model: m.pt`` and ``model: {weights: m.pt}`` build the model the checkpoint records."""
    import perception
    from scenarios._runner import prepare_run

    monkeypatch.chdir(tmp_path)
    perception.save_checkpoint(perception.create_model("roadseg_m"), tmp_path / "m.pt")
    for spec in ("m.pt", {"weights": "m.pt"}):
        sc = load_scenario(write_yaml(tmp_path / "s.yaml", tiny(model=spec)))
        assert sc.model.name is None and sc.model.weights == "m.pt"
        prep = prepare_run(sc, tmp_path / "run")
        assert prep.model_name == "roadseg_m" and prep.model_meta["name"] == "roadseg_m"
        assert prep.model_meta["params"] == sum(
            p.numel() for p in perception.create_model("roadseg_m").parameters()
        )
    assert "model.weights: no such file 'gone.pt'" in _err(tmp_path, tiny(model="gone.pt"))
    both = tiny(model={"name": "roadseg_s", "weights": "m.pt"})
    sc = load_scenario(write_yaml(tmp_path / "s.yaml", both))
    with pytest.raises(ScenarioError, match=r"model: weights 'm.pt' hold a 'roadseg_m' model"):
        prepare_run(sc, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_names_are_plain_folder_names():
    for bad in ("../../x", "a/b", ".hidden", "-x", "a\\b", "x y"):
        with pytest.raises(ScenarioError, match="name: must be a plain folder name"):
            validate_scenario(tiny(name=bad), source="s.yaml", check=False)
    assert validate_scenario(tiny(name="my-study_2.1+x"), check=False).name == "my-study_2.1+x"


def test_protocol_keys_resolve_with_their_defaults():
    sc = validate_scenario(tiny(online={"fps": 30}, fallback="source"), check=False)
    assert sc.online.fallback == "source" and sc.online.fps == 30 and sc.online.eta is None
    plain = validate_scenario(tiny(), check=False)
    assert (plain.protocol, plain.rounds, plain.orders, plain.sampling) == (
        "reset_each_shift", 1, 1, "video")  # fmt: skip
    assert plain.label_shift == [] and plain.window is None and plain.online is None
    towns = validate_scenario(tiny(label_shift=True)).label_shift
    assert [(p.label, p.world) for p in towns] == [
        ("town=urban", {"town": "urban"}), ("town=highway", {"town": "highway"}),
        ("town=rural", {"town": "rural"})]  # fmt: skip
