"""albumentations transforms and saved pipelines as shifts (sim.corruptions.albu)."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest

import sim

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
A = pytest.importorskip("albumentations")

RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
SEM = np.kron(RNG.integers(0, 19, (6, 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
DEPTH = SEM.astype(np.float32) * 3 + 1
RAIN = [{"drop_length": n, "brightness_coefficient": b}
        for n, b in ((4, 0.9), (8, 0.8), (12, 0.7), (16, 0.6), (20, 0.5))]  # fmt: skip


def _reference(transform, img, seed_source: int, **targets):
    """What the documented semantics promise: a Compose seeded with the caller's draw."""
    seed = int(np.random.default_rng(seed_source).integers(2**31 - 1))
    compose = A.Compose([transform])
    compose.set_random_seed(seed)
    return compose(image=img, **targets)


def test_importing_sim_does_not_import_albumentations():
    code = (
        "import sys, numpy as np, sim\n"
        "sim.corrupt(np.zeros((16, 16, 3), np.uint8), 'gaussian_noise', 2, seed=0)\n"
        "print('albumentations' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_params_per_severity_and_seeding():
    spec = {"albumentations": "RandomRain", "params": RAIN}
    for sev in (1, 4):
        ours = sim.corrupt(IMG, spec, sev, seed=5)
        ref = _reference(A.RandomRain(**RAIN[sev - 1], p=1.0), IMG, 5)["image"]
        assert np.array_equal(ours, ref), sev
    # between levels, numbers interpolate (ints round): severity 2.5 is halfway
    mid = {"drop_length": 10, "brightness_coefficient": 0.75}
    ref = _reference(A.RandomRain(**mid, p=1.0), IMG, 5)["image"]
    assert np.array_equal(sim.corrupt(IMG, spec, 2.5, seed=5), ref)
    # same seed, same bits; global seeds play no part
    np.random.seed(1)  # noqa: NPY002 - checking that the global state is ignored
    random.seed(1)
    a = sim.corrupt(IMG, spec, 3, seed=7)
    np.random.seed(2)  # noqa: NPY002
    random.seed(2)
    assert np.array_equal(a, sim.corrupt(IMG, spec, 3, seed=7))
    assert not np.array_equal(a, sim.corrupt(IMG, spec, 3, seed=8))


def test_one_params_dict_holds_for_every_severity_and_p_defaults_to_one():
    spec = {"albumentations": "ToGray"}
    for sev in (1, 5):  # ToGray's own default p is 0.5: a shift applies it to every frame
        out = sim.corrupt(IMG, spec, sev, seed=sev)
        assert (out[..., 0] == out[..., 1]).all()
    half = {"albumentations": "ToGray", "params": {"p": 0.5}, "label": "sometimes-grey"}
    grey = [(sim.corrupt(IMG, half, 3, seed=k)[..., 0] == IMG[..., 0]).all() for k in range(20)]
    assert 0 < sum(grey) < 20


def test_geometric_transforms_move_labels_and_depth():
    flip = {"albumentations": "HorizontalFlip"}
    out, sem, dep = sim.corrupt_frame(IMG, SEM, DEPTH, flip, 3, np.random.default_rng(0))
    assert np.array_equal(out, IMG[:, ::-1]) and np.array_equal(sem, SEM[:, ::-1])
    assert np.array_equal(dep, DEPTH[:, ::-1])
    assert sim.corruption_info(flip).moves_pixels
    assert not sim.corruption_info({"albumentations": "RandomRain"}).moves_pixels
    # A rotation with a constant border: labels 255 and depth NaN where nothing was seen,
    # labels and depth moved exactly as an albumentations run with the same seed moves them.
    rot = {"albumentations": "Affine", "params": {"rotate": [15, 25], "border_mode": 0}}
    out, sem, dep = sim.corrupt_frame(IMG, SEM, DEPTH, rot, 3, np.random.default_rng(3))
    params = {"rotate": [15, 25], "border_mode": 0, "p": 1.0}
    ones = np.ones(SEM.shape, np.float32)
    ref = _reference(A.Affine(**params), IMG, 3, masks=[ones, SEM.astype(np.float32)])
    valid = np.asarray(ref["masks"][0]) > 0.5
    assert np.array_equal(out, ref["image"])
    assert (~valid).any() and (sem[~valid] == 255).all() and np.isnan(dep[~valid]).all()
    assert np.array_equal(sem[valid], np.asarray(ref["masks"][1])[valid].astype(np.uint8))
    assert np.allclose(dep[valid], sem[valid] * 3.0 + 1)


def test_saved_pipelines(tmp_path):
    pipeline = A.Compose([A.GaussNoise(std_range=(0.1, 0.2), p=1.0), A.VerticalFlip(p=1.0)])
    path = tmp_path / "noisy.yaml"
    A.save(pipeline, str(path), data_format="yaml")
    spec = {"albumentations_file": str(path)}
    info = sim.corruption_info(spec)
    assert info.name == "noisy" and info.family == "albumentations" and info.moves_pixels
    ours, sem, _ = sim.corrupt_frame(IMG, SEM, None, spec, 2, np.random.default_rng(4))
    loaded = A.load(str(path), data_format="yaml")
    loaded.set_random_seed(int(np.random.default_rng(4).integers(2**31 - 1)))
    assert np.array_equal(ours, loaded(image=IMG)["image"])
    assert np.array_equal(sem, SEM[::-1])
    # five files, one per severity; the resolved spec carries the pipelines, not the paths
    files = []
    for k in range(5):
        p = tmp_path / f"level{k}.json"
        A.save(A.Compose([A.Downscale(scale_range=(0.9 - 0.15 * k,) * 2, p=1.0)]), str(p))
        files.append(str(p))
    from sim.corruptions.albu import resolve_spec

    resolved = resolve_spec({"albumentations_file": files, "label": "down"})
    assert len(resolved["pipelines"]) == 5 and resolved == resolve_spec(resolved)
    for p in files:
        os.remove(p)  # a worker on another machine has no file: the spec is enough
    d1 = sim.corrupt(IMG, resolved, 1, seed=0)
    d5 = sim.corrupt(IMG, resolved, 5, seed=0)
    assert np.abs(d5.astype(int) - IMG).mean() > np.abs(d1.astype(int) - IMG).mean()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"albumentations": "RandomRian"},
         r"albumentations: unknown .*RandomRian' \(did you mean RandomRain"),
        ({"albumentations": "RandomRain", "params": {"drop_lenght": 3}},
         r"params.drop_lenght: unknown RandomRain parameter .*\(did you mean drop_length"),
        ({"albumentations": "RandomRain", "params": [{}, {}]}, r"params: .* must hold 5, got 2"),
        ({"albumentations": "RandomRain", "params": {"rain_type": "hail"}},
         r"params: RandomRain\(rain_type='hail'\) is invalid"),
        ({"albumentations_file": "missing.yaml"}, r"albumentations_file: no such file"),
        ({"albumentations_file": "pipeline.txt"}, r"must end in .yaml, .yml or .json"),
        ({"albumentations": "Blur", "severity": 3}, r"severity: unknown key; valid keys"),
        ({"params": {}}, r"give exactly one of albumentations"),
    ],
)  # fmt: skip
def test_bad_specs_are_one_line_naming_the_field(spec, match):
    with pytest.raises(ValueError, match=match) as info:
        sim.corrupt(IMG, spec, 3, seed=0)
    assert "\n" not in str(info.value)


def test_labels_may_not_shadow_corruption_names():
    from sim.corruptions.catalogue import expand_corruptions

    out = expand_corruptions(["fog", {"albumentations": "Blur", "label": "soft"}])
    assert out[0] == "fog" and out[1]["label"] == "soft" and len(out[1]["params"]) == 5
    with pytest.raises(ValueError, match="label 'fog' is a corruption or group name"):
        expand_corruptions([{"albumentations": "Blur", "label": "fog"}])


def test_the_wrapper_takes_a_spec():
    import gymnasium as gym

    env = gym.make("roadshift/DrivingStream-v0", height=48, width=64)
    wrapped = sim.CorruptionWrapper(env, {"albumentations": "HorizontalFlip"}, severity=2)
    obs, info = wrapped.reset(seed=1)
    clean, clean_info = env.reset(seed=1)
    assert np.array_equal(obs, clean[:, ::-1])
    assert np.array_equal(info["semantic"], clean_info["semantic"][:, ::-1])
    assert info["shift"]["label"] == "HorizontalFlip s2"
