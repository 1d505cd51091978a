"""Vocabulary shared by every roadshift package, in pure Python.

The registry idiom (one implementation for corruptions, schedules, models and adaptation
methods), the error for an unknown name, the ``"module:attr"`` loader and the Cityscapes class
taxonomy. Importing it loads neither NumPy-heavy ``sim`` modules (world, renderer, corruptions,
environments) nor torch, which is why ``perception`` may import it and nothing else of ``sim``.
"""

from __future__ import annotations

from sim.common.classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, PALETTE_RGB
from sim.common.loading import load_object
from sim.common.names import UnknownNameError, did_you_mean, unknown_name
from sim.common.registry import Registry, call_ignoring_none
from sim.common.seeding import stable_int

__all__ = [
    "CLASS_NAMES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "PALETTE_RGB",
    "Registry",
    "UnknownNameError",
    "call_ignoring_none",
    "did_you_mean",
    "load_object",
    "stable_int",
    "unknown_name",
]
