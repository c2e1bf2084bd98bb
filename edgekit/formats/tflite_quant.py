"""Quantize an fp32 ``.tflite`` with ``ai-edge-quantizer`` (no TensorFlow needed).

- fp16: weights cast to float16 (``FLOAT_CASTING``), compute in float;
- int8-dynamic: int8 weights, float activations quantized on the fly;
- int8 (full integer): int8 weights and activations, min/max calibrated on the calibration split;
  I/O int8 (what MCUs and NPUs want; the LiteRT session quantizes feeds with each tensor's scale/zero
  point) or float (a QUANTIZE op in front of each input, a DEQUANTIZE after each output).
Models are written with inline buffers (Vela and older runtimes do not read offset buffers).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_write_bytes
from edgekit.errors import CalibrationError, QuantizationError, first_line, require

Feeds = dict[str, np.ndarray]
IO_TYPES = ("int8", "float")


@dataclass(frozen=True)
class TfliteInt8Options:
    """Full-integer int8: ``io`` is "int8" or "float"; ``max_items`` bounds the calibration items used."""

    io: str = "int8"
    max_items: int | None = 300

    def __post_init__(self) -> None:
        if self.io not in IO_TYPES:
            raise QuantizationError("unknown int8 I/O type", where="tflite.int8.io",
                                    expected=" | ".join(IO_TYPES), got=self.io)


@dataclass(frozen=True)
class TfliteQuantReport:
    """What a quantization did: settings, notes, calibration cost."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    calibration_items: int = 0
    calibration_seconds: float = 0.0


def _quantizer() -> Any:
    return require("ai_edge_quantizer.quantizer", "tflite", "quantizing .tflite models")


def _export(result: Any, out_path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="edgekit-aeq-", dir=out_path.parent) as tmp:
        tmp_file = Path(tmp) / "model.tflite"
        result.export_model(str(tmp_file), overwrite=True)
        from ai_edge_litert.tools import flatbuffer_utils as fu

        model = fu.read_model(str(tmp_file))  # resolves offset buffers into inline data
        atomic_write_bytes(out_path, bytes(fu.convert_object_to_bytearray(model)))


def _quiet_quantize(qt: Any, calibration: Any = None) -> Any:
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return qt.quantize(calibration) if calibration is not None else qt.quantize()


def convert_fp16(fp32: Path, out_path: Path) -> TfliteQuantReport:
    """Weights to float16 (compute stays float32 on CPUs; GPUs may run it in half)."""
    q = _quantizer()
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.recipe_manager import RecipeManager

    rm = RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=AlgorithmName.FLOAT_CASTING)
    qt = q.Quantizer(str(fp32))
    qt.load_quantization_recipe(rm.get_quantization_recipe())
    _export(_quiet_quantize(qt), out_path)
    return TfliteQuantReport({"method": "ai-edge-quantizer float_casting", "weights": "float16"},
                             ("fp16 weights (ai-edge-quantizer float casting), float compute",))


def quantize_dynamic(fp32: Path, out_path: Path) -> TfliteQuantReport:
    """Dynamic-range int8: int8 per-channel weights, activations quantized at run time."""
    q = _quantizer()
    from ai_edge_quantizer import recipe

    qt = q.Quantizer(str(fp32))
    qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    _export(_quiet_quantize(qt), out_path)
    return TfliteQuantReport({"method": "ai-edge-quantizer dynamic_wi8_afp32"},
                             ("dynamic-range int8: int8 weights, float activations",))


def signature_inputs(fp32: Path) -> tuple[str, dict[str, Any]]:
    """The model's first signature key and its inputs (name -> numpy dtype), in order (a signature is required)."""
    interp = require("ai_edge_litert.interpreter", "tflite", "reading .tflite signatures")
    it = interp.Interpreter(model_path=str(fp32))
    sigs = it.get_signature_list()
    if not sigs:
        raise QuantizationError("the .tflite model has no signature", where=str(fp32),
                                hint="ai-edge-quantizer needs a model with a signature; convert with edgekit")
    key = next(iter(sigs))
    details = it.get_signature_runner(key).get_input_details()
    return key, {str(n): details[n]["dtype"] for n in sigs[key]["inputs"]}


def quantize_full_int8(fp32: Path, out_path: Path, calibration: Callable[[], Iterator[Feeds]],
                       adapt: Callable[[Feeds], Feeds], options: TfliteInt8Options) -> TfliteQuantReport:
    """Full-integer int8 calibrated with min/max on the calibration split (``adapt`` turns edgekit feeds into
    the model's inputs, e.g. NCHW→NHWC). Inputs are matched to the signature by name (by position only when
    the names differ) and cast to the dtype the signature declares (token ids stay integers)."""
    q = _quantizer()
    from ai_edge_quantizer import recipe

    key, dtypes = signature_inputs(fp32)
    names = list(dtypes)
    t0 = time.perf_counter()
    samples: list[dict[str, np.ndarray]] = []
    for i, feeds in enumerate(calibration()):
        if options.max_items is not None and i >= options.max_items:
            break
        given = adapt(feeds)
        values = [given[n] for n in names] if all(n in given for n in names) else list(given.values())
        if len(values) != len(names):
            raise CalibrationError("calibration items do not match the model's inputs", where=str(out_path),
                                   expected=", ".join(names), got=sorted(given))
        samples.append({n: np.asarray(v).astype(dtypes[n]) for n, v in zip(names, values, strict=True)})
    if not samples:
        raise CalibrationError("full-integer int8 needs calibration items; the calibration split is empty",
                               where=str(out_path), hint="pass --calibration with a calibration split")
    qt = q.Quantizer(str(fp32))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            stats = qt.calibrate({key: samples})
    except Exception as exc:  # ai-edge-quantizer raises plain ValueError/RuntimeError
        text = first_line(exc)
        raise QuantizationError(f"ai-edge-quantizer calibration failed: {text[:200]}", where=str(out_path),
                                hint="check that the calibration items match the model's inputs") from exc
    result = _quiet_quantize(qt, stats)
    seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="edgekit-aeq-", dir=out_path.parent) as tmp:
        tmp_file = Path(tmp) / "int8.tflite"
        _export(result, tmp_file)
        data = tmp_file.read_bytes()
    notes = [f"full-integer int8 (ai-edge-quantizer static_wi8_ai8, min/max on {len(samples)} calibration items)"]
    io_now = io_types(data)
    if options.io == "float":
        data = float_io(data)
        notes.append("float input/output: QUANTIZE/DEQUANTIZE ops at the graph boundary")
    elif io_now != "int8":
        notes.append(f"int8 I/O asked, but the quantizer left {io_now} I/O")
    atomic_write_bytes(out_path, data)
    return TfliteQuantReport({"method": "ai-edge-quantizer static_wi8_ai8 (min/max)", "io": io_types(data),
                              "calibration_items": len(samples)}, tuple(notes), len(samples), seconds)


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
