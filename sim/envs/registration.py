"""Registering roadshift's environments with Gymnasium, without importing them."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "roadshift/DrivingStream-v0"
LANE_KEEPING_ID = "roadshift/LaneKeeping-v0"
MAX_EPISODE_STEPS = 1000
_ENTRY_POINTS = {
    ENV_ID: "sim.envs.driving:DrivingStreamEnv",
    LANE_KEEPING_ID: "sim.envs.lane_keeping:LaneKeepingEnv",
}


def register_envs() -> None:
    """Register ``roadshift/DrivingStream-v0`` and ``roadshift/LaneKeeping-v0`` with
    Gymnasium (idempotent)."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=MAX_EPISODE_STEPS)
