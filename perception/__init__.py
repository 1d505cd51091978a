"""roadshift's perception: segmentation models, metrics and test-time adaptation methods.

Works on plain tensors; it never imports the simulator.
"""

from __future__ import annotations

# models, training, metrics
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

# adaptation methods (registering the built-in methods on import)
# isort: split
from ._adapt import Adapter, MethodTraits, has_feature_hook
from ._adapt_registry import (
    AdapterInfo,
    adapter_info,
    adapter_names,
    create_adapter,
    register_adapter,
)
from ._augment import COTTA_JITTER, DenseAugment, View, augment, restore
from ._methods import (
    NORM_LAYERS,
    configure_norm_layers,
    reestimate_batchnorm,
    softmax_entropy,
    use_batch_statistics,
)

# isort: split
# one module per method or family; importing registers them
from . import (  # noqa: F401
    _methods_cotta,
    _methods_dua,
    _methods_eata,
    _methods_lame,
    _methods_memo,
    _methods_rotta,
    _methods_sar,
)

__all__: list[str] = [
    "CLASS_NAMES",
    "COTTA_JITTER",
    "DEFAULT_MODEL",
    "IGNORE_INDEX",
    "NORM_LAYERS",
    "NUM_CLASSES",
    "SAFETY_CLASSES",
    "Adapter",
    "AdapterInfo",
    "DenseAugment",
    "MethodTraits",
    "StreamMetrics",
    "TrainConfig",
    "TrainResult",
    "View",
    "adapter_info",
    "adapter_names",
    "augment",
    "configure_norm_layers",
    "confusion_matrix",
    "create_adapter",
    "create_model",
    "evaluate",
    "has_feature_hook",
    "images_to_tensor",
    "iou_from_confusion",
    "load_model",
    "load_pretrained",
    "miou_from_confusion",
    "model_names",
    "pretrained_names",
    "read_checkpoint",
    "reestimate_batchnorm",
    "register_adapter",
    "register_model",
    "restore",
    "save_checkpoint",
    "softmax_entropy",
    "train",
    "use_batch_statistics",
]
