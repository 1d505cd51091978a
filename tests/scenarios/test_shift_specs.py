"""Scenario keys for shifts: ``scaling`` and albumentations shifts in ``corruptions``."""

from __future__ import annotations

import os

import numpy as np
import pytest

import sim
from scenarios import ResultsStore, ScenarioError, load_scenario, run_scenario

from .conftest import tiny, write_yaml

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def test_scaling_defaults_to_relative_and_is_stored(tmp_path):
    sc = load_scenario(write_yaml(tmp_path / "a.yaml", tiny()))
    assert sc.scaling == "relative" and sc.resolved()["scaling"] == "relative"
    sc = load_scenario(write_yaml(tmp_path / "b.yaml", tiny(scaling="absolute")))
    assert sc.resolved()["scaling"] == "absolute"
    with pytest.raises(ScenarioError, match=r"b\.yaml: scaling: Input should be 'relative' or "):
        load_scenario(write_yaml(tmp_path / "b.yaml", tiny(scaling="native")))


def test_albumentations_shifts_resolve_with_labels(tmp_path):
    import albumentations as A

    pipe = tmp_path / "pipe.yaml"
    A.save(A.Compose([A.ToGray(p=1.0)]), str(pipe), data_format="yaml")
    items = ["fog", {"albumentations": "GaussNoise", "params": {"std_range": [0.1, 0.1]}},
             {"albumentations_file": str(pipe), "label": "grey"}]  # fmt: skip
    sc = load_scenario(write_yaml(tmp_path / "s.yaml", tiny(corruptions=items)))
    fog, noise, grey = sc.corruptions
    assert fog == "fog" and noise["label"] == "GaussNoise" and len(noise["params"]) == 5
    assert grey["label"] == "grey" and len(grey["pipelines"]) == 5  # the file's content
    pipe.unlink()  # the resolved scenario (as stored in a run folder) needs no file
    from scenarios._validate import validate_scenario

    assert validate_scenario(sc.resolved()).corruptions == sc.corruptions


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ({"albumentations": "GausNoise"}, "corruptions[1]: albumentations: unknown albumentations"),
        ({"albumentations": "Blur", "params": {"blur": 3}},
         "corruptions[1]: params.blur: unknown Blur parameter"),
        ({"albumentations": "Blur", "label": "contrast"}, "corruptions[1]: label 'contrast'"),
        ({"albumentations_file": "nowhere.yaml"}, "corruptions[1]: albumentations_file: no such"),
    ],
)  # fmt: skip
def test_bad_albumentations_shifts_name_the_item(tmp_path, item, needle):
    path = write_yaml(tmp_path / "bad.yaml", tiny(corruptions=["fog", item]))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert str(info.value).startswith(f"{path}: {needle}") and "\n" not in str(info.value)
    # two different shifts under one label are refused like any repeated label
    twice = [{"albumentations": "Blur"}, {"albumentations": "Blur", "params": {"p": 0.5}}]
    with pytest.raises(ScenarioError, match="labels repeat: Blur"):
        load_scenario(write_yaml(tmp_path / "twice.yaml", tiny(corruptions=twice)))


def test_a_run_with_albumentations_shifts_and_absolute_scaling(tmp_path):
    flip = {"albumentations": "HorizontalFlip", "label": "mirror"}
    data = tiny(methods=["source"], corruptions=["defocus_blur", flip], severities=[5],
                scaling="absolute", samples=2)  # fmt: skip
    out = tmp_path / "run"
    run_scenario(write_yaml(tmp_path / "s.yaml", data), out, workers=1, quiet=True)
    store = ResultsStore(out)
    cells = {(c["corruption"], c["severity"]): c for c in store.cells()}
    assert set(cells) == {("clean", 0.0), ("defocus_blur", 5.0), ("mirror", 5.0)}
    assert all(c["status"] == "done" for c in cells.values())
    assert store.meta()["corruption_families"]["mirror"] == "albumentations"
    assert {f["corruption"] for f in store.frames()} == {"clean", "defocus_blur", "mirror"}
    samples = {p.stem.split("__")[1]: np.load(p) for p in store.samples()}
    # the stored frames are what sim gives with the published pixels (absolute scaling)
    blur = samples["defocus_blur"]
    expect, _, _ = sim.corrupt_frame(blur["clean"], None, None, "defocus_blur", 5, 0,
                                     scaling="absolute")  # fmt: skip
    assert np.array_equal(blur["corrupted"], expect)
    mirror = samples["mirror"]
    assert np.array_equal(mirror["corrupted"], mirror["clean"][:, ::-1])


def test_the_documented_shift_examples_validate(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    import albumentations as A
    import yaml

    doc = (Path(__file__).resolve().parents[2] / "docs" / "corruptions.md").read_text("utf-8")
    block = re.search(r"```yaml\n(corruptions:.*?)```", doc, re.S)
    assert block, "docs/corruptions.md has no corruptions: example"
    items = yaml.safe_load(block.group(1))["corruptions"]
    monkeypatch.chdir(tmp_path)  # the example's pipeline file, relative to the working dir
    A.save(A.Compose([A.ToGray(p=1.0)]), "my_pipeline.yaml", data_format="yaml")
    sc = load_scenario(write_yaml(tmp_path / "doc.yaml", tiny(corruptions=items)))
    labels = [c if isinstance(c, str) else c["label"] for c in sc.corruptions]
    assert labels == ["fog", "albu-rain", "GaussNoise", "my_pipeline"]
