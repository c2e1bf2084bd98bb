"""The sensitivity search, written once for every quantizer: measure each layer's sensitivity, keep the worst
in float until the budget holds.

A backend (:class:`SearchBackend`) knows how to build its model with a set of layers kept float and how to
run it; the search knows nothing else about it. ONNX Runtime (:mod:`edgekit.quantization.onnx`: the node reads
its float weights again), NNCF (:mod:`edgekit.quantization.openvino`: ``IgnoredScope``) and ai-edge-quantizer
(:mod:`edgekit.quantization.tflite`: a ``no_quantize`` recipe entry for the op) implement it.

1. Rank the candidates: by the backend's own ranking where it has a cheap one (NNCF: each layer's output
   error in the quantized model), else by the cosine gain of keeping each one alone float, measured on the
   first ``rank_items`` tuning items.
2. Greedy, in ranked order: build with the kept layers plus the next one, measure on all tuning items, keep
   it when it is worth it (:meth:`DecisionBudget.improves`), until the budget's aim holds, ``max_float``
   layers are kept or ``2 * max_float`` tries are spent.

Every decision becomes a sentence in the notes. Only tuning items are used: never the items that set the
ranges, never held-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from edgekit.quantization.checks import Check, DecisionBudget, ItemOutputs, Judge, fmt_cosine

Feeds = dict[str, np.ndarray]
MIN_GAIN = 1e-4  # cosine gain below which keeping a layer float is not worth its speed
RANK_ITEMS = 8  # tuning items used to rank by gain (every tuning item verifies each decision)
Q = TypeVar("Q")


@dataclass(frozen=True)
class Trial:
    """A float-model transform tried against the model as given: both quantized, both checked on the tuning items."""

    plain: Any
    transformed: Any
    before: Check
    after: Check
    keep: bool

    @property
    def chosen(self) -> Any:
        return self.transformed if self.keep else self.plain

    def record(self) -> dict[str, Any]:
        return {"applied": self.keep, "tuning_cosine_without": self.before.cosine,
                "tuning_cosine_with": self.after.cosine}

    def note(self, judged_on: str = "") -> str:
        """The check before -> after and the verdict; ``judged_on`` says which model was checked, if not the one
        kept."""
        return (f"tuning cosine {fmt_cosine(self.before.cosine)} -> {fmt_cosine(self.after.cosine)} on "
                f"{self.after.items} tuning items{judged_on}: "
                + ("kept" if self.keep else f"not kept (needs +{MIN_GAIN:g})"))


def judged(plain: Any, transformed: Any, before: Check, after: Check, budget: DecisionBudget) -> Trial:
    """The :class:`Trial` of two checked candidates: the transform is kept when it improves the check by
    :data:`MIN_GAIN` (:meth:`DecisionBudget.improves`)."""
    return Trial(plain, transformed, before, after, budget.improves(after, before, MIN_GAIN))


def try_transform(quantize: Callable[[Any], Q], model_of: Callable[[Q], Any], float_model: Any, transformed: Any,
                  tuning: Sequence[Feeds], labels: np.ndarray | None,
                  run: Callable[[Any, Sequence[Feeds]], Sequence[Any]], budget: DecisionBudget) -> Trial:
    """Quantize ``float_model`` and its ``transformed`` copy, check both (``model_of`` the result) against the fp32
    model on the ``tuning`` items, and keep the transform when it improves the check by :data:`MIN_GAIN`
    (:meth:`DecisionBudget.improves`). Held-out items are never seen here."""
    plain, other = quantize(float_model), quantize(transformed)
    judge = Judge(tuning, run(float_model, tuning), labels, run)
    return judged(plain, other, judge.check(model_of(plain)), judge.check(model_of(other)), budget)


@dataclass(frozen=True)
class Ranked:
    """A candidate's sensitivity: ``score`` is a cosine gain when ``is_gain`` (comparable to
    :data:`MIN_GAIN`), else another measure where higher is worse (``what`` says which)."""

    name: str
    score: float
    is_gain: bool = True
    what: str = "sensitivity"


class SearchBackend(Protocol):
    """What the search needs from a quantizer: build with some layers float, run a model on feeds."""

    def build(self, kept_float: Sequence[str]) -> Any:
        """The quantized model with ``kept_float`` (candidate names) left in float."""
        ...

    def run(self, model: Any, feeds: Sequence[Feeds]) -> Sequence[ItemOutputs]:
        """The model's outputs on each feed (every one as a list, or the first as an array), with the runtime's
        real kernels."""
        ...

    def rank(self, candidates: Sequence[str], judge: Judge) -> list[Ranked] | None:
        """A cheaper ranking of ``candidates``, most sensitive first; None for the gain ranking."""
        ...


@dataclass(frozen=True)
class SearchResult:
    """The model the search ended with, the layers it kept float, and its check on all tuning items."""

    model: Any
    kept: tuple[str, ...]
    check: Check


def rank_by_gain(backend: SearchBackend, candidates: Sequence[str], judge: Judge) -> list[Ranked]:
    """Each candidate's cosine gain when it alone is kept float, on ``judge``'s items, best first."""
    base = judge.check(backend.build([])).score  # the cosine, or an output's own agreement where that is worse
    ranked = [Ranked(name, judge.check(backend.build([name])).score - base) for name in candidates]
    return sorted(ranked, key=lambda r: -r.score)


def sensitivity_search(backend: SearchBackend, candidates: Sequence[str], judge: Judge, model: Any, check: Check,
                       budget: DecisionBudget, *, max_float: int, notes: list[str], what: str = "weighted node",
                       rank_items: int = RANK_ITEMS, min_gain: float = MIN_GAIN) -> SearchResult:
    """Keep the most sensitive ``candidates`` float until ``budget`` holds on ``judge``'s tuning items.

    ``model`` / ``check``: the quantized model to start from and its check on all tuning items.
    """
    if budget.meets(check):
        return SearchResult(model, (), check)
    if not candidates or max_float == 0 or not len(judge):
        notes.append(f"sensitivity search: nothing to do ({len(candidates)} candidates, max {max_float} kept "
                     f"float, {len(judge)} tuning items)")
        return SearchResult(model, (), check)
    rank_judge = judge.first(rank_items)
    ranked = backend.rank(candidates, rank_judge)
    if ranked is None:
        ranked = rank_by_gain(backend, candidates, rank_judge)
        how = f"the cosine gain of keeping each alone in float ({len(rank_judge)} tuning items, real kernels)"
    else:
        how = f"{ranked[0].what if ranked else 'sensitivity'} (real kernels)"
    top = ", ".join(f"{r.name} {r.score:+.2g}" if r.is_gain else f"{r.name} {r.score:.3g}" for r in ranked[:5])
    notes.append(f"sensitivity search: ranked {len(ranked)} {what}s by {how}; top: {top}")
    kept: list[str] = []
    current, cur = model, check
    tries = 0
    for r in ranked:
        if budget.meets(cur) or len(kept) >= max_float:
            break
        if (r.is_gain and r.score < min_gain) or tries >= 2 * max_float:
            notes.append(f"sensitivity search stopped: next gain {r.score:+.2g} < {min_gain:g}"
                         if r.is_gain and r.score < min_gain else f"sensitivity search stopped after {tries} tries")
            break
        tries += 1
        trial = backend.build([*kept, r.name])
        got = judge.check(trial)
        if budget.improves(got, cur, min_gain):
            score = f"{r.score:+.2g}" if r.is_gain else f"{r.score:.3g}"
            notes.append(f"kept {r.name} in float: {r.what} {score}; {_moved(cur, got)} on {got.items} tuning items")
            kept.append(r.name)
            current, cur = trial, got
        else:
            notes.append(f"left {r.name} in int8: keeping it float did not help on the tuning items "
                         f"({_moved(cur, got)}; needs +{min_gain:g})")
    return SearchResult(current, tuple(kept), cur)


def _moved(old: Check, new: Check) -> str:
    text = f"cosine {fmt_cosine(old.cosine)} -> {fmt_cosine(new.cosine)}" if old.has_vector_output else \
        f"agreement score {old.score:.4f} -> {new.score:.4f}"
    if old.accuracy_drop_points is not None and new.accuracy_drop_points is not None:
        text += f", accuracy drop {old.accuracy_drop_points:+.1f} -> {new.accuracy_drop_points:+.1f} pt"
    return text


def budget_note(budget: DecisionBudget, check: Check) -> str | None:
    """A sentence when ``check`` misses the aim after everything a quantizer tried, else None."""
    misses = budget.misses(check)
    if not misses:
        return None
    return (f"aim not met on the tuning items ({'; '.join(misses)}): {check.text()}; the validate stage judges "
            "the artifact on held-out items")
