"""roadshift/FolderStream-v0: Gymnasium's checker, the world's frames back, CorruptionWrapper."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim

from .datasets import H, W, world_frames, write_acdc, write_cityscapes, write_video

ENV_ID = "roadshift/FolderStream-v0"


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory) -> Path:
    """The first 6 frames of DrivingStream-v0's drive at seed 0's world seed, with depth."""
    env = sim.DrivingStreamEnv(height=H, width=W)
    env.reset(seed=11)
    frames = [env._frame]
    for _ in range(5):
        env.step(env.action_space.sample())
        frames.append(env._frame)
    return write_cityscapes(tmp_path_factory.mktemp("cs"), frames, depth="npy")


def test_the_env_passes_gymnasiums_checker(cityscapes: Path) -> None:
    env = gym.make(ENV_ID, root=str(cityscapes), layout="cityscapes", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()
    assert gym.spec(ENV_ID).entry_point == "sim.envs.folder:FolderStreamEnv"


def test_info_is_like_the_driving_streams_and_the_stream_ends_with_the_data(cityscapes) -> None:
    world = sim.DrivingStreamEnv(height=H, width=W)
    folder = gym.make(ENV_ID, root=str(cityscapes), layout="cityscapes")
    wo, wi = world.reset(seed=11)
    fo, fi = folder.reset(seed=0)
    images = []
    for step in range(6):
        images.append(wo)
        assert np.array_equal(fo, wo) and folder.observation_space.contains(fo)
        for key in ("semantic", "depth"):
            assert fi[key].dtype == wi[key].dtype and np.array_equal(fi[key], wi[key])
        assert fi["shift"] == wi["shift"] == {"corruption": None, "severity": 0}
        assert fi["frame"] == step and fi["conditions"]["layout"] == "cityscapes"
        if step < 5:
            wo, _, _, _, wi = world.step(world.action_space.sample())
            fo, reward, terminated, truncated, fi = folder.step(folder.action_space.sample())
            assert reward == 0.0 and not terminated and truncated == (step == 4)
    with pytest.raises(RuntimeError, match="the stream ended at frame 5"):
        folder.step(folder.action_space.sample())
    obs, info = folder.reset(options={"start": 4})
    assert info["frame"] == 4 and np.array_equal(obs, images[4])
    folder.close()


@pytest.mark.parametrize(
    ("corruption", "severity"),
    [("gaussian_noise", 3), ("elastic_transform", 4), ("fog_depth", 2), ("frame_drop", 5)],
)
def test_corruption_wrapper_gives_what_it_gives_on_the_world(cityscapes, corruption, severity):
    """The wrapper's randomness comes from reset's seed, so the folder of the world's frames,
    wrapped, must equal the world wrapped: images, moved labels and depth alike."""
    world = sim.CorruptionWrapper(sim.DrivingStreamEnv(height=H, width=W), corruption, severity)
    folder = sim.CorruptionWrapper(
        gym.make(ENV_ID, root=str(cityscapes), layout="cityscapes"), corruption, severity
    )
    assert folder.n_frames == 6  # the dataset's length lays out schedules
    results = [world.reset(seed=11), folder.reset(seed=11)]
    for _ in range(5):
        results += [world.step(None)[::4], folder.step(None)[::4]]
    for (wo, wi), (fo, fi) in zip(results[::2], results[1::2], strict=True):
        assert np.array_equal(wo, fo)
        assert np.array_equal(wi["semantic"], fi["semantic"])
        assert np.array_equal(wi["depth"], fi["depth"], equal_nan=True)
        assert fi["shift"]["corruption"] == corruption


def test_label_free_video_and_acdc_conditions(tmp_path: Path) -> None:
    frames = world_frames()
    video = write_video(tmp_path / "drive.mkv", frames)
    env = gym.make(ENV_ID, root=str(video), layout="video", height=32, width=64)
    obs, info = env.reset()
    assert obs.shape == (32, 64, 3) and "semantic" not in info and "depth" not in info
    wrapped = sim.CorruptionWrapper(env, "contrast", 3)
    obs, info = wrapped.reset(seed=0)
    assert info["shift"]["corruption"] == "contrast" and "semantic" not in info
    with pytest.raises(ValueError, match="fog_depth' needs depth"):
        sim.CorruptionWrapper(
            gym.make(ENV_ID, root=str(video), layout="video"), "fog_depth", 3
        ).reset(seed=0)
    root = write_acdc(tmp_path / "acdc", {"fog": frames[:2], "snow": frames[2:4]})
    env = gym.make(ENV_ID, root=str(root), layout="acdc", conditions=["snow", "fog"])
    seen = [env.reset()[1]["conditions"]["condition"]]
    seen += [env.step(None)[4]["conditions"]["condition"] for _ in range(3)]
    assert seen == ["snow", "snow", "fog", "fog"]


def test_native_frames_of_another_size_and_bad_arguments(tmp_path: Path) -> None:
    small, big = world_frames(2), world_frames(2, h=32, w=64)
    write_cityscapes(tmp_path, small, city="a")
    write_cityscapes(tmp_path, big, city="b")
    env = sim.FolderStreamEnv(root=str(tmp_path), layout="cityscapes")
    env.reset()
    env.step(None)
    with pytest.raises(
        sim.DataError,
        match=r"b_000000_000000_leftImg8bit\.png: is 32x64, the "
        r"stream's frames are 64x128; give height and width",
    ):
        env.step(None)
    resized = sim.FolderStreamEnv(root=str(tmp_path), layout="cityscapes", height=32, width=64)
    assert resized.observation_space.shape == (32, 64, 3) and len(resized) == 4
    with pytest.raises(sim.DataError, match="no such folder; layout pairs expects images/"):
        sim.FolderStreamEnv(root=str(tmp_path / "none"), layout="pairs")
    with pytest.raises(ValueError, match="unknown reset option 'seek'; valid choices: start"):
        resized.reset(options={"seek": 1})
