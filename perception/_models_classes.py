"""The label set shared by models and metrics: the 19 Cityscapes trainIds.

The taxonomy itself lives in ``sim.common`` (pure Python, the one part of ``sim`` that
``perception`` may import); this module adds what only perception needs.
"""

from __future__ import annotations

from sim.common import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES

__all__ = ["CLASS_NAMES", "IGNORE_INDEX", "NUM_CLASSES", "SAFETY_CLASSES"]

#: trainIds whose pixel recall is reported as "safety-critical recall": the road users.
SAFETY_CLASSES: tuple[int, ...] = tuple(
    CLASS_NAMES.index(n)
    for n in ("person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")
)
