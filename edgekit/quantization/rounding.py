"""Optimized weight rounding of an ONNX Runtime QDQ model: each int8 weight chosen for the layer's output, not
rounded to the nearest step on its own.

Rounding every weight to its nearest int8 step minimizes each weight's error, not the error of the layer's output.
For a layer ``y = W x`` whose inputs ``x`` have the second-moment matrix ``H = E[x x^T]``, the output error of a
rounding ``Q`` is ``tr((Q - W) H (Q - W)^T)``: weights that meet correlated inputs can cancel each other's error.
This module rounds the input columns of ``W`` one at a time and spreads each column's rounding error over the
columns not yet rounded, in the proportions the inverse of ``H`` gives (the optimal-brain-quantizer update, as in
GPTQ; the projection, not gradient descent as in AdaRound, so it costs one pass per layer, no training). ``H`` is
taken from the **float** model's inputs of each layer on the ranges items, the scales and zero points are ONNX
Runtime's (only the int8 values change), and a layer keeps its nearest rounding when the optimized one does not
lower its output error on those items (a safety net against an ill-conditioned ``H``).

Layers: Conv (groups 1, or depthwise: one ``H`` per channel over its kernel window), Gemm and MatMul with a
constant weight. Other grouped convs and ConvTranspose keep their rounding. Whether the result is kept is decided
on the tuning items by the caller (:func:`weight_rounding_step`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.quantization.calibration import Feeds
from edgekit.quantization.checks import DecisionBudget, Judge
from edgekit.quantization.onnx_ort import probe_session
from edgekit.quantization.search import judged

MAX_ITEMS = 16  # ranges items the input moments are taken over
MAX_COLUMNS = 4608  # a layer whose input window is larger (e.g. 3x3 conv over 512+ channels) keeps its rounding
DAMP = 0.1  # added to H's diagonal, relative to its mean: keeps the inverse defined for dead or collinear inputs
TIME_BUDGET_S = 120.0


@dataclass(frozen=True)
class Layer:
    """One quantized weight: the node, its int8 initializer, scale/zero point per row, and how the weight is laid
    out as rows (outputs) x columns (inputs of one output), in ``groups`` (depthwise convs: one per channel)."""

    node: str
    q_init: str
    float_weight: np.ndarray
    scale: np.ndarray  # per row (broadcast from per-tensor)
    zero: np.ndarray
    qmin: int
    qmax: int
    kind: str  # "conv", "depthwise", "rows" (Gemm/MatMul as (out, in))
    transposed: bool  # the stored weight is (in, out): MatMul, Gemm transB=0
    input_name: str
    attrs: Mapping[str, Any]


@dataclass(frozen=True)
class Moments:
    """Each layer's input second moments (``H``) on the ranges items, computed once from the float model, so that
    later builds (the sensitivity search's rebuilds) are rounded the same way (:func:`apply_rounding`)."""

    grams: Mapping[str, np.ndarray]
    items: int
    seconds: float
    skipped: Mapping[str, str]


@dataclass(frozen=True)
class Rounded:
    """The QDQ model with optimized int8 weights and what it did."""

    model: Any
    moments: Moments
    layers: int
    of_layers: int
    error_cut: float  # median relative cut of a layer's output error (0.3 = 30% lower than nearest rounding)
    seconds: float

    def describe(self) -> str:
        left = f"; {len(self.moments.skipped)} kept nearest rounding" if self.moments.skipped else ""
        return (f"weight rounding: {self.layers} of {self.of_layers} layers' int8 weights chosen for their output "
                f"(inverse-H error feedback, H from {self.moments.items} ranges items), median output error cut "
                f"{self.error_cut:.0%}{left}, {self.seconds:.1f} s")


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _layers(qmodel: Any, float_model: Any) -> tuple[list[Layer], dict[str, str]]:
    """The layers whose weight is a DequantizeLinear of an int8/uint8 initializer and whose float twin (same name)
    has a float weight; the others that were looked at, with why they were left."""
    from onnx import numpy_helper

    inits = {i.name: i for i in qmodel.graph.initializer}
    producers = {o: n for n in qmodel.graph.node for o in n.output}
    f_nodes = {n.name: n for n in float_model.graph.node if n.name}
    f_inits = {i.name: i for i in float_model.graph.initializer}
    out: list[Layer] = []
    left: dict[str, str] = {}
    for n in qmodel.graph.node:
        if n.op_type not in ("Conv", "Gemm", "MatMul") or len(n.input) < 2 or n.name not in f_nodes:
            continue
        dq = producers.get(n.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        fn = f_nodes[n.name]
        if len(fn.input) < 2 or fn.input[1] not in f_inits:
            continue
        q = numpy_helper.to_array(inits[dq.input[0]])
        w = numpy_helper.to_array(f_inits[fn.input[1]]).astype(np.float64)
        if q.dtype not in (np.int8, np.uint8) or q.shape != w.shape or len(dq.input) < 2 or dq.input[1] not in inits:
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
        zero = (numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64)
                if len(dq.input) > 2 and dq.input[2] in inits else np.zeros_like(scale))
        axis = int(_attrs(dq).get("axis", 1))
        attrs = _attrs(n)
        transposed = n.op_type == "MatMul" or (n.op_type == "Gemm" and not attrs.get("transB", 0))
        rows_axis = 1 if transposed else 0
        if n.op_type != "Conv" and w.ndim != 2:
            left[n.name] = f"weight of rank {w.ndim}"
            continue
        if scale.size > 1 and (axis % w.ndim != rows_axis or scale.size != w.shape[rows_axis]):
            left[n.name] = "scale not per output channel"
            continue
        rows = w.shape[rows_axis]
        kind = "rows"
        if n.op_type == "Conv":
            group = int(attrs.get("group", 1))
            if w.ndim != 4 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
                left[n.name] = "not a 2-D conv with explicit pads"
                continue
            if group == 1:
                kind = "conv"
            elif w.shape[1] == 1 and group == rows:
                kind = "depthwise"
            else:
                left[n.name] = f"grouped conv (group {group})"
                continue
        info = np.iinfo(q.dtype)
        layer = Layer(n.name, dq.input[0], w, np.broadcast_to(scale, (rows,)).copy(),
                       np.broadcast_to(zero, (rows,)).copy(), int(info.min), int(info.max), kind, transposed,
                       fn.input[0], attrs)
        columns = int(np.prod(w.shape[2:] if kind == "depthwise" else w.shape[1:] if kind == "conv"
                              else w.shape[0] if transposed else w.shape[1]))
        if columns > MAX_COLUMNS:
            left[n.name] = f"{columns} inputs per output (more than {MAX_COLUMNS})"
            continue
        nearest = np.clip(np.round(_rows(layer, w) / layer.scale[:, None]) + layer.zero[:, None], layer.qmin,
                          layer.qmax)
        if np.mean(nearest == _rows(layer, q.astype(np.float64))) < 0.99:
            left[n.name] = "its int8 weight is not the nearest rounding of the float weight"
            continue
        out.append(layer)
    return out, left


def _rows(layer: Layer, w: np.ndarray) -> np.ndarray:
    """The weight as (rows, columns): outputs x inputs of one output."""
    if layer.transposed:
        return np.asarray(w.T)
    return w.reshape(w.shape[0], -1)


def _unrows(layer: Layer, rows: np.ndarray) -> np.ndarray:
    if layer.transposed:
        return np.asarray(rows.T)
    return rows.reshape(layer.float_weight.shape)


def _windows(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Conv input (N, C, H, W) -> (C, kh*kw, positions): each output position's input window, per channel."""
    kh, kw = layer.float_weight.shape[2:]
    sh, sw = [*layer.attrs.get("strides", []), 1, 1][:2]
    dh, dw = [*layer.attrs.get("dilations", []), 1, 1][:2]
    pads = list(layer.attrs.get("pads", [0, 0, 0, 0])) or [0, 0, 0, 0]
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (span_h, span_w), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, OH, OW, kh, kw)
    c = win.shape[1]
    return np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(c, kh * kw, -1)


def gram(x: np.ndarray, layer: Layer) -> np.ndarray:
    """This item's contribution to H: (columns, columns), or (channels, k, k) for a depthwise conv."""
    x = np.asarray(x, np.float32)
    if layer.kind == "rows":
        flat = x.reshape(-1, x.shape[-1])
        return np.asarray(flat.T @ flat, np.float64)
    win = _windows(x, layer)
    if layer.kind == "depthwise":
        return np.asarray(np.einsum("ckp,clp->ckl", win, win), np.float64)
    flat = win.reshape(-1, win.shape[-1])
    return np.asarray(flat @ flat.T, np.float64)


def input_moments(qmodel: Any, float_model: Any, feeds: Sequence[Feeds]) -> tuple[list[Layer], Moments]:
    """The roundable layers of ``qmodel`` and their input moments on ``feeds`` (the float model's inputs)."""
    t0 = time.perf_counter()
    layers, left = _layers(qmodel, float_model)
    items = list(feeds[:MAX_ITEMS])
    grams: dict[str, np.ndarray] = {}
    if layers and items:
        names = sorted({ly.input_name for ly in layers})
        sess = probe_session(float_model, names)
        for f in items:
            got = dict(zip(names, sess.run(names, dict(f)), strict=True))
            for ly in layers:
                g = gram(got[ly.input_name], ly)
                grams[ly.node] = g if ly.node not in grams else grams[ly.node] + g
    return layers, Moments(grams, len(items), time.perf_counter() - t0, left)


def _optimized(w: np.ndarray, h: np.ndarray, scale: np.ndarray, zero: np.ndarray, qmin: int,
               qmax: int) -> np.ndarray:
    """Int8 values for ``w`` (groups, rows, columns) given ``h`` (groups, columns, columns): columns rounded in
    order, each one's error fed back to the later columns through the upper Cholesky factor of ``h``'s inverse.
    ``scale``/``zero``: (groups, rows)."""
    w = w.copy()
    h = h.copy()
    cols = h.shape[-1]
    diag = np.einsum("gii->gi", h)
    dead = diag <= 0
    idx = np.arange(cols)
    h[:, idx, idx] += np.where(dead, 1.0, 0.0) + DAMP * np.maximum(diag.mean(axis=1, keepdims=True), 1e-12)
    u = np.linalg.cholesky(np.linalg.inv(h)).transpose(0, 2, 1)  # upper: inv(h) = u^T u
    q = np.empty_like(w)
    for i in range(cols):
        col = w[:, :, i]
        qi = np.clip(np.round(col / scale) + zero, qmin, qmax)
        q[:, :, i] = qi
        err = (col - (qi - zero) * scale) / u[:, i, i][:, None]
        w[:, :, i:] -= err[:, :, None] * u[:, None, i, i:]
    return q


def _output_error(w: np.ndarray, q: np.ndarray, h: np.ndarray, scale: np.ndarray, zero: np.ndarray) -> float:
    d = (q - zero[..., None]) * scale[..., None] - w
    return float(np.einsum("grc,gcd,grd->", d, h, d))


def round_layer(layer: Layer, h: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(new int values in the stored layout, nearest rounding's output error, the optimized one's)."""
    w = _rows(layer, layer.float_weight)
    s, z = layer.scale, layer.zero
    if layer.kind == "depthwise":  # one group per channel, one row each
        wg, hg, sg, zg = w[:, None, :], h, s[:, None], z[:, None]
    else:
        wg, hg, sg, zg = w[None], h[None], s[None], z[None]
    nearest = np.clip(np.round(wg / sg[..., None]) + zg[..., None], layer.qmin, layer.qmax)
    best = _optimized(wg, hg, sg, zg, layer.qmin, layer.qmax)
    e0, e1 = _output_error(wg, nearest, hg, sg, zg), _output_error(wg, best, hg, sg, zg)
    chosen = best if e1 < e0 else nearest
    rows = chosen[:, 0, :] if layer.kind == "depthwise" else chosen[0]
    return _unrows(layer, rows), e0, e1


def apply_rounding(qmodel: Any, float_model: Any, moments: Moments) -> tuple[Any, int, int, list[float]]:
    """A copy of ``qmodel`` whose roundable layers (with moments) take the optimized int8 weights; returns (model,
    layers changed, roundable layers, each changed layer's relative output-error cut). Within
    :data:`TIME_BUDGET_S`; the layers after it keep nearest rounding."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(qmodel)
    layers, _ = _layers(model, float_model)
    inits = {i.name: i for i in model.graph.initializer}
    t0 = time.perf_counter()
    changed, cuts = 0, []
    for ly in layers:
        h = moments.grams.get(ly.node)
        if h is None or time.perf_counter() - t0 > TIME_BUDGET_S:
            continue
        values, e0, e1 = round_layer(ly, h)
        if e1 < e0:
            dtype = numpy_helper.to_array(inits[ly.q_init]).dtype
            inits[ly.q_init].CopyFrom(numpy_helper.from_array(values.astype(dtype), ly.q_init))
            changed += 1
            cuts.append(1.0 - e1 / e0 if e0 > 0 else 0.0)
    return model, changed, len(layers), cuts


def rounded_with(qmodel: Any, float_model: Any, moments: Moments) -> Any:
    """``qmodel`` rounded with moments measured before (a rebuild of the same model by the sensitivity search)."""
    return apply_rounding(qmodel, float_model, moments)[0]


def round_weights(qmodel: Any, float_model: Any, feeds: Sequence[Feeds]) -> Rounded | None:
    """``qmodel`` with optimized weight rounding (module doc), or None when no layer can be rounded."""
    t0 = time.perf_counter()
    layers, moments = input_moments(qmodel, float_model, feeds)
    if not layers or not moments.items:
        return None
    model, changed, total, cuts = apply_rounding(qmodel, float_model, moments)
    return Rounded(model, moments, changed, total, float(np.median(cuts)) if cuts else 0.0,
                   time.perf_counter() - t0)


def weight_rounding_step(qmodel: Any, float_model: Any, ranges_items: Sequence[Feeds], judge: Judge | None,
                         budget: DecisionBudget, mode: bool | str, settings: dict[str, Any], notes: list[str],
                         rounder: Callable[[Any, Any, Sequence[Feeds]], Rounded | None] | None = None
                         ) -> Rounded | None:
    """Round ``qmodel``'s weights (``rounder``, default ONNX Runtime QDQ: :func:`round_weights`) and say whether to
    keep it: ``mode`` True keeps it, ``"auto"`` keeps it when the check on the tuning items (``judge``) improves,
    False skips it. The decision goes to ``settings["weight_rounding"]`` and the notes; returns the rounding when
    kept."""
    if mode is False or (mode == "auto" and judge is None):
        why = "weight_rounding=False" if mode is False else "no tuning items to judge it on"
        settings["weight_rounding"] = {"applied": False, "reason": why}
        return None
    fixed = (rounder or round_weights)(qmodel, float_model, ranges_items)
    if fixed is None or not fixed.layers:
        settings["weight_rounding"] = {"applied": False, "reason": "no layer whose rounding could be optimized"}
        notes.append("weight rounding: no quantized weighted layer whose rounding lowers its output error")
        return None
    record: dict[str, Any] = {"layers": fixed.layers, "of_layers": fixed.of_layers, "items": fixed.moments.items,
                              "median_error_cut": round(fixed.error_cut, 4), "seconds": round(fixed.seconds, 1),
                              "kept_nearest": dict(fixed.moments.skipped)}
    if mode is True or judge is None:
        settings["weight_rounding"] = {"applied": True, **record}
        notes.append(fixed.describe() + " (weight_rounding=True)")
        return fixed
    t = judged(qmodel, fixed, judge.check(qmodel), judge.check(fixed.model), budget)
    settings["weight_rounding"] = {**t.record(), **record}
    notes.append(f"{fixed.describe()}; {t.note()}")
    return fixed if t.keep else None

