"""Agreement of a quantized model with fp32 on the tuning items, and the budget decisions are held to.

One check for every quantizer (ONNX Runtime, NNCF, ai-edge-quantizer): the model's first output on each
tuning item against fp32's, measured exactly as the held-out validation measures it
(:func:`edgekit.metrics.item_rows`, :func:`edgekit.metrics.row_cosine`): mean / min cosine, top-1 agreement
for classifiers, and the accuracy drop where the tuning items carry labels.

:class:`DecisionBudget` is the run's :class:`~edgekit.results.AccuracyBudget` (``--min-cosine``,
``--max-drop``, ``--budget-rule``) tightened by a margin: the tuning items are few and are not the held-out
items, so a decision that only just meets the budget on them is likely to miss it on held-out data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.metrics import item_rows, row_cosine
from edgekit.results import AccuracyBudget

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Check:
    """How a candidate's first output agrees with fp32's on ``items`` tuning items.

    ``accuracy_drop_points``: fp32's accuracy minus the candidate's, in points, on the ``labelled`` items
    (None without labels or for a non-classifier)."""

    items: int
    cosine: float
    cosine_min: float
    top1_agreement: float | None = None
    accuracy_drop_points: float | None = None
    labelled: int = 0

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

    def text(self) -> str:
        """The check in one phrase, with enough digits to tell cosines near 1 apart."""
        out = f"cosine {fmt_cosine(self.cosine)} (min {fmt_cosine(self.cosine_min)})"
        if self.top1_agreement is not None:
            out += f", top-1 agreement {self.top1_agreement:.3f}"
        if self.accuracy_drop_points is not None:
            out += f", accuracy drop {self.accuracy_drop_points:+.1f} pt on {self.labelled} labelled"
        return out + f" on {self.items} tuning items"


def fmt_cosine(x: float) -> str:
    """A cosine with enough digits to tell values near 1 apart."""
    return f"{x:.4f}" if x < 0.9995 else f"{x:.6f}"


def compare_items(feeds: Sequence[Mapping[str, np.ndarray]], reference: Sequence[np.ndarray],
                  candidate: Sequence[np.ndarray], labels: np.ndarray | None = None) -> Check:
    """Compare the first output of a candidate with fp32's, one array per feed (same order as ``feeds``).

    Token outputs (B, S, H) with an ``attention_mask`` input are pooled over real tokens first; top-1
    agreement and accuracy apply to (B, classes) outputs only."""
    ref_rows = [item_rows(r, f) for r, f in zip(reference, feeds, strict=True)]
    got_rows = [item_rows(g, f) for g, f in zip(candidate, feeds, strict=True)]
    if not ref_rows:
        return Check(items=0, cosine=float("nan"), cosine_min=float("nan"))
    ref, got = np.concatenate(ref_rows), np.concatenate(got_rows)
    cos = row_cosine(ref, got)
    classifier = all(np.ndim(r) == 2 for r in reference) and ref.shape[1] > 1
    top1 = drop = None
    labelled = 0
    if classifier:
        r_top, g_top = ref.argmax(axis=1), got.argmax(axis=1)
        top1 = float(np.mean(r_top == g_top))
        if labels is not None and len(labels) == len(ref):
            y = np.asarray(labels).astype(np.int64)
            drop = 100.0 * (float(np.mean(r_top == y)) - float(np.mean(g_top == y)))
            labelled = len(y)
    return Check(items=len(feeds), cosine=float(np.mean(cos)), cosine_min=float(np.min(cos)),
                 top1_agreement=top1, accuracy_drop_points=drop, labelled=labelled)


@dataclass(frozen=True)
class DecisionBudget:
    """The run's budget as the quantizers apply it to tuning items: :attr:`aim` keeps ``margin`` of each
    rule's slack in reserve (cosine 0.99, margin 0.25 -> 0.9925; drop 1.0 pt -> 0.75 pt), the rule choice
    (``budget.governs``) unchanged."""

    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    margin: float = 0.25

    @property
    def aim(self) -> AccuracyBudget:
        b, keep = self.budget, 1.0 - self.margin
        return AccuracyBudget(max_drop_points=round(b.max_drop_points * keep, 9),
                              min_cosine=round(1.0 - (1.0 - b.min_cosine) * keep, 9), governs=b.governs)

    def misses(self, check: Check) -> list[str]:
        """Why ``check`` is outside the aim (empty when it meets it); a check of no items always misses."""
        if check.items == 0:
            return ["no tuning items: nothing measured"]
        return self.aim.failures(check.cosine, check.accuracy_drop_points)

    def meets(self, check: Check) -> bool:
        return not self.misses(check)

    def improves(self, new: Check, old: Check, min_gain: float) -> bool:
        """Whether ``new`` is worth its cost over ``old``: the cosine rises by ``min_gain``, or, where the
        accuracy rule applies, fewer labelled tuning items are lost without the cosine falling by as much."""
        if new.cosine >= old.cosine + min_gain:
            return True
        acc_rule = "accuracy" in self.aim.rules(new.accuracy_drop_points is not None)
        return (acc_rule and new.accuracy_drop_points is not None and old.accuracy_drop_points is not None
                and new.accuracy_drop_points < old.accuracy_drop_points and new.cosine > old.cosine - min_gain)

    def describe(self) -> str:
        """The thresholds decisions aim for, with the budget they come from."""
        a, b = self.aim, self.budget
        return (f"aim on tuning items: cosine >= {a.min_cosine:.6g} (--min-cosine {b.min_cosine:g}), accuracy "
                f"drop <= {a.max_drop_points:.3g} pt where labelled (--max-drop {b.max_drop_points:g}); margin "
                f"{self.margin:g} of the slack; --budget-rule {b.governs}")

    def as_dict(self) -> dict[str, Any]:
        a = self.aim
        return {"min_cosine": self.budget.min_cosine, "max_drop_points": self.budget.max_drop_points,
                "governs": self.budget.governs, "margin": self.margin, "aim_min_cosine": a.min_cosine,
                "aim_max_drop_points": a.max_drop_points}


class Judge:
    """The tuning items, fp32's outputs on them and their labels: measures every candidate the same way.

    ``run(model, feeds)`` returns the candidate's first output per feed (the backend's runtime, real kernels).
    """

    def __init__(self, feeds: Sequence[Feeds], reference: Sequence[np.ndarray], labels: np.ndarray | None,
                 run: Callable[[Any, Sequence[Feeds]], list[np.ndarray]]) -> None:
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
