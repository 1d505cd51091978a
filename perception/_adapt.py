"""The test-time adaptation base class: one lifecycle for every method.

An :class:`Adapter` owns a private deep copy of the model and fixes the lifecycle that
published TTA code repeats per method: configure the model, collect the parameters to
train, build the optimiser, snapshot model and optimiser so :meth:`Adapter.reset` can
restore them bit for bit. A method overrides only what differs (``configure``,
``params_to_train``, ``loss`` and/or ``predict``).
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

# Options every adapter accepts.
_CORE_OPTIONS: dict[str, Any] = {"episodic": False}
# Options of adapters that train parameters (``uses_optimizer = True``). The defaults follow
# TENT's reference configuration: Adam, lr 1e-3, betas (0.9, 0.999), no weight decay, one step.
# ``momentum``/``nesterov`` apply to SGD only (0.9 as in TENT's ImageNet run).
_OPTIMIZER_OPTIONS: dict[str, Any] = {
    "steps": 1,
    "optimizer": "adam",
    "lr": 1e-3,
    "betas": (0.9, 0.999),
    "weight_decay": 0.0,
    "momentum": 0.9,
    "nesterov": False,
}
OPTIMIZERS = ("adam", "sgd")


def _accounted(predict: Callable[[Adapter, Tensor], Tensor]) -> Callable[[Adapter, Tensor], Tensor]:
    """Wrap a ``predict`` so every implementation gets input checks, episodic reset,
    the right grad mode, timing, call/frame counts and detached output."""

    @functools.wraps(predict)
    def wrapper(self: Adapter, x: Tensor) -> Tensor:
        if self._inside_predict:  # a subclass calling super().predict(): account once
            return predict(self, x)
        x = self._check_input(x)
        self._inside_predict = True
        start = time.perf_counter()
        try:
            if self.options["episodic"]:
                self.reset()
            grad = torch.enable_grad() if self.optimizer is not None else torch.no_grad()
            with grad:
                out = predict(self, x)
        finally:
            self._inside_predict = False
        if not isinstance(out, Tensor):
            raise TypeError(f"{type(self).__name__}.predict must return a Tensor of logits")
        if out.is_cuda:
            torch.cuda.synchronize(out.device)
        self._stats["seconds"] += time.perf_counter() - start
        self._stats["calls"] += 1
        self._stats["frames"] += int(x.shape[0])
        return out.detach()

    wrapper._accounted = True  # type: ignore[attr-defined]
    return wrapper


class Adapter:
    """Base class of test-time adaptation methods: ``predict(x) -> logits``, ``reset()``.

    Construct with a model and keyword options. The adapter works on ``self.model``, a deep
    copy, so the caller's model (parameters and buffers) never changes. Lifecycle:
    ``check_options()`` → ``configure(model)`` → ``params_to_train(model)`` → optimiser (when
    there are parameters) → snapshot. ``reset()`` restores model and optimiser state exactly.

    Options are declared as data: a subclass lists its own in the class attribute
    ``options`` (name → default); the base adds ``episodic`` and, when ``uses_optimizer`` is
    true, ``steps``, ``optimizer`` (``"adam"``/``"sgd"``), ``lr``, ``betas``,
    ``weight_decay``, ``momentum`` and ``nesterov`` (SGD only). Resolved values live in
    ``self.options`` and as attributes (``self.lr``). Unknown options are an error.

    The default ``predict`` runs ``steps`` times: forward, then (when parameters train)
    ``update(loss(logits, x))``; it returns the logits of the last forward pass, i.e. the
    prediction made *before* that batch's last update, as TENT does. ``episodic=True``
    resets before every batch. Call ``self.forward`` and ``self.update`` from an overridden
    ``predict`` so the compute accounting (``stats``) sees every pass.
    """

    #: registry name (set by ``register_adapter``; a plugin may set it itself).
    name: ClassVar[str | None] = None
    #: method-specific options: name -> default. Merged along the class hierarchy.
    options: ClassVar[Mapping[str, Any]] = {}
    #: whether the method trains parameters (adds the optimiser options).
    uses_optimizer: ClassVar[bool] = True

    _inside_predict: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("predict")
        if own is not None and not getattr(own, "_accounted", False):
            cls.predict = _accounted(own)  # type: ignore[method-assign]
        reserved = {k for k in dir(Adapter) if not k.startswith("_")} - set(_OPTIMIZER_OPTIONS)
        clash = sorted(set(cls.__dict__.get("options", {})) & reserved)
        if clash:
            raise TypeError(
                f"{cls.__name__}.options: option names {clash} clash with Adapter attributes"
            )

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """All options this method accepts, with their defaults."""
        out = dict(_CORE_OPTIONS)
        if cls.uses_optimizer:
            out.update(_OPTIMIZER_OPTIONS)
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("options", {}))
        return out

    def __init__(self, model: nn.Module, **options: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        defaults = self.option_defaults()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(
                f"unknown option(s) {', '.join(map(repr, unknown))} for adaptation method "
                f"{self._label()!r}; valid options: {', '.join(sorted(defaults))}"
            )
        self.options: dict[str, Any] = {**defaults, **options}
        for key, value in self.options.items():
            setattr(self, key, value)
        self._check_core_options()
        self.check_options()

        self.model: nn.Module = copy.deepcopy(model)
        self.configure(self.model)
        params = list(self.params_to_train(self.model))
        self.optimizer: torch.optim.Optimizer | None = (
            self.make_optimizer(params) if params and self.uses_optimizer else None
        )
        self._model_state = copy.deepcopy(self.model.state_dict())
        self._optimizer_state = (
            copy.deepcopy(self.optimizer.state_dict()) if self.optimizer is not None else None
        )
        self._stats: dict[str, float] = {
            "forward_passes": 0,
            "backward_passes": 0,
            "seconds": 0.0,
            "calls": 0,
            "frames": 0,
        }

    # -- the hooks a method overrides ---------------------------------------------------
    def check_options(self) -> None:
        """Validate method-specific options (raise ValueError/TypeError with one line)."""

    def configure(self, model: nn.Module) -> None:
        """Put the private model copy into the state the method needs (default: eval, frozen)."""
        model.eval()
        model.requires_grad_(False)

    def params_to_train(self, model: nn.Module) -> Iterable[nn.Parameter]:
        """The parameters the optimiser updates (default: none, so no optimiser)."""
        return []

    def loss(self, logits: Tensor, x: Tensor) -> Tensor:
        """The unsupervised loss minimised on each batch (needed when parameters train)."""
        raise NotImplementedError(f"{type(self).__name__} trains parameters but defines no loss")

    @_accounted
    def predict(self, x: Tensor) -> Tensor:
        """Adapt on the batch ``x`` (float32 NCHW in [0, 1]) and return its logits."""
        steps = self.options.get("steps", 1) if self.optimizer is not None else 1
        for _ in range(steps):
            logits = self.forward(x)
            if self.optimizer is not None:
                self.update(self.loss(logits, x))
        return logits

    def infer(self, x: Tensor) -> Tensor:
        """Predict the batch ``x`` with the adapter's current state, without adapting.

        No gradient, no optimiser step, and every buffer of the model is left as it was (a
        forward pass in train mode may move running statistics: they are restored), so scoring
        an adapted model (forgetting, held-out checks) never changes it. Normalisation layers
        behave as in ``predict`` (batch statistics where the method uses them). Methods whose
        prediction is not the adapted model's output — a teacher's, an output-space
        correction — override this. Not counted in ``stats``."""
        x = self._check_input(x)
        saved = {k: b.detach().clone() for k, b in self.model.named_buffers()}
        try:
            with torch.no_grad():
                out = self.model(x)
        finally:
            with torch.no_grad():
                for k, b in self.model.named_buffers():
                    if k in saved:
                        b.copy_(saved[k])
        if not isinstance(out, Tensor):
            raise TypeError(f"{type(self).__name__}: the model must return a Tensor of logits")
        return out.detach()

    # -- helpers for methods ------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """One counted forward pass of the adapted model."""
        self._stats["forward_passes"] += 1
        return self.model(x)

    def update(self, loss: Tensor) -> None:
        """One counted backward pass and optimiser step on ``loss``."""
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__} has no parameters to train")
        loss.backward()
        self._stats["backward_passes"] += 1
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def make_optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        """The optimiser over ``params`` from the ``optimizer``/``lr``/... options."""
        o = self.options
        if o["optimizer"] == "adam":
            return torch.optim.Adam(
                params, lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"]
            )
        return torch.optim.SGD(
            params,
            lr=o["lr"],
            momentum=o["momentum"],
            weight_decay=o["weight_decay"],
            nesterov=o["nesterov"],
        )

    # -- state --------------------------------------------------------------------------
    def reset(self) -> None:
        """Restore the model and optimiser to the state right after construction (exactly).

        Compute accounting (``stats``) is not reset: it measures all work done."""
        self.model.load_state_dict(self._model_state)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(self._optimizer_state)
            self.optimizer.zero_grad(set_to_none=True)

    @property
    def stats(self) -> dict[str, float]:
        """Compute used so far: forward_passes, backward_passes, seconds, calls, frames."""
        return dict(self._stats)

    @property
    def device(self) -> torch.device:
        for t in self.model.parameters():
            return t.device
        for t in self.model.buffers():
            return t.device
        return torch.device("cpu")

    def __call__(self, x: Tensor) -> Tensor:
        return self.predict(x)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.options.items()))
        return f"{type(self).__name__}({args})"

    # -- internals ----------------------------------------------------------------------
    @classmethod
    def _label(cls) -> str:
        return cls.__dict__.get("name") or cls.__name__

    def _check_core_options(self) -> None:
        o, label = self.options, self._label()
        if not isinstance(o["episodic"], bool):
            raise TypeError(f"{label}: option 'episodic' must be True or False")
        if not self.uses_optimizer:
            return
        steps = o["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{label}: option 'steps' must be an integer >= 1, got {steps!r}")
        if o["optimizer"] not in OPTIMIZERS:
            raise ValueError(
                f"{label}: option 'optimizer' must be one of {', '.join(OPTIMIZERS)}, "
                f"got {o['optimizer']!r}"
            )
        for key in ("lr", "weight_decay", "momentum"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise TypeError(f"{label}: option {key!r} must be a finite number, got {v!r}")
            if v < 0 or (key == "lr" and v == 0):
                bound = "> 0" if key == "lr" else ">= 0"
                raise ValueError(f"{label}: option {key!r} must be {bound}, got {v!r}")
        betas = o["betas"]
        if (
            not isinstance(betas, (tuple, list))
            or len(betas) != 2
            or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        ):
            raise ValueError(f"{label}: option 'betas' must be two numbers in [0, 1), got {betas}")
        if not isinstance(o["nesterov"], bool):
            raise TypeError(f"{label}: option 'nesterov' must be True or False")

    def _check_input(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor (float32 NCHW), got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor (float32 NCHW), got {x.dtype}")
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"x must be a non-empty batch (NCHW), got shape {tuple(x.shape)}")
        device = self.device
        return x if x.device == device else x.to(device)
