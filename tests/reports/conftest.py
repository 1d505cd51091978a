"""Shared fixtures: a realistic demo run (written through the store's API) and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reports import build_report
from tests.reports.demo_store import make_demo_store


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A full demo run (3 methods × 2 seeds × 11 corruptions × 5 severities, two schedules,
    samples, one failed cell) and its built report."""
    run_dir = tmp_path_factory.mktemp("demo")
    cells = make_demo_store(run_dir, seed=7)
    paths = build_report(run_dir, quiet=True)
    return {
        "dir": run_dir,
        "cells": cells,
        "paths": paths,
        "html": Path(paths["html"]).read_text(encoding="utf-8"),
        "md": Path(paths["markdown"]).read_text(encoding="utf-8"),
    }
