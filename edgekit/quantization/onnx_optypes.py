"""The op-type search of the ONNX static int8: leave whole op types (Add, LayerNormalization, ...) float where
their quantization costs accuracy, decided on the tuning items."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edgekit.quantization.checks import Check, Judge, fmt_cosine
from edgekit.quantization.onnx_qdq import WEIGHTED_OPS
from edgekit.quantization.search import MIN_GAIN

# Ops that only move or select values: ORT gives their output the input's scale, so leaving them float
# cannot make the model more accurate; the op-type search does not spend time on them.
VALUE_PRESERVING_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Shape", "Slice",
                                   "Split", "Expand", "Identity", "Tile", "MaxPool", "DepthToSpace", "SpaceToDepth"})



def quantized_op_types(qmodel: Any) -> list[str]:
    """Op types (other than weighted and value-preserving ops) that read a DequantizeLinear output."""
    producers = {o: n.op_type for n in qmodel.graph.node for o in n.output}
    skip = {"QuantizeLinear", "DequantizeLinear", *WEIGHTED_OPS, *VALUE_PRESERVING_OPS}
    found = {n.op_type for n in qmodel.graph.node
             if n.op_type not in skip and any(producers.get(i) == "DequantizeLinear" for i in n.input)}
    return sorted(found)


def op_type_search(qmodel: Any, check: Check, build: Callable[[Sequence[str]], Any], judge: Judge,
                   notes: list[str]) -> tuple[Any, list[str], Check]:
    """Find the op types (Add, LayerNormalization, ...) whose quantization costs accuracy; leave them float.

    Forward selection from the model that quantizes only weighted (and value-preserving) ops: if that is
    no better than quantizing everything, stop; else add each other op type back (re-quantized from the
    same ranges) and keep it int8 when the cosine on the tuning items drops by less than ``MIN_GAIN``.
    Adding types one at a time from this side handles pairs that only matter together (a transformer's
    residual stream is int8 while either the Add that makes it or the LayerNormalization that reads it is).
    """
    types = quantized_op_types(qmodel)
    if not types:
        return qmodel, [], check
    cur_model = build(types)
    cur = judge.check(cur_model)
    if cur.cosine < check.cosine + MIN_GAIN:
        notes.append(f"op-type search: quantizing only weighted ops gives cosine {fmt_cosine(cur.cosine)}, no "
                     f"better: kept {', '.join(types)} int8")
        return qmodel, [], check
    notes.append(f"op-type search: quantizing only weighted ops gives cosine {fmt_cosine(check.cosine)} -> "
                 f"{fmt_cosine(cur.cosine)}; adding back {', '.join(types)} one at a time")
    floats = list(types)
    for op_type in types:
        trial_skip = [t for t in floats if t != op_type]
        trial = build(trial_skip)
        got = judge.check(trial)
        if got.cosine > cur.cosine - MIN_GAIN:
            notes.append(f"quantized {op_type} again: cosine {fmt_cosine(cur.cosine)} -> {fmt_cosine(got.cosine)}")
            floats, cur_model, cur = trial_skip, trial, got
        else:
            notes.append(f"left every {op_type} float: quantizing it costs cosine {fmt_cosine(cur.cosine)} -> "
                         f"{fmt_cosine(got.cosine)} on {got.items} tuning items")
    return cur_model, floats, cur
