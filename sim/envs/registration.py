"""Registering roadshift's environments with Gymnasium, without importing them."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "roadshift/DrivingStream-v0"
LANE_KEEPING_ID = "roadshift/LaneKeeping-v0"
MAX_EPISODE_STEPS = 1000
#: A dataset's stream ends with its last frame: no step limit.
FOLDER_ENV_ID = "roadshift/FolderStream-v0"
_ENTRY_POINTS = {
    ENV_ID: "sim.envs.driving:DrivingStreamEnv",
    LANE_KEEPING_ID: "sim.envs.lane_keeping:LaneKeepingEnv",
}


def register_envs() -> None:
    """Register ``roadshift/DrivingStream-v0``, ``roadshift/LaneKeeping-v0`` and
    ``roadshift/FolderStream-v0`` with Gymnasium (idempotent)."""
    for env_id, entry_point in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=entry_point, max_episode_steps=MAX_EPISODE_STEPS)
    if FOLDER_ENV_ID not in gym.registry:
        gym.register(id=FOLDER_ENV_ID, entry_point="sim.envs.folder:FolderStreamEnv")
