"""A deterministic demo run folder written through the results store's write API.

The numbers are made up. They are shaped like published robustness results (the source model
degrades with severity, BN re-estimation recovers part of the loss, TENT drifts on a long
continual stream) only so that a report of them looks like a real one and every table and figure
has something to show. Tests use them for report arithmetic only: the report must compute its
tables from whatever the store holds; nothing is concluded about any method from them.
Everything is drawn from one seeded generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reports import ResultsStore, RunMeta, make_cell_id
from sim import CLASS_NAMES, PALETTE

SAFETY = ("person", "rider", "car", "truck", "bus", "motorcycle", "bicycle")
# name -> (family, sensitivity per severity step, share of the loss BN recovers)
CORRUPTIONS = {
    "gaussian_noise": ("noise", 0.16, 0.55),
    "shot_noise": ("noise", 0.14, 0.55),
    "impulse_noise": ("noise", 0.17, 0.5),
    "defocus_blur": ("blur", 0.10, 0.15),
    "motion_blur": ("blur", 0.08, 0.2),
    "fog": ("weather", 0.07, 0.35),
    "brightness": ("weather", 0.03, 0.3),
    "contrast": ("digital", 0.12, 0.6),
    "pixelate": ("digital", 0.05, 0.1),
    "jpeg_compression": ("digital", 0.06, 0.2),
    "low_light": ("driving", 0.11, 0.45),
}
# per-class clean IoU of the source model (None: class absent from the world)
BASE_IOU = (
    0.97,
    0.86,
    0.91,
    None,
    0.62,
    0.55,
    0.5,
    0.6,
    0.9,
    0.78,
    0.96,
    0.74,
    0.52,
    0.92,
    0.7,
    0.68,
    None,
    0.48,
    0.5,
)
# how strongly each class suffers under shift (thin and small objects collapse first)
FRAGILITY = (
    0.3,
    0.9,
    0.6,
    1.0,
    1.3,
    2.0,
    2.2,
    1.8,
    0.8,
    1.1,
    0.4,
    1.6,
    2.0,
    0.8,
    1.0,
    1.0,
    1.0,
    2.0,
    2.0,
)
METHOD_COST = {"source": (3.8, 0.0), "bn": (4.3, 0.0), "tent": (11.5, 1.0)}


def _class_scores(rng: np.random.Generator, retain: float) -> tuple[list, dict]:
    """Per-class IoU and safety recall for a cell whose mIoU is ``retain`` × the clean one."""
    ious: list[float | None] = []
    for base, frag in zip(BASE_IOU, FRAGILITY, strict=False):
        if base is None:
            ious.append(None)
        else:
            v = base * retain**frag * (1 + 0.02 * rng.standard_normal())
            ious.append(float(np.clip(v, 0.0, 1.0)))
    recall = {}
    for name in SAFETY:
        iou = ious[CLASS_NAMES.index(name)]
        recall[name] = None if iou is None else float(min(1.0, iou * 1.08))
    return ious, recall


def _sample_arrays(rng: np.random.Generator, severity: float, quality: float, fog: bool) -> dict:
    """A tiny synthetic street scene, its corrupted view and a prediction of given quality."""
    h, w = 64, 128
    sem = np.full((h, w), 2, np.uint8)  # building
    sem[: h // 4] = 10  # sky
    sem[h // 2 :] = 0  # road
    sem[h // 2 : h // 2 + 6, :] = 1  # sidewalk
    sem[h // 3 : h // 2, 96:] = 8  # vegetation
    sem[h // 3 : h // 2 + 4, 90:92] = 5  # pole
    sem[36:50, 20:50] = 13  # car
    sem[30:50, 70:76] = 11  # person
    sem[60:, 100:] = 255  # ignored region
    lut = np.zeros((256, 3), np.uint8)
    lut[:19] = PALETTE
    shade = rng.integers(-12, 12, size=(h, w, 1))
    clean = np.clip(0.6 * lut[sem].astype(int) + 50 + shade, 0, 255).astype(np.uint8)
    if fog:
        t = np.linspace(1 - 0.12 * severity, 1 - 0.05 * severity, h)[:, None, None]
        corrupted = np.clip(clean * t + 200 * (1 - t), 0, 255).astype(np.uint8)
    else:
        noise = rng.normal(0, 12 * severity, size=clean.shape)
        corrupted = np.clip(clean + noise, 0, 255).astype(np.uint8)
    pred = sem.copy()
    pred[pred == 255] = 0
    # errors come in blobs of one wrong class each, as a segmentation model's do
    blocks = rng.random((h // 8, w // 8)) > quality
    wrong_class = rng.choice(np.array([0, 1, 2, 8, 10, 13], np.uint8), size=blocks.shape)
    mask = np.kron(blocks, np.ones((8, 8), bool))
    pred[mask] = np.kron(wrong_class, np.ones((8, 8), np.uint8))[mask]
    return {"clean": clean, "corrupted": corrupted, "semantic": sem, "prediction": pred}


def make_demo_store(
    run_dir: str | Path,
    *,
    seed: int = 0,
    seeds: tuple[int, ...] = (0, 1),
    methods: tuple[str, ...] = ("source", "bn", "tent"),
    corruptions: tuple[str, ...] | None = None,
    severities: tuple[int, ...] = (1, 2, 3, 4, 5),
    frames: int = 48,
    schedules: bool = True,
    world_shifts: bool = True,
    samples: bool = True,
    failed: int = 1,
    missing: int = 0,
    name: str = "imagenet-c-demo",
    description: str = "Every ImageNet-C family plus low light on the urban day world.",
) -> list[dict[str, Any]]:
    """Write a demo run into ``run_dir``; return every cell dict written (in write order).

    ``failed`` cells are written with status 'failed' and a traceback; the last ``missing``
    expected cells are left unwritten and ``finished_at`` stays null, as in a killed run.
    """
    rng = np.random.default_rng(seed)
    corruptions = tuple(CORRUPTIONS) if corruptions is None else corruptions
    run_dir = Path(run_dir)
    store = ResultsStore.create(run_dir)
    plan: list[dict[str, Any]] = []
    for m in methods:
        for s in seeds:
            plan.append(dict(method=m, corruption="clean", severity=0.0, seed=s, schedule="static"))
            for c in corruptions:
                for sev in severities:
                    plan.append(
                        dict(method=m, corruption=c, severity=float(sev), seed=s, schedule="static")
                    )
    stream_specs = []
    if schedules:
        stream_specs = [
            (
                "continual",
                "continual-imagenet-c",
                ["gaussian_noise", "fog", "contrast", "motion_blur", "jpeg_compression"] * 2,
            ),
            ("day_to_night", "day-to-night", ["day", "dusk", "twilight", "night"]),
        ]
        for kind, label, _segs in stream_specs:
            for m in methods:
                for s in seeds:
                    plan.append(
                        dict(
                            method=m,
                            corruption=label,
                            severity=5.0 if kind == "continual" else 2.5,
                            seed=s,
                            schedule=kind,
                        )
                    )
    worlds = ("town=highway", "town=rural") if world_shifts else ()
    for label in worlds:  # a shift of the world itself: clean camera, severity 0
        for m in methods:
            for s in seeds:
                plan.append(
                    dict(method=m, corruption=label, severity=0.0, seed=s, schedule="static")
                )
    for p in plan:
        p["cell_id"] = make_cell_id(p["method"], p["corruption"], p["severity"], p["seed"])
    store.set_meta(
        "scenario",
        {
            "name": name,
            "description": description,
            "world": {"town": "urban", "height": 128, "width": 256},
            "methods": list(methods),
            "corruptions": list(corruptions),
            "severities": list(severities),
            "seeds": list(seeds),
            "frames": frames,
            "batch_size": 4,
        },
    )
    store.set_meta(
        "versions",
        {
            "roadshift": "0.1.0",
            "python": "3.11.7",
            "numpy": "2.4.6",
            "torch": "2.13.0",
            "opencv": "4.12.0",
        },
    )
    store.set_meta(
        "model",
        {
            "name": "segnet_small_bn",
            "params": 412_883,
            "clean_val_miou": 0.884,
            "clean_val_pixel_acc": 0.962,
        },
    )
    contract = RunMeta(
        methods=tuple({"label": m, "name": m, "options": {}} for m in methods),
        class_names=tuple(CLASS_NAMES),
        palette=tuple(tuple(int(v) for v in rgb) for rgb in PALETTE),
        corruption_families={c: CORRUPTIONS[c][0] for c in corruptions if c in CORRUPTIONS},
        baseline="source" if "source" in methods else None,
        compute={"executor": "local", "workers": 2, "torch_threads": 1},
    )
    store.update_meta(contract.to_meta())
    store.set_meta("started_at", "2026-11-28T04:00:00+00:00")
    store.set_meta("expected_cells", plan)

    clean_base = {"source": 0.884, "bn": 0.868, "tent": 0.872}
    written: list[dict[str, Any]] = []
    n_write = len(plan) - missing
    failed_ids = {
        p["cell_id"]
        for p in plan[:n_write]
        if p["method"] != "source" and p["corruption"] in corruptions
    }
    failed_ids = set(sorted(failed_ids)[-failed:]) if failed else set()
    for p in plan[:n_write]:
        m, c, sev, s = p["method"], p["corruption"], p["severity"], p["seed"]
        cell: dict[str, Any] = dict(p)
        if p["cell_id"] in failed_ids:
            cell.update(
                status="failed",
                error=(
                    'Traceback (most recent call last):\n  File "runner.py", line 88, in run_cell\n'
                    "RuntimeError: CUDA out of memory while adapting <batch 3>"
                ),
            )
            store.write_cell(cell)
            written.append(cell)
            continue
        base = clean_base.get(m, 0.87) + 0.004 * rng.standard_normal()
        segments, frame_rows = [], []
        if p["schedule"] == "static":
            if c == "clean":
                miou = base
            elif c in worlds:
                hard = 0.08 if c == "town=highway" else 0.15
                recover = {"source": 0.0, "bn": 0.3, "tent": 0.35}.get(m, 0.3)
                miou = base * (1 - hard * (1 - recover)) + 0.006 * rng.standard_normal()
            else:
                _fam, k, rec = CORRUPTIONS.get(c, ("other", 0.08, 0.3))
                loss = 1 - np.exp(-k * sev)
                recover = {"source": 0.0, "bn": rec, "tent": min(rec + 0.08, 0.95)}.get(m, rec)
                miou = base * (1 - loss * (1 - recover)) + 0.006 * rng.standard_normal()
        else:
            kind, _label, segs = next(x for x in stream_specs if x[1] == c)
            n = frames * 2
            bounds = np.linspace(0, n, len(segs) + 1).astype(int)
            vals = []
            for k, lab in enumerate(segs):
                hardness = 0.25 + 0.1 * (k % 5) if kind == "continual" else 0.12 * k
                drift = {"tent": -0.035 * k, "bn": 0.0}.get(m, 0.0) if kind == "continual" else 0.0
                recover = {"source": 0.0, "bn": 0.45, "tent": 0.55}.get(m, 0.4)
                v = float(
                    np.clip(
                        base * (1 - hardness * (1 - recover))
                        + drift
                        + 0.01 * rng.standard_normal(),
                        0.02,
                        1,
                    )
                )
                vals.append(v)
                segments.append(
                    dict(
                        segment=k,
                        start_frame=int(bounds[k]),
                        stop_frame=int(bounds[k + 1]),
                        label=lab,
                        corruption=lab if kind == "continual" else None,
                        severity=5.0 if kind == "continual" else float(k),
                        miou=v,
                        pixel_acc=min(1.0, v + 0.08),
                        entropy=0.3 + 0.2 * k,
                    )
                )
                for f in range(int(bounds[k]), int(bounds[k + 1])):
                    frame_rows.append(
                        dict(
                            frame=f,
                            corruption=lab,
                            severity=float(k),
                            miou=float(np.clip(v + 0.03 * rng.standard_normal(), 0, 1)),
                            entropy=0.4,
                        )
                    )
            miou = float(np.mean(vals))
        miou = float(np.clip(miou, 0.01, 0.99))
        ious, recall = _class_scores(rng, miou / clean_base.get(m, 0.87))
        ms, bwd = METHOD_COST.get(m, (5.0, 0.0))
        n_frames = frames * 2 if p["schedule"] != "static" else frames
        cell.update(
            status="done",
            error=None,
            frames=n_frames,
            miou=miou,
            pixel_acc=min(1.0, miou + 0.08),
            ece=0.02 + 0.1 * (1 - miou),
            entropy=0.2 + (1 - miou),
            ms_per_frame=ms * (1 + 0.05 * rng.standard_normal()),
            forward_passes=n_frames // 4,
            backward_passes=int(bwd * n_frames // 4),
            batches=n_frames // 4,
            per_class_iou=ious,
            safety_recall=recall,
            confusion=None,
            finished_at="2026-11-28T04:05:00+00:00",
        )
        store.write_cell(cell, segments=segments, frames=frame_rows if m == "tent" else [])
        written.append(cell)
        if (
            samples
            and p["schedule"] == "static"
            and s == seeds[0]
            and ((c == "gaussian_noise" and sev == 3) or (c == "fog" and sev == 5))
        ):
            arrays = _sample_arrays(
                np.random.default_rng([seed, len(written)]),
                sev,
                quality=0.6 + 0.35 * miou,
                fog=c == "fog",
            )
            (run_dir / "samples").mkdir(exist_ok=True)
            np.savez_compressed(
                run_dir / "samples" / f"{p['cell_id']}.npz",
                **arrays,
                method=np.array(m),
                corruption=np.array(c),
                severity=np.array(sev),
                seed=np.array(s),
            )
    if not missing:
        store.set_meta("finished_at", "2026-11-28T04:09:12+00:00")
        store.set_meta("wall_seconds", 552.4)
    store.close()
    return written
