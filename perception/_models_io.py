"""Checkpoints: saving with metadata, safe loading, and the bundled pretrained weights.

A checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(..., weights_only=True)`` (no pickled code runs on load)::

    {"format": "roadshift-checkpoint-1", "model": name, "state_dict": {...}, "meta": {...}}

``meta`` holds JSON-like data only: model name, class names, input size, training config, clean
validation metrics, library versions. A bare state dict is accepted as well.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._models import create_model, model_names
from ._models_classes import CLASS_NAMES

CHECKPOINT_FORMAT = "roadshift-checkpoint-1"
WEIGHTS_DIR = Path(__file__).with_name("weights")
#: The model ``load_pretrained()`` returns when no name is given.
DEFAULT_MODEL = "roadseg_s"


def library_versions() -> dict[str, str]:
    """Versions recorded in checkpoints and results, for reproducibility."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        roadshift = version("roadshift")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        roadshift = "unknown"
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "roadshift": roadshift,
    }


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights plus ``meta`` (JSON-like values only) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    name = getattr(model, "model_name", type(model).__name__)
    full_meta = {"model": name, "classes": list(CLASS_NAMES), "versions": library_versions()}
    full_meta.update(meta or {})
    torch.save(
        {"format": CHECKPOINT_FORMAT, "model": name, "state_dict": state, "meta": full_meta}, path
    )
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``): ``{"model", "state_dict", "meta"}``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors vary by torch version; report them in one line
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        why = next((ln for ln in lines if "Unsupported global" in ln), lines[0])
        why = why.split(" was not an allowed global")[0]
        raise ValueError(
            f"weights file {str(path)!r} is not a loadable checkpoint (weights_only): {why}"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return {
            "model": obj.get("model"),
            "state_dict": obj["state_dict"],
            "meta": dict(obj.get("meta") or {}),
        }
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"model": None, "state_dict": obj, "meta": {}}
    raise ValueError(
        f"weights file {str(path)!r} holds neither a roadshift checkpoint nor a state dict"
    )


def apply_weights(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any] | None = None,
    source: str = "checkpoint",
) -> nn.Module:
    """Load ``state`` into ``model`` strictly; a misfit raises one line saying what does not fit."""
    classes = (meta or {}).get("classes")
    n_model = getattr(model, "num_classes", None)
    if classes is not None and n_model is not None and len(classes) != n_model:
        raise ValueError(
            f"weights {source}: checkpoint has {len(classes)} classes, model has {n_model}"
        )
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: checkpoint "
                f"{tuple(state[k].shape)} vs model {tuple(own[k].shape)})"
            )
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(f"weights {source} do not fit model {name!r}: {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return model


#: Files taken as checkpoints where a model name is expected (``load_model("m.pt")``).
CHECKPOINT_SUFFIXES = (".pt", ".pth")


def load_model(
    spec: str | Path | None = None, weights: str | Path | None = None, **kwargs: Any
) -> nn.Module:
    """Build a model and optionally load ``weights`` into it.

    ``spec`` is a registered name, ``"module:factory"``, or the path of a roadshift checkpoint
    (``.pt``/``.pth``): a checkpoint records its model's name, so ``load_model("m.pt")`` and
    ``load_model(weights="m.pt")`` build that model (a ``roadseg_m`` checkpoint loads as
    ``roadseg_m``). Given both, a registered name must match the one the checkpoint records.
    The model is returned in eval mode; loaded checkpoint metadata is kept in
    ``model.checkpoint_meta`` (an empty dict without weights).
    """
    if weights is None and is_checkpoint_path(spec):
        spec, weights = None, spec
    ckpt = read_checkpoint(weights) if weights is not None else None
    recorded = ckpt["model"] if ckpt is not None else None
    registered = model_names()
    if spec is None:
        if ckpt is None:
            raise ValueError("load_model: give a model name, 'module:factory' or a checkpoint")
        if recorded not in registered:
            raise ValueError(
                f"weights {str(weights)!r} record no registered model (they name {recorded!r}); "
                f"give the model as well, one of: {', '.join(registered)} or 'module:factory'"
            )
        spec = recorded
    elif recorded in registered and str(spec) in registered and recorded != str(spec):
        raise ValueError(
            f"weights {str(weights)!r} hold a {recorded!r} model, not {str(spec)!r}; "
            f"leave the name out to load the checkpoint's own model"
        )
    model = create_model(str(spec), **kwargs)
    meta: dict[str, Any] = {}
    if ckpt is not None:
        meta = ckpt["meta"]
        apply_weights(model, ckpt["state_dict"], meta, source=repr(str(weights)))
    model.checkpoint_meta = meta
    return model.eval()


def is_checkpoint_path(spec: object) -> bool:
    """True for a path (or a string) naming a checkpoint file rather than a model."""
    if isinstance(spec, Path):
        return True
    return isinstance(spec, str) and spec.lower().endswith(CHECKPOINT_SUFFIXES)


def pretrained_names() -> list[str]:
    """Registered models that ship with bundled weights."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def pretrained_path(name: str | None = None) -> Path:
    """Path of the bundled checkpoint for ``name`` (default :data:`DEFAULT_MODEL`)."""
    name = DEFAULT_MODEL if name is None else name
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        choices = ", ".join(pretrained_names()) or "none"
        raise ValueError(f"no bundled weights for model {name!r}; models with weights: {choices}")
    return path


def load_pretrained(name: str | None = None) -> nn.Module:
    """The bundled pretrained model (default :data:`DEFAULT_MODEL`), in eval mode."""
    return load_model(DEFAULT_MODEL if name is None else name, pretrained_path(name))
