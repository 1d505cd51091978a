"""The package contract: public surfaces and the import rules between packages."""

from __future__ import annotations

import subprocess
import sys

import pytest

PACKAGES = ["sim", "perception", "scenarios", "reports"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_unique_and_importable(name: str) -> None:
    module = __import__(name)
    exported = list(module.__all__)
    # ruff's isort-style order: CONSTANTS, then Classes, then functions, each alphabetical.
    kind = lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n)  # noqa: E731
    assert exported == sorted(exported, key=kind), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for public in exported:
        assert not public.startswith("_")
        assert getattr(module, public) is not None, f"{name}.{public} is missing"


def test_public_names_the_docs_promise() -> None:
    import perception
    import reports
    import scenarios
    import sim

    promised = {
        sim: "World WorldConfig Weather Frame render_stream DrivingStreamEnv TOWNS TIMES_OF_DAY "
        "WEATHER_PRESETS TRAFFIC_LEVELS CLASS_NAMES PALETTE colorize corrupt corrupt_frame "
        "corruption_names corruption_info corruption_groups make_schedule Schedule ShiftState "
        "CorruptionWrapper contact_sheet",
        perception: "load_pretrained create_model load_model model_names train TrainConfig "
        "StreamMetrics confusion_matrix Adapter create_adapter adapter_names adapter_info "
        "register_adapter",
        scenarios: "ResultsStore NoResultsError load_scenario run_scenario",
        reports: "build_report",
    }
    for module, names in promised.items():
        missing = [n for n in names.split() if n not in module.__all__]
        assert not missing, f"{module.__name__} lacks {missing}"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return set(out.split())


def _sim_modules(loaded: set[str]) -> set[str]:
    return {m for m in loaded if m == "sim" or m.startswith("sim.")}


# What ``import sim`` may load of itself: the package, its pure-Python vocabulary and the
# registration of its environments (``import sim`` registers them with Gymnasium).
SIM_LIGHT = {"sim", "sim.common", "sim.envs", "sim.envs.registration"}


def test_sim_stays_light_and_perception_imports_only_sim_common() -> None:
    # Environments stay light (no torch); ``import sim`` loads neither the world, the renderer
    # nor the corruptions until a public name is used.
    loaded = _loaded_after("import sim")
    assert "torch" not in loaded
    assert not {m for m in _sim_modules(loaded) if not m.startswith("sim.common.")} - SIM_LIGHT
    assert "cv2" not in loaded
    # Methods work on any tensors: perception uses sim.common only (registry idiom, name
    # errors, class taxonomy), never the world, renderer, corruptions or environments.
    used = _sim_modules(_loaded_after("import perception; perception.create_model('test_bn')"))
    assert "sim.common.registry" in used and "sim.common.classes" in used
    assert not {m for m in used if not m.startswith("sim.common.")} - SIM_LIGHT
    # and a public name loads what it needs on first use
    assert "sim.world.world" in _loaded_after("import sim; sim.World")


def test_reports_and_the_store_need_no_torch() -> None:
    assert "torch" not in _loaded_after("import reports, scenarios; scenarios.ResultsStore")


def test_env_is_registered_from_a_fresh_process() -> None:
    code = (
        "import gymnasium as gym; env = gym.make('sim:roadshift/DrivingStream-v0', height=32,"
        " width=64); obs, info = env.reset(seed=0); print(obs.shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "(32, 64, 3)"
