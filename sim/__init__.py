"""roadshift's simulator: a procedural driving world, its corruptions and Gymnasium environments.

``import sim`` registers ``roadshift/DrivingStream-v0``, ``roadshift/LaneKeeping-v0`` and
``roadshift/FolderStream-v0`` with Gymnasium (idempotently) and stays cheap: the world, the
renderer, the corruptions, the controllers and the dataset readers load on first use of a public
name (module ``__getattr__``), so ``perception`` can use the pure-Python ``sim.common`` without
them.
"""

from __future__ import annotations

import importlib
from typing import Any

from sim.common.classes import CLASS_NAMES, IGNORE_INDEX
from sim.envs.registration import register_envs

register_envs()

# Lazily loaded public names -> the module that defines them.
_LAZY = {
    "PALETTE": "sim.render.palette",
    "colorize": "sim.render.palette",
    "DrivingStreamEnv": "sim.envs.driving",
    "LaneKeepingEnv": "sim.envs.lane_keeping",
    "ClosedLoop": "sim.control.drives",
    "DriveResult": "sim.control.drives",
    "LaneKeepingController": "sim.control.controller",
    "RoadPrior": "sim.control.road",
    "Frame": "sim.world.world",
    "World": "sim.world.world",
    "render_stream": "sim.world.world",
    "TIMES_OF_DAY": "sim.world.config",
    "TOWNS": "sim.world.config",
    "TRAFFIC_LEVELS": "sim.world.config",
    "WEATHER_PRESETS": "sim.world.config",
    "Weather": "sim.world.config",
    "WorldConfig": "sim.world.config",
    "CorruptionInfo": "sim.corruptions.catalogue",
    "corrupt": "sim.corruptions.catalogue",
    "corrupt_frame": "sim.corruptions.catalogue",
    "corruption_groups": "sim.corruptions.catalogue",
    "corruption_info": "sim.corruptions.catalogue",
    "corruption_names": "sim.corruptions.catalogue",
    "get_corruption_names": "sim.corruptions.compat",
    "contact_sheet": "sim.corruptions.preview",
    "Schedule": "sim.corruptions.schedules",
    "ShiftState": "sim.corruptions.schedules",
    "make_schedule": "sim.corruptions.schedules",
    "schedule_kinds": "sim.corruptions.schedules",
    "CorruptionWrapper": "sim.corruptions.wrapper",
    "DATA_LAYOUTS": "sim.data.spec",
    "DataError": "sim.data.spec",
    "DataSpec": "sim.data.spec",
    "FolderDataset": "sim.data.dataset",
    "FolderStreamEnv": "sim.envs.folder",
    "corrupt_dataset": "sim.data.corrupt",
    "render_dataset": "sim.data.render",
}

__all__: list[str] = [
    "CLASS_NAMES",
    "DATA_LAYOUTS",
    "IGNORE_INDEX",
    "PALETTE",
    "TIMES_OF_DAY",
    "TOWNS",
    "TRAFFIC_LEVELS",
    "WEATHER_PRESETS",
    "ClosedLoop",
    "CorruptionInfo",
    "CorruptionWrapper",
    "DataError",
    "DataSpec",
    "DriveResult",
    "DrivingStreamEnv",
    "FolderDataset",
    "FolderStreamEnv",
    "Frame",
    "LaneKeepingController",
    "LaneKeepingEnv",
    "RoadPrior",
    "Schedule",
    "ShiftState",
    "Weather",
    "World",
    "WorldConfig",
    "colorize",
    "contact_sheet",
    "corrupt",
    "corrupt_dataset",
    "corrupt_frame",
    "corruption_groups",
    "corruption_info",
    "corruption_names",
    "get_corruption_names",
    "make_schedule",
    "register_envs",
    "render_dataset",
    "render_stream",
    "schedule_kinds",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
