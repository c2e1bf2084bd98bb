"""Bias correction of a full-integer int8 ``.tflite`` (ai-edge-quantizer), with the real LiteRT int8 kernels.

The same sequential correction as for ONNX (:mod:`edgekit.quantization.bias_correction`): each CONV_2D /
DEPTHWISE_CONV_2D / FULLY_CONNECTED with an int32 bias, in graph order, gets its output-channel means re-centred on
the fp32 model's, measured on the ranges items with the layers before it already corrected. LiteRT fuses the
activation into the op, so the means compared are those of the op's activated output; a bias shift moves that
mean only through the outputs the activation does not clip, so the shift applied is the mean's change divided by
each channel's fraction of unclipped outputs, repeated up to :attr:`_TfliteBiases.passes` times per layer (a
planted ReLU layer whose drift pushed most outputs past the kink: one such step corrected 7% of it). The caller
keeps the correction only when the check on the tuning items improves. The int32 bias buffers are rewritten in
the flatbuffer; nothing else changes (the model stays integer-only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgekit.quantization.bias_correction import MAX_ITEMS, Corrected, sequential_correction
from edgekit.quantization.calibration import Feeds

_BIASED = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED"}  # builtin codes with a bias input
_INT32 = np.iinfo(np.int32)


def _interpreter(data: bytes) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    return it


_CLIPS = {1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}  # fused activation code -> the range it clips to


def _means(data: bytes, names: Sequence[str], feeds: Sequence[Feeds],
           clips: Sequence[tuple[float, float]] = ()) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Output-channel (last axis) means of the tensors ``names`` over ``feeds`` (the first signature's inputs by
    name, quantized where the model's inputs are integer), dequantized with each tensor's scale / zero point; and
    per channel the fraction of outputs strictly inside ``clips[i]`` (1 where no clip is given)."""
    it = _interpreter(data)
    details = {d["name"]: d for d in it.get_tensor_details()}
    runner = it.get_signature_runner(next(iter(it.get_signature_list())))
    inputs = runner.get_input_details()
    sums: list[np.ndarray] = [np.zeros(0)] * len(names)
    inside: list[np.ndarray] = [np.zeros(0)] * len(names)
    for f in feeds:
        given = {}
        for name, d in inputs.items():
            x = np.asarray(f[name])
            if np.issubdtype(d["dtype"], np.integer) and not np.issubdtype(x.dtype, np.integer):
                scale, zero = d["quantization"]
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / scale + zero), info.min, info.max)
            given[name] = x.astype(d["dtype"]).reshape(d["shape"])
        runner(**given)
        for i, name in enumerate(names):
            d = details[name]
            y = it.get_tensor(d["index"]).astype(np.float64)
            scale, zero = d["quantization"]
            if scale:
                y = (y - zero) * scale
            flat = y.reshape(-1, y.shape[-1])
            lo, hi = clips[i] if i < len(clips) else (-np.inf, np.inf)
            step = scale or 0.0
            free = ((flat > lo + step / 2) & (flat < hi - step / 2)).mean(axis=0)
            mean = flat.mean(axis=0)
            sums[i] = mean if sums[i].size == 0 else sums[i] + mean
            inside[i] = free if inside[i].size == 0 else inside[i] + free
    return [s / len(feeds) for s in sums], [f / len(feeds) for f in inside]


class _TfliteBiases:
    """:class:`~edgekit.quantization.bias_correction.BiasBackend` of an int8 ``.tflite`` (re-serialized per step)."""

    passes = 4  # measure-and-shift rounds per layer: a fused activation makes one step an underestimate

    def __init__(self, qdata: bytes, fp32_data: bytes, items: Sequence[Feeds]) -> None:
        from ai_edge_litert.tools import flatbuffer_utils as fu

        self.model = fu.convert_bytearray_to_object(bytearray(qdata))
        self.fp32 = fp32_data
        self.items = list(items)
        sg = self.model.subgraphs[0]
        ref = fu.convert_bytearray_to_object(bytearray(fp32_data)).subgraphs[0]
        float_names = {(t.name or b"").decode() for t in ref.tensors}
        self.ops: list[tuple[str, int, np.ndarray]] = []  # (output name, bias tensor index, bias scale)
        self.clips: list[tuple[float, float]] = []  # what the op's fused activation clips to
        self._free = np.ones(0)  # the fraction of unclipped outputs per channel at the last measure
        for op in sg.operators:
            code = fu.get_builtin_code_from_operator_code(self.model.operatorCodes[op.opcodeIndex])
            if code not in _BIASED or len(op.inputs) < 3 or op.inputs[2] < 0:
                continue
            bias = sg.tensors[op.inputs[2]]
            out = (sg.tensors[op.outputs[0]].name or b"").decode()
            if bias.type != 2 or bias.quantization is None or out not in float_names:  # 2: TensorType.INT32
                continue
            scale = np.asarray(bias.quantization.scale, np.float64)
            if scale.size and self.model.buffers[bias.buffer].data is not None:
                self.ops.append((out, int(op.inputs[2]), scale))
                fused = getattr(op.builtinOptions, "fusedActivationFunction", 0)
                self.clips.append(_CLIPS.get(int(fused or 0), (-np.inf, np.inf)))

    def _bias(self, k: int) -> np.ndarray:
        tensor = self.model.subgraphs[0].tensors[self.ops[k][1]]
        return np.frombuffer(bytes(bytearray(self.model.buffers[tensor.buffer].data)), np.int32).astype(np.int64)

    def _bytes(self) -> bytes:
        from ai_edge_litert.tools import flatbuffer_utils as fu

        return bytes(fu.convert_object_to_bytearray(self.model))

    def layers(self) -> list[str]:
        return [name for name, _, _ in self.ops]

    def reference(self) -> list[np.ndarray]:
        return _means(self.fp32, self.layers(), self.items)[0]

    def measure(self, k: int) -> np.ndarray:
        means, free = _means(self._bytes(), [self.ops[k][0]], self.items, [self.clips[k]])
        self._free = free[0]
        return means[0]

    def shift(self, k: int, delta: np.ndarray) -> bool:
        bias = self._bias(k)
        if bias.shape != delta.shape:
            return False
        steps = np.broadcast_to(self.ops[k][2], delta.shape)
        delta = delta / np.maximum(self._free, 0.1) if self._free.shape == delta.shape else delta
        new = np.clip(bias - np.round(delta / steps).astype(np.int64), _INT32.min, _INT32.max).astype(np.int32)
        tensor = self.model.subgraphs[0].tensors[self.ops[k][1]]
        self.model.buffers[tensor.buffer].data = np.frombuffer(new.tobytes(), np.uint8)
        return True


def correct_tflite_biases(qdata: bytes, fp32_data: bytes, feeds: Sequence[Feeds], where: str) -> Corrected | None:
    """``qdata`` (an int8 ``.tflite``) with each biased op re-centred on ``fp32_data``'s channel means, or None when
    no op has an int32 bias. ``feeds``: the models' inputs per ranges item (at most
    :data:`~edgekit.quantization.bias_correction.MAX_ITEMS`), float (quantized here where the model's inputs are
    integer)."""
    items = list(feeds[:MAX_ITEMS])
    backend = _TfliteBiases(qdata, fp32_data, items)
    if not backend.ops or not items:
        return None
    done, total, largest, secs = sequential_correction(backend, where)
    return Corrected(backend._bytes(), None, done, total, largest, len(items), secs)


def tflite_corrector(fp32: bytes) -> Callable[[Any, Any, Sequence[Feeds], str], Corrected | None]:
    """The ``correct`` argument of :func:`~edgekit.quantization.bias_correction.bias_correction_step` for TFLite."""
    return lambda q, _float, feeds, where: correct_tflite_biases(q, fp32, feeds, where)
