"""The run-metadata contract: what the runner records, and reports built from the folder alone."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sim
from reports import META_VERSION, ResultsStore, RunMeta, build_report, make_cell_id
from scenarios import ScenarioError, run_scenario
from scenarios._validate import validate_scenario
from tests.reports.markdown import md_table, parse

from .conftest import tiny


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny run with a schedule (its corruptions need families too) and a relabelled source."""
    out = tmp_path_factory.mktemp("meta") / "run"
    sc = validate_scenario(tiny(
        methods=[{"name": "source", "label": "src"}, "bn"],
        schedule={"kind": "continual", "corruptions": ["fog", "pixelate"], "severity": 3},
    ))  # fmt: skip
    assert run_scenario(sc, out, workers=1, quiet=True).ok
    return out


def test_the_runner_writes_the_whole_contract(run):
    meta = ResultsStore(run).meta()
    assert meta["meta_version"] == META_VERSION == 3
    # meta_version 3: the protocol's plan, the stream's shape and the protocol measures' settings
    assert meta["stream"]["sampling"] == "video" and meta["stream"]["window"] is None
    assert meta["online"] is None and meta["forgetting"] is None
    assert {"recovery", "collapse", "protocol_plan"} <= meta.keys()
    assert meta["protocol"] == "reset_each_shift"
    assert meta["baseline"] == "src"  # the first method named source, under its label
    assert meta["methods"] == [
        {"label": "src", "name": "source", "options": {}},
        {"label": "bn", "name": "bn", "options": {}},
    ]
    assert meta["class_names"] == list(sim.CLASS_NAMES)
    assert meta["palette"] == [list(map(int, rgb)) for rgb in sim.PALETTE]
    assert meta["corruption_families"] == {
        "contrast": "digital", "fog": "weather", "gaussian_noise": "noise", "pixelate": "digital",
    }  # fmt: skip
    assert meta["compute"] == {"executor": "local", "workers": 1, "torch_threads": 1}
    ids = {c["cell_id"] for c in ResultsStore(run).cells()}
    assert make_cell_id("src", "gaussian_noise", 3, 0) in ids  # the one cell-id format
    contract = ResultsStore(run).run_meta()
    assert isinstance(contract, RunMeta) and contract.method_labels == ["src", "bn"]


def _report_bytes(run_dir: Path) -> dict[str, bytes]:
    paths = build_report(run_dir, quiet=True)
    out = {"html": paths["html"].read_bytes(), "md": paths["markdown"].read_bytes()}
    out.update({p.name: p.read_bytes() for p in sorted(paths["figures"].glob("*.png"))})
    return out


def test_a_report_depends_on_the_folder_only_not_on_the_installed_library(run, monkeypatch):
    first = _report_bytes(run)
    assert "samples.png" in first and "severity_curves.png" in first

    # the library changes after the run: families regrouped, a corruption added, classes
    # renamed and recoloured
    real_info, real_names = sim.corruption_info, sim.corruption_names
    regrouped = lambda name: dataclasses.replace(real_info(name), family="regrouped")  # noqa: E731
    monkeypatch.setattr(sim, "corruption_info", regrouped)
    monkeypatch.setattr(sim, "corruption_names", lambda *a: [*real_names(*a), "plug_in_haze"])
    monkeypatch.setattr(sim, "CLASS_NAMES", tuple(f"renamed {n}" for n in sim.CLASS_NAMES))
    monkeypatch.setattr(sim, "PALETTE", sim.PALETTE[::-1].copy())
    assert sim.corruption_info("fog").family == "regrouped"
    assert _report_bytes(run) == first


def test_building_a_report_imports_neither_sim_nor_scenarios_nor_torch(run):
    code = textwrap.dedent(f"""
        import sys
        import reports
        reports.build_report({str(run)!r}, quiet=True)
        print(sorted(m for m in ("sim", "scenarios", "perception", "torch") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_relabelled_source_keeps_gain_and_mce(run):
    md = Path(build_report(run, quiet=True)["markdown"]).read_text(encoding="utf-8")
    rows = md_table(md, "Headline: robustness per method")
    assert list(rows) == ["method", "src", "bn"]  # the baseline first
    src, bn = (dict(zip(rows["method"], rows[m], strict=True)) for m in ("src", "bn"))
    assert src["gain over src"] == "reference" and src["mCE vs src"] == "100.0"
    cells = {c["cell_id"]: c["miou"] for c in ResultsStore(run).cells()}
    gain = sum(cells[f"bn__{c}__s3__seed0"] - cells[f"src__{c}__s3__seed0"]
               for c in ("gaussian_noise", "contrast")) / 2  # fmt: skip
    assert parse(bn["gain over src"])[0] == pytest.approx(100 * gain, abs=0.051)
    assert parse(bn["mCE vs src"])[0] > 0


def test_baseline_is_explicit_or_the_first_source_and_must_name_a_method():
    assert validate_scenario(tiny()).baseline == "source"
    assert validate_scenario(tiny(baseline="bn")).baseline == "bn"
    assert validate_scenario(tiny(methods=["bn", "tent"])).baseline is None
    with pytest.raises(ScenarioError, match=r"baseline: unknown method label 'src'.*source, bn"):
        validate_scenario(tiny(baseline="src"), source="s.yaml")
