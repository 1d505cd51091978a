"""Registering roadshift's environments with Gymnasium, without importing them."""

from __future__ import annotations

import gymnasium as gym

ENV_ID = "roadshift/DrivingStream-v0"
MAX_EPISODE_STEPS = 1000
#: A dataset's stream ends with its last frame: no step limit.
FOLDER_ENV_ID = "roadshift/FolderStream-v0"


def register_envs() -> None:
    """Register ``roadshift/DrivingStream-v0`` and ``roadshift/FolderStream-v0`` with
    Gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="sim.envs.driving:DrivingStreamEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )
    if FOLDER_ENV_ID not in gym.registry:
        gym.register(id=FOLDER_ENV_ID, entry_point="sim.envs.folder:FolderStreamEnv")
