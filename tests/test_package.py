"""The package contract: public surfaces and the import rules between packages."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["sim", "perception", "scenarios", "reports"]

#: Each package's whole public surface: adding or removing a name is a decision made here.
PUBLIC = {
    "sim": "CLASS_NAMES DATA_LAYOUTS IGNORE_INDEX PALETTE TIMES_OF_DAY TOWNS TRAFFIC_LEVELS "
    "WEATHER_PRESETS ClosedLoop CorruptionInfo CorruptionWrapper DataError DataSpec DriveResult "
    "DrivingStreamEnv FolderDataset FolderStreamEnv Frame LaneKeepingController LaneKeepingEnv "
    "RoadPrior Schedule ShiftState Weather World WorldConfig colorize contact_sheet corrupt "
    "corrupt_dataset corrupt_frame corruption_groups corruption_info corruption_names "
    "get_corruption_names make_schedule register_envs render_dataset render_stream "
    "schedule_kinds",
    "perception": "CLASS_NAMES COTTA_JITTER DEFAULT_MODEL DEVICE_CHOICES IGNORE_INDEX NORM_LAYERS "
    "NUM_CLASSES SAFETY_CLASSES Adapter AdapterInfo DenseAugment MethodTraits StreamMetrics "
    "TrainConfig TrainResult View adapter_info adapter_names augment configure_norm_layers "
    "confusion_matrix create_adapter create_model evaluate has_feature_hook images_to_tensor "
    "iou_from_confusion load_model load_pretrained miou_from_confusion model_names "
    "pretrained_names read_checkpoint reestimate_batchnorm register_adapter register_model "
    "resolve_device restore save_checkpoint softmax_entropy train use_batch_statistics",
    "scenarios": "NoResultsError ResultsStore Scenario ScenarioError expand_cells export_csv "
    "load_scenario run_scenario scenario_names",
    "reports": "META_VERSION PROTOCOLS NoResultsError ResultsStore RunMeta build_report "
    "make_cell_id",
}

#: Third-party packages a package's modules must not import (anywhere in the module, function-level
#: imports included). Which of roadshift's packages each may import is tests/test_imports.py's job.
MUST_NOT_IMPORT = {"sim": {"torch"}, "reports": {"torch"}}


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


@pytest.mark.parametrize("name", PACKAGES)
def test_the_whole_public_surface_is_pinned(name: str) -> None:
    module = __import__(name)
    assert sorted(module.__all__) == sorted(PUBLIC[name].split())


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("name", sorted(MUST_NOT_IMPORT))
def test_light_packages_never_import_torch(name: str) -> None:
    """sim stays light (envs, Ray and pool workers); reports are built without torch."""
    for path in sorted((ROOT / name).rglob("*.py")):
        bad = _imports(path) & MUST_NOT_IMPORT[name]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_readme_table_lists_only_public_names() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in PACKAGES:
        row = re.search(rf"^\| `{name}` \| (.*) \|$", readme, re.M)
        assert row, f"README's public-interface table has no row for {name}"
        listed = set(re.findall(r"`([A-Za-z_]+)`", row.group(1)))
        assert listed and listed <= set(PUBLIC[name].split()), listed - set(PUBLIC[name].split())


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
    loaded = _loaded_after("import reports, scenarios; scenarios.ResultsStore")
    assert "torch" not in loaded and "matplotlib" not in loaded  # the report loads it on use


def test_env_is_registered_from_a_fresh_process() -> None:
    code = (
        "import gymnasium as gym; env = gym.make('sim:roadshift/DrivingStream-v0', height=32,"
        " width=64); obs, info = env.reset(seed=0); print(obs.shape)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip() == "(32, 64, 3)"
