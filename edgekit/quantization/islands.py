"""Higher-precision islands before float islands: the fixes the static int8 search gives a sensitive node, each
priced by the latency it costs on the real kernels. Written once over :class:`IslandBackend`: ONNX Runtime
(:class:`OnnxIslands`, below) and LiteRT (:class:`~edgekit.quantization.tflite_search.TfliteIslands`: an
ai-edge-quantizer recipe entry per island, 16x8 ops or ``no_quantize``) implement it.

Where the sensitivity search (:mod:`edgekit.quantization.search`) would keep a node in float, every fix named in
``StaticInt8Options.islands`` (``TfliteInt8Options.islands``) is tried on it; for ONNX:

* ``"int16"``: the node's activation inputs get 16-bit Q/DQ (A16W8: uint16 where the recipe's activations are
  uint8, int16 where int8; weights stay int8), quantized again by ONNX Runtime from the same calibrated ranges with
  its ``TensorQuantOverrides``. 16-bit Q/DQ exists from opset 21: ORT converts the model
  (``onnx.version_converter``) when an island is made. Its output stays 8-bit: with 16-bit Q/DQ on both sides,
  ORT 1.32 fuses DQ -> MatMul -> Q into ``MatMulNBits``, whose default accuracy level quantizes the activations to
  int8 again, per block (a planted outlier case went from cosine 0.999 to 0.68).
* ``"float"``: the node reads its float weights again, its activations stay int8 (what the search always did).

Each trial is judged on every tuning item and priced: the whole model's median latency on one tuning item at
1 thread, interleaved with the model before the decision (:func:`interleaved_latency`); a TFLite build meant for
an Ethos-U NPU may be priced by Vela's estimate instead (``TfliteInt8Options.price_on``; :attr:`IslandBackend.pricing`
says which, in every decision). Of the fixes that reach the aim the cheapest is kept (the earlier one in
``islands`` unless a later one is cheaper by more than :data:`LATENCY_TOLERANCE`); when none reaches it, the fix
with the best score that improves the model. The ranking takes each node's best gain over the fixes.
``islands=("float",)`` is the plain :func:`~edgekit.quantization.search.sensitivity_search`, unpriced. Only tuning
items are used: never the items that set the ranges, never held-out items.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit.errors import ConfigError, QuantizationError, first_line
from edgekit.quantization.checks import Check, DecisionBudget, ItemOutputs, Judge, fmt_cosine
from edgekit.quantization.onnx_ort import run_model, session
from edgekit.quantization.onnx_qdq import with_float_weights
from edgekit.quantization.search import MIN_GAIN, RANK_ITEMS, Ranked, SearchBackend, sensitivity_search

Feeds = dict[str, np.ndarray]
ISLAND_KINDS = ("int16", "float")
LATENCY_ROUNDS = 11  # interleaved timed samples of each candidate per decision (median)
LATENCY_SAMPLE_S = 0.002  # a sample repeats the run until it lasts about this long (tiny models)
LATENCY_TOLERANCE = 0.02  # a later fix must be cheaper by this share of the model's latency to be preferred
MEASURED = f"median of {LATENCY_ROUNDS} interleaved runs on one tuning item, 1 thread"
_WORDS = {"int16": "at 16-bit activations", "float": "in float"}
_INTEGER_OPS = ("QLinear", "Integer", "QGemm", "QAttention", "DynamicQuantize")


def check_islands(value: Any, where: str = "static_int8.islands") -> tuple[str, ...]:
    """``value`` as a tuple of fixes in the order tried: each of :data:`ISLAND_KINDS` at most once, at least one."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError("expected a list of fixes", where=where, expected=", ".join(ISLAND_KINDS), got=value)
    out = tuple(value)
    if not out or len(set(out)) != len(out) or any(v not in ISLAND_KINDS for v in out):
        raise ConfigError("each fix once, at least one", where=where, expected=", ".join(ISLAND_KINDS), got=value)
    return out


def island_tensors(float_model: Any, nodes: Sequence[str]) -> list[str]:
    """The activation inputs of ``nodes`` (those that are not initializers), in graph order."""
    inits = {i.name for i in float_model.graph.initializer}
    wanted = set(nodes)
    out: list[str] = []
    for n in float_model.graph.node:
        if n.name in wanted:
            out += [t for t in n.input if t and t not in inits and t not in out]
    return out


def interleaved_ms(calls: Sequence[Callable[[], object]], rounds: int = LATENCY_ROUNDS) -> list[float]:
    """Median ms of each call (a model bound to its feed, 1 thread), the calls timed in turn, round after round;
    a sample repeats a call until it lasts about :data:`LATENCY_SAMPLE_S` (tiny models)."""
    repeat = 1
    for call in calls:
        t = time.perf_counter()
        for _ in range(2):
            call()
        repeat = max(repeat, int(LATENCY_SAMPLE_S / max((time.perf_counter() - t) / 2, 1e-7)))
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            t = time.perf_counter()
            for _ in range(repeat):
                call()
            samples[i].append((time.perf_counter() - t) * 1e3 / repeat)
    return [float(np.median(s)) for s in samples]


def interleaved_latency(models: Sequence[Any], feed: Feeds, rounds: int = LATENCY_ROUNDS) -> list[float]:
    """Median ms of one ONNX Runtime run of each model on ``feed`` at 1 thread, interleaved (:func:`interleaved_ms`)."""
    sessions = [session(m, threads=1) for m in models]
    calls: list[Callable[[], object]] = [functools.partial(s.run, None, feed) for s in sessions]
    return interleaved_ms(calls, rounds)


class IslandBackend(Protocol):
    """What :func:`island_search` needs of a quantizer: build the model with a fix per node (``fixes``: node ->
    one of :data:`ISLAND_KINDS`), run it on feeds, time models interleaved on one feed (median ms each), and say
    which kernels run the 16-bit islands. ``pricing``: how :meth:`latency` prices, as the notes say it."""

    pricing: str

    def build(self, fixes: Mapping[str, str]) -> Any: ...

    def run(self, model: Any, feeds: Sequence[Feeds]) -> Sequence[ItemOutputs]: ...

    def latency(self, models: Sequence[Any], feed: Feeds) -> list[float]: ...

    def int16_note(self, model: Any, nodes: Sequence[str]) -> str: ...


class OnnxIslands:
    """Builds an ORT QDQ model with some nodes at 16-bit activations and some reading float weights.

    ``quantize16(tensors)``: the quantized model (same ranges, op types and exclusions as ``base``) with
    ``tensors`` in 16 bits; the last few builds are kept (the greedy steps reuse the ranking's)."""

    pricing = MEASURED

    def __init__(self, base: Any, quantize16: Callable[[Sequence[str]], Any], float_model: Any,
                 weights: Mapping[str, list[tuple[int, Any]]], where: str) -> None:
        self._q16 = quantize16
        self._float_model = float_model
        self._weights = weights
        self._where = where
        self._cache: dict[frozenset[str], Any] = {frozenset(): base}

    def build(self, fixes: Mapping[str, str]) -> Any:
        wide = frozenset(n for n, f in fixes.items() if f == "int16")
        if wide not in self._cache:
            if len(self._cache) > 4:
                del self._cache[next(k for k in self._cache if k)]
            self._cache[wide] = self._q16(island_tensors(self._float_model, sorted(wide)))
        floats = [n for n, f in fixes.items() if f == "float"]
        return with_float_weights(self._cache[wide], floats, self._weights) if floats else self._cache[wide]

    def run(self, model: Any, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
        return run_model(model, feeds, self._where)

    def latency(self, models: Sequence[Any], feed: Feeds) -> list[float]:
        return interleaved_latency(models, feed)

    def int16_note(self, model: Any, nodes: Sequence[str]) -> str:
        return int16_kernel_note(model, nodes)


class _FloatOnly:
    """An :class:`IslandBackend` as a plain :class:`SearchBackend` (``islands=("float",)``)."""

    def __init__(self, islands: IslandBackend) -> None:
        self._islands = islands

    def build(self, kept_float: Sequence[str]) -> Any:
        return self._islands.build(dict.fromkeys(kept_float, "float"))

    def run(self, model: Any, feeds: Sequence[Feeds]) -> Sequence[ItemOutputs]:
        return self._islands.run(model, feeds)

    def rank(self, candidates: Sequence[str], judge: Judge) -> list[Ranked] | None:
        return None


@dataclass(frozen=True)
class IslandResult:
    """The model the search ended with, each node's fix (in the order chosen), its check on all tuning items,
    and one record per decision (fix, cosine before / after, latency cost, the alternatives tried)."""

    model: Any
    fixes: dict[str, str]
    check: Check
    decisions: tuple[dict[str, Any], ...] = ()


def _trial(backend: IslandBackend, fixes: Mapping[str, str], judge: Judge) -> tuple[Any, Check] | str:
    """(model, check) with ``fixes``, or why it could not be built or run."""
    try:
        model = backend.build(fixes)
        return model, judge.check(model)
    except QuantizationError as exc:
        return first_line(exc, 200)


def _cos(check: Check) -> str:
    return f"cosine {fmt_cosine(check.cosine)}" if check.has_vector_output else f"agreement score {check.score:.4f}"


def _rank(backend: IslandBackend, candidates: Sequence[str], islands: Sequence[str],
          judge: Judge) -> tuple[list[Ranked], dict[str, str]]:
    """Each candidate's best gain over the fixes, each alone, most sensitive first; and which fix gave it."""
    first = _trial(backend, {}, judge)
    if isinstance(first, str):
        raise QuantizationError(f"the quantized model could not be judged: {first}")
    base = first[1].score
    ranked: list[Ranked] = []
    best: dict[str, str] = {}
    for name in candidates:
        gains = {fix: got[1].score - base for fix in islands
                 if not isinstance(got := _trial(backend, {name: fix}, judge), str)}
        if gains:
            best[name] = max(gains, key=lambda f: gains[f])
            ranked.append(Ranked(name, gains[best[name]]))
    return sorted(ranked, key=lambda r: -r.score), best


def island_search(backend: IslandBackend, candidates: Sequence[str], judge: Judge, model: Any, check: Check,
                  budget: DecisionBudget, islands: Sequence[str], *, max_nodes: int, notes: list[str],
                  min_gain: float = MIN_GAIN, what: str = "weighted node") -> IslandResult:
    """Give the most sensitive ``candidates`` their cheapest fix that reaches the aim, until the aim holds.

    ``model`` / ``check``: the quantized model to start from and its check on all tuning items."""
    if tuple(islands) == ("float",):
        plain: SearchBackend = _FloatOnly(backend)
        res = sensitivity_search(plain, candidates, judge, model, check, budget, max_float=max_nodes, notes=notes,
                                 what=what)
        return IslandResult(res.model, dict.fromkeys(res.kept, "float"), res.check)
    if budget.meets(check):
        return IslandResult(model, {}, check)
    if not candidates or max_nodes == 0 or not len(judge):
        notes.append(f"sensitivity search: nothing to do ({len(candidates)} candidates, max {max_nodes} given a "
                     f"fix, {len(judge)} tuning items)")
        return IslandResult(model, {}, check)
    rank_judge = judge.first(RANK_ITEMS)
    t0 = time.perf_counter()
    ranked, best = _rank(backend, candidates, islands, rank_judge)
    top = ", ".join(f"{r.name} {r.score:+.2g} ({best[r.name]})" for r in ranked[:5])
    notes.append(f"sensitivity search: ranked {len(ranked)} {what}s by the best cosine gain of "
                 f"{' / '.join(islands)} alone ({len(rank_judge)} tuning items, real kernels, "
                 f"{time.perf_counter() - t0:.1f} s); top: {top}")
    fixes: dict[str, str] = {}
    decisions: list[dict[str, Any]] = []
    current, cur = model, check
    tries = 0
    for r in ranked:
        if budget.meets(cur) or len(fixes) >= max_nodes:
            break
        if r.score < min_gain or tries >= 2 * max_nodes:
            notes.append(f"sensitivity search stopped: next gain {r.score:+.2g} < {min_gain:g}"
                         if r.score < min_gain else f"sensitivity search stopped after {tries} tries")
            break
        tries += 1
        step = _decide(backend, r, fixes, judge, current, cur, budget, islands, min_gain, notes)
        if step is not None:
            fixes[r.name] = step[2]["fix"]
            current, cur = step[0], step[1]
            decisions.append(step[2])
    if fixes and "int16" in fixes.values():
        notes.append(backend.int16_note(current, [n for n, f in fixes.items() if f == "int16"]))
    return IslandResult(current, fixes, cur, tuple(decisions))


def _decide(backend: IslandBackend, r: Ranked, fixes: Mapping[str, str], judge: Judge, current: Any, cur: Check,
            budget: DecisionBudget, islands: Sequence[str], min_gain: float,
            notes: list[str]) -> tuple[Any, Check, dict[str, Any]] | None:
    """Try every fix on ``r``, price each, keep the cheapest that reaches the aim (else the best that improves)."""
    tried: dict[str, tuple[Any, Check]] = {}
    for fix in islands:
        trial = _trial(backend, {**fixes, r.name: fix}, judge)
        if isinstance(trial, str):
            notes.append(f"{r.name} {_WORDS[fix]} could not be built or run: {trial}")
        else:
            tried[fix] = trial
    if not tried:
        return None
    ms = backend.latency([current, *(m for m, _ in tried.values())], judge.feeds[0])
    cost = {fix: ms[i + 1] / ms[0] - 1.0 for i, fix in enumerate(tried)}
    reach = [f for f in tried if budget.meets(tried[f][1])]
    if reach:
        chosen = reach[0]
        for f in reach[1:]:
            if cost[f] < cost[chosen] - LATENCY_TOLERANCE:
                chosen = f
    else:
        helps = [f for f in tried if budget.improves(tried[f][1], cur, min_gain)]
        if not helps:
            alts = "; ".join(f"{_WORDS[f]}: {_cos(c)}, {100 * cost[f]:+.0f}% latency" for f, (_, c) in tried.items())
            notes.append(f"left {r.name} in int8: no fix helped on the tuning items ({_cos(cur)}; {alts}; "
                         f"needs +{min_gain:g})")
            return None
        chosen = max(helps, key=lambda f: (tried[f][1].score, -cost[f]))
    model, got = tried[chosen]
    others = "; ".join(f"{'float' if f == 'float' else 'a 16-bit island'} would "
                       f"{'reach' if f in reach else 'give'} {_cos(c)} at {100 * cost[f]:+.0f}% latency"
                       for f, (_, c) in tried.items() if f != chosen)
    accuracy = f"{_cos(cur)} -> {fmt_cosine(got.cosine) if got.has_vector_output else f'{got.score:.4f}'}"
    notes.append(f"kept {r.name} {_WORDS[chosen]}: sensitivity {r.score:+.2g}; {accuracy} on {got.items} tuning "
                 f"items, {100 * cost[chosen]:+.0f}% latency ({ms[0]:.3g} -> {ms[1 + list(tried).index(chosen)]:.3g} "
                 f"ms, {backend.pricing})"
                 + (f"; {others}" if others else ""))
    record = {"node": r.name, "fix": chosen, "priced_by": backend.pricing, "score_before": cur.score,
              "score_after": got.score, "cosine_before": cur.cosine, "cosine_after": got.cosine,
              "latency_ms_before": ms[0], "latency_cost": cost[chosen], "meets_aim": chosen in reach,
              "alternatives": {f: {"cosine": c.cosine, "score": c.score, "latency_cost": cost[f],
                                   "meets_aim": f in reach} for f, (_, c) in tried.items() if f != chosen}}
    return model, got, record


def int16_kernel_note(model: Any, nodes: Sequence[str]) -> str:
    """Whether ORT runs ``nodes`` (16-bit islands) with integer kernels or in float between 16-bit Q/DQ: read from
    the graph ORT optimizes at session load."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="edgekit-opt-") as tmp:
        path = Path(tmp) / "optimized.onnx"
        try:
            session(model, optimized_path=path)
            optimized = onnx.load(str(path))
        except Exception as exc:  # ORT / onnx raise their own types
            return f"16-bit islands: could not read ORT's optimized graph ({first_line(exc, 160)})"
    ops: dict[str, str] = {}
    for n in optimized.graph.node:
        for name in nodes:
            if n.name == name or n.name.startswith(f"{name}_"):
                ops.setdefault(name, n.op_type)
    floating = [n for n in nodes if n in ops and not any(k in ops[n] for k in _INTEGER_OPS)]
    if floating:
        return (f"16-bit islands: this ONNX Runtime CPU build has no 16-bit integer kernels for them: "
                f"{', '.join(f'{n} runs as {ops[n]} on float activations' for n in floating)}, dequantized from "
                "16 bits (int8 weights dequantized at run time); the latency costs above are measured so")
    return f"16-bit islands: ORT runs {', '.join(nodes)} with integer kernels ({', '.join(set(ops.values()))})"
