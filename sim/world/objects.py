"""What stands and moves in the world: object kinds, their sizes, and the typed object table.

Each frame the world hands the renderer one *object table*: a NumPy structured array of dtype
``OBJECT_DTYPE``, one row per object (static props near the camera, then vehicles, then
people). Every field has a name and one meaning for every kind; a field a kind has no use for
holds 0. The town keeps its static props in a table of dtype ``PROP_DTYPE``.

Every field is stored as float64 (kinds, signals and flags are small whole numbers), so a row is
a block of floats: ``take_rows`` and ``concat_tables`` move rows through a 2-D float view, as
fast as a plain array, where NumPy copies rows of mixed field types one field at a time
(about ten times slower, per frame).

Kinds are ``IntEnum``s. Per-frame NumPy code compares plain ints (``.value``) or indexes tables
built from the enums once: NumPy takes a slow path for int subclasses.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from sim.common.classes import (
    BICYCLE,
    BUS,
    CAR,
    IGNORE_INDEX,
    MOTORCYCLE,
    PERSON,
    POLE,
    TRAFFIC_LIGHT,
    TRAFFIC_SIGN,
    TRAIN,
    TRUCK,
    VEGETATION,
)


class ObjectKind(IntEnum):
    """What a row of the object table is; the renderer draws each kind its own way."""

    TREE = 0
    BUSH = 1
    POLE = 2
    LAMP = 3
    SIGN = 4
    TRAFFIC_LIGHT = 5
    CAR = 6
    TRUCK = 7
    BUS = 8
    TRAIN = 9
    MOTORCYCLE = 10
    BICYCLE = 11
    PERSON = 12
    CLUTTER = 13  # street furniture (bins, benches, bollards, boxes) or a parked bicycle


class PropKind(IntEnum):
    """The static props the town map generates along the road."""

    TREE = 0
    POLE = 1
    LAMP = 2
    SIGN = 3
    TRAFFIC_LIGHT = 4
    PARKED = 5  # a parked car or delivery van
    BUSH = 6
    CLUTTER = 7


class Signal(IntEnum):
    """The lit lamp of a traffic light (top to bottom: red, amber, green)."""

    RED = 0
    AMBER = 1
    GREEN = 2


#: The Cityscapes trainId each kind is labelled with (street furniture is void, 255).
KIND_LABEL: dict[ObjectKind, int] = {
    ObjectKind.TREE: VEGETATION,
    ObjectKind.BUSH: VEGETATION,
    ObjectKind.POLE: POLE,
    ObjectKind.LAMP: POLE,
    ObjectKind.SIGN: TRAFFIC_SIGN,
    ObjectKind.TRAFFIC_LIGHT: TRAFFIC_LIGHT,
    ObjectKind.CAR: CAR,
    ObjectKind.TRUCK: TRUCK,
    ObjectKind.BUS: BUS,
    ObjectKind.TRAIN: TRAIN,
    ObjectKind.MOTORCYCLE: MOTORCYCLE,
    ObjectKind.BICYCLE: BICYCLE,
    ObjectKind.PERSON: PERSON,
    ObjectKind.CLUTTER: IGNORE_INDEX,
}
VEHICLES: frozenset[ObjectKind] = frozenset(
    (
        ObjectKind.CAR,
        ObjectKind.TRUCK,
        ObjectKind.BUS,
        ObjectKind.TRAIN,
        ObjectKind.MOTORCYCLE,
        ObjectKind.BICYCLE,
    )
)

# ---- sizes (metres), shared by the world's table, the renderer's far stand-ins and the sprites
PROP_FOOTPRINT = 0.5  # length and width of a prop in the object table
WOODEN_POLE_HEIGHT = 7.5  # rural utility poles (metal ones are shorter)
METAL_POLE_HEIGHT = 6.0
LAMP_HEIGHT = 8.0
SIGN_TOP = 2.9  # top of a sign plate on its post
MAST_SIGNAL_HEIGHT = 6.3  # a traffic light on a mast arm over the carriageway
CLUTTER_HEIGHT = 1.2  # street furniture, roughly (the renderer draws each piece's own height)
PERSON_HEIGHT = 1.75  # nominal; each person is drawn 1.55-1.9 m tall
PERSON_FOOTPRINT = 0.5  # length and width of a person in the object table

# How tall each static prop counts as in the object table (the renderer culls objects that
# would be too small to see by this height); trees, bushes and parked vehicles take theirs
# from the prop itself.
PROP_HEIGHT: dict[PropKind, float] = {
    PropKind.TREE: 0.0,
    PropKind.POLE: WOODEN_POLE_HEIGHT,
    PropKind.LAMP: LAMP_HEIGHT,
    PropKind.SIGN: SIGN_TOP,
    PropKind.TRAFFIC_LIGHT: MAST_SIGNAL_HEIGHT,
    PropKind.PARKED: 1.5,
    PropKind.BUSH: 1.0,
    PropKind.CLUTTER: CLUTTER_HEIGHT,
}
#: The object kind a prop becomes (a parked van becomes a truck, see ``World``).
PROP_OBJECT: dict[PropKind, ObjectKind] = {
    PropKind.TREE: ObjectKind.TREE,
    PropKind.POLE: ObjectKind.POLE,
    PropKind.LAMP: ObjectKind.LAMP,
    PropKind.SIGN: ObjectKind.SIGN,
    PropKind.TRAFFIC_LIGHT: ObjectKind.TRAFFIC_LIGHT,
    PropKind.PARKED: ObjectKind.CAR,
    PropKind.BUSH: ObjectKind.BUSH,
    PropKind.CLUTTER: ObjectKind.CLUTTER,
}

OBJECT_DTYPE = np.dtype(
    [
        ("s", np.float64),  # position along the road (m)
        ("u", np.float64),  # lateral offset from the centre line (m, + right)
        ("kind", np.float64),  # ObjectKind
        ("length", np.float64),  # extent along the road (m)
        ("width", np.float64),  # extent across the road (m)
        ("height", np.float64),  # height (m); trees and bushes: their size
        ("color", np.float64, (3,)),  # base RGB 0..255
        ("seed", np.float64),  # in [0, 1000): varies the look (sign type, person, light phase)
        ("direction", np.float64),  # vehicles: +1 facing the ego's way, -1 oncoming
        ("variant", np.float64),  # props in [0, 1]: a pole carries a sign above 0.6, a traffic
        # light hangs on a mast above 0.5, street furniture picks its piece (parked bicycle
        # from 0.8)
        ("phase", np.float64),  # people: walking phase (rad)
        ("signal", np.float64),  # traffic lights: Signal
        ("wooden", np.float64),  # poles: 1 for a wooden utility pole, 0 for a metal one
    ]
)

PROP_DTYPE = np.dtype(
    [
        ("s", np.float64),
        ("u", np.float64),
        ("kind", np.float64),  # PropKind
        ("size", np.float64),  # trees and bushes: size (m)
        ("variant", np.float64),  # other props: look parameter in [0, 1] (see OBJECT_DTYPE)
        ("color", np.float64, (3,)),
        ("seed", np.float64),
    ]
)


def object_table(n: int = 0) -> np.ndarray:
    """An object table of ``n`` zeroed rows."""
    return np.zeros(n, OBJECT_DTYPE)


def _rows(table: np.ndarray) -> np.ndarray:
    """The table as a 2-D float array (a view: one row per object)."""
    return table.view(np.float64).reshape(len(table), table.dtype.itemsize // 8)


def take_rows(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The rows ``index`` (integer or boolean) of a float-only structured table, as a table."""
    return _rows(table)[index].view(table.dtype).reshape(-1)


def concat_tables(*tables: np.ndarray) -> np.ndarray:
    """The rows of ``tables`` (same float-only structured dtype) one after another."""
    dtype = tables[0].dtype
    out = np.empty((sum(len(t) for t in tables), dtype.itemsize // 8))
    start = 0
    for t in tables:
        out[start : start + len(t)] = _rows(t)
        start += len(t)
    return out.view(dtype).reshape(-1)


def kind_table(values: dict, size: int, dtype: type = np.float64) -> np.ndarray:
    """``values`` (keyed by kind) as an array indexed by the kind's value."""
    out = np.zeros(size, dtype)
    for kind, value in values.items():
        out[int(kind)] = value
    return out
