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
