"""Per-layer error localisation for int8 artifacts: where inside the model the int8 values part from fp32's.

Each float tensor of the fp32 model that the int8 model also computes is read from both on the same few items
(4-8 *calibration* items: a diagnosis, never a measurement on held-out data) and compared: the mean over items of
the cosine of the tensor flattened, and the largest absolute difference. The layers come in the fp32 graph's
order; a layer's ``drop`` is how much cosine it loses against the tensors that feed it, and the report's ``jumps``
name the tensors that lose most: where the error enters.

Matching an ORT QDQ model (checked on edgekit's own int8 artifacts): the quantizer renames a quantized tensor
``X`` to ``X_QuantizeLinear_Output`` / ``X_DequantizeLinear_Output``, and drops a Relu / Clip whose range the
quantization absorbs (``Conv -> Clip -> Q`` becomes ``Conv -> Q``, the Conv writing the Clip's output name).
So fp32 ``X`` is matched, in order, with ``X_DequantizeLinear_Output`` (what X's consumers read, its own
rounding included), with ``X`` itself (a tensor left float), or with the same output of the int8 node of the same
name and op type (the Conv of a dropped Clip, before its rounding). Tensors with none (fused away) are skipped.

Limits: the ONNX models run with graph optimizations off (``ORT_DISABLE_ALL``), so that no tensor is fused away:
Q/DQ pairs then run in float (simulated int8). The errors measured are the quantization's (rounding, clipping);
what the real int8 kernels add (u8 x s8 sums saturating on AVX2 without VNNI, design notes section 7) is not
seen here; the held-out validation measures that. A tensor dominated by a few huge channels keeps a high cosine
while its small channels are rounded away: the drop then shows at the layer that reads those channels.

OpenVINO IR and TFLite: :func:`edgekit.layer_errors_openvino.openvino_layer_errors` and
:func:`edgekit.layer_errors_tflite.tflite_layer_errors` (real kernels, their own limits), which share the records
and :class:`Stats` / :func:`check_feeds` / :func:`finish_report` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import (
    CalibrationError,
    ConfigError,
    RuntimeAdapterError,
    first_line,
    not_found_hint,
    require,
)
from edgekit.metrics import cosine

MAX_JUMPS = 5
MIN_DROP = 1e-5  # a smaller cosine loss is float noise, not a jump
WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_DQ_SUFFIX = "_DequantizeLinear_Output"

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class LayerError:
    """One fp32 tensor compared with its int8 counterpart over the items.

    ``op_type`` / ``node``: the fp32 node that produces ``tensor``; ``cosine``: mean over items of the cosine of the
    tensor flattened (:func:`edgekit.metrics.cosine`); ``max_abs``: the largest absolute difference over items;
    ``drop``: the cosine of the tensors feeding the node (the lowest; 1.0 for graph inputs) minus ``cosine``;
    ``kept_float``: the int8 model computes the node in float (the quantizer said so, or the graph shows it: a weighted
    node's weight does not come from a DequantizeLinear; any other node reads no DequantizeLinear output and nothing
    computed in int8 since the last one -- a Relu after a quantized Conv is part of the int8 work). For a tensor whose
    node the int8 model dropped (a Clip absorbed by the quantization), the node that writes it there.
    """

    tensor: str
    op_type: str
    node: str
    cosine: float
    max_abs: float
    drop: float
    kept_float: bool


@dataclass(frozen=True)
class LayerReport:
    """The layers of one int8 artifact in the fp32 graph's order, and where the error jumps.

    ``jumps``: the tensors with the largest ``drop`` (largest first, at most :data:`MAX_JUMPS`, only drops over
    :data:`MIN_DROP`); ``note``: why nothing, or not everything, was measured.
    """

    artifact: str
    items: int
    layers: tuple[LayerError, ...]
    jumps: tuple[str, ...]
    note: str | None = None

    def layer(self, tensor: str) -> LayerError | None:
        """The layer of ``tensor``, or None when it was not measured."""
        return next((la for la in self.layers if la.tensor == tensor), None)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the report model's conventions: plain types)."""
        return {"artifact": self.artifact, "items": self.items, "layers": [asdict(la) for la in self.layers],
                "jumps": list(self.jumps), "note": self.note}


@dataclass(frozen=True)
class _Pair:
    """One fp32 tensor, the fp32 node making it, and the int8 tensor it is compared with."""

    tensor: str
    node: Any
    int8_tensor: str


class Stats:
    """Per-tensor results so far: the cosine of each item, the largest absolute difference."""

    def __init__(self) -> None:
        self.cos: dict[str, list[float]] = {}
        self.max_abs: dict[str, float] = {}

    def add(self, tensor: str, ref: np.ndarray, got: np.ndarray) -> None:
        """One item's fp32 (``ref``) and int8 (``got``) values of ``tensor``; non-float or mismatched ones are
        skipped."""
        if not (np.issubdtype(ref.dtype, np.floating) and np.issubdtype(got.dtype, np.floating)) \
                or ref.size != got.size:
            return  # shapes, indices, masks: not values int8 rounds
        r, g = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
        self.cos.setdefault(tensor, []).append(cosine(r, g))
        diff = float(np.max(np.abs(r - g))) if r.size else 0.0
        self.max_abs[tensor] = max(self.max_abs.get(tensor, 0.0), diff)

    def merge(self, other: Stats) -> None:
        """Add ``other``'s items."""
        for t, values in other.cos.items():
            self.cos.setdefault(t, []).extend(values)
            self.max_abs[t] = max(self.max_abs.get(t, 0.0), other.max_abs[t])


def check_feeds(feeds: Sequence[Feeds], where: str) -> list[dict[str, np.ndarray]]:
    """The feeds as dicts; none is a :class:`CalibrationError`."""
    items = [dict(f) for f in feeds]
    if not items:
        raise CalibrationError("no items to localise the int8 error on", where=where,
                               expected="4-8 calibration items (never held-out items)", got=0,
                               hint="pass a few feeds of the calibration split")
    return items


def finish_report(artifact: str, items: int, fp32_order: Sequence[tuple[str, str, str, bool]], stats: Stats,
                  upstream_of: Callable[[str], Sequence[str]], note: str | None) -> LayerReport:
    """Layers from the measured stats: ``fp32_order`` is (tensor, op type, node, kept float) in graph order,
    ``upstream_of(tensor)`` the tensors feeding its node (an empty string for a graph input)."""
    cos = {t: float(np.mean(v)) for t, v in stats.cos.items()}
    memo: dict[str, float | None] = {}

    def seen(t: str, depth: int = 0) -> float | None:
        """The cosine a tensor reaches its consumers with: its own when measured, else its inputs' lowest."""
        if t == "":
            return 1.0
        if t in cos:
            return cos[t]
        if t in memo or depth > 200:
            return memo.get(t)
        memo[t] = None  # a cycle (never in a valid graph) ends here
        found = [c for u in upstream_of(t) if (c := seen(u, depth + 1)) is not None]
        memo[t] = min(found) if found else None
        return memo[t]

    layers = []
    for tensor, op_type, node, kept in fp32_order:
        if tensor not in cos:
            continue
        found = [c for u in upstream_of(tensor) if (c := seen(u)) is not None]
        before = min(found) if found else 1.0
        layers.append(LayerError(tensor, op_type, node, cos[tensor], stats.max_abs[tensor],
                                 before - cos[tensor], kept))
    ranked = sorted((la for la in layers if la.drop > MIN_DROP), key=lambda la: -la.drop)
    if not layers and note is None:
        note = "no tensor of the fp32 model was found in the int8 model"
    return LayerReport(artifact, items, tuple(layers), tuple(la.tensor for la in ranked[:MAX_JUMPS]), note)


# --- ONNX (ONNX Runtime) -----------------------------------------------------------------------------------

def _load_onnx(path: Path) -> Any:
    onnx = require("onnx", None, "per-layer errors of ONNX models")
    if not Path(path).is_file():
        raise RuntimeAdapterError("model file not found", where=str(path), hint=not_found_hint(path))
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise RuntimeAdapterError(f"not a loadable ONNX model: {first_line(exc, 240)}", where=str(path),
                                  hint="pass the fp32 and int8 .onnx files of one run") from exc


def _float_types(model: Any) -> dict[str, bool]:
    """Tensor name -> whether its element type is a float type, where ONNX shape inference knows it."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is best effort: unknown types are checked on the values
        inferred = model
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
    g = inferred.graph
    return {v.name: v.type.tensor_type.elem_type in floats for v in [*g.value_info, *g.output, *g.input]
            if v.type.tensor_type.elem_type}


def _pairs(fp32: Any, int8: Any) -> list[_Pair]:
    """Every float fp32 node output the int8 model computes, with its int8 name (module docstring)."""
    inits = {i.name for i in fp32.graph.initializer}
    is_float = _float_types(fp32)
    int8_names = {o for n in int8.graph.node for o in n.output} | {i.name for i in int8.graph.input}
    int8_nodes = {n.name: n for n in int8.graph.node if n.name}
    pairs = []
    for node in fp32.graph.node:
        if node.op_type == "Constant":
            continue
        twin = int8_nodes.get(node.name) if node.name else None
        for k, t in enumerate(node.output):
            if not t or t in inits or not is_float.get(t, True):
                continue
            if t + _DQ_SUFFIX in int8_names:
                pairs.append(_Pair(t, node, t + _DQ_SUFFIX))
            elif t in int8_names:
                pairs.append(_Pair(t, node, t))
            elif twin is not None and twin.op_type == node.op_type and k < len(twin.output) and twin.output[k]:
                pairs.append(_Pair(t, node, twin.output[k]))
    return pairs


def _float_nodes(int8: Any) -> dict[str, bool]:
    """Int8 node (by its first output) -> whether it runs in float: a weighted node whose constant weight does not
    come from a DequantizeLinear; any other node when no input comes from a DequantizeLinear or a node that does not
    run in float (a Relu after a quantized Conv is part of the int8 computation). One pass in graph order."""
    inits = {i.name for i in int8.graph.initializer}
    producers = {o: n for n in int8.graph.node for o in n.output}
    flags: dict[str, bool] = {}
    for node in int8.graph.node:
        w = producers.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type in WEIGHTED_OPS and len(node.input) > 1 and (
                node.input[1] in inits or (w is not None and w.op_type == "DequantizeLinear" and w.input[0] in inits)):
            flags[node.output[0]] = w is None or w.op_type != "DequantizeLinear"
            continue
        srcs = [producers[i] for i in node.input if i in producers]
        if node.output:
            flags[node.output[0]] = node.op_type not in _QDQ and all(
                p.op_type not in _QDQ and flags.get(p.output[0], True) for p in srcs)
    return flags


def _int8_node(producers: Mapping[str, Any], tensor: str) -> Any:
    """The int8 node that computes ``tensor`` behind its Q/DQ (None for a graph input)."""
    node = producers.get(tensor)
    while node is not None and node.op_type in _QDQ:
        node = producers.get(node.input[0])
    return node


def _session(model: Any, outputs: Sequence[str], where: str) -> Any:
    from edgekit.quantization.onnx_ort import probe_session

    try:
        return probe_session(model, outputs)
    except Exception as exc:
        raise RuntimeAdapterError(f"onnxruntime cannot load the model with its inner tensors as outputs: "
                                  f"{first_line(exc, 240)}", where=where,
                                  hint="check that the model runs in onnxruntime") from exc


def _run(sess: Any, feed: dict[str, np.ndarray], names: Sequence[str], where: str) -> list[np.ndarray]:
    declared = {i.name for i in sess.get_inputs()}
    try:
        return [np.asarray(v) for v in sess.run(list(names), {k: v for k, v in feed.items() if k in declared})]
    except Exception as exc:
        raise RuntimeAdapterError(f"onnxruntime cannot run the model: {first_line(exc, 240)}", where=where,
                                  hint="the feeds must be the model's inputs (the calibration preprocessing)") from exc


def onnx_layer_errors(fp32_path: Path, int8_path: Path, feeds: Sequence[Feeds], *, max_tensors: int = 200,
                      kept_float: Sequence[str] = ()) -> LayerReport:
    """Compare every float tensor of the fp32 ONNX model with the int8 model's on ``feeds`` (4-8 calibration
    items, one item per feed).

    Both models run in ONNX Runtime on the CPU with graph optimizations off (``ORT_DISABLE_ALL``: no tensor is
    fused away, and Q/DQ pairs run in float), their inner tensors added as graph outputs, at most ``max_tensors`` per
    session (more tensors take more sessions, each over every item: memory stays at one item's ``max_tensors``
    tensors per model). ``kept_float``: node names the quantizer kept float (its report's ``kept_float``), marked so
    besides what the graph shows. Raises :class:`RuntimeAdapterError` when a model cannot be loaded or run.
    """
    if not isinstance(max_tensors, int) or max_tensors < 1:
        raise ConfigError("too few tensors per run", where="max_tensors", expected="an integer >= 1", got=max_tensors)
    where = str(int8_path)
    items = check_feeds(feeds, where)
    fp32, int8 = _load_onnx(Path(fp32_path)), _load_onnx(Path(int8_path))
    pairs = _pairs(fp32, int8)
    stats = Stats()
    for start in range(0, len(pairs), max_tensors):
        chunk = pairs[start:start + max_tensors]
        ref_names = list(dict.fromkeys(p.tensor for p in chunk))
        got_names = list(dict.fromkeys(p.int8_tensor for p in chunk))
        ref_sess = _session(fp32, ref_names, str(fp32_path))
        got_sess = _session(int8, got_names, where)
        for feed in items:
            ref = dict(zip(ref_names, _run(ref_sess, feed, ref_names, str(fp32_path)), strict=True))
            got = dict(zip(got_names, _run(got_sess, feed, got_names, where), strict=True))
            for p in chunk:
                stats.add(p.tensor, ref[p.tensor], got[p.int8_tensor])
        del ref_sess, got_sess
    names = set(kept_float)
    int8_producers = {o: n for n in int8.graph.node for o in n.output}
    flags = _float_nodes(int8)
    order = []
    for p in pairs:
        node = _int8_node(int8_producers, p.int8_tensor)
        kept = node is None or flags.get(node.output[0], True) or p.node.name in names or node.name in names
        order.append((p.tensor, p.node.op_type, p.node.name, kept))
    producers = {o: n for n in fp32.graph.node for o in n.output}
    inits = {i.name for i in fp32.graph.initializer}
    graph_inputs = {i.name for i in fp32.graph.input} - inits

    def upstream(t: str) -> list[str]:
        node = producers.get(t)
        if node is None:
            return [""] if t in graph_inputs else []
        return ["" if i in graph_inputs else i for i in node.input if i and i not in inits]

    return finish_report(where, len(items), order, stats, upstream, None)

