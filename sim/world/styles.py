"""Town styles: what makes an urban, suburban, highway or rural drive look and move as it does.

The world is laid out along a road coordinate system: ``s`` is the distance along the road,
``u`` the signed lateral offset from the centre line (positive to the right, traffic drives on
the right). Each side of the road has two vertical *layers* (a near one: façades, fences, walls,
hedges, guardrails; a far one: back rows of buildings or tree lines), split along ``s`` into
blocks with their own height, kind and colour (``sim.world.layout``, ``sim.world.town_map``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim.common.classes import BUILDING, FENCE, VEGETATION, WALL
from sim.world.objects import ObjectKind

# Vertical layer kinds (how the solid part of a layer block is patterned). Plain ints: the
# renderer compares whole columns of them every frame.
K_NONE, K_BUILDING, K_WALL, K_FENCE, K_HEDGE, K_TREES, K_RAIL = range(7)
N_LAYER_KINDS = 7
#: The trainId of each layer kind's solid pixels (K_NONE has none).
LAYER_LABEL = {
    K_BUILDING: BUILDING,
    K_WALL: WALL,
    K_FENCE: FENCE,
    K_HEDGE: VEGETATION,
    K_TREES: VEGETATION,
    K_RAIL: FENCE,
}


@dataclass(frozen=True)
class TownStyle:
    """What distinguishes one town from another: layout, colours, class mix and traffic."""

    name: str
    lanes_per_dir: int
    lane_width: float
    parking: float  # parking strip width beyond the outer lane (part of the road)
    median: float  # gap between the two directions (highway: barrier strip)
    sidewalk: float
    verge: float  # grass strip between kerb and sidewalk
    speed_kmh: float
    curvature: float  # typical curvature magnitude (1/m)
    near_u: tuple[float, float]  # set-back range of the near layer beyond the outer ground band
    far_u: tuple[float, float]
    near_kinds: tuple[tuple[int, float], ...]  # (kind, probability)
    far_kinds: tuple[tuple[int, float], ...]
    near_height: tuple[float, float]
    far_height: tuple[float, float]
    block_len: tuple[float, float]
    intersection_every: tuple[float, float] | None
    building_colors: tuple[tuple[int, int, int], ...]
    wall_colors: tuple[tuple[int, int, int], ...]
    road_rgb: tuple[int, int, int]
    sidewalk_rgb: tuple[int, int, int]
    terrain_rgb: tuple[int, int, int]
    veg_rgb: tuple[int, int, int]
    # objects per 100 m of one side: trees, poles (incl. street lights), signs, parked cars
    trees: float
    poles: float
    signs: float
    parked: float
    pedestrians: float  # per 100 m of sidewalk
    riders: float  # cyclists per 100 m of bike lane (one direction)
    vehicle_mix: tuple[tuple[ObjectKind, float], ...] = field(default=())
    bike_lane: float = 0.0  # width of a bike lane beyond the outer traffic lane


_GREY_BUILDINGS = (
    (120, 116, 110),
    (150, 140, 128),
    (105, 100, 98),
    (168, 150, 120),
    (140, 100, 80),
    (96, 104, 112),
    (180, 172, 160),
    (128, 88, 70),
)
_WALLS = ((130, 126, 118), (150, 146, 140), (112, 108, 110), (160, 150, 132))

STYLES: dict[str, TownStyle] = {
    "urban": TownStyle(
        name="urban",
        lanes_per_dir=2,
        lane_width=3.2,
        parking=2.2,
        median=0.0,
        sidewalk=4.0,
        verge=0.0,
        speed_kmh=40.0,
        curvature=0.0012,
        near_u=(0.0, 0.8),
        far_u=(25.0, 40.0),
        near_kinds=((K_BUILDING, 0.78), (K_WALL, 0.1), (K_FENCE, 0.07), (K_HEDGE, 0.05)),
        far_kinds=((K_BUILDING, 0.9), (K_TREES, 0.1)),
        near_height=(9.0, 28.0),
        far_height=(18.0, 45.0),
        block_len=(12.0, 40.0),
        intersection_every=(55.0, 110.0),
        building_colors=_GREY_BUILDINGS,
        wall_colors=_WALLS,
        road_rgb=(88, 86, 90),
        sidewalk_rgb=(150, 142, 140),
        terrain_rgb=(110, 130, 70),
        veg_rgb=(70, 105, 45),
        trees=4.0,
        poles=4.0,
        signs=2.5,
        parked=5.0,
        pedestrians=24.0,
        riders=4.0,
        vehicle_mix=(
            (ObjectKind.CAR, 0.67),
            (ObjectKind.TRUCK, 0.07),
            (ObjectKind.BUS, 0.08),
            (ObjectKind.MOTORCYCLE, 0.16),
            (ObjectKind.TRAIN, 0.02),
        ),
        bike_lane=1.5,
    ),
    "suburban": TownStyle(
        name="suburban",
        lanes_per_dir=1,
        lane_width=3.5,
        parking=0.0,
        median=0.0,
        sidewalk=2.0,
        verge=1.8,
        speed_kmh=45.0,
        curvature=0.003,
        near_u=(5.0, 10.0),
        far_u=(14.0, 22.0),
        near_kinds=((K_FENCE, 0.35), (K_HEDGE, 0.3), (K_WALL, 0.15), (K_NONE, 0.2)),
        far_kinds=((K_BUILDING, 0.75), (K_TREES, 0.25)),
        near_height=(0.8, 1.8),
        far_height=(5.0, 9.0),
        block_len=(14.0, 30.0),
        intersection_every=(120.0, 260.0),
        building_colors=(
            (200, 190, 170),
            (170, 150, 130),
            (210, 205, 195),
            (150, 120, 100),
            (180, 175, 150),
            (140, 150, 160),
        ),
        wall_colors=((170, 160, 150), (140, 130, 120), (190, 180, 165)),
        road_rgb=(92, 92, 94),
        sidewalk_rgb=(165, 160, 155),
        terrain_rgb=(100, 140, 60),
        veg_rgb=(60, 110, 40),
        trees=7.0,
        poles=3.0,
        signs=1.5,
        parked=2.0,
        pedestrians=9.0,
        riders=3.5,
        vehicle_mix=(
            (ObjectKind.CAR, 0.77),
            (ObjectKind.TRUCK, 0.06),
            (ObjectKind.BUS, 0.04),
            (ObjectKind.MOTORCYCLE, 0.13),
        ),
        bike_lane=1.3,
    ),
    "highway": TownStyle(
        name="highway",
        lanes_per_dir=3,
        lane_width=3.6,
        parking=1.5,
        median=2.0,
        sidewalk=0.0,
        verge=0.0,
        speed_kmh=90.0,
        curvature=0.0015,
        near_u=(1.0, 1.5),
        far_u=(30.0, 70.0),
        near_kinds=((K_RAIL, 1.0),),
        far_kinds=((K_TREES, 0.6), (K_WALL, 0.15), (K_BUILDING, 0.15), (K_NONE, 0.1)),
        near_height=(0.8, 0.8),
        far_height=(6.0, 16.0),
        block_len=(30.0, 90.0),
        intersection_every=None,
        building_colors=_GREY_BUILDINGS,
        wall_colors=_WALLS,
        road_rgb=(96, 95, 98),
        sidewalk_rgb=(150, 150, 150),
        terrain_rgb=(120, 135, 75),
        veg_rgb=(60, 95, 45),
        trees=2.0,
        poles=2.5,
        signs=1.5,
        parked=0.0,
        pedestrians=0.0,
        riders=0.0,
        vehicle_mix=(
            (ObjectKind.CAR, 0.68),
            (ObjectKind.TRUCK, 0.22),
            (ObjectKind.BUS, 0.05),
            (ObjectKind.MOTORCYCLE, 0.05),
        ),
    ),
    "rural": TownStyle(
        name="rural",
        lanes_per_dir=1,
        lane_width=3.0,
        parking=0.0,
        median=0.0,
        sidewalk=0.0,
        verge=0.0,
        speed_kmh=60.0,
        curvature=0.005,
        near_u=(2.0, 8.0),
        far_u=(20.0, 60.0),
        near_kinds=((K_NONE, 0.5), (K_FENCE, 0.35), (K_HEDGE, 0.15)),
        far_kinds=((K_TREES, 0.7), (K_BUILDING, 0.12), (K_NONE, 0.18)),
        near_height=(1.0, 1.5),
        far_height=(6.0, 18.0),
        block_len=(20.0, 70.0),
        intersection_every=(300.0, 600.0),
        building_colors=((160, 120, 90), (190, 180, 160), (150, 60, 50), (170, 160, 140)),
        wall_colors=((150, 140, 120), (120, 110, 100)),
        road_rgb=(100, 98, 96),
        sidewalk_rgb=(150, 140, 130),
        terrain_rgb=(140, 140, 70),
        veg_rgb=(55, 90, 35),
        trees=6.0,
        poles=3.0,
        signs=1.0,
        parked=0.3,
        pedestrians=0.5,
        riders=1.0,
        vehicle_mix=(
            (ObjectKind.CAR, 0.7),
            (ObjectKind.TRUCK, 0.2),
            (ObjectKind.MOTORCYCLE, 0.05),
            (ObjectKind.BICYCLE, 0.05),
        ),
    ),
}
