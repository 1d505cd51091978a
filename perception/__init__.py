"""roadshift's perception: segmentation models, metrics and test-time adaptation methods.

Works on plain tensors; it never imports the simulator.
"""

from __future__ import annotations

# devices, models, training, metrics
from ._device import DEVICE_CHOICES, resolve_device
from ._metrics import StreamMetrics, confusion_matrix, iou_from_confusion, miou_from_confusion
from ._models import create_model, model_names, register_model
from ._models_classes import CLASS_NAMES, IGNORE_INDEX, NUM_CLASSES, SAFETY_CLASSES
from ._models_io import (
    DEFAULT_MODEL,
    load_model,
    load_pretrained,
    pretrained_names,
    read_checkpoint,
    save_checkpoint,
)
from ._train import TrainConfig, TrainResult, evaluate, images_to_tensor, train

# adaptation methods (registering source, bn and tent on import)
# isort: split
from ._adapt import Adapter
from ._adapt_registry import (
    AdapterInfo,
    adapter_info,
    adapter_names,
    create_adapter,
    register_adapter,
)
from ._methods import Source as _Source  # noqa: F401  (registers source, bn, tent)

__all__: list[str] = [
    "CLASS_NAMES",
    "DEFAULT_MODEL",
    "DEVICE_CHOICES",
    "IGNORE_INDEX",
    "NUM_CLASSES",
    "SAFETY_CLASSES",
    "Adapter",
    "AdapterInfo",
    "StreamMetrics",
    "TrainConfig",
    "TrainResult",
    "adapter_info",
    "adapter_names",
    "confusion_matrix",
    "create_adapter",
    "create_model",
    "evaluate",
    "images_to_tensor",
    "iou_from_confusion",
    "load_model",
    "load_pretrained",
    "miou_from_confusion",
    "model_names",
    "pretrained_names",
    "read_checkpoint",
    "register_adapter",
    "register_model",
    "resolve_device",
    "save_checkpoint",
    "train",
]
