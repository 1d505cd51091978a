"""Small datasets in every layout, built from world frames written as files.

Written with the layouts' published naming (Cityscapes, ACDC) spelled out here, not with
``sim.data.layouts``, so the readers are tested against the formats rather than against
themselves. Label encodings other than trainIds use an independent copy of the official
Cityscapes tables.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

import sim

H, W = 64, 128

#: trainId -> labelId, from the official cityscapesScripts table (written out independently).
TRAIN_TO_LABEL_ID = {
    0: 7, 1: 8, 2: 11, 3: 12, 4: 13, 5: 17, 6: 19, 7: 20, 8: 21, 9: 22, 10: 23, 11: 24,
    12: 25, 13: 26, 14: 27, 15: 28, 16: 31, 17: 32, 18: 33,
}  # fmt: skip
#: labelIds that the official table maps to 255 (void, parking, rail track, guard rail, ...).
IGNORED_LABEL_IDS = (0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30)


@functools.lru_cache(maxsize=8)
def world_frames(n: int = 6, seed: int = 0, town: str = "urban", h: int = H, w: int = W):
    """``n`` consecutive frames of one drive (cached: the tests share them)."""
    config = sim.WorldConfig(height=h, width=w, town=town)
    return tuple(sim.render_stream(config, seed, n))


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def write_gray(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def to_label_ids(train_ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """trainIds as Cityscapes labelIds; ignore pixels get every ignored labelId in turn."""
    out = np.zeros_like(train_ids)
    for t, lab in TRAIN_TO_LABEL_ID.items():
        out[train_ids == t] = lab
    ignore = train_ids == 255
    choices = np.random.default_rng(seed).choice(IGNORED_LABEL_IDS, size=int(ignore.sum()))
    out[ignore] = choices
    return out


def depth_mm(depth: np.ndarray) -> np.ndarray:
    """Float metres as a 16-bit millimetre PNG's values (0 for no depth)."""
    finite = np.isfinite(depth)
    mm = np.clip(np.rint(np.where(finite, depth, 0) * 1000), 1, 65535)
    return np.where(finite, mm, 0).astype(np.uint16)


def write_cityscapes(
    root: Path, frames, *, split: str = "val", city: str = "testcity", labels: str = "trainids",
    depth: str | None = None,
) -> Path:  # fmt: skip
    """A Cityscapes-layout dataset of ``frames`` (``labels``: trainids, labelids, colour)."""
    for i, f in enumerate(frames):
        prefix = f"{city}_000000_{i:06d}"
        write_rgb(root / "leftImg8bit" / split / city / f"{prefix}_leftImg8bit.png", f.image)
        gt = root / "gtFine" / split / city
        if labels == "trainids":
            write_gray(gt / f"{prefix}_gtFine_labelTrainIds.png", f.semantic)
        elif labels == "labelids":
            write_gray(gt / f"{prefix}_gtFine_labelIds.png", to_label_ids(f.semantic, i))
        elif labels == "colour":
            write_rgb(gt / f"{prefix}_gtFine_color.png", sim.colorize(f.semantic))
        if depth == "png":
            write_gray(root / "depth" / split / city / f"{prefix}_depth.png", depth_mm(f.depth))
        elif depth == "npy":
            path = root / "depth" / split / city / f"{prefix}_depth.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, f.depth)
    return root


def write_acdc(root: Path, conditions: dict[str, tuple], *, split: str = "val") -> Path:
    """An ACDC-layout dataset: condition -> frames, one sequence per condition."""
    for cond, frames in conditions.items():
        for i, f in enumerate(frames):
            prefix = f"GOPR0{len(cond)}_frame_{i:06d}"
            write_rgb(root / "rgb_anon" / cond / split / "GOPR0" / f"{prefix}_rgb_anon.png",
                      f.image)  # fmt: skip
            write_gray(root / "gt" / cond / split / "GOPR0" / f"{prefix}_gt_labelTrainIds.png",
                       f.semantic)  # fmt: skip
    return root


def write_pairs(root: Path, frames, *, labels: np.ndarray | None = None, depth: bool = False,
                stems: list[str] | None = None) -> Path:  # fmt: skip
    """A pairs-layout dataset (``labels``: per-frame label arrays to write instead of the
    trainIds, e.g. colour images)."""
    stems = stems or [f"frame{i:03d}" for i in range(len(frames))]
    for i, (stem, f) in enumerate(zip(stems, frames, strict=True)):
        write_rgb(root / "images" / f"{stem}.png", f.image)
        lab = f.semantic if labels is None else labels[i]
        (write_rgb if lab.ndim == 3 else write_gray)(root / "labels" / f"{stem}.png", lab)
        if depth:
            write_gray(root / "depth" / f"{stem}.png", depth_mm(f.depth))
    return root


def write_video(path: Path, frames, masks: Path | None = None) -> Path:
    """A lossless FFV1 video of the frames' images, and optionally their masks as PNGs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 10, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
    writer.release()
    if masks is not None:
        for i, f in enumerate(frames):
            write_gray(masks / f"mask_{i:04d}.png", f.semantic)
    return path
