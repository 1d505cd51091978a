"""The test-time adaptation base class: one lifecycle for every method.

An :class:`Adapter` owns a private deep copy of the model and fixes the lifecycle that
published TTA code repeats per method: configure the model, collect the parameters to
train, build the optimiser, snapshot model and optimiser so :meth:`Adapter.reset` can
restore them bit for bit. A method overrides only what differs (``configure``,
``params_to_train``, ``loss`` and/or ``predict``).

What richer methods need is public too, so a plug-in can do everything a built-in does:
teacher/anchor copies that ``reset()`` restores (:meth:`Adapter.model_copy`), method state
outside the model (:meth:`Adapter.reset_state`), a seeded generator (``self.generator``),
the model's feature hook (:meth:`Adapter.forward_features`), source-domain data before the
stream (``needs_source_data`` and :meth:`Adapter.prepare_source`), counted passes
(:meth:`Adapter.forward`, :meth:`Adapter.backward`, :meth:`Adapter.update`), adaptation
steps that ``reset_every`` counts (:meth:`Adapter.end_step`), and what ``roadshift list
methods`` tells users about the method (:class:`MethodTraits`).
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

# Options every adapter accepts. ``reset_every=K`` restores the source state after every K
# adaptation steps (RDumb's periodic reset, offered to every method).
_CORE_OPTIONS: dict[str, Any] = {"episodic": False, "reset_every": None}
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


@dataclass(frozen=True)
class MethodTraits:
    """What a method does, for ``roadshift list methods`` and the report's compute table.

    Plain words, not code: ``views`` (augmented views per frame), ``updates`` (which
    parameters or statistics change), ``norm`` (normalisation layers required: "BatchNorm",
    "any normalisation" or "none"), ``resets`` (when the method returns to the source
    state by itself), and the expected images through the network per frame,
    ``forward_per_frame`` and ``backward_per_frame`` (an augmented view counts as an image).
    Whether the method needs source data or the feature hook is the class flags'
    (``needs_source_data``, ``needs_features``)."""

    views: str = "none"
    updates: str = "nothing"
    norm: str = "none"
    resets: str = "never"
    forward_per_frame: str = "1"
    backward_per_frame: str = "0"


def _accounted(predict: Callable[[Adapter, Tensor], Tensor]) -> Callable[[Adapter, Tensor], Tensor]:
    """Wrap a ``predict`` so every implementation gets input checks, episodic reset,
    the right grad mode, timing, call/frame counts, step counting and detached output."""

    @functools.wraps(predict)
    def wrapper(self: Adapter, x: Tensor) -> Tensor:
        if self._inside_predict:  # a subclass calling super().predict(): account once
            return predict(self, x)
        x = self._check_input(x)
        if self.needs_source_data and not self._source_ready:
            raise RuntimeError(
                f"{self._label()} needs source-domain images before the stream: call "
                "adapter.prepare_source(batches) first (roadshift's runner passes frames of "
                "the world's source domain)"
            )
        self._inside_predict = True
        self._steps_in_call = 0
        start = time.perf_counter()
        try:
            if self.options["episodic"]:
                self.reset()
            grad = torch.enable_grad() if self.optimizer is not None else torch.no_grad()
            with grad:
                out = predict(self, x)
            if self._steps_in_call == 0:  # a predict that marks no steps: one per batch
                self.end_step()
        finally:
            self._inside_predict = False
            self._pending_backward = 0
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


def _source_hook(prepare: Callable[[Adapter, Any], None]) -> Callable[[Adapter, Any], None]:
    """Wrap a ``prepare_source`` so that, whatever it does, the adapter is marked ready and
    the state ``reset()`` restores is the one after it (a warm start becomes the source)."""

    @functools.wraps(prepare)
    def wrapper(self: Adapter, batches: Iterable[Tensor]) -> None:
        if self._inside_source:
            prepare(self, batches)
            return
        self._inside_source = True
        try:
            prepare(self, batches)
        finally:
            self._inside_source = False
        self._snapshot()
        self._source_ready = True

    wrapper._source_hook = True  # type: ignore[attr-defined]
    return wrapper


def has_feature_hook(model: nn.Module) -> bool:
    """Whether ``model`` exposes ``features(x)`` and ``head(features, size=None)`` as methods
    of its class (a submodule that happens to be called ``head`` does not count)."""
    for name in ("features", "head"):
        attr = inspect.getattr_static(type(model), name, None)
        if not inspect.isfunction(attr):
            return False
    return True


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
    ``reset_every=K`` (any method) restores the source state after every K adaptation
    steps (see :meth:`end_step`); a method may declare another default (``rdumb``: 1000).

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
    #: whether the method needs source-domain images once, before the stream; such a method
    #: overrides :meth:`prepare_source`, and ``predict`` refuses to run until it was called.
    needs_source_data: ClassVar[bool] = False
    #: whether the method needs the model's feature hook (``model.features(x)`` and
    #: ``model.head(features, size=None)``); a model without it is refused at construction.
    needs_features: ClassVar[bool] = False
    #: what the method does, in words (``roadshift list methods``).
    traits: ClassVar[MethodTraits] = MethodTraits()

    _inside_predict: bool = False
    _inside_source: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("predict")
        if own is not None and not getattr(own, "_accounted", False):
            cls.predict = _accounted(own)  # type: ignore[method-assign]
        own_source = cls.__dict__.get("prepare_source")
        if own_source is not None and not getattr(own_source, "_source_hook", False):
            cls.prepare_source = _source_hook(own_source)  # type: ignore[method-assign]
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
        self._generator = torch.Generator().manual_seed(int(self.options.get("seed", 0)))
        self._copies: list[tuple[nn.Module, dict[str, Tensor]]] = []
        self._source_ready = False
        self._steps_since_reset = 0
        self._steps_in_call = 0
        self._pending_backward = 0
        self._stats: dict[str, float] = {
            "forward_passes": 0,
            "backward_passes": 0,
            "image_forwards": 0,
            "image_backwards": 0,
            "steps": 0,
            "resets": 0,
            "seconds": 0.0,
            "calls": 0,
            "frames": 0,
        }

        self.model: nn.Module = copy.deepcopy(model)
        if self.needs_features and not has_feature_hook(self.model):
            raise ValueError(
                f"{self._label()} needs the model's feature hook, features(x) and "
                f"head(features, size=None), which {type(model).__name__} does not define; "
                "the registered roadshift models have it"
            )
        self.configure(self.model)
        params = list(self.params_to_train(self.model))
        self.optimizer: torch.optim.Optimizer | None = (
            self.make_optimizer(params) if params and self.uses_optimizer else None
        )
        self._snapshot()
        self.reset_state()

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

    def reset_state(self) -> None:
        """(Re)initialise the method's state outside the model (moving averages, memories,
        counters). Called at the end of construction and by every :meth:`reset`."""

    @_source_hook
    def prepare_source(self, batches: Iterable[Tensor]) -> None:
        """Receive source-domain image batches (float32 NCHW in [0, 1]) once, before the stream.

        Methods with ``needs_source_data = True`` override this and take as many batches as
        they need (the iterator may hold more). Afterwards the adapter is ready and the
        state :meth:`reset` restores is the state after this call."""

    @_accounted
    def predict(self, x: Tensor) -> Tensor:
        """Adapt on the batch ``x`` (float32 NCHW in [0, 1]) and return its logits."""
        steps = self.options.get("steps", 1) if self.optimizer is not None else 1
        for _ in range(steps):
            logits = self.forward(x)
            if self.optimizer is not None:
                self.update(self.loss(logits, x))
            self.end_step()
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
    def forward(self, x: Tensor, model: nn.Module | None = None) -> Tensor:
        """One counted forward pass of the adapted model (or of ``model``, e.g. a teacher)."""
        out = (self.model if model is None else model)(x)
        self._count_forward(x, out)
        return out

    def forward_features(self, x: Tensor, model: nn.Module | None = None) -> tuple[Tensor, Tensor]:
        """One counted forward pass returning ``(features, logits)`` through the model's
        feature hook; the logits are at the input resolution (needs ``needs_features``)."""
        net = self.model if model is None else model
        if not has_feature_hook(net):
            raise ValueError(
                f"{self._label()}: {type(net).__name__} has no feature hook "
                "(features(x) and head(features, size=None))"
            )
        feats = net.features(x)  # type: ignore[operator]
        out = net.head(feats, size=tuple(x.shape[-2:]))  # type: ignore[operator]
        self._count_forward(x, out)
        return feats, out

    def backward(self, loss: Tensor) -> None:
        """One counted backward pass on ``loss`` (no optimiser step: see :meth:`update`)."""
        loss.backward()
        self._stats["backward_passes"] += 1
        self._stats["image_backwards"] += self._pending_backward
        self._pending_backward = 0

    def update(self, loss: Tensor) -> None:
        """One counted backward pass and optimiser step on ``loss``."""
        if self.optimizer is None:
            raise RuntimeError(f"{type(self).__name__} has no parameters to train")
        self.backward(loss)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def end_step(self) -> None:
        """Mark the end of one adaptation step (one update of the model or its statistics).

        ``reset_every=K`` resets after every K steps; a ``predict`` that never calls this
        counts one step per batch. The default ``predict`` calls it once per step."""
        self._steps_in_call += 1
        self._steps_since_reset += 1
        self._stats["steps"] += 1
        every = self.options["reset_every"]
        if every is not None and self._steps_since_reset >= every:
            self.reset()

    def model_copy(self, model: nn.Module | None = None) -> nn.Module:
        """A frozen deep copy of the adapted model (or of ``model``) as it is now, for a
        teacher or an anchor: its parameters do not require grad, and :meth:`reset`
        restores its state bit for bit along with the model's."""
        dup = copy.deepcopy(self.model if model is None else model)
        dup.requires_grad_(False)
        self._copies.append((dup, copy.deepcopy(dup.state_dict())))
        return dup

    @property
    def generator(self) -> torch.Generator:
        """The method's CPU random generator, seeded from its option ``seed`` (0 when the
        method declares none). Every random draw of a method comes from here; it is not
        rewound by :meth:`reset`, so an episodic method draws afresh for each batch while
        the same seed and stream still give the same bits."""
        return self._generator

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
        """Restore the model, its copies (teachers, anchors) and the optimiser to the state
        right after construction (after :meth:`prepare_source`, for methods that take source
        data), exactly, and re-initialise the method's state (:meth:`reset_state`).

        Compute accounting (``stats``) is not reset: it measures all work done."""
        self.model.load_state_dict(self._model_state)
        for dup, state in self._copies:
            dup.load_state_dict(state)
        if self.optimizer is not None:
            self.optimizer.load_state_dict(self._optimizer_state)
            self.optimizer.zero_grad(set_to_none=True)
        self._steps_since_reset = 0
        self._stats["resets"] += 1
        self.reset_state()

    @property
    def stats(self) -> dict[str, float]:
        """Compute used so far: ``forward_passes``/``backward_passes`` (calls of the network
        on a batch), ``image_forwards``/``image_backwards`` (images through it, augmented
        views included), ``steps`` (adaptation steps), ``resets``, ``seconds``, ``calls``
        and ``frames``."""
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

    def _snapshot(self) -> None:
        self._model_state = copy.deepcopy(self.model.state_dict())
        self._copies = [(dup, copy.deepcopy(dup.state_dict())) for dup, _ in self._copies]
        self._optimizer_state = (
            copy.deepcopy(self.optimizer.state_dict()) if self.optimizer is not None else None
        )

    def _count_forward(self, x: Tensor, out: Any) -> None:
        self._stats["forward_passes"] += 1
        self._stats["image_forwards"] += int(x.shape[0])
        if isinstance(out, Tensor) and out.requires_grad:  # part of a graph a backward may use
            self._pending_backward += int(x.shape[0])

    def _check_core_options(self) -> None:
        o, label = self.options, self._label()
        if not isinstance(o["episodic"], bool):
            raise TypeError(f"{label}: option 'episodic' must be True or False")
        every = o["reset_every"]
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ValueError(
                f"{label}: option 'reset_every' must be None or an integer >= 1, got {every!r}"
            )
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
