"""The procedural world: determinism, ground truth, coverage, coherence, domains, bad input."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

import sim
from sim import Frame, Weather, World, WorldConfig, render_stream

SMALL = {"height": 64, "width": 128}


def frames(n: int, seed: int = 0, **cfg) -> list[Frame]:
    return list(render_stream(WorldConfig(**{**SMALL, **cfg}), seed, n))


def test_same_seed_gives_the_same_bits_and_other_seeds_differ() -> None:
    a, b, c = frames(6, seed=7), frames(6, seed=7), frames(6, seed=8)
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa.image, fb.image)
        assert np.array_equal(fa.semantic, fb.semantic)
        assert np.array_equal(fa.depth, fb.depth)
        assert fa.pose == fb.pose
    assert not np.array_equal(a[-1].image, c[-1].image)


def test_a_generator_seed_is_accepted_and_used() -> None:
    w1 = World(WorldConfig(**SMALL), np.random.default_rng(3))
    w2 = World(WorldConfig(**SMALL), np.random.default_rng(3))
    assert np.array_equal(w1.step().image, w2.step().image)


def test_frame_fields_types_and_shapes() -> None:
    fs = frames(3, town="suburban")
    f = fs[-1]
    assert f.image.shape == (64, 128, 3) and f.image.dtype == np.uint8
    assert f.semantic.shape == (64, 128) and f.semantic.dtype == np.uint8
    assert f.depth.shape == (64, 128) and f.depth.dtype == np.float32
    assert [x.index for x in fs] == [0, 1, 2]
    assert set(f.pose) >= {"x", "y", "yaw", "speed", "s", "lane_offset"}
    assert fs[2].pose["s"] > fs[1].pose["s"] > fs[0].pose["s"]
    json.dumps(f.conditions)  # JSON-serialisable
    assert f.conditions["town"] == "suburban"
    assert f.conditions["weather"]["fog_density"] == 0.0


def test_labels_are_trainids_and_sky_is_exactly_the_infinite_depth() -> None:
    for f in frames(20, seed=1) + frames(5, seed=2, town="rural", time_of_day="night"):
        valid = set(range(19)) | {255}
        assert set(np.unique(f.semantic).tolist()) <= valid
        sky = f.semantic == 10
        assert np.array_equal(sky, np.isinf(f.depth))
        assert np.all(f.depth[~sky] > 0)


def test_ground_depth_matches_the_pinhole_camera() -> None:
    """Road pixels lie on the ground plane: depth = h * f / (row + 0.5 - H / 2)."""
    cfg = WorldConfig(**SMALL, camera_height=1.5, fov_deg=90.0)
    f = next(iter(render_stream(cfg, 4, 1)))
    focal = (cfg.width / 2) / math.tan(math.radians(cfg.fov_deg) / 2)
    rows, cols = np.nonzero(f.semantic == 0)
    expected = 1.5 * focal / (rows + 0.5 - cfg.height / 2)
    assert len(rows) > 500
    np.testing.assert_allclose(f.depth[rows, cols], expected, rtol=1e-4)
    # hence the road's depth grows towards the horizon, column by column
    col = cfg.width // 2
    road = np.nonzero(f.semantic[:, col] == 0)[0]
    assert np.all(np.diff(f.depth[road, col]) < 0)


def test_cars_stand_at_plausible_depths() -> None:
    depths = np.concatenate([f.depth[f.semantic == 13] for f in frames(40, seed=5)])
    assert depths.size > 200
    assert np.all(np.isfinite(depths)) and depths.min() > 0.3 and depths.max() < 300
    # parked cars pass right beside the camera, so a few pixels are legitimately close
    assert np.mean((depths > 2.0) & (depths < 150.0)) > 0.85
    assert 2.0 < np.median(depths) < 100.0


def test_an_urban_drive_shows_at_least_twelve_classes() -> None:
    seen: set[int] = set()
    for f in render_stream(WorldConfig(**SMALL), 3, 200):
        seen |= set(np.unique(f.semantic).tolist())
    seen.discard(255)
    assert len(seen) >= 12, sorted(seen)
    assert {0, 1, 2, 8, 10, 11, 13} <= seen


def test_frames_form_a_video() -> None:
    fs = frames(41, seed=2)
    img = [f.image.astype(np.float32) for f in fs]
    near = np.mean([np.abs(img[i + 1] - img[i]).mean() for i in range(0, 40, 8)])
    far = np.mean([np.abs(img[i + 40] - img[i]).mean() for i in range(1)])
    assert near < 0.5 * far
    agree = np.mean([np.mean(fs[i + 1].semantic == fs[i].semantic) for i in range(10)])
    assert agree > 0.85
    assert np.mean(fs[40].semantic == fs[0].semantic) < agree


@pytest.mark.parametrize("town", sim.TOWNS)
def test_every_town_and_time_of_day_renders(town: str) -> None:
    means = {}
    for tod in sim.TIMES_OF_DAY:
        f = frames(3, seed=1, town=town, time_of_day=tod, height=32, width=64)[-1]
        assert f.image.std() > 3  # not a blank frame
        assert {0, 10} <= set(np.unique(f.semantic).tolist())  # road and sky everywhere
        means[tod] = f.image.mean()
    assert means["day"] > means["dusk"] > means["night"]


def test_towns_differ_in_their_class_mix() -> None:
    def mix(town: str) -> np.ndarray:
        counts = np.zeros(19)
        for f in frames(30, seed=6, town=town, height=32, width=64)[::5]:
            counts += np.bincount(f.semantic.ravel(), minlength=256)[:19]
        return counts / counts.sum()

    urban, rural, highway = mix("urban"), mix("rural"), mix("highway")
    assert urban[2] > 3 * rural[2]  # buildings
    assert rural[9] > 3 * urban[9]  # terrain
    assert urban[1] > 5 * highway[1] + 1e-3  # sidewalks


def test_fog_follows_koschmieder_on_the_true_depth() -> None:
    """I_fog = I_clear * t + L * (1 - t), t = exp(-beta * d), L = the fogged sky."""
    clear = frames(2, seed=9, weather={"cloudiness": 0.0})[-1]
    fog = frames(2, seed=9, weather={"cloudiness": 0.0, "fog_density": 25.0})[-1]
    assert np.array_equal(clear.semantic, fog.semantic)
    beta = Weather(fog_density=25.0).fog_beta
    assert beta == pytest.approx(0.01)
    sky = fog.semantic == 10
    airlight = fog.image[sky].astype(np.float64).mean(axis=0)  # exp(-beta * 1500) ~ 0
    # the lens blur mixes neighbours: compare away from depth edges; saturated pixels lost
    # their true value
    d = np.where(sky, 1e4, clear.depth)
    lo = cv2.erode(d, np.ones((3, 3), np.uint8))
    hi = cv2.dilate(d, np.ones((3, 3), np.uint8))
    ok = ~sky & (clear.image.max(axis=2) < 250) & (hi - lo < 0.5)
    d = clear.depth[ok].astype(np.float64)
    t = np.exp(-beta * d)[:, None]
    expected = clear.image[ok] * t + airlight * (1 - t)
    assert ok.sum() > 1000
    assert np.abs(expected - fog.image[ok]).max() <= 2.0
    # so far pixels move towards the airlight far more than near ones
    shift = np.abs(fog.image.astype(float) - clear.image).mean(axis=2)
    far = ~sky & (clear.depth > 40)
    near = clear.depth < 8
    assert shift[far].mean() > 3 * shift[near].mean()


def test_rain_and_wet_roads_change_the_image() -> None:
    dry = frames(2, seed=4)[-1]
    wet = frames(2, seed=4, weather={"wetness": 100.0})[-1]
    rain = frames(2, seed=4, weather="rain")[-1]
    road = dry.semantic == 0
    assert wet.image[road].mean() < dry.image[road].mean() - 10  # wet asphalt is darker
    assert np.array_equal(rain.semantic, dry.semantic)
    assert np.abs(rain.image.astype(int) - dry.image).mean() > 5


def test_set_conditions_takes_continuous_values_from_the_next_frame() -> None:
    w = World(WorldConfig(**SMALL), 0)
    day = w.step()
    w.set_conditions(sun_altitude_deg=-20.0)
    night = w.step()
    assert night.image.mean() < 0.5 * day.image.mean()
    assert night.conditions["time_of_day"] == "night"
    assert night.conditions["weather"]["sun_altitude_deg"] == -20.0
    w.set_conditions(time_of_day="day", weather="fog")
    f = w.step()
    assert f.conditions["time_of_day"] == "day"
    assert f.conditions["weather"]["fog_density"] == Weather.preset("fog").fog_density
    w.set_conditions(fog_density=12.5, precipitation=33.3)
    assert w.step().conditions["weather"]["precipitation"] == pytest.approx(33.3)
    with pytest.raises(ValueError, match=r"fog_densty.*fog_density"):
        w.set_conditions(fog_densty=1.0)
    with pytest.raises(ValueError, match="fog_density"):
        w.set_conditions(fog_density=150.0)


def test_render_stream_passes_conditions_before_each_frame() -> None:
    def schedule(i: int) -> dict | None:
        return {"fog_density": 10.0 * i} if i % 2 == 0 else None

    fog = [
        f.conditions["weather"]["fog_density"]
        for f in render_stream(WorldConfig(**SMALL), 0, 5, conditions=schedule)
    ]
    assert fog == [0.0, 0.0, 20.0, 20.0, 40.0]


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"town": "mars"}, ValueError, "town.*urban, suburban, highway, rural"),
        ({"time_of_day": "noon"}, ValueError, "time_of_day.*day, dusk, night"),
        ({"traffic": "jam"}, ValueError, "traffic.*none, low, medium, high"),
        ({"weather": "snow"}, ValueError, "weather.*clear"),
        ({"weather": {"fog": 3}}, ValueError, "weather field 'fog'.*fog_density"),
        ({"weather": 3}, TypeError, "weather"),
        ({"height": 0}, ValueError, "height"),
        ({"width": -5}, ValueError, "width"),
        ({"height": 64.0}, TypeError, "height"),
        ({"town": 1}, TypeError, "town"),
        ({"fov_deg": 0.0}, ValueError, "fov_deg"),
        ({"camera_height": "high"}, TypeError, "camera_height"),
    ],
)
def test_bad_config_raises_one_line_naming_the_field(kwargs, exc, pattern) -> None:
    with pytest.raises(exc, match=pattern) as info:
        WorldConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_bad_world_arguments() -> None:
    with pytest.raises(TypeError, match="WorldConfig"):
        World({"town": "urban"}, 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        World(WorldConfig(**SMALL), -1)
    with pytest.raises(TypeError, match="seed"):
        World(WorldConfig(**SMALL), "0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_frames"):
        list(render_stream(WorldConfig(**SMALL), 0, -1))
    with pytest.raises(ValueError, match=r"time_of_day.*dusk"):
        World(WorldConfig(**SMALL), 0).set_conditions(time_of_day="noon")


def test_deferred_small_rectangles_equal_painting_back_to_front() -> None:
    """Part ids grow in painting order, so max-rasterising equals sequential painting."""
    from sim.render.objects import _max_rects

    rng = np.random.default_rng(0)
    buf = np.zeros((20, 30), np.int32)
    buf[3:9, 4:12] = 1  # an earlier part
    rects = []
    for pid in range(2, 60):
        r0, c0 = int(rng.integers(0, 19)), int(rng.integers(0, 29))
        rects.append((pid, r0, int(rng.integers(r0 + 1, 21)), c0, int(rng.integers(c0 + 1, 31))))
    expected = buf.copy()
    for pid, r0, r1, c0, c1 in rects:
        expected[r0:r1, c0:c1] = pid
    _max_rects(buf, np.array(rects, dtype=np.int64))
    assert np.array_equal(buf, expected)


def test_camera_height_and_pitch_follow_the_pinhole_model() -> None:
    """Ground depth = h * f / (row + 0.5 - y_horizon), y_horizon = H/2 + f * tan(pitch)."""
    for height, pitch in ((3.0, 0.0), (1.2, 4.0), (1.5, -3.0)):
        cfg = WorldConfig(**SMALL, camera_height=height, camera_pitch_deg=pitch, fov_deg=70.0)
        f = next(iter(render_stream(cfg, 4, 1)))
        focal = (cfg.width / 2) / math.tan(math.radians(70.0) / 2)
        y_h = cfg.height / 2 + focal * math.tan(math.radians(pitch))
        rows, cols = np.nonzero(f.semantic == 0)
        np.testing.assert_allclose(
            f.depth[rows, cols], height * focal / (rows + 0.5 - y_h), rtol=1e-4
        )
    up = next(iter(render_stream(WorldConfig(**SMALL, camera_pitch_deg=8.0), 4, 1)))
    down = next(iter(render_stream(WorldConfig(**SMALL, camera_pitch_deg=-8.0), 4, 1)))
    assert (up.semantic == 10).mean() > (down.semantic == 10).mean() + 0.1


def test_traffic_density_sets_how_much_moves_on_the_road() -> None:
    def movers(level: str) -> float:
        fs = frames(20, seed=2, traffic=level)[::4]
        return float(np.mean([np.isin(f.semantic, [11, 12, 17, 18]).mean() for f in fs]))

    assert movers("high") > movers("low") > movers("none")


def test_traffic_and_crowds_stay_stationary_over_a_long_drive() -> None:
    # the agents' dynamics do not depend on the camera: step them without rendering
    w = World(WorldConfig(height=16, width=32), 7)
    tr = w.traffic
    counts = []
    for i in range(900):
        w.town.ensure(tr.s - 80.0, tr.s + 420.0)
        tr.step(0.1, None)
        if i % 300 == 0 or i == 899:
            counts.append((len(tr.peds), len(tr.veh)))
    (p0, v0), *_, (p1, v1) = counts
    assert 0.75 * p0 <= p1 <= 1.3 * p0, counts
    assert 0.7 * v0 <= v1 <= 1.3 * v0, counts
