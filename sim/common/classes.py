"""The 19 Cityscapes training classes (trainIds), their official colours and the ignore index.

Every package in roadshift speaks this label space: the world renders it, models predict it,
metrics and reports name it. ``IGNORE_INDEX`` (255) marks pixels no metric should count.
"""

from __future__ import annotations

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
NUM_CLASSES: int = len(CLASS_NAMES)
IGNORE_INDEX: int = 255

# The trainId of each class, in CLASS_NAMES order (unpacking fails if the two ever disagree in
# length). Plain ints rather than an IntEnum: the renderer uses them per part and per pixel,
# and NumPy takes a slow path for int subclasses.
(
    ROAD,
    SIDEWALK,
    BUILDING,
    WALL,
    FENCE,
    POLE,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    VEGETATION,
    TERRAIN,
    SKY,
    PERSON,
    RIDER,
    CAR,
    TRUCK,
    BUS,
    TRAIN,
    MOTORCYCLE,
    BICYCLE,
) = range(NUM_CLASSES)

# The official Cityscapes colour for each trainId (cityscapesScripts, labels.py).
PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),
    (244, 35, 232),
    (70, 70, 70),
    (102, 102, 156),
    (190, 153, 153),
    (153, 153, 153),
    (250, 170, 30),
    (220, 220, 0),
    (107, 142, 35),
    (152, 251, 152),
    (70, 130, 180),
    (220, 20, 60),
    (255, 0, 0),
    (0, 0, 142),
    (0, 0, 70),
    (0, 60, 100),
    (0, 80, 100),
    (0, 0, 230),
    (119, 11, 32),
)
