"""sim.corrupt as a drop-in for imagecorruptions: seeds, call forms, images, name lists; and
the spatial scaling rule (relative / absolute)."""

from __future__ import annotations

import numpy as np
import pytest

import sim

IMG = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)

#: imagecorruptions 1.1.2's corruption_tuple, in order (corruption_number indexes it).
PACKAGE_TUPLE = (
    "gaussian_noise shot_noise impulse_noise defocus_blur glass_blur motion_blur zoom_blur "
    "snow frost fog brightness contrast elastic_transform pixelate jpeg_compression "
    "speckle_noise gaussian_blur spatter saturate"
).split()


def test_default_seed_draws_fresh_noise_every_call():
    # The old default (seed=0) put the same noise on every frame (98 % identical values).
    grey = np.full((64, 64, 3), 128, np.uint8)
    a = sim.corrupt(grey, "gaussian_noise", 3)
    b = sim.corrupt(grey, "gaussian_noise", 3)
    assert (a == b).mean() < 0.2  # independent draws agree only by chance
    # an int or a Generator reproduces the bits
    assert np.array_equal(sim.corrupt(grey, "gaussian_noise", 3, seed=4),
                          sim.corrupt(grey, "gaussian_noise", 3, seed=4))  # fmt: skip
    g1, g2 = np.random.default_rng(9), np.random.default_rng(9)
    assert np.array_equal(sim.corrupt(grey, "shot_noise", 2, seed=g1),
                          sim.corrupt(grey, "shot_noise", 2, seed=g2))  # fmt: skip


def test_the_packages_call_forms():
    ours = sim.corrupt(IMG, "fog", 2, seed=0)
    assert np.array_equal(sim.corrupt(IMG, corruption_name="fog", severity=2, seed=0), ours)
    assert np.array_equal(sim.corrupt(IMG, 2, corruption_name="fog", seed=0), ours)  # positional
    assert np.array_equal(sim.corrupt(IMG, corruption_number=9, severity=2, seed=0), ours)
    # the package's default severity is 1; ours is 3
    assert np.array_equal(sim.corrupt(IMG, corruption_name="contrast"),
                          sim.corrupt(IMG, "contrast", 1))  # fmt: skip
    assert np.array_equal(sim.corrupt(IMG, "contrast"), sim.corrupt(IMG, "contrast", 3))
    for number, name in enumerate(PACKAGE_TUPLE):
        a = sim.corrupt(IMG, corruption_number=number, severity=3, seed=1)
        assert np.array_equal(a, sim.corrupt(IMG, name, 3, seed=1)), name


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"corruption_number": 19}, ValueError, r"corruption_number must be an int in \[0, 18\]"),
        ({"corruption_name": "fog", "corruption_number": 3}, TypeError, "not both"),
        ({"name": "fog", "corruption_name": "fog"}, TypeError, "pass the corruption once"),
        ({"name": 3}, TypeError, "needs corruption_name= or corruption_number="),
        ({}, TypeError, "needs a corruption name"),
        ({"corruption_name": "fgo"}, ValueError, "did you mean fog"),
    ],
)
def test_call_form_errors_say_what_to_pass(kwargs, err, match):
    with pytest.raises(err, match=match) as info:
        sim.corrupt(IMG, **kwargs)
    assert "\n" not in str(info.value)


def test_grayscale_and_float_images():
    grey = IMG[..., 1]
    rgb = np.repeat(grey[..., None], 3, axis=2)
    expect = sim.corrupt(rgb, "gaussian_blur", 2, seed=0)
    for img in (grey, grey[..., None]):  # (H, W) and (H, W, 1) come back RGB, as the package
        out = sim.corrupt(img, corruption_name="gaussian_blur", severity=2, seed=0)
        assert out.shape == (48, 64, 3) and np.array_equal(out, expect)
    # float images in [0, 1] come back float32 in [0, 1]; same corruption as their uint8
    f = sim.corrupt(IMG.astype(np.float64) / 255, "gaussian_noise", 2, seed=3)
    assert f.dtype == np.float32 and 0 <= f.min() and f.max() <= 1
    assert np.array_equal(np.rint(f * 255).astype(np.uint8),
                          sim.corrupt(IMG, "gaussian_noise", 2, seed=3))  # fmt: skip
    with pytest.raises(ValueError, match=r"float images must hold values in \[0, 1\]"):
        sim.corrupt(IMG.astype(np.float32), "fog", 3)
    with pytest.raises(ValueError, match=r"float images must hold values in \[0, 1\]"):
        sim.corrupt(np.full((32, 32), np.nan), "fog", 3)


def test_name_lists_of_the_package_beside_ours():
    assert sim.get_corruption_names() == PACKAGE_TUPLE[:15]
    assert sim.get_corruption_names("common") == PACKAGE_TUPLE[:15]
    assert sim.get_corruption_names("validation") == PACKAGE_TUPLE[15:]
    assert sim.get_corruption_names("all") == PACKAGE_TUPLE
    assert sim.get_corruption_names("noise") == PACKAGE_TUPLE[0:3]
    assert sim.get_corruption_names("blur") == PACKAGE_TUPLE[3:7]
    assert sim.get_corruption_names("weather") == PACKAGE_TUPLE[7:11]
    assert sim.get_corruption_names("digital") == PACKAGE_TUPLE[11:15]
    with pytest.raises(ValueError, match="subset must be one of"):
        sim.get_corruption_names("driving")
    groups = sim.corruption_groups()
    assert groups["common"] == PACKAGE_TUPLE[:15] == groups["imagenet-c"]
    assert groups["validation"] == PACKAGE_TUPLE[15:]
    assert set(groups["all"]) > set(PACKAGE_TUPLE)  # ours: every registered corruption
    from sim.corruptions.catalogue import expand_corruptions

    assert expand_corruptions(["common", "validation"]) == PACKAGE_TUPLE


# --- scaling -----------------------------------------------------------------------------


def test_absolute_scaling_uses_the_published_pixels():
    from scipy.ndimage import gaussian_filter

    img = np.kron(np.random.default_rng(1).integers(0, 256, (28, 28, 3)), np.ones((16, 16, 1)))
    img = img.astype(np.uint8)  # 448 x 448: relative scale 2
    x = img.astype(np.float64) / 255
    for scaling, sigma in (("absolute", 3.0), ("relative", 6.0)):  # severity 3: sigma 3 px
        ref = gaussian_filter(x, (sigma, sigma, 0), mode="nearest") * 255
        out = sim.corrupt(img, "gaussian_blur", 3, seed=0, scaling=scaling)
        assert np.abs(out - ref).max() <= 1.0, scaling
    with pytest.raises(ValueError, match="scaling must be one of relative, absolute"):
        sim.corrupt(img, "gaussian_blur", 3, seed=0, scaling="cityscapes")


@pytest.mark.parametrize("name", sim.get_corruption_names("all"))
def test_the_rules_agree_at_224_pixels(name):
    img = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    a = sim.corrupt(img, name, 4, seed=5, scaling="relative")
    assert np.array_equal(a, sim.corrupt(img, name, 4, seed=5, scaling="absolute"))


def test_wrapper_and_corrupt_frame_take_the_rule():
    import gymnasium as gym

    env = gym.make("roadshift/DrivingStream-v0", height=64, width=128)
    base, _ = env.reset(seed=0)
    obs = {}
    for scaling in ("relative", "absolute"):
        wrapped = sim.CorruptionWrapper(env, "defocus_blur", severity=5, scaling=scaling)
        obs[scaling], _ = wrapped.reset(seed=0)
        frame, _, _ = sim.corrupt_frame(base, None, None, "defocus_blur", 5, 0, scaling=scaling)
        assert np.array_equal(obs[scaling], frame)
    assert not np.array_equal(obs["relative"], obs["absolute"])  # absolute blurs 3.5x more
    with pytest.raises(ValueError, match="scaling"):
        sim.CorruptionWrapper(env, "fog", scaling="native")
