"""Where each layout keeps its files: finding a dataset's frames, and naming the files of one.

A layout is a naming rule. The same rules find the frames of a dataset on disk (image, label
file and its encoding, optional depth, in file order) and name the files roadshift writes
(``render-dataset``, ``corrupt-dataset``), so what we write is what we read.

Order is the sorted order of the relative image paths (Cityscapes sorts by city, then
sequence and frame; ACDC by condition in the order asked, then sequence and frame), so
sequences stay sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sim.data.spec import ACDC_CONDITIONS, DataError, DataSpec

__all__ = [
    "IMAGE_SUFFIXES",
    "Record",
    "acdc_files",
    "cityscapes_files",
    "find_records",
    "pairs_files",
]

#: Image files the ``pairs`` layout reads.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Record:
    """One frame of a dataset: where its files are, and where it sits in the dataset.

    ``label_kind`` is the encoding the layout found (``trainids``, ``labelids``, ``colour``),
    or None when the spec's ``labels`` decides. ``rel`` is the image's path relative to the
    root (for video, the frame's name), ``condition`` the ACDC condition, ``frame`` the frame
    index of a video.
    """

    image: Path
    rel: PurePosixPath
    label: Path | None = None
    label_kind: str | None = None
    depth: Path | None = None
    condition: str | None = None
    frame: int | None = None


# ----------------------------------------------------------------------------- naming rules
def cityscapes_files(split: str, city: str, prefix: str) -> dict[str, PurePosixPath]:
    """The files of one Cityscapes frame (``prefix`` like ``aachen_000000_000019``).

    ``depth``/``depth_npy`` and ``conditions`` are roadshift's additions (Cityscapes ships
    disparity, not depth); they sit beside the official folders, named the same way.
    """
    gt = PurePosixPath("gtFine", split, city)
    return {
        "image": PurePosixPath("leftImg8bit", split, city, f"{prefix}_leftImg8bit.png"),
        "trainids": gt / f"{prefix}_gtFine_labelTrainIds.png",
        "labelids": gt / f"{prefix}_gtFine_labelIds.png",
        "colour": gt / f"{prefix}_gtFine_color.png",
        "depth": PurePosixPath("depth", split, city, f"{prefix}_depth.png"),
        "depth_npy": PurePosixPath("depth", split, city, f"{prefix}_depth.npy"),
        "conditions": PurePosixPath("conditions", split, city, f"{prefix}_conditions.json"),
    }


def acdc_files(condition: str, split: str, sequence: str, prefix: str) -> dict[str, PurePosixPath]:
    """The files of one ACDC frame (``prefix`` like ``GOPR0475_frame_000041``)."""
    gt = PurePosixPath("gt", condition, split, sequence)
    return {
        "image": PurePosixPath("rgb_anon", condition, split, sequence, f"{prefix}_rgb_anon.png"),
        "trainids": gt / f"{prefix}_gt_labelTrainIds.png",
        "labelids": gt / f"{prefix}_gt_labelIds.png",
        "colour": gt / f"{prefix}_gt_labelColor.png",
    }


def pairs_files(stem: str, image_suffix: str = ".png") -> dict[str, PurePosixPath]:
    """The files of one frame of the ``pairs`` layout."""
    return {
        "image": PurePosixPath("images", f"{stem}{image_suffix}"),
        "label": PurePosixPath("labels", f"{stem}.png"),
        "colour": PurePosixPath("colour", f"{stem}.png"),
        "depth": PurePosixPath("depth", f"{stem}.png"),
        "depth_npy": PurePosixPath("depth", f"{stem}.npy"),
        "conditions": PurePosixPath("conditions", f"{stem}.json"),
    }


# ----------------------------------------------------------------------------- finding frames
def find_records(spec: DataSpec) -> list[Record]:
    """The frames of the dataset ``spec`` names, in order; a ``DataError`` when the root, a
    folder or a label is missing or nothing matches the layout."""
    root = spec.root_path()
    finder = {"cityscapes": _cityscapes, "acdc": _acdc, "pairs": _pairs, "video": _video}
    if spec.layout == "video":
        if not root.is_file():
            what = "is a folder, not a video file" if root.is_dir() else "no such file"
            raise DataError(f"root {root}: {what}; layout video expects {spec.expects}")
    elif not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "no such folder"
        raise DataError(f"root {root}: {what}; layout {spec.layout} expects {spec.expects}")
    return finder[spec.layout](spec, root)


def _missing(path: Path, spec: DataSpec, what: str = "no such folder") -> DataError:
    return DataError(f"{path}: {what}; layout {spec.layout} expects {spec.expects}")


def _subfolders(path: Path) -> str:
    names = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    return f" (here: {', '.join(names)})" if names else ""


def _pick_label(
    spec: DataSpec, files: dict[str, PurePosixPath], root: Path, image: Path
) -> tuple[Path | None, str | None]:
    """The label file of a frame for ``spec.labels``, or a DataError naming what is missing."""
    if spec.labels == "none":
        return None, None
    kinds = ("trainids", "labelids", "colour") if spec.labels == "auto" else (spec.labels,)
    for kind in kinds:
        path = root / files[kind]
        if path.is_file():
            return path, kind
    wanted = " or ".join(str(files[k].name) for k in kinds[:2])
    raise DataError(
        f"{image}: no label {wanted} in {root / files[kinds[0]].parent}; layout {spec.layout} "
        f"expects {spec.expects}; for unlabelled images give labels: none"
    )


def _depth(root: Path, files: dict[str, PurePosixPath]) -> Path | None:
    for key in ("depth", "depth_npy"):
        if (root / files[key]).is_file():
            return root / files[key]
    return None


def _cityscapes(spec: DataSpec, root: Path) -> list[Record]:
    assert spec.split is not None
    base = root / "leftImg8bit"
    folder = base / spec.split
    if not folder.is_dir():
        raise _missing(folder, spec, f"no such folder{_subfolders(base)}")
    suffix = "_leftImg8bit.png"
    images = sorted(folder.glob(f"*/*{suffix}"))
    if not images:
        raise _missing(folder, spec, f"no <city>/*{suffix} images")
    if spec.labels != "none" and not (root / "gtFine" / spec.split).is_dir():
        raise _missing(
            root / "gtFine" / spec.split,
            spec,
            "no such folder (for unlabelled images give labels: none)",
        )
    out = []
    for image in images:
        files = cityscapes_files(spec.split, image.parent.name, image.name[: -len(suffix)])
        label, kind = _pick_label(spec, files, root, image)
        out.append(Record(image, files["image"], label, kind, _depth(root, files)))
    return out


def _acdc(spec: DataSpec, root: Path) -> list[Record]:
    assert spec.split is not None
    base = root / "rgb_anon"
    if not base.is_dir():
        raise _missing(base, spec)
    present = [p.name for p in base.iterdir() if p.is_dir()]
    if spec.conditions is not None:
        conditions = list(spec.conditions)
        for c in conditions:
            if c not in present:
                raise _missing(base / c, spec, f"no such condition folder{_subfolders(base)}")
    else:
        known = [c for c in ACDC_CONDITIONS if c in present]
        conditions = known + sorted(c for c in present if c not in ACDC_CONDITIONS)
        if not conditions:
            raise _missing(base, spec, "no condition folders (fog, night, rain, snow)")
    suffix = "_rgb_anon.png"
    out = []
    for cond in conditions:
        folder = base / cond / spec.split
        if not folder.is_dir():
            raise _missing(folder, spec, f"no such folder{_subfolders(base / cond)}")
        images = sorted(folder.rglob(f"*{suffix}"))
        if not images:
            raise _missing(folder, spec, f"no <sequence>/*{suffix} images")
        if spec.labels != "none" and not (root / "gt" / cond / spec.split).is_dir():
            raise _missing(
                root / "gt" / cond / spec.split,
                spec,
                "no such folder (for unlabelled images give labels: none)",
            )
        for image in images:
            sequence = image.parent.relative_to(folder).as_posix()
            files = acdc_files(cond, spec.split, sequence, image.name[: -len(suffix)])
            label, kind = _pick_label(spec, files, root, image)
            out.append(Record(image, files["image"], label, kind, None, condition=cond))
    return out


def _by_stem(folder: Path, suffixes: tuple[str, ...], spec: DataSpec) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in suffixes:
            if path.stem in found:
                raise DataError(
                    f"{path}: two files with the stem {path.stem!r} ({found[path.stem].name}, "
                    f"{path.name}); layout {spec.layout} matches files by stem"
                )
            found[path.stem] = path
    return found


def _pairs(spec: DataSpec, root: Path) -> list[Record]:
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir():
        raise _missing(images_dir, spec)
    images = _by_stem(images_dir, IMAGE_SUFFIXES, spec)
    if not images:
        raise _missing(images_dir, spec, f"no images ({', '.join(IMAGE_SUFFIXES)})")
    labels: dict[str, Path] = {}
    if spec.labels != "none":
        if not labels_dir.is_dir():
            raise _missing(
                labels_dir, spec, "no such folder (for unlabelled images give labels: none)"
            )
        labels = _by_stem(labels_dir, (".png",), spec)
        for stem, image in images.items():
            if stem not in labels:
                raise DataError(
                    f"{image}: no label labels/{stem}.png; layout pairs expects {spec.expects}"
                )
        for stem, label in labels.items():
            if stem not in images:
                raise DataError(
                    f"{label}: no image images/{stem}.png|.jpg for this label; layout pairs "
                    f"expects {spec.expects}"
                )
    out = []
    for stem, image in images.items():
        files = pairs_files(stem, image.suffix)
        kind = None if spec.labels in ("auto", "none") else spec.labels
        out.append(Record(image, files["image"], labels.get(stem), kind, _depth(root, files)))
    return out


def _video(spec: DataSpec, root: Path) -> list[Record]:
    from sim.data.files import count_video_frames

    n = count_video_frames(root)
    if n == 0:
        raise DataError(
            f"root {root}: OpenCV reads no frames from it; layout video expects {spec.expects}"
        )
    masks: list[Path | None] = [None] * n
    masks_dir = spec.masks_path()
    if masks_dir is not None and spec.labels != "none":
        if not masks_dir.is_dir():
            raise DataError(
                f"masks {masks_dir}: no such folder; give a folder with one label PNG per frame"
            )
        found = sorted(p for p in masks_dir.iterdir() if p.suffix.lower() == ".png")
        if len(found) != n:
            raise DataError(
                f"masks {masks_dir}: {len(found)} label PNGs for {n} video frames; give one "
                "label PNG per frame, in file-name order"
            )
        masks = list(found)
    kind = None if spec.labels in ("auto", "none") else spec.labels
    return [
        Record(root, PurePosixPath(f"{i:06d}"), masks[i], kind if masks[i] else None, frame=i)
        for i in range(n)
    ]
