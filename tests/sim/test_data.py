"""Reading datasets on disk: every layout, every label encoding, resizing, and bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import given, settings

import sim
from sim.data.files import depth_to_png, png_to_depth
from sim.data.labels import CITYSCAPES_LABELS, LabelDecoder, labelid_to_trainid

from .datasets import (
    IGNORED_LABEL_IDS,
    TRAIN_TO_LABEL_ID,
    depth_mm,
    world_frames,
    write_acdc,
    write_cityscapes,
    write_gray,
    write_pairs,
    write_rgb,
    write_video,
)

# The official table (cityscapesScripts helpers/labels.py), an independent copy of the facts:
# name, labelId, trainId. Checked against sim's table row by row.
OFFICIAL = [
    ("unlabeled", 0, 255),
    ("ego vehicle", 1, 255),
    ("rectification border", 2, 255),
    ("out of roi", 3, 255),
    ("static", 4, 255),
    ("dynamic", 5, 255),
    ("ground", 6, 255),
    ("road", 7, 0),
    ("sidewalk", 8, 1),
    ("parking", 9, 255),
    ("rail track", 10, 255),
    ("building", 11, 2),
    ("wall", 12, 3),
    ("fence", 13, 4),
    ("guard rail", 14, 255),
    ("bridge", 15, 255),
    ("tunnel", 16, 255),
    ("pole", 17, 5),
    ("polegroup", 18, 255),
    ("traffic light", 19, 6),
    ("traffic sign", 20, 7),
    ("vegetation", 21, 8),
    ("terrain", 22, 9),
    ("sky", 23, 10),
    ("person", 24, 11),
    ("rider", 25, 12),
    ("car", 26, 13),
    ("truck", 27, 14),
    ("bus", 28, 15),
    ("caravan", 29, 255),
    ("trailer", 30, 255),
    ("train", 31, 16),
    ("motorcycle", 32, 17),
    ("bicycle", 33, 18),
    ("license plate", -1, -1),
]


def test_the_labelids_table_is_the_official_one() -> None:
    assert [(lab.name, lab.id, lab.train_id) for lab in CITYSCAPES_LABELS] == OFFICIAL
    expected = {i: t for _, i, t in OFFICIAL if i >= 0}
    assert labelid_to_trainid() == expected
    # the test helpers' inverse table agrees with the official one, so their files are honest
    assert {expected[lab]: t for t, lab in TRAIN_TO_LABEL_ID.items()} == {t: t for t in range(19)}
    assert all(expected[i] == 255 for i in IGNORED_LABEL_IDS)
    # train classes in trainId order carry the suite's names and the official colours
    train = sorted(
        (lab for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 255), key=lambda lab: lab.train_id
    )
    assert [lab.name for lab in train] == list(sim.CLASS_NAMES)
    assert [lab.color for lab in train] == [tuple(c) for c in sim.PALETTE.tolist()]


@pytest.mark.parametrize("labels", ["trainids", "labelids", "colour"])
def test_cityscapes_gives_back_the_world_frames(tmp_path: Path, labels: str) -> None:
    frames = world_frames()
    write_cityscapes(tmp_path, frames, labels=labels)
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes"})
    assert len(ds) == len(frames) and ds.labelled and not ds.has_depth
    for i, f in enumerate(frames):
        s = ds.read(i)
        assert np.array_equal(s.image, f.image)
        assert s.semantic.dtype == np.uint8 and np.array_equal(s.semantic, f.semantic)
        assert s.depth is None
        assert s.record.label.name.endswith(
            {"trainids": "labelTrainIds.png", "labelids": "labelIds.png", "colour": "color.png"}[
                labels
            ]
        )


def test_cityscapes_prefers_trainids_and_orders_by_city_then_frame(tmp_path: Path) -> None:
    frames = world_frames()
    write_cityscapes(tmp_path, frames[:3], city="zurich")
    write_cityscapes(tmp_path, frames[3:], city="aachen", labels="labelids")
    write_cityscapes(tmp_path, frames[3:], city="aachen", labels="trainids")
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes", "split": "val"})
    assert [r.rel.parts[2] for r in ds.records] == ["aachen"] * 3 + ["zurich"] * 3
    assert all(r.label_kind == "trainids" for r in ds.records)
    # asking for labelIds: zurich has none, found when the dataset is opened
    with pytest.raises(
        sim.DataError,
        match=r"zurich_000000_000000_leftImg8bit\.png: no label "
        r"zurich_000000_000000_gtFine_labelIds\.png in .*gtFine/val/zurich",
    ):
        sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes", "labels": "labelids"})


def test_depth_png_is_millimetres_and_npy_is_exact(tmp_path: Path) -> None:
    frames = world_frames()
    write_cityscapes(tmp_path / "png", frames, depth="png")
    write_cityscapes(tmp_path / "npy", frames, depth="npy")
    png = sim.FolderDataset({"root": str(tmp_path / "png"), "layout": "cityscapes"})
    npy = sim.FolderDataset({"root": str(tmp_path / "npy"), "layout": "cityscapes"})
    assert png.has_depth and npy.has_depth
    for i, f in enumerate(frames):
        exact = npy.read(i).depth
        assert exact.dtype == np.float32 and np.array_equal(exact, f.depth)
        d = png.read(i).depth
        sky = ~np.isfinite(f.depth)
        assert np.all(np.isinf(d[sky]))
        near = np.isfinite(f.depth) & (f.depth < 65.0)
        assert np.abs(d[near] - f.depth[near]).max() <= 0.0005 + 1e-5  # half a millimetre, float32
        far = np.isfinite(f.depth) & (f.depth > 65.535)
        assert np.all(d[far] == np.float32(65.535))  # the format's range ends there


def test_acdc_conditions_are_ordered_natural_shifts(tmp_path: Path) -> None:
    a, b = world_frames(), world_frames(4, seed=1, town="rural")
    write_acdc(tmp_path, {"snow": a[:2], "fog": a[2:5], "night": b})
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "acdc"})
    # default: the conditions present, in the CoTTA order fog, night, rain, snow
    assert ds.conditions() == [("fog", 0, 3), ("night", 3, 7), ("snow", 7, 9)]
    asked = sim.FolderDataset(
        {"root": str(tmp_path), "layout": "acdc", "conditions": ["snow", "fog"]}
    )
    assert asked.conditions() == [("snow", 0, 2), ("fog", 2, 5)]
    s = asked.read(3)
    assert s.record.condition == "fog" and np.array_equal(s.semantic, a[3].semantic)
    with pytest.raises(
        sim.DataError,
        match=r"rgb_anon/rain: no such condition folder \(here: "
        r"fog, night, snow\)",
    ):
        sim.FolderDataset({"root": str(tmp_path), "layout": "acdc", "conditions": ["rain"]})


def test_pairs_with_colour_labels_in_a_palette_and_depth(tmp_path: Path) -> None:
    frames = world_frames()
    # a custom palette: trainId t drawn as (t, 255 - t, 7); ignore as white
    palette = {t: [t, 255 - t, 7] for t in range(19)} | {255: [255, 255, 255]}
    colours = []
    for f in frames:
        rgb = np.full((*f.semantic.shape, 3), 255, np.uint8)
        for t in range(19):
            rgb[f.semantic == t] = palette[t]
        colours.append(rgb)
    write_pairs(tmp_path, frames, labels=colours, depth=True)
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "pairs", "palette": palette})
    for i, f in enumerate(frames):
        s = ds.read(i)
        assert np.array_equal(s.semantic, f.semantic)
        assert np.array_equal(s.depth == np.inf, ~np.isfinite(f.depth))
    # the default palette does not know these colours: one line naming the file
    with pytest.raises(sim.DataError, match=r"frame000\.png: colour \(\d+, \d+, 7\) at row"):
        sim.FolderDataset({"root": str(tmp_path), "layout": "pairs"}).read(0)


def test_label_map_maps_another_id_set_and_unmapped_ids_are_ignored(tmp_path: Path) -> None:
    frames = world_frames()
    # another dataset's ids: 100 + trainId; 7 (not in the map) and 255 should become 255
    theirs = [np.where(f.semantic == 255, 7, 100 + f.semantic.astype(np.uint16)) for f in frames]
    theirs = [t.astype(np.uint16) for t in theirs]  # 16-bit label files are read too
    write_pairs(tmp_path, frames, labels=theirs)
    mapping = {100 + t: t for t in range(19) if t != 13}  # cars are not in the map
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "pairs", "label_map": mapping})
    for i, f in enumerate(frames):
        expected = np.where(f.semantic == 13, 255, f.semantic)
        assert np.array_equal(ds.read(i).semantic, expected)
    with pytest.raises(sim.DataError, match=r"label_map\[1\]: 19 is not a trainId"):
        sim.DataSpec(root=str(tmp_path), layout="pairs", label_map={1: 19})


def test_video_round_trip_is_exact_with_a_lossless_codec(tmp_path: Path) -> None:
    # FFV1 is lossless, so images come back bit for bit; labels are PNG masks, so they are exact
    # whatever the codec: scores on this video equal scores on the frames themselves.
    frames = world_frames()
    video = write_video(tmp_path / "drive.mkv", frames, masks=tmp_path / "masks")
    ds = sim.FolderDataset(
        {"root": str(video), "layout": "video", "masks": str(tmp_path / "masks")}
    )
    assert len(ds) == len(frames) and ds.labelled
    for i in [0, 3, 1, 5]:  # out of order: the reader re-opens and decodes forward
        s = ds.read(i)
        assert np.array_equal(s.image, frames[i].image)
        assert np.array_equal(s.semantic, frames[i].semantic)
    unlabelled = sim.FolderDataset({"root": str(video), "layout": "video"})
    assert not unlabelled.labelled and unlabelled.read(2).semantic is None
    # a lossy codec stays close, which is all a compressed recording can promise
    lossy = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(lossy), cv2.VideoWriter_fourcc(*"MJPG"), 10, (128, 64))
    for f in frames:
        writer.write(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    writer.release()
    s = sim.FolderDataset({"root": str(lossy), "layout": "video"}).read(2)
    assert np.abs(s.image.astype(int) - frames[2].image).mean() < 8


def test_resizing_keeps_labels_and_depth_nearest(tmp_path: Path) -> None:
    frames = world_frames()
    write_cityscapes(tmp_path, frames, depth="npy")
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes"}, 32, 48)
    s = ds.read(1)
    assert s.image.shape == (32, 48, 3) and s.semantic.shape == (32, 48) == s.depth.shape
    assert set(np.unique(s.semantic)) <= set(np.unique(frames[1].semantic))
    finite = np.isfinite(s.depth)
    assert set(s.depth[finite].tolist()) <= set(frames[1].depth[np.isfinite(frames[1].depth)])
    assert ds.describe()["size"] == [32, 48]
    with pytest.raises(sim.DataError, match="height: must be an int in"):
        sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes"}, 8, 48)


# ----------------------------------------------------------------------------- bad input
def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_bad_roots_name_the_path_and_the_expected_layout(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(sim.DataError) as e:
        sim.FolderDataset({"root": str(tmp_path / "nowhere"), "layout": "cityscapes"})
    assert "nowhere: no such folder; layout cityscapes expects leftImg8bit/<split>" in _one_line(e)
    monkeypatch.delenv("CITYSCAPES_ROOT", raising=False)
    with pytest.raises(sim.DataError) as e:
        sim.FolderDataset({"root": "${CITYSCAPES_ROOT}", "layout": "cityscapes"})
    assert (
        "environment variable CITYSCAPES_ROOT is not set; set it to the folder holding "
        "leftImg8bit/" in _one_line(e)
    )
    monkeypatch.setenv("CITYSCAPES_ROOT", str(tmp_path))
    write_cityscapes(tmp_path, world_frames()[:2])
    assert len(sim.FolderDataset({"root": "${CITYSCAPES_ROOT}", "layout": "cityscapes"})) == 2
    with pytest.raises(sim.DataError) as e:
        sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes", "split": "train"})
    assert "leftImg8bit/train: no such folder (here: val)" in _one_line(e)
    with pytest.raises(sim.DataError, match="layout: unknown layout 'kitti'; valid choices: "):
        sim.FolderDataset({"root": str(tmp_path), "layout": "kitti"})
    with pytest.raises(sim.DataError, match="split: only layouts cityscapes, acdc have splits"):
        sim.DataSpec(root=str(tmp_path), layout="pairs", split="val")
    with pytest.raises(sim.DataError, match="colour: unknown key; valid keys: root, layout"):
        sim.DataSpec.from_any({"root": "x", "layout": "pairs", "colour": 1})


def test_empty_folders_and_unmatched_pairs(tmp_path: Path) -> None:
    (tmp_path / "cs" / "leftImg8bit" / "val").mkdir(parents=True)
    with pytest.raises(sim.DataError) as e:
        sim.FolderDataset({"root": str(tmp_path / "cs"), "layout": "cityscapes"})
    assert "leftImg8bit/val: no <city>/*_leftImg8bit.png images" in _one_line(e)
    (tmp_path / "p" / "images").mkdir(parents=True)
    with pytest.raises(sim.DataError, match=r"images: no images \(\.png"):
        sim.FolderDataset({"root": str(tmp_path / "p"), "layout": "pairs"})
    frames = world_frames()
    write_pairs(tmp_path / "p", frames[:3])
    (tmp_path / "p" / "labels" / "frame001.png").unlink()
    with pytest.raises(sim.DataError) as e:
        sim.FolderDataset({"root": str(tmp_path / "p"), "layout": "pairs"})
    assert "frame001.png: no label labels/frame001.png; layout pairs expects" in _one_line(e)
    (tmp_path / "p" / "images" / "frame001.png").unlink()
    write_gray(tmp_path / "p" / "labels" / "stray.png", frames[0].semantic)
    with pytest.raises(sim.DataError) as e:
        sim.FolderDataset({"root": str(tmp_path / "p"), "layout": "pairs"})
    assert "stray.png: no image images/stray.png|.jpg for this label" in _one_line(e)
    # Cityscapes without its gtFine folder: say so, and how to run without labels
    write_cityscapes(tmp_path / "cs", frames[:2], labels="none")
    with pytest.raises(sim.DataError, match=r"gtFine/val: no such folder \(for unlabelled"):
        sim.FolderDataset({"root": str(tmp_path / "cs"), "layout": "cityscapes"})
    free = sim.FolderDataset(
        {"root": str(tmp_path / "cs"), "layout": "cityscapes", "labels": "none"}
    )
    assert not free.labelled and free.read(1).semantic is None
    # a video: masks that do not match the frames
    video = write_video(tmp_path / "v.mkv", frames, masks=tmp_path / "m")
    (tmp_path / "m" / "mask_0002.png").unlink()
    with pytest.raises(sim.DataError, match="5 label PNGs for 6 video frames"):
        sim.FolderDataset({"root": str(video), "layout": "video", "masks": str(tmp_path / "m")})
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(sim.DataError, match="OpenCV reads no frames from it"):
        sim.FolderDataset({"root": str(tmp_path / "broken.mp4"), "layout": "video"})


@pytest.mark.parametrize(
    ("kind", "values", "message"),
    [
        ("trainids", (19, 254), r"label values 19, 254 are outside trainIds 0\.\.18 and 255"),
        ("labelids", (34, 200), r"label values 34, 200 are outside Cityscapes labelIds 0\.\.33"),
    ],
)
def test_label_values_outside_the_encoding_name_the_file(tmp_path, kind, values, message) -> None:
    frames = world_frames()[:2]
    write_cityscapes(tmp_path, frames, labels=kind)
    name = "labelTrainIds" if kind == "trainids" else "labelIds"
    path = tmp_path / "gtFine/val/testcity" / f"testcity_000000_000001_gtFine_{name}.png"
    bad = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    bad[0, :2] = values
    write_gray(path, bad)
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "cityscapes"})
    ds.read(0)  # the good frame reads
    with pytest.raises(sim.DataError, match=message) as e:
        ds.check_labels()
    assert str(path) in _one_line(e)


def test_labels_of_the_wrong_size_and_unreadable_images(tmp_path: Path) -> None:
    frames = world_frames()[:2]
    write_pairs(tmp_path, frames)
    write_gray(tmp_path / "labels" / "frame001.png", frames[1].semantic[:32])
    (tmp_path / "images" / "frame000.png").write_bytes(b"junk")
    ds = sim.FolderDataset({"root": str(tmp_path), "layout": "pairs"})
    with pytest.raises(sim.DataError, match=r"frame000\.png: not an image OpenCV can read"):
        ds.read(0)
    with pytest.raises(sim.DataError, match=r"frame001\.png: is 32x128, its image .* is 64x128"):
        ds.read(1)
    write_rgb(tmp_path / "images" / "frame000.png", frames[0].image)
    assert depth_mm(frames[0].depth).dtype == np.uint16


# ----------------------------------------------------------------------------- invariants
@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([*range(19), 255]), min_size=1, max_size=64))
def test_train_ids_decode_to_themselves_and_label_ids_by_the_table(values) -> None:
    raw = np.array(values, np.uint8).reshape(1, -1)
    decoder = LabelDecoder()
    assert np.array_equal(decoder.decode(raw, "x"), raw) and decoder.stores_train_ids(raw)
    ids = np.array([TRAIN_TO_LABEL_ID.get(v, 0) for v in values], np.uint8).reshape(1, -1)
    assert np.array_equal(decoder.decode(ids, "x", "labelids"), raw)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0005, 80.0) | st.just(float("inf")), min_size=1, max_size=32))
def test_depth_png_round_trip_is_within_half_a_millimetre_up_to_its_range(metres) -> None:
    depth = np.array(metres, np.float32).reshape(1, -1)
    back = png_to_depth(depth_to_png(depth))
    finite = np.isfinite(depth)
    assert np.array_equal(np.isinf(back), ~finite)
    inside = finite & (depth <= 65.5)
    assert np.all(np.abs(back[inside] - np.maximum(depth[inside], 0.001)) <= 0.0005 + 1e-5)
    assert np.all(back[finite & (depth > 65.535)] == np.float32(65.535))
