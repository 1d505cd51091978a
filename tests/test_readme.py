"""The README's promises: its commands match CI, and its examples run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block(heading: str, lang: str) -> str:
    match = re.search(rf"{re.escape(heading)}\n\n```{lang}\n(.*?)```", README, re.S)
    assert match, f"README has no {lang} block under {heading!r}"
    return match.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    command = _block("**Run the tests**:", "bash").strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install = re.search(r"pip install torch==[\d.]+ -e \"\.\[test\]\"", command)
    assert install and install.group(0) in ci
    assert "python -m pytest -q" in command and "python -m pytest -q" in ci


def test_main_command_runs_the_quick_scenario() -> None:
    main_job = re.search(r"\*\*Run the main job\*\*.*?```bash\n(.*?)```", README, re.S)
    assert main_job and "roadshift run quick" in main_job.group(1)
    assert "torch==2.13.0" in _block("**Run the tests**:", "bash")


def test_readme_scenario_example_is_valid(tmp_path: Path) -> None:
    import scenarios

    path = tmp_path / "my-study.yaml"
    path.write_text(_block("### A scenario file", "yaml"), encoding="utf-8")
    scenario = scenarios.load_scenario(path)
    assert scenario.name == "my-study"
    assert [m.name for m in scenario.methods] == ["source", "bn", "bn", "tent"]


def test_readme_protocol_keys_are_valid(tmp_path: Path) -> None:
    """The protocol keys block, on top of the example scenario, is a valid scenario."""
    import yaml

    import scenarios

    example = yaml.safe_load(_block("### A scenario file", "yaml"))
    keys = yaml.safe_load(_block("How shifts become adapted streams:", "yaml"))
    assert set(keys) == {"protocol", "rounds", "orders", "sampling", "label_shift", "window",
                         "forgetting", "online"}  # fmt: skip
    path = tmp_path / "protocols.yaml"
    path.write_text(yaml.safe_dump({**example, **keys, "batch_size": 1}), encoding="utf-8")
    sc = scenarios.load_scenario(path)
    assert (sc.protocol, sc.rounds, sc.orders, sc.window) == ("continual", 10, 3, 8)
    assert sc.online.eta == 1.0 and sc.online.fallback == "last" and len(sc.label_shift) == 3


def test_readme_data_scenario_is_valid() -> None:
    """The scenario on your data parses with its data and source_data specs (the data and the
    checkpoint it names are the reader's own, so only the schema is checked)."""
    import yaml

    from scenarios._validate import validate_scenario

    data = yaml.safe_load(_block("(a test compares every cell).", "yaml"))
    scenario = validate_scenario(data, check=False)
    assert scenario.data == {"root": "${CITYSCAPES_ROOT}", "layout": "cityscapes", "split": "val"}
    assert scenario.source_data is not None and scenario.source_data["split"] == "train"
