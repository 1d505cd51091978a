"""Sentences that explain a number where it appears, each computed from the run folder alone.

- why the source model's clean row differs from the figure its checkpoint states;
- why methods that normalise with batch statistics lose accuracy on clean frames.

Each function returns None when the run holds nothing to explain. Mechanisms are named only for
the built-in methods whose behaviour this library documents (``bn`` batch-only or with a source
prior, ``tent``); any other method's loss is stated without a cause.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._analysis import Headline
from ._classes import FixedClasses, clean_confusion, per_class_iou
from ._load import RunData

#: A clean row within this of the stated figure (2 points of mIoU) needs no explanation.
STATED_GAP = 0.02
#: A class covering less than this share of the labelled pixels (0.1 %) is rare in the stream.
RARE_SHARE = 0.001
#: A clean-frame loss of at least this (2 points) against the source model is explained.
CLEAN_COST = 0.02


def _p(v: float) -> str:
    return f"{100 * v:.1f}"


def _and(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def source_label(data: RunData) -> str | None:
    """The unchanged model's label: the baseline when it is the ``source`` method, else the
    first method registered as ``source``."""
    labels = [m.get("label") for m in data.meta.get("methods") or [] if isinstance(m, dict)]
    if data.baseline and data.method_spec(data.baseline)[0] == "source":
        return data.baseline
    return next((lab for lab in labels if data.method_spec(lab)[0] == "source"), None)


def batch_statistics(data: RunData, label: str) -> float | None:
    """For a built-in method that normalises with test-batch statistics, the prior strength N
    it mixes the source statistics in with (0: batch statistics only); None otherwise."""
    name, options = data.method_spec(label)
    if name == "tent":
        return 0.0
    if name == "bn" and options.get("momentum") is None:
        return float(options.get("prior_strength") or 0.0)
    return None


def _drives(data: RunData) -> str:
    stream = data.meta.get("stream") if isinstance(data.meta.get("stream"), dict) else {}
    iid = stream.get("iid") if isinstance(stream.get("iid"), dict) else {}
    n = iid.get("drives")
    return f"{n} drives" if isinstance(n, int) else "several drives"


def stream_words(data: RunData) -> str:
    """What one cell scores, in words: '32 consecutive frames of one drive per seed'."""
    sc = data.scenario
    frames = sc.get("frames")
    sampling = data.sampling
    what = f"{frames} " if frames else ""
    stream = data.meta.get("stream") if isinstance(data.meta.get("stream"), dict) else {}
    parts = stream.get("label_shift")
    if isinstance(parts, list) and parts:
        return f"{what}frames of each of {len(parts)} domains in turn per seed (a label shift)"
    if data.data_source is not None:
        order = "in a seeded random order" if sampling == "iid" else "in file order"
        return f"{what}frames of the dataset {order}"
    if sampling == "iid":
        return f"{what}frames drawn from {_drives(data)} per seed (sampling: iid)"
    return f"{what}consecutive frames of one drive per seed"


def clean_vs_stated(data: RunData, heads: list[Headline], fixed: FixedClasses) -> str | None:
    """One sentence: the source model's clean row against the figure its checkpoint states."""
    model = data.meta.get("model") if isinstance(data.meta.get("model"), dict) else {}
    stated = model.get("clean_val_miou")
    src = source_label(data)
    head = next((h for h in heads if h.method == src), None)
    if not isinstance(stated, (int, float)) or head is None or head.clean.mean is None:
        return None
    who = "bundled model" if model.get("weights") == "bundled" else "model's checkpoint"
    clean = head.clean.mean
    if abs(clean - stated) < STATED_GAP:
        return (
            f"The {src} clean row ({_p(clean)}) agrees with the {who}'s stated clean mIoU "
            f"({_p(stated)}, on its held-out validation frames)."
        )
    why: list[str] = []
    cm = clean_confusion(data, src)
    fixed_text = (
        f"over the {fixed.size_label()} present it reads {_p(head.clean_fixed.mean)}"
        if head.clean_fixed.mean is not None and abs(head.clean_fixed.mean - clean) >= 0.0005
        else ""
    )
    if cm is not None:
        gt, pred = cm.sum(1), cm.sum(0)
        names = data.class_names
        phantom = [i for i in range(len(gt)) if gt[i] == 0 and pred[i] > 0]
        if phantom:
            why.append(
                f"{_and([names[i] for i in phantom])} "
                f"{'never appears' if len(phantom) == 1 else 'never appear'} in the ground truth "
                f"yet {'is' if len(phantom) == 1 else 'are'} predicted on "
                f"{_and([f'{int(pred[i]):,}' for i in phantom])} pixels (IoU 0 under the "
                "per-cell rule" + (f"; {fixed_text})" if fixed_text else ")")
            )
            fixed_text = ""
        rare = [i for i in range(len(gt)) if 0 < gt[i] < RARE_SHARE * float(gt.sum())]
        if rare:
            ious = per_class_iou(cm)
            why.append(
                f"{_and([names[i] for i in rare])} cover under {100 * RARE_SHARE:g} % of the "
                "labelled pixels (IoU "
                f"{_and(['—' if ious[i] is None else _p(ious[i]) for i in rare])})"
            )
    text = (
        f"The {who}'s stated clean mIoU, {_p(stated)}, is over its held-out validation frames; "
        f"this run's clean row ({_p(clean)}) scores {stream_words(data)}"
    )
    if why:
        text += ", where " + " and ".join(why)
    if fixed_text:
        text += f" ({fixed_text})"
    return text + "."


def clean_cost(data: RunData, heads: list[Headline], measured: str | None = None) -> str | None:
    """Why adapted methods lose accuracy on clean frames, where the mechanism is documented;
    ``measured``: the run's own video-vs-i.i.d. comparison (Findings (b)), when it has one."""
    src = source_label(data)
    ref = next((h for h in heads if h.method == src), None)
    if ref is None or ref.clean.mean is None:
        return None
    losers: list[tuple[str, float, float | None]] = []
    for h in heads:
        if h.method == src or h.clean.mean is None:
            continue
        loss = ref.clean.mean - h.clean.mean
        if loss >= CLEAN_COST:
            losers.append((h.method, loss, batch_statistics(data, h.method)))
    if not losers:
        return None
    only = [x for x in losers if x[2] == 0]
    mixed = [x for x in losers if x[2]]
    other = [x for x in losers if x[2] is None]
    sentences = []
    bs = data.scenario.get("batch_size")
    unit = f"{bs} " if bs else ""
    stream = data.meta.get("stream") if isinstance(data.meta.get("stream"), dict) else {}
    if data.data_source is not None:
        batch = f"a batch here is {unit}frames of the dataset" + (
            " in a random order" if data.sampling == "iid" else ", consecutive in file order"
        )
    elif data.sampling == "iid":
        batch = (
            f"a batch here is {unit}frames of {_drives(data)} shuffled together, so the loss "
            "does not come from consecutive frames"
        )
    elif isinstance(stream.get("label_shift"), list) and stream["label_shift"]:
        batch = f"a batch here is {unit}consecutive frames of one stream through several towns"
    else:
        batch = f"a batch here is {unit}consecutive frames of one drive"
    if only:
        one = len(only) == 1
        sentences.append(
            f"{_and([m for m, _, _ in only])} {'loses' if one else 'lose'} "
            f"{_and([_p(v) for _, v, _ in only])} points of clean mIoU against {src}: "
            f"{'it normalises' if one else 'they normalise'} each batch with its own "
            f"statistics instead of the source model's ({batch})."
        )
    for m, v, n in mixed:
        weight = f" (λ = N / (N + n) = {n / (n + bs):.2f} on the source statistics)" if bs else ""
        sentences.append(
            f"{m} loses {_p(v)} points: it mixes the batch statistics with the source model's "
            f"as a prior of strength N = {n:g}{weight}."
        )
    if (only or mixed) and measured:
        sentences.append(
            f"Measured in this run (Findings (b)): {measured[:1].lower()}{measured[1:]}"
        )
    elif (only or mixed) and data.sampling != "iid":
        sentences.append(
            "Whether the cost comes from the frames being consecutive, rather than from batch "
            "statistics as such, is what the iid-vs-video scenario measures (sampling: iid "
            "draws the same number of frames from many drives)."
        )
    if other:
        sentences.append(
            f"{_and([m for m, _, _ in other])} {'loses' if len(other) == 1 else 'lose'} "
            f"{_and([_p(v) for _, v, _ in other])} points of clean mIoU against {src}."
        )
    return " ".join(sentences)


def explain(data: RunData, tables: dict[str, Any]) -> list[str]:
    """The sentences shown under the headline table."""
    heads, fixed = tables["heads"], tables["fixed"]
    tested = tables["findings"][0] if "findings" in tables else []
    video = next((f.evidence for f in tested if f.key == "b"), None)
    out = [clean_vs_stated(data, heads, fixed), clean_cost(data, heads, video)]
    return [s for s in out if s]
