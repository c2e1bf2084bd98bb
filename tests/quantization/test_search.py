"""The shared sensitivity search, on a small numeric backend: which layers it keeps float, when it stops, and
the sentence each decision leaves. (The real backends run it in tests/formats: ORT, NNCF, ai-edge-quantizer.)"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.quantization.checks import Check, DecisionBudget, Judge
from edgekit.quantization.search import Ranked, sensitivity_search
from edgekit.results import AccuracyBudget

Feeds = dict[str, np.ndarray]


class Layers:
    """A "model" is the set of layers kept float; each int8 layer adds its own error to the fp32 output."""

    def __init__(self, errors: dict[str, float], ranking: list[Ranked] | None = None) -> None:
        rng = np.random.default_rng(0)
        self.errors = {name: size * rng.standard_normal(10) for name, size in errors.items()}
        self.ranking = ranking
        self.builds: list[tuple[str, ...]] = []

    def build(self, kept_float: Sequence[str]) -> frozenset[str]:
        self.builds.append(tuple(kept_float))
        return frozenset(kept_float)

    def run(self, model: frozenset[str], feeds: Sequence[Feeds]) -> list[np.ndarray]:
        noise = sum((e for n, e in self.errors.items() if n not in model), np.zeros(10))
        return [(f["x"] + noise).reshape(1, -1) for f in feeds]

    def rank(self, candidates: Sequence[str], judge: Judge) -> list[Ranked] | None:
        return self.ranking


def _judge(backend: Layers, n: int = 12) -> Judge:
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal(10) + 3.0} for _ in range(n)]
    return Judge(feeds, [f["x"].reshape(1, -1) for f in feeds], None, backend.run)


def _budget(min_cosine: float) -> DecisionBudget:
    return DecisionBudget(AccuracyBudget(min_cosine=min_cosine), margin=0.0)


def test_keeps_the_worst_layers_float_until_the_aim_holds() -> None:
    layers = Layers({"a": 0.05, "b": 2.0, "c": 0.5, "d": 1.0})
    judge = _judge(layers)
    start = layers.build([])
    check = judge.check(start)
    notes: list[str] = []
    aim = judge.check(frozenset({"b", "d"})).cosine - 1e-6  # reached once b and d are float
    result = sensitivity_search(layers, list(layers.errors), judge, start, check, _budget(aim), max_float=3,
                                notes=notes)
    assert result.kept == ("b", "d") and result.check.cosine > check.cosine
    assert notes[0].startswith("sensitivity search: ranked 4 weighted nodes by the cosine gain")
    assert "top: b +" in notes[0]
    assert notes[1].startswith("kept b in float: sensitivity +") and notes[2].startswith("kept d in float")
    assert len(notes) == 3  # the aim holds: no further trial
    # the ranking measured each layer alone on the first 8 items; decisions used all 12
    assert result.check.items == 12 and [("a",), ("b",), ("c",), ("d",)] == layers.builds[2:6]


def test_stops_at_max_float_and_at_gains_too_small_to_pay() -> None:
    layers = Layers({"a": 0.0, "b": 2.0, "c": 1e-6, "d": 1.0})
    judge = _judge(layers)
    start = layers.build([])
    notes: list[str] = []
    capped = sensitivity_search(layers, list(layers.errors), judge, start, judge.check(start), _budget(1.0),
                                max_float=1, notes=notes)
    assert capped.kept == ("b",)
    notes = []
    small = sensitivity_search(layers, list(layers.errors), judge, start, judge.check(start), _budget(1.0),
                               max_float=4, notes=notes)
    assert small.kept == ("b", "d") and notes[-1].startswith("sensitivity search stopped: next gain")


def test_a_layer_the_ranking_favours_is_left_int8_when_it_does_not_help() -> None:
    ranking = [Ranked("a", 9.0, is_gain=False, what="relative output error"),
               Ranked("b", 1.0, is_gain=False, what="relative output error")]
    layers = Layers({"a": 0.0, "b": 1.0}, ranking)
    judge = _judge(layers)
    start = layers.build([])
    notes: list[str] = []
    result = sensitivity_search(layers, ["a", "b"], judge, start, judge.check(start), _budget(0.9999), max_float=2,
                                notes=notes, what="weighted layer")
    assert result.kept == ("b",)
    assert notes[0].startswith("sensitivity search: ranked 2 weighted layers by relative output error")
    assert notes[1].startswith("left a in int8: keeping it float did not help on the tuning items")
    assert notes[2].startswith("kept b in float: relative output error 1")


def test_nothing_to_do_when_the_aim_holds_or_nothing_can_be_kept_float() -> None:
    layers = Layers({"a": 0.01})
    judge = _judge(layers)
    start = layers.build([])
    notes: list[str] = []
    met = sensitivity_search(layers, ["a"], judge, start, judge.check(start), _budget(0.9), max_float=2, notes=notes)
    assert met.kept == () and notes == [] and met.model is start
    none = sensitivity_search(layers, ["a"], judge, start, judge.check(start), _budget(1.0), max_float=0, notes=notes)
    assert none.kept == () and notes[0].startswith("sensitivity search: nothing to do")


def test_fewer_labelled_items_lost_counts_as_help_where_the_accuracy_rule_applies() -> None:
    """A layer whose float weights flip a labelled tuning item back is worth keeping even when the cosine
    barely moves; under --budget-rule cosine it is not."""
    budget_both = DecisionBudget(AccuracyBudget(min_cosine=0.5, max_drop_points=1.0), margin=0.0)
    budget_cos = DecisionBudget(AccuracyBudget(min_cosine=0.5, max_drop_points=1.0, governs="cosine"), margin=0.0)
    old = Check(items=12, cosine=0.990, cosine_min=0.9, top1_agreement=0.9, accuracy_drop_points=8.3, labelled=12)
    new = Check(items=12, cosine=0.99005, cosine_min=0.9, top1_agreement=1.0, accuracy_drop_points=0.0, labelled=12)
    assert budget_both.improves(new, old, 1e-4) and not budget_cos.improves(new, old, 1e-4)
    assert not budget_both.meets(old) and budget_both.meets(new) and budget_cos.meets(old)
