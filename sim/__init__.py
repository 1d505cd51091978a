"""roadshift's simulator: a procedural driving world, its corruptions and Gymnasium environments.

``import sim`` registers ``roadshift/DrivingStream-v0`` with Gymnasium (idempotently).
"""

from __future__ import annotations

from sim._classes import CLASS_NAMES, IGNORE_INDEX, PALETTE, colorize
from sim._env import DrivingStreamEnv, register_envs
from sim._world import Frame, World, render_stream
from sim._world_config import (
    TIMES_OF_DAY,
    TOWNS,
    TRAFFIC_LEVELS,
    WEATHER_PRESETS,
    Weather,
    WorldConfig,
)

# isort: split
from sim._corrupt import (
    CorruptionInfo,
    corrupt,
    corrupt_frame,
    corruption_groups,
    corruption_info,
    corruption_names,
)
from sim._preview import contact_sheet
from sim._schedules import Schedule, ShiftState, make_schedule, schedule_kinds
from sim._wrapper import CorruptionWrapper

__all__: list[str] = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "PALETTE",
    "TIMES_OF_DAY",
    "TOWNS",
    "TRAFFIC_LEVELS",
    "WEATHER_PRESETS",
    "CorruptionInfo",
    "CorruptionWrapper",
    "DrivingStreamEnv",
    "Frame",
    "Schedule",
    "ShiftState",
    "Weather",
    "World",
    "WorldConfig",
    "colorize",
    "contact_sheet",
    "corrupt",
    "corrupt_frame",
    "corruption_groups",
    "corruption_info",
    "corruption_names",
    "make_schedule",
    "register_envs",
    "render_stream",
    "schedule_kinds",
]
