"""Source-domain frames for methods that need them, and the runner's use of them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import perception
from scenarios import ResultsStore, run_scenario
from scenarios import _source_data as source_data
from scenarios._schema import ScenarioError
from scenarios._train_data import SOURCE_TOWNS, TRAIN_SEED_BASE, VAL_SEED_BASE, render_frames
from scenarios._validate import validate_scenario

from .conftest import tiny


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    monkeypatch.setattr(source_data, "_CACHE", {})


def test_frames_are_clear_day_source_towns_rendered_deterministically():
    frames = source_data.SourceFrames(32, 64, batch_size=5, max_frames=12)
    batches = list(frames.batches())
    assert [tuple(b.shape) for b in batches] == [(5, 3, 32, 64), (5, 3, 32, 64), (2, 3, 32, 64)]
    assert all(b.dtype == torch.float32 and 0 <= b.min() and b.max() <= 1 for b in batches)
    # stream i: town SOURCE_TOWNS[i % 2], seed 800000 + i, every 3rd of 24 frames
    first, _ = render_frames([SOURCE_TOWNS[0]], [800_000], frames_per_stream=24, stride=3,
                             height=32, width=64)  # fmt: skip
    second, _ = render_frames([SOURCE_TOWNS[1]], [800_001], frames_per_stream=24, stride=3,
                              height=32, width=64)  # fmt: skip
    expected = np.concatenate([first, second])[:12]
    got = (torch.cat(batches) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, expected)
    source_data._CACHE.clear()
    again = torch.cat(list(source_data.SourceFrames(32, 64, 5, 12).batches()))
    assert torch.equal(again, torch.cat(batches))


def test_seeds_are_disjoint_from_training_and_validation():
    streams = source_data.MAX_SOURCE_FRAMES // len(range(0, source_data.FRAMES_PER_STREAM, 3))
    ours = set(range(source_data.SOURCE_SEED_BASE, source_data.SOURCE_SEED_BASE + streams + 1))
    for seed in range(100):  # any training seed: TRAIN_SEED_BASE + 10000·seed + i, i < 60
        assert not ours & set(
            range(TRAIN_SEED_BASE + 10_000 * seed, TRAIN_SEED_BASE + 10_000 * seed + 60)
        )
    assert not ours & set(range(VAL_SEED_BASE, VAL_SEED_BASE + 12))


def test_rendering_is_lazy():
    frames = source_data.SourceFrames(32, 64, batch_size=4)
    next(iter(frames.batches()))
    assert len(source_data._CACHE[(32, 64)]) == 8  # one stream of 8 kept frames, not 512


def test_eata_runs_in_a_scenario_with_source_frames(tmp_path):
    sc = validate_scenario(tiny(methods=[{"name": "eata", "options": {"fisher_frames": 6}}, "eta"],
                                corruptions=["contrast"], include_clean=False))  # fmt: skip
    summary = run_scenario(sc, tmp_path / "run", workers=1, quiet=True)
    assert summary.ok, summary.failed
    cells = {c["method"]: c for c in ResultsStore(tmp_path / "run").cells()}
    assert cells["eata"]["status"] == cells["eta"]["status"] == "done"


def test_missing_source_data_is_refused_at_validation(tmp_path, monkeypatch):
    import scenarios._runner as runner

    monkeypatch.setattr(runner, "source_data_problem", lambda sc: "its frames are not rendered")
    sc = validate_scenario(tiny(methods=["source", "eata"]))
    with pytest.raises(ScenarioError) as err:
        run_scenario(sc, tmp_path / "run", workers=1, quiet=True)
    msg = str(err.value)
    assert "methods[1].name: 'eata' needs source-domain images; its frames are not" in msg
    assert "\n" not in msg and not (tmp_path / "run").exists()
    run_scenario(validate_scenario(tiny(methods=["source"], corruptions=[])), tmp_path / "ok",
                 workers=1, quiet=True)  # fmt: skip


def test_feature_hook_is_required_for_lame_only(tmp_path):
    sc = validate_scenario(
        tiny(methods=["lame"], model={"name": "tests.scenarios.helpers:no_hook_model"})
    )
    with pytest.raises(
        ScenarioError, match=r"methods\[0\]\.options: lame needs the model's feature hook"
    ):
        run_scenario(sc, tmp_path / "run", workers=1, quiet=True)
    assert perception.create_adapter("tent", perception.create_model("test_bn"))
