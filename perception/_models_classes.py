"""The label set shared by models and metrics: the 19 Cityscapes trainIds.

Copied from ``sim.CLASS_NAMES`` because ``perception`` must not import the simulator; a test
checks that the two stay identical.
"""

from __future__ import annotations

NUM_CLASSES = 19
IGNORE_INDEX = 255
CLASS_NAMES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
#: trainIds whose pixel recall is reported as "safety-critical recall": the road users.
SAFETY_CLASSES: tuple[int, ...] = tuple(
    CLASS_NAMES.index(n)
    for n in ("person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")
)
