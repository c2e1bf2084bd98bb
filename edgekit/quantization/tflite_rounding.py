"""Optimized weight rounding of a full-integer int8 ``.tflite`` (ai-edge-quantizer): the method of
:mod:`edgekit.quantization.rounding`, on LiteRT's layouts.

CONV_2D (OHWI), DEPTHWISE_CONV_2D (1HWC, depth multiplier 1) and FULLY_CONNECTED (out x in) ops with int8 weights
get their int8 values chosen for their output; ``H`` comes from the fp32 ``.tflite``'s input tensor of the same op
(matched by output tensor name) on the ranges items, read with LiteRT (NHWC, turned to NCHW for the shared math;
SAME padding made explicit from the tensor shapes). Scales stay the quantizer's; the values stay in [-127, 127]
(TFLite's symmetric int8 weights). The int8 weight buffers are rewritten in the flatbuffer; nothing else changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgekit.quantization.calibration import Feeds
from edgekit.quantization.rounding import MAX_COLUMNS, MAX_ITEMS, Layer, Moments, Rounded, gram, round_layer

_ROUNDED = {3: "conv", 4: "depthwise", 9: "rows"}  # builtin code -> layout kind
_INT8 = 9  # TensorType.INT8
_FLOAT32 = 0


def _name(tensor: Any) -> str:
    return (tensor.name or b"").decode()


def _array(model: Any, tensor: Any, dtype: Any) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data
    if data is None:
        return None
    return np.frombuffer(bytes(bytearray(data)), dtype).reshape(list(tensor.shape))


def _same_pads(size: int, out: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _layers(qmodel: Any, fmodel: Any) -> tuple[list[tuple[Layer, int]], dict[str, str]]:
    """(layer in the shared layout, int8 weight tensor index) of every roundable op; the others looked at and why."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    sg, fsg = qmodel.subgraphs[0], fmodel.subgraphs[0]
    f_ops = {_name(fsg.tensors[op.outputs[0]]): op for op in fsg.operators if len(op.outputs)}
    out: list[tuple[Layer, int]] = []
    left: dict[str, str] = {}
    for op in sg.operators:
        kind = _ROUNDED.get(fu.get_builtin_code_from_operator_code(qmodel.operatorCodes[op.opcodeIndex]))
        if kind is None or len(op.inputs) < 2 or not len(op.outputs):
            continue
        name = _name(sg.tensors[op.outputs[0]])
        wt = sg.tensors[op.inputs[1]]
        fop = f_ops.get(name)
        if wt.type != _INT8 or wt.quantization is None or fop is None:
            continue
        fw = fsg.tensors[fop.inputs[1]]
        q, w = _array(qmodel, wt, np.int8), _array(fmodel, fw, np.float32) if fw.type == _FLOAT32 else None
        if q is None or w is None or q.shape != w.shape:
            continue
        scale = np.asarray(wt.quantization.scale, np.float64)
        zero = np.asarray(wt.quantization.zeroPoint if wt.quantization.zeroPoint is not None else [0], np.float64)
        x_in, y_out = fsg.tensors[fop.inputs[0]], fsg.tensors[fop.outputs[0]]
        attrs: dict[str, Any] = {}
        if kind == "rows":
            weight = w.astype(np.float64)  # (out, in)
        else:
            opts = fop.builtinOptions
            if kind == "depthwise" and (int(getattr(opts, "depthMultiplier", 1) or 1) != 1 or w.shape[0] != 1):
                left[name] = "depthwise conv with a depth multiplier"
                continue
            weight = w.transpose(3, 0, 1, 2) if kind == "depthwise" else w.transpose(0, 3, 1, 2)  # -> O,I,kh,kw
            weight = weight.astype(np.float64)
            kh, kw = weight.shape[2:]
            sh, sw = int(opts.strideH or 1), int(opts.strideW or 1)
            dh, dw = int(opts.dilationHFactor or 1), int(opts.dilationWFactor or 1)
            pads = [0, 0, 0, 0]
            if int(opts.padding) == 0 and len(x_in.shape) == 4 and len(y_out.shape) == 4:  # SAME
                top, bottom = _same_pads(int(x_in.shape[1]), int(y_out.shape[1]), kh, sh, dh)
                lft, rgt = _same_pads(int(x_in.shape[2]), int(y_out.shape[2]), kw, sw, dw)
                pads = [top, lft, bottom, rgt]
            attrs = {"strides": [sh, sw], "dilations": [dh, dw], "pads": pads}
        rows = weight.shape[0]
        if scale.size not in (1, rows):
            left[name] = "scale not per output channel"
            continue
        layer = Layer(name, str(op.inputs[1]), weight, np.broadcast_to(scale, (rows,)).copy(),
                       np.broadcast_to(zero if zero.size in (1, rows) else zero[:1], (rows,)).copy(), -127, 127,
                       kind, False, _name(x_in), attrs)
        columns = int(np.prod(weight.shape[2:] if kind == "depthwise" else weight.shape[1:]))
        if columns > MAX_COLUMNS:
            left[name] = f"{columns} inputs per output (more than {MAX_COLUMNS})"
            continue
        nearest = np.clip(np.round(weight.reshape(rows, -1) / layer.scale[:, None]) + layer.zero[:, None], -127, 127)
        stored = (q.transpose(3, 0, 1, 2) if kind == "depthwise" else q.transpose(0, 3, 1, 2) if kind == "conv"
                  else q).reshape(rows, -1)
        if np.mean(nearest == stored) < 0.99:
            left[name] = "its int8 weight is not the nearest rounding of the float weight"
            continue
        out.append((layer, int(op.inputs[1])))
    return out, left


def _moments(fp32: bytes, layers: Sequence[Layer], feeds: Sequence[Feeds]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=fp32, num_threads=1, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    index = {d["name"]: d["index"] for d in it.get_tensor_details()}
    runner = it.get_signature_runner(next(iter(it.get_signature_list())))
    inputs = runner.get_input_details()
    grams: dict[str, np.ndarray] = {}
    for f in feeds:
        runner(**{k: np.asarray(f[k]).astype(d["dtype"]).reshape(d["shape"]) for k, d in inputs.items()})
        for ly in layers:
            if ly.input_name not in index:
                continue
            x = it.get_tensor(index[ly.input_name])
            x = x.transpose(0, 3, 1, 2) if ly.kind != "rows" else x  # NHWC -> NCHW for the shared windows
            g = gram(x, ly)
            grams[ly.node] = g if ly.node not in grams else grams[ly.node] + g
    return grams


def apply_tflite_rounding(qdata: bytes, fp32: bytes, moments: Moments) -> tuple[bytes, int, int, list[float]]:
    """``qdata`` with each roundable op (with moments) taking the optimized int8 weights: (model, ops changed,
    roundable ops, each changed op's relative output-error cut)."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(qdata))
    layers, _ = _layers(model, fu.convert_bytearray_to_object(bytearray(fp32)))
    sg = model.subgraphs[0]
    changed, cuts = 0, []
    for ly, tensor_index in layers:
        h = moments.grams.get(ly.node)
        if h is None:
            continue
        values, e0, e1 = round_layer(ly, h)
        if e1 >= e0:
            continue
        if ly.kind == "depthwise":
            values = values.transpose(1, 2, 3, 0)  # C,1,kh,kw -> 1,kh,kw,C
        elif ly.kind == "conv":
            values = values.transpose(0, 2, 3, 1)  # O,I,kh,kw -> O,kh,kw,I
        model.buffers[sg.tensors[tensor_index].buffer].data = np.frombuffer(
            np.ascontiguousarray(values.astype(np.int8)).tobytes(), np.uint8)
        changed += 1
        cuts.append(1.0 - e1 / e0 if e0 > 0 else 0.0)
    return bytes(fu.convert_object_to_bytearray(model)), changed, len(layers), cuts


def round_tflite_weights(qdata: bytes, fp32: bytes, feeds: Sequence[Feeds]) -> Rounded | None:
    """``qdata`` with optimized weight rounding, or None when no op can be rounded. ``feeds``: the model's inputs
    per ranges item (float), at most :data:`~edgekit.quantization.rounding.MAX_ITEMS` used."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    t0 = time.perf_counter()
    items = list(feeds[:MAX_ITEMS])
    found, left = _layers(fu.convert_bytearray_to_object(bytearray(qdata)),
                          fu.convert_bytearray_to_object(bytearray(fp32)))
    if not found or not items:
        return None
    moments = Moments(_moments(fp32, [ly for ly, _ in found], items), len(items), time.perf_counter() - t0, left)
    model, changed, total, cuts = apply_tflite_rounding(qdata, fp32, moments)
    return Rounded(model, moments, changed, total, float(np.median(cuts)) if cuts else 0.0, time.perf_counter() - t0)


def tflite_rounder(fp32: bytes) -> Callable[[Any, Any, Sequence[Feeds]], Rounded | None]:
    """The ``rounder`` argument of :func:`~edgekit.quantization.rounding.weight_rounding_step` for TFLite."""
    return lambda q, _float, feeds: round_tflite_weights(q, fp32, feeds)


def rounded_again(model: bytes, fp32: bytes, rounded: Rounded | None, correct: Callable[..., Any] | None,
                  feeds: Sequence[Feeds], where: str) -> bytes:
    """A rebuild (the search's) given the rounding (same moments) and the bias correction (measured again) that
    the first build kept."""
    if rounded is not None:
        model = apply_tflite_rounding(model, fp32, rounded.moments)[0]
    if correct is not None:
        again = correct(model, None, feeds, where)
        model = again.model if again is not None else model
    return model
