"""LAME: Laplacian-adjusted maximum-likelihood estimation (Boudiaf et al., CVPR 2022).

Facts from the authors' code (fiveai/LAME ``src/adaptation/lame.py``, ``configs/method``) and
the zoo's ``classification/methods/lame.py``; written anew on the public Adapter API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._adapt import Adapter, MethodTraits
from ._adapt_registry import register_adapter

AFFINITIES = ("knn", "rbf", "linear")
#: rows of the distance matrix computed at once (bounds memory at 1024 x nodes floats).
_CHUNK = 1024


def knn_indices(feats: Tensor, k: int) -> Tensor:
    """Indices (N, k') of each row's k nearest other rows (Euclidean), k' = min(k, N − 1)."""
    n = feats.shape[0]
    k = min(k, n - 1)
    norms = (feats * feats).sum(1)
    out = []
    for start in range(0, n, _CHUNK):
        rows = feats[start : start + _CHUNK]
        # ‖a − b‖² − ‖a‖², the same order as the distance, from one matrix product
        dist = torch.addmm(norms[None, :], rows, feats.T, alpha=-2.0)
        # a point is never its own neighbour, even when duplicates tie with it at distance 0
        dist[torch.arange(rows.shape[0]), torch.arange(start, start + rows.shape[0])] = math.inf
        out.append(dist.topk(k, dim=1, largest=False).indices)
    return torch.cat(out)


def laplacian_optimization(
    unary: Tensor, affinity: Any, max_steps: int = 100, bound_lambda: float = 1.0
) -> tuple[Tensor, Tensor]:
    """LAME's bound optimisation: Y ← softmax(−unary + λ·W·Y), from Y = softmax(−unary),
    at most ``max_steps`` times, stopping once the energy changes by ≤ 1e-8 relative (after
    the third step). ``affinity(Y)`` returns W·Y. Returns Y and the last pairwise term λ·W·Y
    that produced it."""
    y = (-unary).softmax(-1)
    old = math.inf
    pairwise = torch.zeros_like(y)
    for i in range(max_steps):
        pairwise = bound_lambda * affinity(y)
        y = (-unary + pairwise).softmax(-1)
        energy = float(
            (unary * y - bound_lambda * pairwise * y + y * torch.log(y.clip(1e-20))).sum()
        )
        if i > 1 and abs(energy - old) <= 1e-8 * abs(old):
            break
        old = energy
    return y, pairwise


@register_adapter(name="lame")
class LAME(Adapter):
    """LAME: corrects the outputs with a Laplacian over the batch's features; nothing trains.

    As the reference: unary = −log(p + 1e-10) of the model's softmax, features L2-normalised,
    a kNN affinity (``affinity`` "knn": W_ij = 1 for the ``knn`` nearest j of i, not
    symmetrised unless ``force_symmetry``; "rbf": exp(−d²/2σ²) with σ the mean distance to
    the k-th neighbour; "linear": feature dot products), and at most ``max_steps``
    fixed-point steps of :func:`laplacian_optimization` (λ = 1). No parameter changes, no
    backward pass, one forward pass per batch. Output: log of the corrected probabilities
    (valid logits).

    Dense prediction (no segmentation port exists): an exact graph over pixels is quadratic
    in their number (131,072 feature pixels per batch of 16 at 128×256), so the nodes are
    superpixels: the feature pixels of one ``node_stride`` × ``node_stride`` cell that the
    model assigns to the same class (features and probabilities averaged over them), over
    the whole batch as LAME's graph is. Each pixel's output is softmax(−unary_pixel +
    λ·(W·Y) of its node), the last step's correction applied to its own probabilities
    (with one pixel per node this is exactly LAME's Y). Measured on clean frames at 128×256
    (k = 5; mIoU): source 0.616, plain 4×4 cells 0.540 (a pole's pixels get the correction
    of the road around them), cells split by predicted class 0.598; merging a cell's rarer
    classes into its most frequent one costs 2-3 points even beyond its four most frequent;
    one graph per frame instead of per batch 0.542. At 64×128, where the exact pixel graph
    is affordable, it scores 0.552 and split cells 0.549. The cost is quadratic in the
    nodes, and under heavy noise nearly every pixel of a cell predicts another class
    (40,000 nodes per batch of 16 instead of 11,000), so when a batch has more than
    ``max_nodes`` nodes its cells are doubled in size until it fits. A point is never its
    own neighbour (the reference drops the first of the sorted neighbours, which is not the
    point itself when duplicates tie at distance 0). Needs the feature hook
    (``features``/``head``; the registered models have it).

    Defaults: ``knn`` 5 with the kNN affinity (the paper's choice; the reference code's
    default affinity is "rbf" with σ from the 5th neighbour), ``max_steps`` 100,
    ``force_symmetry`` False; ``node_stride`` 4 and ``max_nodes`` 16384 (twice the cells
    of a batch of 16 at 128×256) are ours.
    """

    uses_optimizer = False
    needs_features = True
    options: ClassVar[Mapping[str, Any]] = {
        "knn": 5,
        "affinity": "knn",
        "force_symmetry": False,
        "max_steps": 100,
        "node_stride": 4,
        "max_nodes": 16384,
    }
    traits = MethodTraits(updates="nothing (outputs only)", norm="none")

    def check_options(self) -> None:
        o = self.options
        for key in ("knn", "max_steps", "node_stride", "max_nodes"):
            v = o[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"lame: option {key!r} must be an integer >= 1, got {v!r}")
        if o["affinity"] not in AFFINITIES:
            raise ValueError(
                f"lame: option 'affinity' must be one of {', '.join(AFFINITIES)}, "
                f"got {o['affinity']!r}"
            )
        if not isinstance(o["force_symmetry"], bool):
            raise TypeError("lame: option 'force_symmetry' must be True or False")

    def predict(self, x: Tensor) -> Tensor:
        feats, logits = self.forward_features(x)
        feats = feats.float()
        b, d, h, w = feats.shape
        probs = logits.float().softmax(1)
        num_classes = probs.shape[1]
        # per feature pixel: its probabilities (averaged over the output pixels it covers),
        # and its node: the (cell, predicted class) it belongs to
        pixel_probs = (
            F.adaptive_avg_pool2d(probs, (h, w)).permute(0, 2, 3, 1).reshape(-1, num_classes)
        )
        label = pixel_probs.argmax(1)
        s = self.options["node_stride"]
        while True:  # coarser cells until the graph fits the node budget
            ids, inverse = self._nodes(label, b, h, w, s, num_classes)
            if len(ids) <= self.options["max_nodes"] or s >= max(h, w):
                break
            s *= 2
        count = torch.zeros(len(ids), device=feats.device).index_add_(
            0, inverse, torch.ones_like(inverse, dtype=torch.float32)
        )[:, None]
        pixel_feats = feats.permute(0, 2, 3, 1).reshape(-1, d)
        node_feats = torch.zeros((len(ids), d), device=feats.device).index_add_(
            0, inverse, pixel_feats
        )
        node_probs = torch.zeros((len(ids), num_classes), device=feats.device).index_add_(
            0, inverse, pixel_probs
        )
        unary = -torch.log(node_probs / count + 1e-10)
        nodes = F.normalize(node_feats / count, p=2, dim=-1)
        _, pairwise = laplacian_optimization(
            unary, self._affinity(nodes), max_steps=self.options["max_steps"]
        )
        pairwise = pairwise[inverse].reshape(b, h, w, num_classes).permute(0, 3, 1, 2)
        pairwise = F.interpolate(pairwise, size=logits.shape[-2:], mode="nearest")
        out = (torch.log(probs + 1e-10) + pairwise).log_softmax(1)
        return out.to(logits.dtype)

    @staticmethod
    def _nodes(
        label: Tensor, b: int, h: int, w: int, s: int, num_classes: int
    ) -> tuple[Tensor, Tensor]:
        """Node ids (sorted) and each feature pixel's node: its (image, cell, class)."""
        rows = torch.arange(h, device=label.device) // s
        cols = torch.arange(w, device=label.device) // s
        cell = (rows[:, None] * (-(-w // s)) + cols[None, :]).reshape(1, -1)
        cell = cell + torch.arange(b, device=label.device)[:, None] * cell.max().add(1)
        return torch.unique(cell.reshape(-1) * num_classes + label, return_inverse=True)

    def _affinity(self, nodes: Tensor) -> Any:
        """A function Y -> W·Y for the configured affinity over ``nodes`` (N, d)."""
        kind, k, n = self.options["affinity"], self.options["knn"], nodes.shape[0]
        sym = self.options["force_symmetry"]
        if kind == "knn":
            if n < 2:
                return torch.zeros_like
            idx = knn_indices(nodes, k)

            def apply(y: Tensor) -> Tensor:
                wy = y[idx].sum(1)
                if sym:  # (W + Wᵀ)/2 · Y
                    votes = y.repeat_interleave(idx.shape[1], 0)  # row i once per neighbour
                    wty = torch.zeros_like(y).index_add_(0, idx.reshape(-1), votes)
                    wy = 0.5 * (wy + wty)
                return wy

            return apply
        dist = torch.cdist(nodes, nodes)
        if kind == "rbf":
            kth = dist.topk(min(k, n), dim=-1, largest=False).values[:, -1]
            w = torch.exp(-(dist**2) / (2 * kth.mean() ** 2))
        else:
            w = nodes @ nodes.T
        if sym:
            w = 0.5 * (w + w.T)
        return lambda y: w @ y
