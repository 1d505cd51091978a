"""Tiny scenarios for the runner tests: test_bn model, 64x128 frames, a few frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

torch.set_num_threads(1)


def tiny(**changes: Any) -> dict[str, Any]:
    """A scenario that runs in about a second: 3 methods x (clean + 2 corruptions) x 1 seed."""
    base: dict[str, Any] = {
        "name": "tiny",
        "description": "tiny test scenario",
        "methods": ["source", "bn", "tent"],
        "corruptions": ["gaussian_noise", "contrast"],
        "severities": [3],
        "frames": 6,
        "batch_size": 3,
        "height": 64,
        "width": 128,
        "model": "test_bn",
        "samples": 1,
    }
    base.update(changes)
    return base


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def tiny_yaml(tmp_path: Path) -> Path:
    return write_yaml(tmp_path / "tiny.yaml", tiny())


TIMING_FIELDS = ("ms_per_frame", "finished_at")


def comparable(store: Any) -> dict[str, Any]:
    """Everything a run stored that must not depend on timing, workers or interruptions."""
    cells = [{k: v for k, v in c.items() if k not in TIMING_FIELDS} for c in store.cells()]
    return {"cells": cells, "segments": store.segments(), "frames": store.frames()}


@pytest.fixture
def bundled_data(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny Cityscapes and ACDC folders behind ``CITYSCAPES_ROOT`` and ``ACDC_ROOT``, so the
    bundled scenarios on your own data validate and plan (no real datasets in tests)."""
    from ..sim.datasets import world_frames, write_acdc, write_cityscapes

    root = tmp_path_factory.mktemp("bundled-data")
    frames = world_frames(2)
    write_cityscapes(root / "cityscapes", frames)
    write_acdc(root / "acdc", {c: frames[:1] for c in ("fog", "night", "rain", "snow")})
    monkeypatch.setenv("CITYSCAPES_ROOT", str(root / "cityscapes"))
    monkeypatch.setenv("ACDC_ROOT", str(root / "acdc"))
