"""Flatbuffer edits of ``.tflite`` files for the TFLite format: what kind of I/O a model has, float I/O for an
int8-I/O model, and the source's input names on a converted model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_write_bytes
from edgekit.errors import QuantizationError


def io_types(data: bytes | bytearray) -> str:
    """"int8" when every graph input and output is an integer tensor, "float" when all are float, else "mixed"."""
    from ai_edge_litert import schema_py_generated as s

    model = s.Model.GetRootAs(bytearray(data), 0)
    sg = model.Subgraphs(0)
    ints = {s.TensorType.INT8, s.TensorType.UINT8, s.TensorType.INT16}
    kinds = {sg.Tensors(int(i)).Type() in ints for i in [*sg.InputsAsNumpy(), *sg.OutputsAsNumpy()]}
    return "int8" if kinds == {True} else "float" if kinds == {False} else "mixed"


def _opcode(model: Any, code: int) -> int:
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils as fu

    for i, oc in enumerate(model.operatorCodes):
        if fu.get_builtin_code_from_operator_code(oc) == code:
            return i
    oc = s.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 2
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def float_io(data: bytes | bytearray) -> bytes:
    """Give an int8-I/O model float inputs/outputs: QUANTIZE in front of each input, DEQUANTIZE after each
    output; signature entries follow the new tensors."""
    import copy

    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(data))
    sg = model.subgraphs[0]
    q_code, dq_code = _opcode(model, s.BuiltinOperator.QUANTIZE), _opcode(model, s.BuiltinOperator.DEQUANTIZE)

    def float_twin(idx: int) -> int:
        t = copy.deepcopy(sg.tensors[idx])
        t.type, t.quantization = s.TensorType.FLOAT32, None
        empty = s.BufferT()
        model.buffers.append(empty)
        t.buffer = len(model.buffers) - 1
        sg.tensors[idx].name = (sg.tensors[idx].name or b"") + b"_int8"
        sg.tensors.append(t)
        return len(sg.tensors) - 1

    remap: dict[int, int] = {}
    front, back = [], []
    for k, idx in enumerate(list(sg.inputs)):
        if sg.tensors[idx].type not in (s.TensorType.INT8, s.TensorType.UINT8):
            continue
        new = float_twin(int(idx))
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = q_code, [new], [int(idx)]
        front.append(op)
        sg.inputs[k] = new
        remap[int(idx)] = new
    for k, idx in enumerate(list(sg.outputs)):
        if sg.tensors[idx].type not in (s.TensorType.INT8, s.TensorType.UINT8):
            continue
        new = float_twin(int(idx))
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = dq_code, [int(idx)], [new]
        back.append(op)
        sg.outputs[k] = new
        remap[int(idx)] = new
    sg.operators = front + list(sg.operators) + back
    for sig in model.signatureDefs or []:
        for tm in [*(sig.inputs or []), *(sig.outputs or [])]:
            tm.tensorIndex = remap.get(int(tm.tensorIndex), tm.tensorIndex)
    return bytes(fu.convert_object_to_bytearray(model))


def has_signature(data: bytes | bytearray) -> bool:
    """Whether the model has a signature (ai-edge-quantizer finds the inputs through it)."""
    from ai_edge_litert import schema_py_generated as s

    return bool(s.Model.GetRootAs(bytearray(data), 0).SignatureDefsLength())


def rename_inputs(path: Path, names: list[str]) -> None:
    """Give the model's graph inputs (tensors and signature entries) the source's input names, in order, so
    feeds match by name on every runtime (litert-torch names them ``serving_default_args_0``...)."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(Path(path).read_bytes()))
    sg = model.subgraphs[0]
    if len(sg.inputs) != len(names):
        raise QuantizationError("input count differs from the source", where=str(path),
                                expected=str(len(names)), got=len(sg.inputs))
    by_index = {int(idx): name for idx, name in zip(sg.inputs, names, strict=True)}
    for idx, name in by_index.items():
        sg.tensors[idx].name = name.encode()
    for sig in model.signatureDefs or []:
        for tm in sig.inputs or []:
            if int(tm.tensorIndex) in by_index:
                tm.name = by_index[int(tm.tensorIndex)].encode()
    atomic_write_bytes(path, bytes(fu.convert_object_to_bytearray(model)))


def ensure_signature(path: Path, inputs: list[str], outputs: list[str], key: str = "serving_default") -> None:
    """Name the graph's inputs and outputs after the source (in order) and give a model without a signature one
    (``key``) mapping those names to the graph tensors: onnx2tf's ``.tflite`` has none, and ai-edge-quantizer
    (full-integer int8) finds inputs through the signature."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(Path(path).read_bytes()))
    sg = model.subgraphs[0]
    for what, idxs, names in (("input", sg.inputs, inputs), ("output", sg.outputs, outputs)):
        if len(idxs) != len(names):
            raise QuantizationError(f"{what} count differs from the source", where=str(path),
                                    expected=str(len(names)), got=len(idxs))
        for idx, name in zip(idxs, names, strict=True):
            sg.tensors[int(idx)].name = name.encode()
    if not model.signatureDefs:
        sig = s.SignatureDefT()
        sig.signatureKey, sig.subgraphIndex = key.encode(), 0

        def maps(idxs: Any, names: list[str]) -> list[Any]:
            out = []
            for idx, name in zip(idxs, names, strict=True):
                tm = s.TensorMapT()
                tm.name, tm.tensorIndex = name.encode(), int(idx)
                out.append(tm)
            return out

        sig.inputs, sig.outputs = maps(sg.inputs, inputs), maps(sg.outputs, outputs)
        model.signatureDefs = [sig]
    else:
        by_index = {int(i): n for i, n in zip([*sg.inputs, *sg.outputs], [*inputs, *outputs], strict=True)}
        for sig in model.signatureDefs:
            for tm in [*(sig.inputs or []), *(sig.outputs or [])]:
                if int(tm.tensorIndex) in by_index:
                    tm.name = by_index[int(tm.tensorIndex)].encode()
    atomic_write_bytes(path, bytes(fu.convert_object_to_bytearray(model)))


def float32_weights(data: bytes | bytearray) -> tuple[bytes, int]:
    """The same model in the form ai-edge-quantizer quantizes: float16 constants that feed a ``DEQUANTIZE`` op
    stored as float32 instead (the op removed; it left such weights unquantized), and operator codes of the
    old schema (``builtin_code`` 0, the real one in ``deprecated_builtin_code``) written in the new field (it
    read them all as ADD and quantized conv weights as activations). The numbers are unchanged. Returns the
    bytes and how many changes were made (0: the model was already in that form)."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.convert_bytearray_to_object(bytearray(data))
    folded = 0
    for oc in model.operatorCodes:
        code = fu.get_builtin_code_from_operator_code(oc)
        folded += int(code != oc.builtinCode)
        oc.builtinCode = code
    dropped: list[tuple[Any, int]] = []
    for sg in model.subgraphs:
        keep = []
        for op in sg.operators:
            code = fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex])
            src = sg.tensors[int(op.inputs[0])] if code == s.BuiltinOperator.DEQUANTIZE and len(op.inputs) else None
            buf = model.buffers[src.buffer] if src is not None else None
            if src is None or buf is None or src.type != s.TensorType.FLOAT16 or buf.data is None or not len(buf.data):
                keep.append(op)
                continue
            values = np.frombuffer(bytes(bytearray(buf.data)), dtype=np.float16).astype(np.float32)
            out = sg.tensors[int(op.outputs[0])]
            new = s.BufferT()
            new.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
            model.buffers.append(new)
            out.buffer = len(model.buffers) - 1
            folded += 1
            dropped.append((sg, int(op.inputs[0])))
        sg.operators = keep
    for sg, idx in dropped:  # a float16 copy no op reads any more: its bytes go
        if not any(idx in op.inputs for op in sg.operators):
            model.buffers[sg.tensors[idx].buffer].data = None
    for sg in model.subgraphs:
        _drop_unused_tensors(model, sg)
    return bytes(fu.convert_object_to_bytearray(model)), folded


def _drop_unused_tensors(model: Any, sg: Any) -> None:
    """Remove the tensors of ``sg`` that no op, graph input/output or signature uses (renumbering the rest)."""
    used = {int(i) for op in sg.operators for i in [*op.inputs, *op.outputs] if int(i) >= 0}
    used |= {int(i) for i in [*sg.inputs, *sg.outputs]}
    used |= {int(tm.tensorIndex) for sig in model.signatureDefs or [] for tm in [*(sig.inputs or []),
                                                                               *(sig.outputs or [])]}
    order = [i for i in range(len(sg.tensors)) if i in used]
    if len(order) == len(sg.tensors):
        return
    new = {old: k for k, old in enumerate(order)}
    sg.tensors = [sg.tensors[i] for i in order]
    for op in sg.operators:
        op.inputs = [new[int(i)] if int(i) >= 0 else -1 for i in op.inputs]
        op.outputs = [new[int(i)] for i in op.outputs]
    sg.inputs, sg.outputs = [new[int(i)] for i in sg.inputs], [new[int(i)] for i in sg.outputs]
    for sig in model.signatureDefs or []:
        for tm in [*(sig.inputs or []), *(sig.outputs or [])]:
            tm.tensorIndex = new[int(tm.tensorIndex)]
