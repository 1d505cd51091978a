"""Reading and writing the files of a dataset: images, label maps, depth, video frames.

Depth files: 16-bit PNGs in millimetres (0 = no depth, read as ``+inf`` like the world's sky;
the format's range ends at 65.535 m, so farther pixels saturate there) or ``.npy`` float
metres (exact, any range). Every write goes to a temporary name first and is renamed into
place, so a killed writer never leaves a half-written file under a real name.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from sim.data.spec import DataError

__all__ = [
    "DEPTH_PNG_MAX_M",
    "copy_file",
    "count_video_frames",
    "depth_to_png",
    "png_to_depth",
    "read_depth",
    "read_image",
    "read_label",
    "write_file",
    "write_json",
]

#: The farthest depth a 16-bit millimetre PNG holds.
DEPTH_PNG_MAX_M = 65.535


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 RGB (H, W, 3)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{path}: not an image OpenCV can read")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label(path: Path) -> np.ndarray:
    """A label file as stored: (H, W) ids (8 or 16 bit) or (H, W, 3) RGB colours."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DataError(f"{path}: not a label image OpenCV can read")
    if raw.ndim == 3:
        if raw.shape[2] == 4:
            raw = raw[:, :, :3]  # alpha carries no class
        if raw.dtype != np.uint8:
            raise DataError(f"{path}: colour labels must be 8-bit RGB, got {raw.dtype}")
        return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB)
    return raw


def png_to_depth(raw: np.ndarray) -> np.ndarray:
    """A 16-bit millimetre depth PNG's values as float32 metres (0 -> +inf)."""
    depth = raw.astype(np.float32) * np.float32(0.001)
    depth[raw == 0] = np.inf
    return depth


def depth_to_png(depth: np.ndarray) -> np.ndarray:
    """Float metres as 16-bit millimetres: +inf and NaN (no depth) -> 0, beyond 65.535 m
    saturates, nearer than 1 mm becomes 1 mm (0 is reserved for no depth)."""
    d = np.asarray(depth, np.float64)
    finite = np.isfinite(d)
    mm = np.where(finite, np.rint(np.where(finite, d, 0.0) * 1000.0), 0.0)
    mm = np.clip(mm, 1, 65535)
    mm[~finite] = 0
    return mm.astype(np.uint16)


def read_depth(path: Path) -> np.ndarray:
    """A depth file (16-bit millimetre PNG or ``.npy`` metres) as float32 metres."""
    if path.suffix.lower() == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a NumPy depth array ({exc})") from None
        if depth.ndim != 2 or depth.dtype.kind != "f":
            raise DataError(
                f"{path}: depth must be a float (H, W) array in metres, got "
                f"{depth.dtype} {depth.shape}"
            )
        return depth.astype(np.float32, copy=False)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2 or raw.dtype != np.uint16:
        got = "unreadable" if raw is None else f"{raw.dtype} with shape {raw.shape}"
        raise DataError(f"{path}: depth PNGs must be single-channel 16-bit millimetres, got {got}")
    return png_to_depth(raw)


def count_video_frames(path: Path) -> int:
    """How many frames OpenCV decodes from a video (counted: containers' counts can lie)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def write_file(path: Path, array: np.ndarray) -> None:
    """Write an image (RGB uint8), a label or depth PNG (2-D), or ``.npy``, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
        else:
            data = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
            if not cv2.imwrite(str(tmp), data):
                raise OSError(f"{path}: OpenCV could not write it")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_file(source: Path, path: Path) -> None:
    """Copy a file byte for byte, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
