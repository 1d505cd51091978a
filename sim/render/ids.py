"""The renderer's ids: material slots of the per-frame id buffer, and facings.

Every pixel of a frame holds one id into the material table (colour, label, facing, texture
amplitude, light emission; see ``sim.render.materials``): first ``NG`` fixed ground and façade
materials, then one slot per image column for each of the two road-side layers (near, far),
then one slot per object part. Part ids in the sprite drawer's buffer count from 1 (0 = none).
Plain ints: they are compared with whole id maps every frame.
"""

from __future__ import annotations

# Fixed materials.
G_ROAD, G_SIDEWALK, G_TERRAIN, G_MARK, G_MARK_Y, G_SKY, G_WINDOW, G_LITWIN, G_CURB = range(9)
G_TRACK = 9  # slightly darker, polished wheel tracks in each lane
G_BIKE = 10  # bike lane surface (road class)
NG = 16  # slots reserved for fixed materials; ids >= G_SKY are not ground

# Facing of a surface, used to light it: up, faces left, faces right, faces the camera, self-lit.
F_UP, F_LEFT, F_RIGHT, F_BACK, F_EMIT = range(5)

MAX_PARTS = 4096  # object parts per frame


def layer_slots(layer: int, width: int) -> slice:
    """The material slots of one road-side layer (0 near, 1 far), one per image column."""
    return slice(NG + layer * width, NG + (layer + 1) * width)


def first_part_slot(width: int) -> int:
    """The material slot of part id 1 (part ``p`` lives at ``first_part_slot(W) + p - 1``)."""
    return NG + 2 * width


def table_size(width: int) -> int:
    """Number of material slots for frames ``width`` pixels wide."""
    return NG + 2 * width + MAX_PARTS
