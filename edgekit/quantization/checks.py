"""Agreement of a quantized model with fp32 on the tuning items, and the budget decisions are held to.

One check for every quantizer (ONNX Runtime, NNCF, ai-edge-quantizer): **every output** of the model on each
tuning item against fp32's, measured as the held-out validation measures it: the cosine (mean / min) of the
outputs a cosine fits (:func:`edgekit.metrics.item_rows`, :func:`edgekit.metrics.row_cosine`), top-1 agreement
and the accuracy drop where labelled for a classifier, and the rule of each output's kind
(:func:`edgekit.metrics.compare`, :meth:`~edgekit.results.AccuracyBudget.outputs_failures`: a binary score's flip
rate, a dense map's IoU, a sequence's character error...). The check used to look at the first output by cosine
only: a [1, 1] speech probability (Silero VAD) read "cosine 1.000000" while 56% of its decisions flipped.

:class:`DecisionBudget` is the run's :class:`~edgekit.results.AccuracyBudget` (``--min-cosine``,
``--max-drop``, ``--budget-rule``) tightened by a margin: the tuning items are few and are not the held-out
items, so a decision that only just meets the budget on them is likely to miss it on held-out data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgekit.metrics import compare, item_rows, pool_tokens, row_cosine
from edgekit.results import AccuracyBudget, OutputMetrics

Feeds = dict[str, np.ndarray]
#: What a quantizer's ``run`` gives per feed: its first output (the older form) or every output, in order.
ItemOutputs = np.ndarray | Sequence[np.ndarray]


@dataclass(frozen=True)
class Check:
    """How a candidate's outputs agree with fp32's on ``items`` tuning items.

    ``cosine``/``cosine_min``: over the outputs a cosine fits (NaN when none does, e.g. one score per item);
    ``accuracy_drop_points``: fp32's accuracy minus the candidate's, in points, on the ``labelled`` items
    (None without labels or for a non-classifier); ``outputs``: every output's metrics by its kind, which the
    budget's per-output rules judge (:meth:`DecisionBudget.misses`)."""

    items: int
    cosine: float
    cosine_min: float
    top1_agreement: float | None = None
    accuracy_drop_points: float | None = None
    labelled: int = 0
    outputs: tuple[OutputMetrics, ...] = field(default=(), compare=False)

    def as_dict(self) -> dict[str, float]:
        """The numbers an artifact records under ``check``."""
        out = {"items": float(self.items), "cosine": self.cosine, "cosine_min": self.cosine_min}
        if self.top1_agreement is not None:
            out["top1_agreement"] = self.top1_agreement
        if self.accuracy_drop_points is not None:
            out["accuracy_drop_points"] = self.accuracy_drop_points
            out["labelled_items"] = float(self.labelled)
        return out

    def after(self, before: Check) -> dict[str, float]:
        """:meth:`as_dict` plus ``<key>_before_search`` of the check ``before`` a search."""
        out = self.as_dict()
        out.update({f"{k}_before_search": v for k, v in before.as_dict().items() if k != "items"})
        return out

    @property
    def has_vector_output(self) -> bool:
        return not np.isnan(self.cosine)

    @property
    def score(self) -> float:
        """One number, higher is better, that searches rank and compare by: the worst of the cosine and each
        output's own agreement (1 - flip rate, IoU, 1 - character error, 1 - relative error, detection recall and
        precision). With one classifier or embedding output it is the cosine."""
        parts = [self.cosine] if self.has_vector_output else []
        for o in self.outputs:
            parts += [1.0 - v for v in (o.flip_rate, o.char_error_rate, o.relative_error) if v is not None]
            parts += [v for v in ((o.iou if o.kind == "dense" else None), o.recall, o.precision) if v is not None]
        return min(parts) if parts else float("nan")

    def text(self) -> str:
        """The check in one phrase, with enough digits to tell cosines near 1 apart."""
        out = f"cosine {fmt_cosine(self.cosine)} (min {fmt_cosine(self.cosine_min)})" if self.has_vector_output else \
            "no output a cosine fits"
        for o in self.outputs:
            if o.flip_rate is not None:
                out += f", {o.name} flips {100.0 * o.flip_rate:.1f}%"
            if o.kind == "dense" and o.iou is not None:
                out += f", {o.name} IoU {o.iou:.3f}"
            if o.char_error_rate is not None:
                out += f", {o.name} char error {100.0 * o.char_error_rate:.1f}%"
            if o.relative_error is not None:
                out += f", {o.name} relative error {o.relative_error:.3g}"
        if self.top1_agreement is not None:
            out += f", top-1 agreement {self.top1_agreement:.3f}"
        if self.accuracy_drop_points is not None:
            out += f", accuracy drop {self.accuracy_drop_points:+.1f} pt on {self.labelled} labelled"
        return out + f" on {self.items} tuning items"


def fmt_cosine(x: float) -> str:
    """A cosine with enough digits to tell values near 1 apart."""
    return f"{x:.4f}" if x < 0.9995 else f"{x:.6f}"


def _outputs_of(item: ItemOutputs) -> list[np.ndarray]:
    return [item] if isinstance(item, np.ndarray) else [np.asarray(o) for o in item]


def _pooled(out: np.ndarray, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """A token output ``(B, S, H)`` with a matching ``attention_mask`` input mean-pooled over its real tokens (as
    the held-out validation of an encoder does): its per-token values are not a map to threshold."""
    mask = feeds.get("attention_mask")
    if np.ndim(out) == 3 and mask is not None and np.shape(mask) == np.shape(out)[:2]:
        return pool_tokens(np.asarray(out, dtype=np.float32), np.asarray(mask))
    return np.asarray(out)


def _items(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """One output over the items, ``(N, ...)``: outputs with a batch axis of 1 are concatenated on it; others (a
    recurrent state ``[2, 1, 128]``) are stacked, each item's whole output one item."""
    if all(np.ndim(a) >= 1 and np.shape(a)[0] == 1 for a in arrays):
        return np.concatenate(arrays)
    return np.stack(arrays)


def compare_items(feeds: Sequence[Mapping[str, np.ndarray]], reference: Sequence[ItemOutputs],
                  candidate: Sequence[ItemOutputs], labels: np.ndarray | None = None) -> Check:
    """Compare every output of a candidate with fp32's, one entry per feed (same order as ``feeds``): an array
    (the first output) or the list of outputs.

    The cosine covers the outputs with more than one value per item (token outputs (B, S, H) with an
    ``attention_mask`` input are pooled over real tokens first); top-1 agreement and accuracy apply to the first
    (B, classes) output. Every output is also measured by its kind (:func:`edgekit.metrics.compare`, each item's
    whole output as one item) for the budget's per-output rules."""
    if not reference:
        return Check(items=0, cosine=float("nan"), cosine_min=float("nan"))
    refs = [_outputs_of(r) for r in reference]
    gots = [_outputs_of(g) for g in candidate]
    cos_means: list[float] = []
    cos_mins: list[float] = []
    top1 = drop = None
    labelled = 0
    for k in range(len(refs[0])):
        ref_k = [r[k] for r in refs]
        if all(np.size(r) <= max(1, np.shape(r)[0] if np.ndim(r) else 1) for r in ref_k):
            continue  # one value per item: a score, judged by its flip rate below, never by the cosine of a scalar
        ref = np.concatenate([item_rows(r, f) for r, f in zip(ref_k, feeds, strict=True)])
        got = np.concatenate([item_rows(g[k], f) for g, f in zip(gots, feeds, strict=True)])
        cos = row_cosine(ref, got)
        cos_means.append(float(np.mean(cos)))
        cos_mins.append(float(np.min(cos)))
        if top1 is None and all(np.ndim(r) == 2 for r in ref_k) and ref.shape[1] > 1:
            r_top, g_top = ref.argmax(axis=1), got.argmax(axis=1)
            top1 = float(np.mean(r_top == g_top))
            if labels is not None and len(labels) == len(ref):
                y = np.asarray(labels).astype(np.int64)
                drop = 100.0 * (float(np.mean(r_top == y)) - float(np.mean(g_top == y)))
                labelled = len(y)
    try:
        stacked_ref = {f"output {k}": _items([_pooled(r[k], f) for r, f in zip(refs, feeds, strict=True)])
                       for k in range(len(refs[0]))}
        stacked_got = {f"output {k}": _items([_pooled(g[k], f) for g, f in zip(gots, feeds, strict=True)])
                       for k in range(len(refs[0]))}
        outputs = compare(stacked_ref, stacked_got).outputs
    except ValueError:  # outputs whose shape changes from item to item: the cosine alone judges them
        outputs = ()
    nan = float("nan")
    return Check(items=len(feeds), cosine=min(cos_means) if cos_means else nan,
                 cosine_min=min(cos_mins) if cos_mins else nan, top1_agreement=top1, accuracy_drop_points=drop,
                 labelled=labelled, outputs=tuple(outputs))


@dataclass(frozen=True)
class DecisionBudget:
    """The run's budget as the quantizers apply it to tuning items: :attr:`aim` keeps ``margin`` of each
    rule's slack in reserve (cosine 0.99, margin 0.25 -> 0.9925; drop 1.0 pt -> 0.75 pt), the rule choice
    (``budget.governs``) unchanged."""

    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    margin: float = 0.25

    @property
    def aim(self) -> AccuracyBudget:
        """The budget with ``margin`` of every rule's slack kept in reserve (per-output rules included)."""
        b, keep = self.budget, 1.0 - self.margin

        def up(x: float) -> float:  # a floor in [0, 1]: keep its distance to 1
            return round(1.0 - (1.0 - x) * keep, 9)

        return replace(b, max_drop_points=round(b.max_drop_points * keep, 9), min_cosine=up(b.min_cosine),
                       max_flip_rate=round(b.max_flip_rate * keep, 9),
                       max_relative_error=round(b.max_relative_error * keep, 9), min_iou=up(b.min_iou),
                       min_detection_match=up(b.min_detection_match),
                       max_sequence_error=round(b.max_sequence_error * keep, 9))

    def misses(self, check: Check) -> list[str]:
        """Why ``check`` is outside the aim (empty when it meets it): the cosine / accuracy rules, then the rule of
        each output's kind; a check of no items always misses."""
        if check.items == 0:
            return ["no tuning items: nothing measured"]
        aim = self.aim
        cosine = check.cosine if check.has_vector_output else None
        return aim.failures(cosine, check.accuracy_drop_points) + aim.outputs_failures(check.outputs)

    def meets(self, check: Check) -> bool:
        return not self.misses(check)

    def improves(self, new: Check, old: Check, min_gain: float) -> bool:
        """Whether ``new`` is worth its cost over ``old``: its :attr:`Check.score` (the cosine, for one classifier
        output) rises by ``min_gain``, or an output's own rule now holds, or, where the
        accuracy rule applies, fewer labelled tuning items are lost without the cosine falling by as much."""
        if new.score >= old.score + min_gain:
            return True
        fewer = len(self.aim.outputs_failures(new.outputs)) < len(self.aim.outputs_failures(old.outputs))
        if fewer and new.score > old.score - min_gain:
            return True  # an output's own rule (flips, IoU, ...) now holds, at no cost in agreement
        acc_rule = "accuracy" in self.aim.rules(new.accuracy_drop_points is not None)
        return (acc_rule and new.accuracy_drop_points is not None and old.accuracy_drop_points is not None
                and new.accuracy_drop_points < old.accuracy_drop_points and new.cosine > old.cosine - min_gain)

    def describe(self) -> str:
        """The thresholds decisions aim for, with the budget they come from."""
        a, b = self.aim, self.budget
        return (f"aim on tuning items: cosine >= {a.min_cosine:.6g} (--min-cosine {b.min_cosine:.10g}), accuracy "
                f"drop <= {a.max_drop_points:.3g} pt where labelled (--max-drop {b.max_drop_points:g}); margin "
                f"{self.margin:g} of the slack; --budget-rule {b.governs}")

    def as_dict(self) -> dict[str, Any]:
        a = self.aim
        return {"min_cosine": self.budget.min_cosine, "max_drop_points": self.budget.max_drop_points,
                "governs": self.budget.governs, "margin": self.margin, "aim_min_cosine": a.min_cosine,
                "aim_max_drop_points": a.max_drop_points}


class Judge:
    """The tuning items, fp32's outputs on them and their labels: measures every candidate the same way.

    ``run(model, feeds)`` returns the candidate's outputs per feed (the backend's runtime, real kernels): every
    output as a list, or only the first as an array.
    """

    def __init__(self, feeds: Sequence[Feeds], reference: Sequence[ItemOutputs], labels: np.ndarray | None,
                 run: Callable[[Any, Sequence[Feeds]], Sequence[ItemOutputs]]) -> None:
        self.feeds = list(feeds)
        self.reference = list(reference)
        self.labels = labels
        self._run = run

    def check(self, model: Any) -> Check:
        """``model`` against fp32 on every tuning item."""
        return compare_items(self.feeds, self.reference, self._run(model, self.feeds), self.labels)

    def first(self, n: int) -> Judge:
        """The same judge on the first ``n`` tuning items (rankings: cheaper, decisions use all)."""
        labels = self.labels[:n] if self.labels is not None else None
        return Judge(self.feeds[:n], self.reference[:n], labels, self._run)

    def __len__(self) -> int:
        return len(self.feeds)
