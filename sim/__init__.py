"""roadshift's simulator: a procedural driving world, its corruptions and Gymnasium environments.

``import sim`` registers ``roadshift/DrivingStream-v0`` with Gymnasium (idempotently).
"""

from __future__ import annotations

# --- world and environment (issue 2) ---
from sim._classes import CLASS_NAMES, IGNORE_INDEX, PALETTE, colorize

# --- corruptions, schedules, wrapper, preview (issue 3) ---

__all__: list[str] = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "PALETTE",
    "colorize",
]
