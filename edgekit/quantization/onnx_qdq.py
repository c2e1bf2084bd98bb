"""QDQ graph edits for :mod:`edgekit.quantization.onnx`: keep chosen nodes float in an ORT QDQ model.

* :func:`protect_float_nodes`: ONNX Runtime's ``WeightBiasQuantization`` optimizer (graph optimization
  level 1) quantizes, at session load, the float weight of any Conv / ConvTranspose / Gemm that reads a
  per-tensor DequantizeLinear and feeds a QuantizeLinear (through Relu / Clip at most) -- per-tensor,
  which wrecks depthwise convolutions. A node kept float there gets its own per-axis DequantizeLinear
  input that repeats the same scale and zero point per channel: identical values, and the optimizer,
  which handles per-tensor inputs only, leaves the node alone.
* :func:`with_float_weights`: a copy of a QDQ model in which some weighted nodes read their original
  float weight and bias again (activations stay int8), protected as above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_WBQ_OPS = ("Conv", "ConvTranspose", "Gemm")  # the ops ORT's WeightBiasQuantization rewrites


def _consumers(model: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for name in n.input:
            out.setdefault(name, []).append(n)
    return out


def _producers(model: Any) -> dict[str, Any]:
    return {o: n for n in model.graph.node for o in n.output}


def _leads_to_quantize(node: Any, consumers: Mapping[str, list[Any]], graph_outputs: set[str]) -> bool:
    """ORT's test: a no-branch path from ``node`` through Relu/Clip to a QuantizeLinear."""
    cur = node
    while True:
        if len(cur.output) != 1 or cur.output[0] in graph_outputs:
            return False
        users = consumers.get(cur.output[0], [])
        if len(users) != 1:
            return False
        if users[0].op_type == "QuantizeLinear":
            return True
        if users[0].op_type not in ("Relu", "Clip"):
            return False
        cur = users[0]


def _input_channels(node: Any, weight: np.ndarray) -> tuple[int, int] | None:
    """(axis, channels) of input 0 of a Conv/ConvTranspose/Gemm, from its weight."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Conv":
        group = int(attrs["group"].i) if "group" in attrs else 1
        return 1, int(weight.shape[1]) * group
    if node.op_type == "ConvTranspose":
        return 1, int(weight.shape[0])
    if node.op_type == "Gemm":
        trans_a = int(attrs["transA"].i) if "transA" in attrs else 0
        trans_b = int(attrs["transB"].i) if "transB" in attrs else 0
        k = int(weight.shape[1] if trans_b else weight.shape[0])
        return (0 if trans_a else 1), k
    return None


def protect_float_nodes(model: Any) -> list[str]:
    """Give each float-weight Conv/Gemm between a per-tensor DQ and a Q its own per-axis DQ input.

    ORT's ``WeightBiasQuantization`` (graph optimization level 1) would otherwise quantize the node's
    float weight per-tensor to int8 at session load. The per-axis DQ repeats the same scale and zero
    point for every channel, so the values are identical; the optimizer only handles per-tensor DQ
    inputs and leaves the node float. Returns the names of the nodes protected.
    """
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    producers = _producers(model)
    consumers = _consumers(model)
    outputs = {o.name for o in model.graph.output}
    protected: list[str] = []
    for node in list(model.graph.node):
        if node.op_type not in _WBQ_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        dq = producers.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or len(dq.input) < 3:
            continue
        if dq.input[1] not in inits or dq.input[2] not in inits:
            continue
        scale = numpy_helper.to_array(inits[dq.input[1]])
        zero = numpy_helper.to_array(inits[dq.input[2]])
        if scale.size != 1 or not _leads_to_quantize(node, consumers, outputs):
            continue
        axis_ch = _input_channels(node, numpy_helper.to_array(inits[node.input[1]]))
        if axis_ch is None or axis_ch[1] < 2:
            continue
        axis, ch = axis_ch
        base = f"{node.name or node.output[0]}_float_input"
        s_name, z_name, out_name = f"{base}_scale", f"{base}_zero_point", f"{base}_DequantizeLinear_Output"
        model.graph.initializer.append(numpy_helper.from_array(np.full(ch, scale.reshape(()), scale.dtype), s_name))
        model.graph.initializer.append(numpy_helper.from_array(np.full(ch, zero.reshape(()), zero.dtype), z_name))
        new_dq = helper.make_node("DequantizeLinear", [dq.input[0], s_name, z_name], [out_name],
                                  name=f"{base}_DequantizeLinear", axis=axis)
        idx = list(model.graph.node).index(node)
        model.graph.node.insert(idx, new_dq)
        node.input[0] = out_name
        protected.append(node.name)
    prune(model)
    return protected


def _names_read(nodes: Sequence[Any]) -> set[str]:
    """Every tensor name the nodes read, including from inside their subgraphs (If / Loop / Scan)."""
    names: set[str] = set()
    for n in nodes:
        names.update(n.input)
        for attr in n.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                names.update(_names_read(list(sub.node)))
                names.update(o.name for o in sub.output)
    return names


def prune(model: Any) -> None:
    """Drop nodes whose outputs nobody reads (repeatedly), then initializers nobody reads."""
    graph_out = {o.name for o in model.graph.output}
    while True:
        used = _names_read(list(model.graph.node)) | graph_out
        dead = [n for n in model.graph.node if n.output and not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            model.graph.node.remove(n)
    used = _names_read(list(model.graph.node)) | graph_out
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def float_weights(float_model: Any) -> dict[str, list[tuple[int, Any]]]:
    """Node name -> [(input index, float initializer)] for the weight and bias of weighted nodes."""
    inits = {i.name: i for i in float_model.graph.initializer}
    out: dict[str, list[tuple[int, Any]]] = {}
    for n in float_model.graph.node:
        if n.op_type in WEIGHTED_OPS and n.name:
            out[n.name] = [(k, inits[n.input[k]]) for k in (1, 2) if k < len(n.input) and n.input[k] in inits]
    return out


def quantized_weighted_nodes(model: Any) -> list[str]:
    """Names of weighted nodes whose weight input is a DequantizeLinear of an initializer."""
    inits = {i.name for i in model.graph.initializer}
    producers = _producers(model)
    names = []
    for n in model.graph.node:
        if n.op_type in WEIGHTED_OPS and len(n.input) > 1 and n.name:
            dq = producers.get(n.input[1])
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
                names.append(n.name)
    return names


def with_float_weights(qmodel: Any, names: Sequence[str], weights: Mapping[str, list[tuple[int, Any]]]) -> Any:
    """A copy of ``qmodel`` in which ``names`` read their original float weight and bias again."""
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(qmodel)
    have = {i.name for i in model.graph.initializer}
    wanted = set(names)
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        for k, tensor in weights.get(node.name, []):
            name = f"{tensor.name}_float"
            if name not in have:
                copy = onnx.TensorProto()
                copy.CopyFrom(tensor)
                copy.name = name
                model.graph.initializer.append(copy)
                have.add(name)
            node.input[k] = name
    prune(model)
    protect_float_nodes(model)
    return model


def float_graph_outputs(model: Any) -> list[str]:
    """Drop the Quantize/DequantizeLinear pair in front of each graph output: the layer that makes an output
    hands it over in float instead of rounded to 256 levels. Returns the outputs freed.

    An 8-bit output ties and clips: with entropy ranges EfficientNet-Lite0's logits were clipped and top-1
    agreement on held-out photos fell to 0.62 (0.82 with float logits, at the same speed: ONNX Runtime fuses the
    last Gemm/Conv with a float output). Integer kernels run the same; only the last rounding goes.

    Outputs made by a MatMul keep their pair: ONNX Runtime 1.32 rewrites DequantizeLinear(int8 weight) -> MatMul
    with a float output into ``MatMulNBits``, which computed a planted model's output at cosine 0.61 against
    0.9994 for the same graph run unoptimized."""
    producers = _producers(model)
    consumers = _consumers(model)
    outputs = {o.name for o in model.graph.output}
    freed: list[str] = []
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] in outputs]:
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear" or len(consumers.get(q.output[0], [])) != 1:
            continue
        src = q.input[0]
        maker = producers.get(src)
        if maker is None or maker.op_type == "MatMul" or src in outputs \
                or any(u is not q for u in consumers.get(src, [])):
            continue
        maker.output[list(maker.output).index(src)] = dq.output[0]
        model.graph.node.remove(q)
        model.graph.node.remove(dq)
        freed.append(dq.output[0])
    if freed:
        prune(model)
    return freed
