"""A Gymnasium wrapper that corrupts the observations of any image environment."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from sim.corruptions.catalogue import (
    check_severity,
    corrupt_frame,
    corruption_info,
    resolve_scale,
)
from sim.corruptions.schedules import Schedule, make_schedule

DEFAULT_STREAM_FRAMES = 1000


class CorruptionWrapper(
    gym.ObservationWrapper[np.ndarray, Any, np.ndarray], gym.utils.RecordConstructorArgs
):
    """Corrupts ``uint8 (H, W, 3)`` observations with a fixed corruption or a shift schedule.

    ## Description
    Works on any Gymnasium environment with ``Box(0, 255, (H, W, 3), uint8)`` observations
    (ours, ``CarRacing-v3``, Atari, ...). Each ``reset``/``step`` observation is passed through
    ``sim.corrupt_frame``; ``info["shift"]`` reports the shift applied to it.

    ## Randomness
    The wrapper keeps its own ``numpy.random.Generator``, seeded from ``reset(seed=...)``; it
    never draws from the wrapped env's ``np_random``, so the base env's stream is untouched and
    the same seed reproduces the same corrupted observations. Camera-fixed defects (dead
    pixels, lens dirt) stay in place for the whole episode.

    ## Ground truth
    When the base ``info`` has ``semantic`` and/or ``depth`` (as ``roadshift/DrivingStream-v0``
    does), pixel-moving corruptions move them with the image (labels 255 and depth NaN where
    undefined), and depth-aware corruptions (``fog_depth``) use the depth.

    ## Arguments
    - ``env``: the environment to wrap.
    - ``corruption``: a corruption name (``sim.corruption_names()``) or an albumentations
      shift spec (``{"albumentations": "RandomRain", "params": {...}}``, see
      ``sim.corruptions.albu``); may be ``None`` when a ``schedule`` is given.
    - ``severity``: int 1-5 or float in [0, 5] for the fixed corruption.
    - ``schedule``: optional schedule spec (dict, kind name or ``sim.make_schedule`` result);
      overrides ``corruption``/``severity``. World schedules (day_to_night, ...) call the
      unwrapped env's ``set_conditions`` before each step.
    - ``n_frames``: the stream length the schedule is laid out on (default: the env spec's
      ``max_episode_steps``, else the env's ``len()`` (a dataset's frame count), else 1000).
      Frames past the end keep the last state.
    - ``scaling``: ``relative`` (default: spatial constants times ``min(H, W) / 224``) or
      ``absolute`` (the published constants in pixels, as Cityscapes-C).

    ## Memory
    Temporal corruptions see the previous observation (``frame_drop``); stateful ones
    (``auto_exposure_lag``, ``camera_crash``) keep their state for the episode; ``reset``
    clears both.

    ## Version History
    - v0: initial version.
    - v0 (0.2): ``scaling``; albumentations shift specs; stateful corruptions keep their
      state through an episode.
    """

    def __init__(
        self,
        env: gym.Env,
        corruption: str | None,
        severity: float = 3,
        schedule: dict | str | Schedule | None = None,
        n_frames: int | None = None,
        scaling: str = "relative",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            corruption=corruption,
            severity=severity,
            schedule=schedule,
            n_frames=n_frames,
            scaling=scaling,
        )
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not (
            isinstance(space, gym.spaces.Box)
            and space.dtype == np.uint8
            and len(space.shape) == 3
            and space.shape[2] == 3
        ):
            raise ValueError(
                "CorruptionWrapper needs an env with Box uint8 (H, W, 3) image observations, "
                f"got observation_space={space}"
            )
        if schedule is not None:
            self.schedule: Schedule = make_schedule(schedule)
        elif corruption is None:
            raise ValueError("corruption must be a corruption name when no schedule is given")
        else:
            corruption_info(corruption)  # raises for unknown names, listing close matches
            self.schedule = make_schedule(
                {"kind": "static", "corruption": corruption, "severity": check_severity(severity)}
            )
        if n_frames is None:
            spec_steps = getattr(env.spec, "max_episode_steps", None) if env.spec else None
            # a stream of known length (roadshift/FolderStream-v0: its dataset) lays out on it
            length = len(env.unwrapped) if hasattr(type(env.unwrapped), "__len__") else None
            n_frames = int(spec_steps or length or DEFAULT_STREAM_FRAMES)
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise ValueError(f"n_frames must be a positive int, got {n_frames!r}")
        self.n_frames = n_frames
        resolve_scale(scaling, (1, 1))  # raises for anything but relative / absolute
        self.scaling = scaling
        self._state: dict[str, Any] = {}
        self._world_schedule = self.schedule.state(0, n_frames).world is not None
        if self._world_schedule and _world_setter(env) is None:
            raise ValueError(
                f"schedule kind {self.schedule.kind!r} drives the world's weather; it needs an env "
                "with set_conditions (roadshift/DrivingStream-v0)"
            )
        self._rng: np.random.Generator | None = None
        self._pattern_seed: int | None = None
        self._frame = 0
        self._previous: np.ndarray | None = None
        self.shift: dict[str, Any] = {}

    # -----------------------------------------------------------------------------------------

    def _seed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        elif self._rng is None:
            self._rng = np.random.default_rng()  # unseeded reset, like Gymnasium's own envs
        else:
            return
        self._pattern_seed = int(self._rng.integers(2**31 - 1))

    def _apply(self, obs: np.ndarray, info: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        assert self._rng is not None
        state = self.schedule.state(min(self._frame, self.n_frames - 1), self.n_frames)
        info = dict(info)
        semantic, depth = info.get("semantic"), info.get("depth")
        if state.corruption is not None and state.severity > 0:
            needs_depth = corruption_info(state.corruption).needs_depth
            if needs_depth and depth is None:
                raise ValueError(
                    f"corruption {state.corruption!r} needs depth, but the env's info has no "
                    "'depth'; use it with roadshift/DrivingStream-v0"
                )
            obs, semantic, depth = corrupt_frame(
                obs, semantic, depth, state.corruption, state.severity, self._rng,
                previous=self._previous, pattern_seed=self._pattern_seed,
                scaling=self.scaling, state=self._state,
            )  # fmt: skip
            if "semantic" in info:
                info["semantic"] = semantic
            if "depth" in info:
                info["depth"] = depth
        self.shift = {
            "corruption": state.corruption,
            "severity": state.severity,
            "segment": state.segment,
            "label": state.label,
            "frame": self._frame,
            "schedule": self.schedule.kind,
        }
        if state.world is not None:
            self.shift["world"] = state.world
        info["shift"] = dict(self.shift)
        self._previous = obs
        return obs, info

    def _set_world(self) -> None:
        if self._world_schedule:
            state = self.schedule.state(min(self._frame, self.n_frames - 1), self.n_frames)
            setter = _world_setter(self.env)
            assert setter is not None and state.world is not None
            setter(**state.world)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._seed(seed)
        self._frame = 0
        self._previous = None
        self._state = {}
        obs, info = self.env.reset(seed=seed, options=options)
        if self._world_schedule:
            # The reset frame is rendered before we can act: set the start conditions and
            # let the next frames follow the schedule.
            self._set_world()
        return self._apply(obs, info)

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        self._frame += 1
        self._set_world()
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._apply(obs, info)
        return obs, reward, terminated, truncated, info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """Corrupt one observation at the current frame (reset/step do this themselves)."""
        if self._rng is None:
            self._seed(None)
        return self._apply(observation, {})[0]


def _world_setter(env: gym.Env) -> Any:
    """``set_conditions`` of the unwrapped env, or of its ``world``; None when there is none."""
    base = env.unwrapped
    for obj in (base, getattr(base, "world", None)):
        fn = getattr(obj, "set_conditions", None)
        if callable(fn):
            return fn
    return None
