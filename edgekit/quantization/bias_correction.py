"""Empirical bias correction of an ONNX Runtime QDQ model: int8 layers whose outputs drift keep int8.

Rounding a convolution's weights to 8 bits shifts the *mean* of its output channels: for a channel ``o`` the
shift is ``sum(dW[o] * E[x])``, and with the large input means after ReLU6 and the few weights of a depthwise
kernel it is not small (EfficientNet-Lite0's first depthwise conv: channel means moved by up to 0.27 on values
around 3). The quantized activations add their own biased error (clipping). Each layer's shift is measured
and subtracted from its bias, in the order the graph runs, so that every layer is corrected with the layers
before it already corrected (correcting all layers from one measurement over-corrects: the shifts compound and
EfficientNet-Lite0's held-out cosine fell from 0.98 to 0.66 in a trial).

Measured on the **ranges** items (the items that set the ranges), with the QDQ model simulated in fp32 (ONNX
Runtime with graph optimizations off: the real int8 kernels agreed with it to cosine 0.9993 on
EfficientNet-Lite0). The int32 bias of each corrected node is rewritten in the QDQ model, and the same shift is
applied to the float model's bias, so that models re-quantized from it (the sensitivity search) keep the
correction. Whether the correction is kept is decided on the tuning items by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgekit.errors import QuantizationError, first_line
from edgekit.quantization.calibration import Feeds
from edgekit.quantization.checks import DecisionBudget, Judge
from edgekit.quantization.onnx_ort import probe_session
from edgekit.quantization.search import judged

BIAS_OPS = ("Conv", "ConvTranspose", "Gemm")
MAX_ITEMS = 16  # items the channel means are taken over
TIME_BUDGET_S = 60.0  # each layer costs one pass over the items: a large model is corrected up to this budget
_INT32 = np.iinfo(np.int32)


@dataclass(frozen=True)
class Corrected:
    """The QDQ model with corrected int32 biases, the float model with the same shifts, and what moved."""

    model: Any
    float_model: Any
    layers: int
    of_layers: int  # layers with a quantized bias; those after ``layers`` were left (time budget)
    largest: tuple[str, float]  # the node whose channel means moved most, and by how much (relative)
    items: int
    seconds: float

    def describe(self) -> str:
        name, rel = self.largest
        name = name if len(name) <= 90 else "..." + name[-87:]  # LiteRT tensor names carry the whole module path
        what = "1 layer's" if self.layers == 1 else f"{self.layers} layers'"
        if self.layers < self.of_layers:
            what = f"the first {self.layers} of {self.of_layers} layers'"
        left = (f" (the time budget of {TIME_BUDGET_S:g} s left the last {self.of_layers - self.layers} as they were)"
                if self.layers < self.of_layers else "")
        return (f"bias correction: {what} output-channel means re-centred on fp32's, in graph order, measured "
                f"on {self.items} ranges items in {self.seconds:.1f} s{left}; largest shift {rel:.2g} of the "
                f"channel's mean magnitude ({name})")


def _channel_mean(x: np.ndarray) -> np.ndarray:
    """Mean over every axis but the channel axis (1), in float64."""
    return np.asarray(np.asarray(x, np.float64).mean(axis=tuple(i for i in range(x.ndim) if i != 1)))


def _means(sess: Any, names: Sequence[str], feeds: Sequence[Feeds], extra: dict[str, np.ndarray]) -> list[np.ndarray]:
    total: list[np.ndarray] | None = None
    for f in feeds:
        got = [_channel_mean(o) for o in sess.run(list(names), {**f, **extra})]
        total = got if total is None else [a + b for a, b in zip(total, got, strict=True)]
    assert total is not None
    return [t / len(feeds) for t in total]


def _bias_nodes(qmodel: Any, float_model: Any) -> list[tuple[Any, Any, str, np.ndarray, Any]]:
    """(q node, float node, int32 bias initializer name, bias scale, float bias initializer) of every node whose bias
    is a DequantizeLinear of an int32 initializer and whose float twin (same name) has a float bias; graph order."""
    from onnx import numpy_helper

    q_inits = {i.name: i for i in qmodel.graph.initializer}
    f_inits = {i.name: i for i in float_model.graph.initializer}
    producers = {o: n for n in qmodel.graph.node for o in n.output}
    twins = {n.name: n for n in float_model.graph.node if n.name}
    found = []
    for n in qmodel.graph.node:
        if n.op_type not in BIAS_OPS or len(n.input) < 3 or n.name not in twins:
            continue
        dq = producers.get(n.input[2])
        twin = twins[n.name]
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in q_inits or len(dq.input) < 2:
            continue
        if dq.input[1] not in q_inits or len(twin.input) < 3 or twin.input[2] not in f_inits:
            continue
        if q_inits[dq.input[0]].data_type != 6:  # TensorProto.INT32
            continue
        scale = numpy_helper.to_array(q_inits[dq.input[1]]).astype(np.float64)
        found.append((n, twin, dq.input[0], scale, f_inits[twin.input[2]]))
    return found


class BiasBackend(Protocol):
    """One runtime's view of a quantized model for :func:`sequential_correction`: its correctable layers in graph
    order, fp32's output-channel means at each, the quantized model's means at one layer (earlier corrections
    applied), and how to shift one layer's bias. ``passes``: measure-and-shift rounds per layer (1 where the means
    are taken before the activation; more where a fused activation bends the response)."""

    passes: int

    def layers(self) -> list[str]: ...

    def reference(self) -> list[np.ndarray]: ...

    def measure(self, k: int) -> np.ndarray: ...

    def shift(self, k: int, delta: np.ndarray) -> bool:
        """Subtract ``delta`` (one value per output channel) from layer ``k``'s bias; False if its bias does not
        have that shape (left alone)."""
        ...


def sequential_correction(backend: BiasBackend, where: str) -> tuple[int, int, tuple[str, float], float]:
    """Correct each layer of ``backend`` in graph order (module doc) within :data:`TIME_BUDGET_S`; returns (layers
    corrected, layers there are, (the layer whose means moved most, by how much relative), seconds)."""
    t0 = time.perf_counter()
    names = backend.layers()
    try:
        reference = backend.reference()
    except Exception as exc:
        raise QuantizationError(f"bias correction could not run the model: {first_line(exc, 240)}", where=where,
                                hint="quantize with bias_correction=False") from exc
    largest = ("", 0.0)
    done, t_layer = 0, 0.0
    for k, name in enumerate(names):
        if time.perf_counter() - t0 + t_layer > TIME_BUDGET_S:
            break
        t1 = time.perf_counter()
        first = 0.0
        for attempt in range(backend.passes):
            got = backend.measure(k)
            ref = reference[k]
            if got.shape != ref.shape:
                break
            delta = got - ref
            size = float(np.max(np.abs(delta)))
            if attempt == 0:
                first = size
                rel = size / max(float(np.mean(np.abs(ref))), 1e-12)
                if rel > largest[1]:
                    largest = (name, rel)
            elif size <= 0.1 * first:
                break  # close enough: a further pass would cost a run for rounding noise
            if not backend.shift(k, delta):
                break
        t_layer, done = time.perf_counter() - t1, k + 1
    return done, len(names), largest, time.perf_counter() - t0


class _OnnxBiases:
    """:class:`BiasBackend` of an ORT QDQ model (int32 biases fed as inputs: one session for every step) and the
    float model it was quantized from (the same shifts in float)."""

    passes = 1  # the means are taken before the activation (ORT's QDQ Conv output): one step is exact

    def __init__(self, qmodel: Any, float_model: Any, items: Sequence[Feeds]) -> None:
        import onnx
        from onnx import numpy_helper

        self.qm, self.fm = onnx.ModelProto(), onnx.ModelProto()
        self.qm.CopyFrom(qmodel)
        self.fm.CopyFrom(float_model)
        self.items = list(items)
        self.nodes = _bias_nodes(self.qm, self.fm)
        inits = {i.name: i for i in self.qm.graph.initializer}
        self.biases = {n: numpy_helper.to_array(inits[n]).astype(np.int64) for _, _, n, _, _ in self.nodes}
        self._sess: Any = None

    def layers(self) -> list[str]:
        return [q.name for q, _, _, _, _ in self.nodes]

    def reference(self) -> list[np.ndarray]:
        outs = [f.output[0] for _, f, _, _, _ in self.nodes]
        self._sess = probe_session(self.qm, [q.output[0] for q, _, _, _, _ in self.nodes], list(self.biases))
        return _means(probe_session(self.fm, outs), outs, self.items, {})

    def measure(self, k: int) -> np.ndarray:
        fed = {n: b.astype(np.int32) for n, b in self.biases.items()}
        return _means(self._sess, [self.nodes[k][0].output[0]], self.items, fed)[0]

    def shift(self, k: int, delta: np.ndarray) -> bool:
        from onnx import numpy_helper

        _, _, name, scale, f_bias = self.nodes[k]
        if delta.shape != self.biases[name].shape:
            return False
        steps = np.broadcast_to(scale, delta.shape)
        self.biases[name] = np.clip(self.biases[name] - np.round(delta / steps).astype(np.int64), _INT32.min,
                                    _INT32.max)
        fb = numpy_helper.to_array(f_bias)
        f_bias.CopyFrom(numpy_helper.from_array((fb - delta).astype(fb.dtype), f_bias.name))
        return True

    def finish(self) -> None:
        from onnx import numpy_helper

        inits = {i.name: i for i in self.qm.graph.initializer}
        for name, b in self.biases.items():
            inits[name].CopyFrom(numpy_helper.from_array(b.astype(np.int32), name))


def correct_biases(qmodel: Any, float_model: Any, feeds: Sequence[Feeds], where: str) -> Corrected | None:
    """Copies of ``qmodel`` and ``float_model`` with each quantized layer's bias corrected (module doc), or None
    when no layer has a quantized bias. ``feeds``: ranges items (at most :data:`MAX_ITEMS` are used)."""
    items = list(feeds[:MAX_ITEMS])
    backend = _OnnxBiases(qmodel, float_model, items)
    if not backend.nodes or not items:
        return None
    done, total, largest, secs = sequential_correction(backend, where)
    backend.finish()
    return Corrected(backend.qm, backend.fm, done, total, largest, len(items), secs)



def bias_correction_step(qmodel: Any, float_model: Any, ranges_items: Sequence[Feeds], judge: Judge | None,
                         budget: DecisionBudget, mode: bool | str, settings: dict[str, Any], notes: list[str],
                         where: str, correct: Callable[..., Corrected | None] | None = None) -> Corrected | None:
    """Correct ``qmodel``'s biases (:func:`correct_biases`) and say whether to keep it: ``mode`` True keeps it,
    ``"auto"`` keeps it when the check on the tuning items (``judge``; None without tuning items) improves
    (:func:`~edgekit.quantization.search.judged`), False skips it. ``correct``: the runtime's correction (default:
    ONNX Runtime QDQ, :func:`correct_biases`). The decision goes to ``settings["bias_correction"]`` and the notes;
    returns the correction when kept."""
    if mode is False or (mode == "auto" and judge is None):
        why = "bias_correction=False" if mode is False else "no tuning items to judge it on"
        settings["bias_correction"] = {"applied": False, "reason": why}
        return None
    fixed = (correct or correct_biases)(qmodel, float_model, ranges_items, where)
    if fixed is None:
        settings["bias_correction"] = {"applied": False, "reason": "no quantized layer with a bias"}
        notes.append("bias correction: no quantized Conv/Gemm with a bias; nothing to correct")
        return None
    record: dict[str, Any] = {"layers": fixed.layers, "of_layers": fixed.of_layers, "items": fixed.items,
                              "seconds": round(fixed.seconds, 1),
                              "largest_shift": {"node": fixed.largest[0], "relative": round(fixed.largest[1], 4)}}
    if mode is True or judge is None:
        settings["bias_correction"] = {"applied": True, **record}
        notes.append(fixed.describe() + " (bias_correction=True)")
        return fixed
    t = judged(qmodel, fixed, judge.check(qmodel), judge.check(fixed.model), budget)
    settings["bias_correction"] = {**t.record(), **record}
    notes.append(f"{fixed.describe()}; {t.note()}")
    return fixed if t.keep else None
