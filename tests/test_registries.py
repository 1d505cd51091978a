"""The one registry idiom (``sim.common``) behind corruptions, schedules, models and methods."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import perception
import sim
from sim.common import Registry, UnknownNameError, load_object, unknown_name


def test_registering_a_taken_name_raises_unless_overriding() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register(1, name="one")
    with pytest.raises(ValueError, match=r"thing 'one' is already registered.*override=True"):
        reg.register(2, name="one")
    assert reg.get("one") == 1  # the failed registration changed nothing
    reg.register(3, name="one", override=True, meta="m")
    assert reg.get("one") == 3 and reg.meta("one") == "m"
    reg.register(4, name="one", override=True)
    assert reg.meta("one") is None  # metadata belongs to the replaced entry


def test_unknown_names_are_one_error_class_with_close_matches_and_choices() -> None:
    reg: Registry[int] = Registry("colour")
    for i, n in enumerate(("red", "green", "blue")):
        reg.register(i, name=n)
    with pytest.raises(UnknownNameError) as err:
        reg.get("gren")
    assert str(err.value) == (
        "unknown colour 'gren' (did you mean green?); valid choices: blue, green, red"
    )
    assert isinstance(err.value, ValueError)
    # perception raises the very same class
    with pytest.raises(UnknownNameError, match="did you mean tent"):
        perception.create_adapter("tnet", nn.Conv2d(3, 19, 1))
    with pytest.raises(UnknownNameError):
        perception.create_model("roadseg_xl")
    with pytest.raises(UnknownNameError):
        sim.corruption_info("fgo")
    msg = str(unknown_name("model", "x", ["a"], alternatives=" or a path"))
    assert msg == "unknown model 'x'; valid choices: a or a path"


def test_load_object_reads_module_attr_paths() -> None:
    assert load_object("os.path:join", "thing") is __import__("os").path.join
    assert load_object("sim:WorldConfig", "thing") is sim.WorldConfig
    with pytest.raises(ValueError, match=r"thing 'os' must look like 'module:attr'"):
        load_object("os", "thing")
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_mod_xyz'"):
        load_object("no_such_mod_xyz:f", "thing")
    with pytest.raises(ValueError, match=r"module 'os' has no attribute 'nope.x'"):
        load_object("os:nope.x", "thing")


def test_a_corruption_name_cannot_be_registered_twice_by_accident() -> None:
    from sim.corruptions.registry import CORRUPTIONS, UINT8_INPUT, register

    sim.corruption_names()  # the built-ins are registered
    original = CORRUPTIONS.get("fog")
    fast_paths = set(UINT8_INPUT)  # fog has a uint8 fast path; the override drops it
    info = sim.corruption_info("fog")

    def fog(x, s, rng, ctx):
        """A replacement."""
        return x

    with pytest.raises(ValueError, match="corruption 'fog' is already registered"):
        register("weather")(fog)
    assert CORRUPTIONS.get("fog") is original and sim.corruption_info("fog") == info
    try:
        register("weather", override=True)(fog)
        assert sim.corruption_info("fog").description == "A replacement."
        image = np.full((16, 16, 3), 77, np.uint8)
        assert np.array_equal(sim.corrupt(image, "fog", 5), image)
    finally:
        CORRUPTIONS.register(original, name="fog", meta=info, override=True)
        UINT8_INPUT.clear()
        UINT8_INPUT.update(fast_paths)
    assert sim.corruption_info("fog") == info


def test_a_schedule_kind_cannot_be_registered_twice_by_accident() -> None:
    from sim.corruptions.schedules import SCHEDULES

    with pytest.raises(ValueError, match="schedule kind 'static' is already registered"):
        SCHEDULES.register(SCHEDULES.get("gradual"), name="static")
    assert sim.make_schedule("static").kind == "static"


def test_a_model_name_cannot_be_registered_twice_by_accident() -> None:
    from perception._models import MODELS

    original = MODELS.get("test_bn")

    def test_bn(**kw):
        return nn.Conv2d(3, 19, 1)

    with pytest.raises(ValueError, match="model 'test_bn' is already registered"):
        perception.register_model(test_bn)
    assert MODELS.get("test_bn") is original
    try:
        perception.register_model(override=True)(test_bn)
        assert isinstance(perception.create_model("test_bn"), nn.Conv2d)
    finally:
        MODELS.register(original, name="test_bn", override=True)


def test_a_method_name_cannot_be_registered_twice_by_accident() -> None:
    from perception._adapt_registry import _BUILTIN

    original = _BUILTIN.get("tent")

    class Tent(perception.Adapter):
        """A stand-in."""

    with pytest.raises(ValueError, match="adaptation method 'tent' is already registered"):
        perception.register_adapter(name="tent")(Tent)
    assert _BUILTIN.get("tent") is original
    assert Tent.__dict__.get("name") is None  # a refused class is left untouched
    try:
        perception.register_adapter(name="tent", override=True)(Tent)
        assert perception.adapter_info("tent").description == "A stand-in."
    finally:
        _BUILTIN.register(original, name="tent", override=True)
    model = nn.Sequential(nn.Conv2d(3, 19, 1), nn.BatchNorm2d(19))
    assert type(perception.create_adapter("tent", model)) is original
