"""Activation smoothing (SmoothQuant-style) of an ONNX model before static int8: transformers keep int8 MatMuls.

A transformer's MatMul inputs (LayerNorm outputs, attention contexts, GELU outputs) carry a few channels far larger
than the rest; one 8-bit scale per tensor spreads its 256 levels over those and rounds the others away (MiniLM:
static int8 cosine 0.84, 0.94 with every residual Add and LayerNorm left float). For every group of MatMuls that
read the same activation ``X`` with a constant weight ``W`` (``X @ W``), each input channel ``j`` gets a factor
``s_j = max|X_j| ** alpha / max|W_j,:| ** (1 - alpha)``: the graph computes ``(X / s) @ (s * W)`` -- the same
function, with the activation's outliers moved into the weights, which are quantized per output channel. ``X / s``
is folded into the layer that makes ``X`` where that is a Gemm / MatMul with constant weights read by nobody else
(its output columns divided); otherwise it is one float ``Mul`` in front of the group (elementwise, cheap), which
the quantizer leaves float (:data:`PREFIX`) so that ``X`` is not rounded before it is divided.

The per-channel maxima come from the **ranges** items; whether the smoothed model is kept is decided on the
tuning items by :func:`with_smoothing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from edgekit.quantization.calibration import Feeds
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.onnx_ort import probe_session
from edgekit.quantization.search import try_transform

ALPHA = 0.5  # SmoothQuant's default migration strength
PREFIX = "SmoothQuant_"  # name prefix of the inserted X / s nodes
MIN_CHANNELS = 16
MAX_ITEMS = 32
Q = TypeVar("Q")


@dataclass(frozen=True)
class Smoothed:
    """The smoothed float model and what changed."""

    model: Any
    groups: int  # activations smoothed
    matmuls: int  # MatMuls reading them
    folded: int  # of the groups, those whose 1 / s went into the producing layer (no Mul)
    outlier_ratio: float  # the largest max|X_j| / median_j max|X_j| before smoothing
    alpha: float

    def describe(self) -> str:
        inputs = "1 MatMul input" if self.groups == 1 else f"{self.groups} MatMul inputs"
        return (f"activation smoothing (alpha {self.alpha:g}): {inputs} divided per channel "
                f"(feeding {self.matmuls} MatMuls, weights rescaled to match, {self.folded} folded into the layer "
                f"before; fp32 function unchanged); largest outlier channel {self.outlier_ratio:.3g}x its tensor's "
                "median channel")


def _groups(model: Any) -> dict[str, list[Any]]:
    """Activation tensor -> the MatMul nodes reading it with a constant 2-D weight (``X @ W``)."""
    inits = {i.name: i for i in model.graph.initializer}
    out: dict[str, list[Any]] = {}
    for n in model.graph.node:
        if n.op_type != "MatMul" or len(n.input) != 2 or n.input[0] in inits or n.input[1] not in inits:
            continue
        w = inits[n.input[1]]
        if len(w.dims) == 2 and w.dims[0] >= MIN_CHANNELS and w.data_type == 1:  # float32
            out.setdefault(n.input[0], []).append(n)
    return out


def has_smoothable_matmuls(model: Any) -> bool:
    """True for a transformer-like model: more MatMuls with constant weights reading activations than convolutions
    (a convnet's classifier MatMul is left to the convnet methods, equalization and bias correction)."""
    matmuls = sum(len(nodes) for nodes in _groups(model).values())
    return matmuls > sum(1 for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose"))


def _channel_max(model: Any, tensors: Sequence[str], feeds: Sequence[Feeds]) -> dict[str, np.ndarray]:
    """max |x| per last-axis channel of each tensor over ``feeds`` (graph optimizations off: names stay)."""
    sess = probe_session(model, tensors)
    out: dict[str, np.ndarray] = {}
    for f in feeds:
        for name, x in zip(tensors, sess.run(list(tensors), dict(f)), strict=True):
            a = np.abs(np.asarray(x, np.float64)).reshape(-1, np.shape(x)[-1]).max(axis=0)
            out[name] = a if name not in out else np.maximum(out[name], a)
    return out


def _fold(producer: Any, inits: dict[str, Any], users: dict[str, int], s: np.ndarray) -> bool:
    """Divide output column j of a Gemm / MatMul with constant weights by ``s[j]`` in place; False if it is not one
    (or its weight / bias is shared or not per column)."""
    from onnx import numpy_helper

    if producer is None or producer.op_type not in ("Gemm", "MatMul") or len(producer.input) < 2:
        return False
    names = [n for n in producer.input[1:3] if n]
    if any(n not in inits or users.get(n, 0) != 1 for n in names):
        return False
    trans_b = any(a.name == "transB" and a.i for a in producer.attribute) if producer.op_type == "Gemm" else False
    w = numpy_helper.to_array(inits[names[0]])
    if w.ndim != 2 or (w.shape[0] if trans_b else w.shape[1]) != s.size:
        return False
    new_w = w / (s[:, None] if trans_b else s[None, :])
    bias = numpy_helper.to_array(inits[names[1]]) if len(names) > 1 else None
    if bias is not None and bias.shape[-1:] != (s.size,):
        return False
    inits[names[0]].CopyFrom(numpy_helper.from_array(new_w.astype(w.dtype), names[0]))
    if bias is not None:
        inits[names[1]].CopyFrom(numpy_helper.from_array((bias / s).astype(bias.dtype), names[1]))
    return True


def smooth(model: Any, feeds: Sequence[Feeds], alpha: float = ALPHA) -> Smoothed | None:
    """A smoothed copy of the float ``model`` (module doc), or None when it has no MatMul group to smooth."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    groups = _groups(m)
    items = list(feeds[:MAX_ITEMS])
    if not groups or not items:
        return None
    maxima = _channel_max(m, list(groups), items)
    inits = {i.name: i for i in m.graph.initializer}
    users: dict[str, int] = {}
    for n in m.graph.node:
        for name in n.input:
            users[name] = users.get(name, 0) + 1
    producers = {o: k for k, n in enumerate(m.graph.node) for o in n.output}
    inserts: list[tuple[int, Any]] = []
    worst, done, matmuls, folded = 1.0, 0, 0, 0
    for k, (x, nodes) in enumerate(groups.items()):
        a = maxima.get(x)
        weights = [numpy_helper.to_array(inits[n.input[1]]) for n in nodes]
        if a is None or any(w.shape[0] != a.shape[0] for w in weights):
            continue
        w = np.max([np.abs(wt).max(axis=1) for wt in weights], axis=0).astype(np.float64)
        s = np.where((a > 0) & (w > 0), a ** alpha / np.maximum(w, 1e-12) ** (1 - alpha), 1.0)
        s = np.clip(s, 1e-4, 1e4)
        worst = max(worst, float(a.max() / max(float(np.median(a)), 1e-12)))
        producer = m.graph.node[producers[x]] if x in producers else None
        if users.get(x, 0) == len(nodes) and _fold(producer, inits, users, s):
            scaled, folded = x, folded + 1
        else:
            scaled, inv = f"{x}_smoothed", f"{x}_smooth_inverse_scale"
            m.graph.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), inv))
            inserts.append((producers.get(x, -1), helper.make_node("Mul", [x, inv], [scaled], name=f"{PREFIX}{k}")))
        for n, wt in zip(nodes, weights, strict=True):
            name = n.input[1] if users.get(n.input[1], 0) == 1 else f"{n.input[1]}_smoothed_{n.name}"
            new = numpy_helper.from_array((wt * s[:, None]).astype(wt.dtype), name)
            if name in inits:
                inits[name].CopyFrom(new)
            else:
                m.graph.initializer.append(new)
            n.input[1], n.input[0] = name, scaled
        done, matmuls = done + 1, matmuls + len(nodes)
    if not done:
        return None
    for pos, node in sorted(inserts, key=lambda t: t[0], reverse=True):  # right after each producer
        m.graph.node.insert(pos + 1, node)
    return Smoothed(m, done, matmuls, folded, worst, alpha)


def with_smoothing(quantize: Callable[[Any], Q], model_of: Callable[[Q], Any], float_model: Any, want: bool | str,
                   tuning: Sequence[Feeds], ranges_items: Callable[[], list[Feeds]], labels: np.ndarray | None,
                   run: Callable[[Any, Sequence[Feeds]], Sequence[Any]], budget: DecisionBudget,
                   settings: dict[str, Any], notes: list[str], judged_on: str = "") -> tuple[Q, list[Q]] | None:
    """``quantize`` of the smoothed ``float_model`` (``want`` True), or of whichever of it and the model as given
    checks better on the ``tuning`` items (``"auto"``); None when smoothing does not apply (``want`` False, no
    MatMul group, or ``"auto"`` without tuning items), for the caller to go on without it. The decision goes to
    ``settings["smoothing"]`` and the notes; ``judged_on`` says which model ``model_of`` gives (for the note)."""
    applies = has_smoothable_matmuls(float_model)
    if want is False or not applies or (want == "auto" and not tuning):
        why = ("smooth=False" if want is False else "no tuning items to judge it on" if applies
               else "not a transformer: fewer MatMuls with constant weights than convolutions")
        settings["smoothing"] = {"applied": False, "reason": why}
        return None
    sm = smooth(float_model, ranges_items())
    if sm is None:
        settings["smoothing"] = {"applied": False, "reason": "no calibration items or matching shapes"}
        return None
    record = {"groups": sm.groups, "matmuls": sm.matmuls, "folded": sm.folded, "alpha": sm.alpha,
              "outlier_ratio": round(sm.outlier_ratio, 2)}
    if want is True:
        settings["smoothing"] = {"applied": True, **record}
        notes.append(sm.describe() + " (smooth=True)")
        smoothed = quantize(sm.model)
        return smoothed, [smoothed]
    t = try_transform(quantize, model_of, float_model, sm.model, tuning, labels, run, budget)
    settings["smoothing"] = {**t.record(), **record}
    notes.append(f"{sm.describe()}; {t.note(judged_on)}")
    return t.chosen, [t.plain, t.transformed]
