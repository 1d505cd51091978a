"""Contact sheets for ``roadshift preview``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import sim
from tests.sim.test_corrupt import scene

IMG, DEPTH = scene(48, 96)


def test_one_corruption_across_severities():
    sheet = sim.contact_sheet(IMG, "motion_blur", tile_width=96)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    # One row, six tiles (clean + 5 severities) of 96 x 48, plus the label column and header.
    assert sheet.shape[0] < 48 * 2 and sheet.shape[1] > 6 * 96
    tiles = []
    x0 = sheet.shape[1] - 6 * (96 + 4)
    for j in range(6):
        tiles.append(sheet[-(48 + 4) : -4, x0 + j * 100 : x0 + j * 100 + 96])
    assert np.array_equal(tiles[0], IMG)  # clean first, at full size
    assert np.array_equal(tiles[3], sim.corrupt(IMG, "motion_blur", 3, seed=0))
    # Labels are drawn: the header and label column contain dark text pixels.
    assert (sheet[: sheet.shape[0] - 52, x0:] < 100).any()
    assert (sheet[:, :x0] < 100).any()


def test_gallery_of_all_corruptions_at_one_severity():
    names = sim.corruption_names()
    sheet = sim.contact_sheet(IMG, None, severities=(3,), tile_width=48)
    cells = (sheet.shape[0] // (24 + 10)) * (sheet.shape[1] // 52)
    assert cells >= len(names) + 1
    # Depth-aware corruptions without depth show a placeholder, with depth the real thing.
    with_depth = sim.contact_sheet(IMG, ["fog_depth"], severities=(3,), depth=DEPTH)
    without = sim.contact_sheet(IMG, ["fog_depth"], severities=(3,))
    assert not np.array_equal(with_depth, without)


def test_groups_and_rows():
    sheet = sim.contact_sheet(IMG, "imagenet-c-extra", severities=(1, 5), tile_width=96)
    assert sheet.shape[0] >= 4 * 48  # four rows
    cv2.imencode(".png", sheet)  # a valid image for the CLI to write


def test_bad_input():
    with pytest.raises(ValueError, match="did you mean"):
        sim.contact_sheet(IMG, ["fogg"])
    with pytest.raises(ValueError, match="severity"):
        sim.contact_sheet(IMG, "fog", severities=(1, 7))
    with pytest.raises(ValueError, match="severities"):
        sim.contact_sheet(IMG, "fog", severities=())
    with pytest.raises(TypeError, match="uint8"):
        sim.contact_sheet(IMG.astype(float), "fog")


def test_the_depth_pack_and_driving_weather_at_severities_1_3_5():
    names = ["fog_depth", "rain", "night", "near_focus", "far_focus", "forward_motion_blur",
             "lateral_motion_blur", "low_light", "auto_exposure_lag"]  # fmt: skip
    sheet = sim.contact_sheet(IMG, names, severities=(1, 3, 5), depth=DEPTH, tile_width=96)
    x0 = sheet.shape[1] - 4 * (96 + 4)
    rows = sheet.shape[0] - len(names) * (48 + 4)  # header height
    for i, name in enumerate(names):
        y0 = rows + i * (48 + 4)
        clean = sheet[y0 : y0 + 48, x0 : x0 + 96]
        last = sheet[y0 : y0 + 48, x0 + 3 * 100 : x0 + 3 * 100 + 96]
        assert np.array_equal(clean, IMG), name
        assert np.array_equal(last, sim.corrupt(IMG, name, 5, seed=0, depth=DEPTH)), name
