"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization"): a numpy rewrite of an fp32 ONNX graph
that gives consecutive convolutions per-channel weight ranges int8 can share, without changing the function.

For a pair ``Conv1 -> [Relu | Clip | nothing] -> Conv2`` where Conv1's output reaches only Conv2, output
channel ``i`` of Conv1 (weight and bias) is divided by ``s_i`` and input channel ``i`` of Conv2 multiplied by
``s_i``, with ``s_i = sqrt(r1_i * r2_i) / r2_i`` (``r``: the channel's max |weight|), so both ranges become
``sqrt(r1_i * r2_i)``. All pairs are equalized in turn, repeatedly (a depthwise conv is the second conv of one
pair and the first of the next), until the scales settle. Depthwise and grouped convolutions are handled.

Exactness through the activation: ``Relu(y / s) = Relu(y) / s`` for ``s > 0``, so Relu, ``Clip(0, inf)`` and no
activation are exact. ``Clip(0, M)`` (ReLU6) would need a per-channel bound ``M / s_i``, which ONNX's Clip
cannot hold: with ``clip="bound"`` the Clip becomes ``Min(Relu(y'), M / s)`` with a per-channel constant
(exact, but the Min is an op ONNX Runtime's QDQ quantizer leaves in float: a float island per pair); with
``clip="skip"`` (the default) such pairs are left alone. Unlike AIMET, ReLU6 is never replaced by ReLU: that
changes the function. Measured on EfficientNet-Lite0 (``benchmarks/results/int8_cle.md``), ``"bound"`` helps
per-tensor weights (held-out top-1 agreement 0.48 -> 0.65) but hurts the per-channel presets (0.82 -> 0.64) and
costs speed: the Conv's output is then quantized over its unclipped range instead of ReLU6's [0, 6].

Only initializer weights used by one node are rewritten; the caller checks that the rewritten model gives the
same outputs (:func:`max_relative_difference`, :data:`TOLERANCE`) before using it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from edgekit.errors import ConfigError
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.search import try_transform

Feeds = dict[str, np.ndarray]
Q = TypeVar("Q")

TOLERANCE = 1e-4  # max |equalized - original| / max |original| on the check items
CLIP_MODES = ("skip", "bound")
_ACTIVATIONS = ("Relu", "Clip")
_MIN_RANGE = 1e-12  # a channel whose weights are all (nearly) zero is not rescaled
_SCALE_LIMIT = 1e4  # per-iteration scales are kept within [1/limit, limit]


@dataclass(frozen=True)
class Pair:
    """Two convolutions equalized together, through ``activation`` ("none", "Relu", "Clip")."""

    first: str
    second: str
    activation: str
    via: str | None = None  # the activation node's name


@dataclass(frozen=True)
class Equalized:
    """A rewritten copy of the model, the pairs equalized, the pairs left alone (with why), how many sweeps
    ran, and the largest channel scale applied (``max(s, 1/s)`` over channels, accumulated)."""

    model: Any
    pairs: tuple[Pair, ...]
    skipped: tuple[str, ...]
    sweeps: int
    max_scale: float

    def describe(self) -> str:
        """One phrase for the notes."""
        via = sorted({p.activation for p in self.pairs})
        text = (f"{len(self.pairs)} conv pairs (through {', '.join(via) or 'nothing'}), {self.sweeps} sweeps, "
                f"largest channel scale {self.max_scale:.3g}")
        if self.skipped:
            text += f"; {len(self.skipped)} pairs left alone (e.g. {self.skipped[0]})"
        return text


def _attr(node: Any, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def has_depthwise(model: Any) -> bool:
    """True when the graph has a depthwise (or grouped) convolution with an initializer weight."""
    inits = {i.name: i for i in model.graph.initializer}
    return any(n.op_type == "Conv" and _attr(n, "group", 1) > 1 and len(n.input) > 1 and n.input[1] in inits
               for n in model.graph.node)


class _Graph:
    """Lookups over one graph: initializers as arrays, producers, consumers, constant values."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.model = model
        self.inits = {i.name: i for i in model.graph.initializer}
        self.arrays: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list[Any]] = {}
        self.constants: dict[str, np.ndarray] = {}
        for n in model.graph.node:
            for name in n.input:
                self.consumers.setdefault(name, []).append(n)
            if n.op_type == "Constant" and n.output:
                for a in n.attribute:
                    if a.name == "value":
                        self.constants[n.output[0]] = numpy_helper.to_array(a.t)
        self.outputs = {o.name for o in model.graph.output}
        self._np = numpy_helper

    def array(self, name: str) -> np.ndarray:
        if name not in self.arrays:
            self.arrays[name] = self._np.to_array(self.inits[name]).astype(np.float64)
        return self.arrays[name]

    def value(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return self._np.to_array(self.inits[name])
        return self.constants.get(name)

    def only_user(self, tensor: str) -> Any | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

    def own_weight(self, node: Any, k: int) -> bool:
        """Input ``k`` of ``node`` is a float initializer read by this node alone."""
        if k >= len(node.input) or node.input[k] not in self.inits:
            return False
        return len(self.consumers.get(node.input[k], [])) == 1 and self.inits[node.input[k]].data_type == 1


def _clip_bounds(g: _Graph, node: Any) -> tuple[float, float] | None:
    """(min, max) of a Clip, from attributes (opset < 11) or constant inputs; None when not constant."""
    lo, hi = -np.inf, np.inf
    for a in node.attribute:
        if a.name == "min":
            lo = float(a.f)
        if a.name == "max":
            hi = float(a.f)
    for k in (1, 2):
        if k < len(node.input) and node.input[k]:
            v = g.value(node.input[k])
            if v is None or v.size != 1:
                return None
            if k == 1:
                lo = float(v.reshape(()))
            else:
                hi = float(v.reshape(()))
    return lo, hi


def find_pairs(model: Any, clip: str = "skip") -> tuple[list[Pair], list[str]]:
    """Conv pairs that can be equalized exactly, and a reason for each near-miss (a Clip with a finite
    bound under ``clip="skip"``, shared weights, ...)."""
    if clip not in CLIP_MODES:
        raise ConfigError("unknown value", where="equalize.clip", expected=", ".join(CLIP_MODES), got=clip)
    g = _Graph(model)
    pairs: list[Pair] = []
    skipped: list[str] = []
    for first in model.graph.node:
        if first.op_type != "Conv" or len(first.output) != 1 or not g.own_weight(first, 1):
            continue
        feed = first.output[0]
        nxt = g.only_user(feed)
        act = None
        if nxt is not None and nxt.op_type in _ACTIVATIONS and len(nxt.output) == 1:
            act, feed = nxt, nxt.output[0]
            nxt = g.only_user(feed)
        if nxt is None or nxt.op_type != "Conv" or nxt.input[0] != feed:
            continue
        if act is not None and act.op_type == "Clip":
            bounds = _clip_bounds(g, act)
            if bounds is None or bounds[0] != 0.0:
                skipped.append(f"{first.name} -> {act.name}: Clip bounds {bounds} (only Clip(0, M) is exact)")
                continue
            if np.isfinite(bounds[1]) and clip == "skip":
                skipped.append(f"{first.name} -> {act.name}: Clip(0, {bounds[1]:g}) needs a per-channel bound")
                continue
        if not g.own_weight(nxt, 1) or (len(first.input) > 2 and first.input[2] and not g.own_weight(first, 2)):
            skipped.append(f"{first.name} -> {nxt.name}: weights shared with other nodes")
            continue
        w1, w2 = g.array(first.input[1]), g.array(nxt.input[1])
        if w1.shape[0] != w2.shape[1] * _attr(nxt, "group", 1):
            continue
        pairs.append(Pair(first.name, nxt.name, act.op_type if act is not None else "none",
                          act.name if act is not None else None))
    return pairs, skipped


def _in_view(w2: np.ndarray, group: int) -> np.ndarray:
    """Conv2's weight as [groups, out per group, in per group, *kernel]: input channel c is [c // cpg, :, c % cpg]."""
    return w2.reshape(group, w2.shape[0] // group, *w2.shape[1:])


def _input_ranges(w2: np.ndarray, group: int) -> np.ndarray:
    v = np.abs(_in_view(w2, group))
    per = v.max(axis=tuple(i for i in range(v.ndim) if i not in (0, 2)))  # [groups, in per group]
    return np.asarray(per).reshape(-1)


def _scale_inputs(w2: np.ndarray, group: int, s: np.ndarray) -> np.ndarray:
    v = _in_view(w2, group).copy()
    factors = s.reshape(group, 1, w2.shape[1], *([1] * (w2.ndim - 2)))
    return np.asarray(v * factors).reshape(w2.shape)


def equalize(model: Any, *, clip: str = "skip", max_sweeps: int = 20, tol: float = 1e-3) -> Equalized:
    """A copy of ``model`` with every pair of :func:`find_pairs` equalized (see the module docstring)."""
    import onnx
    from onnx import helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    pairs, skipped = find_pairs(out, clip)
    g = _Graph(out)
    nodes = {n.name: n for n in out.graph.node}
    total = {p.first: np.ones(g.array(nodes[p.first].input[1]).shape[0]) for p in pairs}
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):  # noqa: B007 (sweeps is reported)
        worst = 0.0
        for p in pairs:
            n1, n2 = nodes[p.first], nodes[p.second]
            w1, w2 = g.array(n1.input[1]), g.array(n2.input[1])
            group = _attr(n2, "group", 1)
            r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
            r2 = _input_ranges(w2, group)
            ok = (r1 > _MIN_RANGE) & (r2 > _MIN_RANGE)
            s = np.ones_like(r1)
            s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
            s = np.clip(s, 1.0 / _SCALE_LIMIT, _SCALE_LIMIT)
            g.arrays[n1.input[1]] = w1 / s.reshape(-1, *([1] * (w1.ndim - 1)))
            if len(n1.input) > 2 and n1.input[2]:
                g.arrays[n1.input[2]] = g.array(n1.input[2]) / s
            g.arrays[n2.input[1]] = _scale_inputs(w2, group, s)
            total[p.first] *= s
            worst = max(worst, float(np.max(np.abs(np.log(s)))))
        if worst < tol:
            break
    for name, arr in g.arrays.items():
        dtype = helper.tensor_dtype_to_np_dtype(g.inits[name].data_type)
        g.inits[name].CopyFrom(numpy_helper.from_array(arr.astype(dtype), name))
    for p in pairs:
        if p.activation == "Clip":
            _bound_clip(out, g, nodes[p.via or ""], total[p.first], g.array(nodes[p.first].input[1]).ndim)
    max_scale = max((float(np.max(np.maximum(t, 1.0 / t))) for t in total.values()), default=1.0)
    return Equalized(out, tuple(pairs), tuple(skipped), sweeps if pairs else 0, max_scale)


def _bound_clip(model: Any, g: _Graph, node: Any, scale: np.ndarray, weight_rank: int) -> None:
    """Rewrite ``Clip(0, M)`` after a Conv whose channels were divided by ``scale`` as ``Min(Relu(y), M / s)``
    (exact); ``Clip(0, inf)`` becomes a plain Relu."""
    from onnx import helper, numpy_helper

    bounds = _clip_bounds(g, node)
    hi = bounds[1] if bounds is not None else np.inf
    relu_out = node.output[0] if not np.isfinite(hi) else f"{node.output[0]}_equalized_relu"
    relu = helper.make_node("Relu", [node.input[0]], [relu_out], name=node.name)
    idx = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    model.graph.node.insert(idx, relu)
    if np.isfinite(hi):
        bound = (hi / scale).astype(np.float32).reshape(-1, *([1] * (weight_rank - 2)))
        bound_name = f"{node.name}_equalized_bound"
        model.graph.initializer.append(numpy_helper.from_array(bound, bound_name))
        model.graph.node.insert(idx + 1, helper.make_node("Min", [relu_out, bound_name], [node.output[0]],
                                                          name=f"{node.name}_equalized_min"))


def _flat(item: Any) -> np.ndarray:
    """One item's outputs (an array, or a list of arrays) as one float64 vector."""
    parts = [item] if isinstance(item, np.ndarray) else list(item)
    return np.concatenate([np.asarray(p, np.float64).reshape(-1) for p in parts]) if parts else np.zeros(0)


def max_relative_difference(reference: Sequence[Any], got: Sequence[Any]) -> float:
    """max |got - reference| / max |reference| over all items and outputs (each item: an array or a list of
    arrays); the equivalence measure of :data:`TOLERANCE`."""
    ref = [_flat(r) for r in reference]
    new = [_flat(g) for g in got]
    scale = max((float(np.max(np.abs(r))) for r in ref if r.size), default=0.0)
    diff = max((float(np.max(np.abs(x - r))) if r.size else 0.0 for r, x in zip(ref, new, strict=True)), default=0.0)
    return diff / max(scale, 1e-30)


def equalized_model(model: Any, feeds: Sequence[Any], run: Callable[[Any, Sequence[Any]], Sequence[Any]],
                    notes: list[str], *, clip: str = "skip") -> Equalized | None:
    """:func:`equalize` ``model`` and check that it still computes the same function on ``feeds`` (``run``:
    the outputs of a model per feed). None, with a note, when no pair can be equalized or the outputs moved
    by more than :data:`TOLERANCE` (relative)."""
    eq = equalize(model, clip=clip)
    if not eq.pairs:
        why = f" ({len(eq.skipped)} left alone, e.g. {eq.skipped[0]})" if eq.skipped else ""
        notes.append(f"cross-layer equalization: no conv pair to equalize{why}; model left unchanged")
        return None
    if feeds:
        diff = max_relative_difference(run(model, feeds), run(eq.model, feeds))
        if not diff <= TOLERANCE:
            notes.append(f"cross-layer equalization skipped: the equalized fp32 model moved the outputs by {diff:.2g} "
                         f"(relative, > {TOLERANCE:g}) on {len(feeds)} items; model left unchanged")
            return None
    return eq


def with_equalization(quantize: Callable[[Any], Q], model_of: Callable[[Q], Any], float_model: Any,
                      want: bool | str, clip: str, tuning: Sequence[Feeds], more_items: Callable[[], list[Feeds]],
                      labels: np.ndarray | None, run: Callable[[Any, Sequence[Feeds]], Sequence[Any]],
                      budget: DecisionBudget, settings: dict[str, Any], notes: list[str]) -> tuple[Q, list[Q]]:
    """``quantize(float_model)``, or ``quantize`` of its equalized copy, as ``want`` says (see
    :class:`~edgekit.quantization.onnx.StaticInt8Options`): ``"auto"`` tries equalization on models with depthwise
    convolutions and keeps it when the check on the ``tuning`` items improves (:meth:`DecisionBudget.improves`);
    held-out items are never seen here. ``model_of``: the quantized model of a result; ``more_items``: a few
    calibration items for the equivalence check when there are no tuning items. Returns the chosen result and
    every result quantized; the decision goes to ``settings["equalization"]`` and the notes."""
    depthwise = has_depthwise(float_model)
    if want is False or (want == "auto" and not (depthwise and tuning)):
        why = "equalize=False" if want is False else ("no depthwise convolution" if not depthwise
                                                      else "no tuning items to judge it on")
        settings["equalization"] = {"applied": False, "reason": why}
        plain = quantize(float_model)
        return plain, [plain]
    probe = list(tuning[:8]) or more_items()
    eq = equalized_model(float_model, probe, run, notes, clip=clip)
    if eq is None:
        settings["equalization"] = {"applied": False, "reason": notes[-1]}
        plain = quantize(float_model)
        return plain, [plain]
    record: dict[str, Any] = {"pairs": len(eq.pairs), "sweeps": eq.sweeps, "max_scale": round(eq.max_scale, 4),
                              "skipped_pairs": len(eq.skipped), "clip": clip}
    if want is True:
        settings["equalization"] = {"applied": True, **record}
        notes.append(f"cross-layer equalization (equalize=True): {eq.describe()}; fp32 outputs unchanged")
        equalized = quantize(eq.model)
        return equalized, [equalized]
    t = try_transform(quantize, model_of, float_model, eq.model, tuning, labels, run, budget)
    settings["equalization"] = {**t.record(), **record}
    notes.append(f"cross-layer equalization: {eq.describe()}; {t.note()}")
    return t.chosen, [t.plain, t.transformed]
