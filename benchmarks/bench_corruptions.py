"""Corruption speed (ms/frame) and damage (PSNR to clean), side by side with `imagecorruptions`.

    python benchmarks/bench_corruptions.py [--sizes 128x256,512x1024] [--reference PATH]

Prints, per corruption, our ms/frame (mean over severities 1-5) at each size. When the
`imagecorruptions` package is importable (it is not a roadshift dependency: install it
somewhere apart, e.g. ``pip install --target /tmp/ic imagecorruptions scikit-image`` and pass
``--reference /tmp/ic``), it also times the reference on the ImageNet-C corruptions, prints the
speed ratio and the PSNR-to-clean of both per severity. The comparison runs ours with the
published 224-px constants unscaled (``scaling="absolute"``), i.e. the same parameters the
reference uses at any resolution; the "ours (native)" column is ours with the documented
resolution scaling (relative). The reference's global NumPy RNG is seeded per call so its runs
are repeatable.

OpenCV is limited to one thread (the machine is shared); numbers are single-core.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

import sim
from sim.corruptions.catalogue import IMAGENET_C, IMAGENET_C_EXTRA


def frame(h: int, w: int) -> np.ndarray:
    """A frame of our world at (h, w); a synthetic street if the world is unavailable."""
    try:
        cfg = sim.WorldConfig(height=h, width=w)
        return list(sim.render_stream(cfg, seed=0, n_frames=2))[-1].image
    except Exception:  # the world is optional for this benchmark
        rng = np.random.default_rng(0)
        img = cv2.resize(rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8), (w, h))
        return cv2.GaussianBlur(img, (5, 5), 1.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best = math.inf
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000, out


def load_reference(path: str | None) -> Any:
    """Import imagecorruptions 1.1.2 with the patches current NumPy / SciPy / scikit-image need."""
    if path:
        sys.path.insert(0, path)
    try:
        import skimage.filters
    except ImportError:
        return None
    if "pkg_resources" not in sys.modules:  # removed from recent setuptools
        shim = types.ModuleType("pkg_resources")

        def resource_filename(pkg: str, name: str) -> str:
            return os.path.join(os.path.dirname(sys.modules[pkg].__file__), name)

        shim.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import scipy.ndimage

    sys.modules.setdefault("scipy.ndimage.interpolation", scipy.ndimage)  # removed alias
    if not hasattr(np, "float_"):
        setattr(np, "float" + "_", np.float64)  # removed in NumPy 2, used by the reference
    orig = skimage.filters.gaussian

    def gaussian(image, sigma=1, *args, multichannel=None, **kw):  # multichannel= was removed
        if multichannel:
            kw["channel_axis"] = -1
        return orig(image, sigma, *args, **kw)

    try:
        import imagecorruptions
        import imagecorruptions.corruptions as mod
    except ImportError:
        return None
    mod.gaussian = gaussian
    return imagecorruptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="128x256,512x1024")
    ap.add_argument("--reference", default=os.environ.get("IMAGECORRUPTIONS_PATH"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated corruption names")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    names = sim.corruption_names()
    only = set(args.only.split(",")) if args.only else None
    if only:
        names = [n for n in names if n in only]
    ref = load_reference(args.reference)

    print(f"# roadshift corruption benchmark (single thread; best of {args.repeats})\n")
    print("## ours, ms/frame (mean over severities 1-5, native resolution scaling)\n")
    header = "| corruption | " + " | ".join(f"{h}x{w}" for h, w in sizes) + " |"
    print(header)
    print("|" + "---|" * (len(sizes) + 1))
    images = {hw: frame(*hw) for hw in sizes}
    depths = {}
    for hw in sizes:
        try:
            cfg = sim.WorldConfig(height=hw[0], width=hw[1])
            depths[hw] = list(sim.render_stream(cfg, seed=0, n_frames=2))[-1].depth
        except Exception:
            depths[hw] = np.full(hw, 30.0, np.float32)
    for name in names:
        cells = []
        for hw in sizes:
            img, dep = images[hw], depths[hw]
            ms = [
                timed(
                    lambda s=s, img=img, name=name, dep=dep: sim.corrupt(
                        img, name, s, seed=0, depth=dep
                    ),
                    args.repeats,
                )[0]
                for s in range(1, 6)
            ]
            cells.append(f"{np.mean(ms):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")

    if ref is None:
        print("\n(imagecorruptions not importable: pass --reference PATH for the comparison)")
        return
    h, w = sizes[-1]
    img = images[(h, w)]
    print(f"\n## vs imagecorruptions 1.1.2 at {h}x{w} (published constants, absolute scaling)\n")
    print("| corruption | ours ms | ours (native) ms | reference ms | speed-up | "
          "PSNR s1-s5 ours | PSNR s1-s5 reference |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    ratios: dict[str, float] = {}
    for name in [n for n in IMAGENET_C + IMAGENET_C_EXTRA if only is None or n in only]:
        ours_ms, ref_ms, native_ms, p_ours, p_ref = [], [], [], [], []
        for s in range(1, 6):
            t, out = timed(
                lambda s=s, name=name: sim.corrupt(img, name, s, seed=0, scaling="absolute"),
                args.repeats,
            )
            ours_ms.append(t)
            p_ours.append(psnr(out, img))
            native_ms.append(timed(lambda s=s, name=name: sim.corrupt(img, name, s, seed=0), 1)[0])

            def reference(s=s, name=name):
                np.random.seed(s)  # noqa: NPY002 - the reference draws from the global RNG
                return ref.corrupt(img, corruption_name=name, severity=s)

            t, out = timed(reference, 1)
            ref_ms.append(t)
            p_ref.append(psnr(out, img))
        ratio = float(np.mean(ref_ms) / np.mean(ours_ms))
        ratios[name] = ratio
        print(
            f"| {name} | {np.mean(ours_ms):.1f} | {np.mean(native_ms):.1f} | "
            f"{np.mean(ref_ms):.1f} | {ratio:.1f}x | "
            + " ".join(f"{p:.1f}" for p in p_ours) + " | "
            + " ".join(f"{p:.1f}" for p in p_ref) + " |"
        )  # fmt: skip
        sys.stdout.flush()
    common = [ratios[n] for n in IMAGENET_C if n in ratios]
    gm = math.exp(np.mean(np.log(common)))
    worst = min((n for n in IMAGENET_C if n in ratios), key=lambda n: ratios[n])
    print(
        f"\nGeometric-mean speed-up over the 15 ImageNet-C corruptions at {h}x{w}: {gm:.1f}x; "
        f"slowest relative: {worst} {ratios[worst]:.2f}x"
    )


if __name__ == "__main__":
    main()
