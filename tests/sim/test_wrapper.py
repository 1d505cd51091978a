"""CorruptionWrapper on Gymnasium's CarRacing, on a small env with ground truth, and on ours."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim

H, W = 32, 48


class TinyStreamEnv(gym.Env):
    """A deterministic image stream with ``semantic``/``depth`` in info and world conditions."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (H, W, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1, 1, (2,), np.float32)
        self.render_mode = render_mode
        self.conditions: list[dict[str, float]] = []
        self._t = 0
        self._offset = 0

    def _frame(self) -> tuple[np.ndarray, dict[str, Any]]:
        labels = ((np.arange(W)[None, :] + self._offset + self._t) // 8 % 19).repeat(H, 0)
        labels = labels.astype(np.uint8)
        image = sim.PALETTE[labels]
        depth = labels.astype(np.float32) + 1
        depth[:4] = np.inf
        return image, {
            "semantic": labels,
            "depth": depth,
            "shift": {"corruption": None, "severity": 0},
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        self._offset = int(self.np_random.integers(0, 19))
        return self._frame()

    def step(self, action):
        self._t += 1
        image, info = self._frame()
        return image, 0.0, False, self._t >= 50, info

    def render(self):
        return self._frame()[0]

    def set_conditions(self, **fields: float) -> None:
        self.conditions.append(dict(fields))


def quiet_check_env(env: gym.Env) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped.*")
        check_env(env, skip_render_check=False)


def rollout(env: gym.Env, seed: int, n: int = 5) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(n):
        obs, *_ = env.step(np.zeros(env.action_space.shape, env.action_space.dtype))
        out.append(obs)
    return out


# --- CarRacing (ships with gymnasium[box2d]) ----------------------------------------------------


@pytest.fixture(scope="module")
def car_racing():
    pytest.importorskip("Box2D")
    return lambda: gym.make("CarRacing-v3", render_mode="rgb_array")


def test_car_racing_check_env_and_determinism(car_racing):
    env = sim.CorruptionWrapper(car_racing(), "gaussian_noise", severity=4)
    quiet_check_env(env)
    a = rollout(env, seed=3)
    b = rollout(env, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(rollout(env, seed=4)[0], a[0])
    assert env.observation_space == env.env.observation_space
    clean = rollout(car_racing(), seed=3)
    # Corrupted, but the underlying drive is the same one.
    assert all(np.abs(x.astype(int) - y).mean() > 5 for x, y in zip(a, clean, strict=True))
    corr = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, clean, strict=True)]
    assert min(corr) > 0.3
    env.close()


def test_base_env_random_stream_is_untouched(car_racing):
    plain = car_racing()
    wrapped = sim.CorruptionWrapper(car_racing(), "snow", 3)
    plain.reset(seed=11)
    wrapped.reset(seed=11)
    for _ in range(3):
        plain.step(np.zeros(3, np.float32))
        wrapped.step(np.zeros(3, np.float32))
    s1 = plain.unwrapped.np_random.bit_generator.state
    s2 = wrapped.unwrapped.np_random.bit_generator.state
    assert s1 == s2


def test_spec_rebuilds_the_wrapper(car_racing):
    env = sim.CorruptionWrapper(car_racing(), "fog", severity=2)
    assert env.spec is not None
    rebuilt = gym.make(env.spec)
    assert isinstance(rebuilt, sim.CorruptionWrapper)
    assert rebuilt.schedule == env.schedule
    assert np.array_equal(rollout(rebuilt, 5, 1)[1], rollout(env, 5, 1)[1])


# --- a small env with ground truth --------------------------------------------------------------


def test_tiny_env_check_env_and_shift_info():
    env = sim.CorruptionWrapper(TinyStreamEnv(), "contrast", severity=2.5)
    quiet_check_env(env)
    _, info = env.reset(seed=0)
    assert info["shift"]["corruption"] == "contrast" and info["shift"]["severity"] == 2.5
    assert info["shift"]["frame"] == 0 and info["shift"]["label"] == "contrast s2.5"
    *_, info = env.step(np.zeros(2, np.float32))
    assert info["shift"]["frame"] == 1


def test_pixel_moving_corruption_moves_info_ground_truth():
    env = sim.CorruptionWrapper(TinyStreamEnv(), "camera_shake", severity=5)
    base = TinyStreamEnv()
    obs, info = env.reset(seed=2)
    _, base_info = base.reset(seed=2)
    assert not np.array_equal(info["semantic"], base_info["semantic"])
    defined = info["semantic"] != 255
    pal = sim.PALETTE.astype(int)
    d = np.abs(obs.astype(int)[:, :, None, :] - pal[None, None]).sum(-1)
    pure = (d.min(-1) <= 3) & defined
    assert (d.argmin(-1)[pure] == info["semantic"][pure]).mean() > 0.97
    assert np.isnan(info["depth"][~defined]).all()
    # Non-moving corruptions leave the ground truth alone.
    env2 = sim.CorruptionWrapper(TinyStreamEnv(), "fog_depth", severity=3)
    _, info2 = env2.reset(seed=2)
    assert np.array_equal(info2["semantic"], base_info["semantic"])


def test_fog_depth_uses_info_depth_and_fails_clearly_without_it(car_racing):
    env = sim.CorruptionWrapper(TinyStreamEnv(), "fog_depth", severity=5)
    obs, _ = env.reset(seed=0)
    assert np.all(np.abs(obs[:4].astype(int) - 209) <= 1)  # sky rows: pure airlight (.82)
    with pytest.raises(ValueError, match="depth"):
        sim.CorruptionWrapper(car_racing(), "fog_depth", 3).reset(seed=0)


def test_frame_drop_repeats_the_previous_observation():
    env = sim.CorruptionWrapper(TinyStreamEnv(), "frame_drop", severity=5)
    obs = rollout(env, seed=0, n=30)
    base = rollout(TinyStreamEnv(), seed=0, n=30)
    repeats = sum(np.array_equal(obs[i], obs[i - 1]) for i in range(1, 31))
    assert repeats >= 12  # p(drop) = 0.7 at severity 5
    for i in range(1, 31):
        assert np.array_equal(obs[i], base[i]) or np.array_equal(obs[i], obs[i - 1])


def test_schedule_drives_severity_and_world():
    env = sim.CorruptionWrapper(
        TinyStreamEnv(),
        None,
        schedule={"kind": "gradual", "corruption": "gaussian_noise"},
        n_frames=11,
    )
    env.reset(seed=0)
    sev = [env.step(np.zeros(2, np.float32))[4]["shift"]["severity"] for _ in range(10)]
    assert sev[4] == pytest.approx(5) and sev[-1] == pytest.approx(1) and sev[0] < sev[3]
    tiny = TinyStreamEnv()
    env = sim.CorruptionWrapper(tiny, None, schedule="day_to_night", n_frames=10)
    obs, info = env.reset(seed=0)
    for _ in range(9):
        *_, info = env.step(np.zeros(2, np.float32))
    alts = [c["sun_altitude_deg"] for c in tiny.conditions]
    assert len(alts) == 10 and alts[0] > 50 and alts[-1] < -20
    assert info["shift"]["world"]["sun_altitude_deg"] == alts[-1]
    assert info["shift"]["corruption"] is None
    np.testing.assert_array_equal(obs, TinyStreamEnv().reset(seed=0)[0])  # no post-process


def test_dead_pixels_stay_put_within_an_episode():
    env = sim.CorruptionWrapper(TinyStreamEnv(), "dead_pixels", severity=5)
    obs = rollout(env, seed=1, n=3)
    base = rollout(TinyStreamEnv(), seed=1, n=3)
    masks = [np.any(o != b, axis=2) for o, b in zip(obs, base, strict=True)]
    overlap = (masks[0] & masks[3]).sum() / max(masks[0].sum(), 1)
    assert overlap > 0.8


# --- bad input ---------------------------------------------------------------------------------


def test_non_image_env_is_rejected_at_construction():
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        sim.CorruptionWrapper(gym.make("CartPole-v1"), "fog")


def test_bad_arguments():
    with pytest.raises(ValueError, match="did you mean"):
        sim.CorruptionWrapper(TinyStreamEnv(), "fogg")
    with pytest.raises(ValueError, match="severity"):
        sim.CorruptionWrapper(TinyStreamEnv(), "fog", severity=9)
    with pytest.raises(ValueError, match="corruption"):
        sim.CorruptionWrapper(TinyStreamEnv(), None)
    with pytest.raises(ValueError, match="n_frames"):
        sim.CorruptionWrapper(TinyStreamEnv(), "fog", n_frames=0)


def test_world_schedule_needs_a_world(car_racing):
    with pytest.raises(ValueError, match="set_conditions"):
        sim.CorruptionWrapper(car_racing(), None, schedule="clear_to_fog")


# --- our own environment ------------------------------------------------------------------------


def test_driving_stream_env_with_check_env_and_ground_truth():
    base_kwargs = {"height": 64, "width": 128}
    env = sim.CorruptionWrapper(
        gym.make("roadshift/DrivingStream-v0", **base_kwargs), "elastic_transform", severity=3
    )
    quiet_check_env(env)
    obs, info = env.reset(seed=0)
    assert obs.shape == (64, 128, 3) and info["semantic"].shape == (64, 128)
    assert info["shift"]["corruption"] == "elastic_transform"
    a = rollout(env, seed=7, n=3)
    b = rollout(env, seed=7, n=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_driving_stream_env_world_schedule_and_depth_fog():
    base_kwargs = {"height": 64, "width": 128}
    env = sim.CorruptionWrapper(
        gym.make("roadshift/DrivingStream-v0", **base_kwargs),
        None,
        schedule="clear_to_fog",
        n_frames=6,
    )
    first, _ = env.reset(seed=0)
    for _ in range(5):
        last, _, _, _, info = env.step(env.action_space.sample())
    assert info["shift"]["world"]["fog_density"] > 50
    assert last.std() < first.std()  # the world's own fog flattens the image
    fog = sim.CorruptionWrapper(
        gym.make("roadshift/DrivingStream-v0", **base_kwargs), "fog_depth", 3
    )
    obs, _ = fog.reset(seed=0)
    assert obs.shape == (64, 128, 3)


def test_driving_stream_camera_shake_moves_labels_with_the_image():
    kwargs = {"height": 64, "width": 128}
    base = gym.make("roadshift/DrivingStream-v0", **kwargs)
    env = sim.CorruptionWrapper(gym.make("roadshift/DrivingStream-v0", **kwargs), "camera_shake", 5)
    obs, info = env.reset(seed=4)
    _, base_info = base.reset(seed=4)
    undefined = info["semantic"] == 255
    # The border shaken in has no ground truth: depth NaN, label ignore, pixels black. (The
    # world labels street furniture 255 too, so the border is found through the depth.)
    border = np.isnan(info["depth"])
    assert border.mean() > 0.01 and not np.isnan(base_info["depth"]).any()
    assert undefined[border].all()
    assert (obs[border] == 0).all(-1).mean() > 0.8
    moved = ~undefined & (info["semantic"] != base_info["semantic"])
    assert moved.mean() > 0.02  # the labels moved with the image
