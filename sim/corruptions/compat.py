"""A drop-in for ``imagecorruptions`` users: its call form, its images, its name lists.

``imagecorruptions.corrupt(image, severity=1, corruption_name=None, corruption_number=-1)``
takes severity as its second positional argument, a corruption by name or by its position
in the package's list of 19, and grayscale images (returned as RGB). ``sim.corrupt`` accepts
all of that beside its own form (``corrupt(image, name, severity, seed=...)``), and also float
images in [0, 1] (the package only takes uint8). ``get_corruption_names`` returns the
package's lists exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The 15 ImageNet-C corruptions and the 4 held out, in the package's ``corruption_tuple``
#: order (``corruption_number`` indexes PACKAGE_ORDER).
IMAGENET_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
IMAGENET_C_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
PACKAGE_ORDER = IMAGENET_C + IMAGENET_C_EXTRA

#: ``imagecorruptions.get_corruption_names(subset)``: subset -> slice of PACKAGE_ORDER.
_SUBSETS = {
    "common": slice(0, 15),
    "validation": slice(15, 19),
    "all": slice(0, 19),
    "noise": slice(0, 3),
    "blur": slice(3, 7),
    "weather": slice(7, 11),
    "digital": slice(11, 15),
}


def get_corruption_names(subset: str = "common") -> list[str]:
    """``imagecorruptions.get_corruption_names``: ``common`` (the 15), ``validation`` (the 4
    held out), ``all`` (those 19), or one ImageNet-C family of the 15 (``noise``, ``blur``,
    ``weather``, ``digital``). roadshift's own groups are ``sim.corruption_groups()``."""
    if subset not in _SUBSETS:
        raise ValueError(f"subset must be one of {', '.join(_SUBSETS)}, got {subset!r}")
    return list(PACKAGE_ORDER[_SUBSETS[subset]])


def resolve_call(
    name: Any, severity: Any, corruption_name: Any, corruption_number: Any
) -> tuple[str, Any]:
    """The corruption name and severity of a ``corrupt`` call in either form.

    Ours: ``corrupt(image, "fog", 3)``. The package's: ``corrupt(image, corruption_name="fog",
    severity=3)``, ``corrupt(image, 3, corruption_name="fog")`` (severity second) or
    ``corruption_number=9``. Severity defaults to 3 in ours and to 1, as in the package, in
    the package's form.
    """
    package_form = corruption_name is not None or (
        corruption_number is not None and corruption_number != -1
    )
    if not package_form:
        if name is None:
            raise TypeError("corrupt() needs a corruption name (or corruption_name=...)")
        if not isinstance(name, (str, dict)):
            raise TypeError(
                f"name must be a corruption name (or an albumentations shift spec), got "
                f"{name!r}; imagecorruptions' form "
                "corrupt(image, severity, corruption_name=...) needs corruption_name= or "
                "corruption_number="
            )
        return name, 3 if severity is None else severity
    if name is not None:
        if isinstance(name, str) or severity is not None:
            raise TypeError(
                "pass the corruption once: a name, corruption_name= or corruption_number="
            )
        severity = name  # the package's positional severity
    if corruption_name is not None:
        if corruption_number is not None and corruption_number != -1:
            raise TypeError("pass corruption_name= or corruption_number=, not both")
        if not isinstance(corruption_name, str):
            raise TypeError(f"corruption_name must be a string, got {corruption_name!r}")
        out = corruption_name
    else:
        n = corruption_number
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < 19:
            raise ValueError(
                f"corruption_number must be an int in [0, 18] (imagecorruptions' order: "
                f"{', '.join(PACKAGE_ORDER)}), got {n!r}"
            )
        out = PACKAGE_ORDER[int(n)]
    return out, 1 if severity is None else severity


def to_rgb_uint8(image: Any) -> tuple[Any, str | None]:
    """``(uint8 RGB image, how to give the result back)`` for the layouts the package takes.

    Grayscale ``(H, W)`` and ``(H, W, 1)`` are stacked to RGB and come back as RGB, as in
    the package. Float images must hold values in [0, 1]: they are rounded to uint8 and
    come back as float32 in [0, 1] (``"float"``). Anything else passes through unchanged
    for the usual checks (``None``).
    """
    if not isinstance(image, np.ndarray):
        return image, None
    back = None
    if np.issubdtype(image.dtype, np.floating):
        finite = np.isfinite(image).all()
        lo, hi = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        if not finite or lo < 0 or hi > 1:
            raise ValueError(
                f"float images must hold values in [0, 1], got range [{lo:g}, {hi:g}]; "
                "pass uint8 for [0, 255]"
            )
        image = np.rint(image * 255).astype(np.uint8)
        back = "float"
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image, back


def give_back(out: np.ndarray, back: str | None) -> np.ndarray:
    """The corrupted uint8 RGB image in the caller's number format (see ``to_rgb_uint8``)."""
    if back == "float":
        return out.astype(np.float32) * np.float32(1 / 255)
    return out
