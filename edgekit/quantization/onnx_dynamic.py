"""ONNX dynamic int8 (weights int8 offline, activations quantized at run time) and fp16, with ONNX Runtime.

Neither needs calibration data, so neither takes decisions: each result is loaded and run once in ONNX
Runtime on a seeded synthetic input (a smoke check that it loads and runs); its accuracy on real data is
measured by the validate stage on held-out items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path
from edgekit.errors import ConfigError, QuantizationError, first_line, require
from edgekit.quantization.calibration import Feeds
from edgekit.quantization.checks import compare_items
from edgekit.quantization.onnx_ort import first_outputs, load_model, quiet, session
from edgekit.quantization.presets import PRESETS, QTYPES, check_choice, check_names, resolve_preset
from edgekit.quantization.report import QuantReport

DYNAMIC_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "QAttention")


@dataclass(frozen=True)
class DynamicInt8Options:
    """Dynamic int8: weights quantized offline, activations at run time (no calibration)."""

    per_channel: bool = True
    weight_type: str = "int8"
    reduce_range: bool | None = None
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Attention")
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_choice(self.weight_type, QTYPES, "dynamic_int8.weight_type")
        for key in ("op_types", "nodes_to_exclude"):
            object.__setattr__(self, key, check_names(getattr(self, key), f"dynamic_int8.{key}"))
        if not self.op_types:
            raise ConfigError("needs at least one op type", where="dynamic_int8.op_types", got=self.op_types)


def _synthetic_feed(model: Any) -> Feeds:
    """One seeded input per graph input (dynamic dims = 1): normal floats, zeros for integer inputs."""
    from onnx import helper

    rng = np.random.default_rng(0)
    feed: Feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        shape = [int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        feed[inp.name] = (rng.standard_normal(shape).astype(dtype) if dtype.kind == "f"
                          else np.zeros(shape, dtype))
    return feed


def smoke_check(fp32_path: Path, model_path: Path, model: Any, notes: list[str]) -> dict[str, float]:
    """Load ``model_path`` in ORT (raises if it cannot) and compare it with fp32 on one synthetic input."""
    try:
        sess = session(model_path)
    except Exception as exc:
        raise QuantizationError(f"onnxruntime cannot load the converted model: {first_line(exc, 240)}",
                                where=str(model_path), hint="exclude the op named from conversion") from exc
    feed = _synthetic_feed(model)
    try:
        ref = first_outputs(session(fp32_path), [feed])
    except Exception:
        notes.append("no smoke check: the fp32 model does not run on a synthetic input")
        return {}
    try:
        got = first_outputs(sess, [feed])
    except Exception as exc:
        raise QuantizationError(f"onnxruntime cannot run the converted model: {first_line(exc, 240)}",
                                where=str(model_path), hint="exclude the op named from conversion") from exc
    check = compare_items([feed], ref, got)
    notes.append("smoke check on one synthetic input (seeded normal / zeros): loads and runs in onnxruntime, "
                 f"cosine {check.cosine:.5f} vs fp32; accuracy on real data is measured by validate")
    return {"items": 1.0, "cosine": check.cosine}


def quantize_dynamic(fp32_path: Path, out_path: Path, options: DynamicInt8Options, isa_preset: str) -> QuantReport:
    """Dynamic int8 (weights int8 offline, activations quantized at run time) of ``op_types``."""
    t0 = time.perf_counter()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    q = require("onnxruntime.quantization", None, "quantizing ONNX models")
    onnx = require("onnx", None, "quantizing ONNX models")
    model = load_model(fp32_path)
    preset = resolve_preset("auto", isa_preset) if isa_preset in PRESETS else resolve_preset("generic", "generic")
    reduce_range = options.reduce_range if options.reduce_range is not None else preset.reduce_range
    settings: dict[str, Any] = {"mode": "dynamic", "isa_preset": isa_preset, "preset": preset.name,
                                "per_channel": options.per_channel, "weight_type": options.weight_type,
                                "reduce_range": reduce_range, "op_types": list(options.op_types),
                                "nodes_to_exclude": list(options.nodes_to_exclude)}
    notes = [f"dynamic int8 of {', '.join(options.op_types)}; reduce_range={reduce_range} "
             f"({'option' if options.reduce_range is not None else 'preset ' + preset.name})"]
    qt = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}[options.weight_type]
    with atomic_path(out_path) as tmp_out:
        try:
            with quiet():
                q.quantize_dynamic(str(fp32_path), str(tmp_out), op_types_to_quantize=list(options.op_types),
                                   per_channel=options.per_channel, reduce_range=reduce_range, weight_type=qt,
                                   nodes_to_exclude=list(options.nodes_to_exclude))
        except Exception as exc:
            raise QuantizationError(f"onnxruntime could not quantize the model: {first_line(exc, 240)}",
                                    where=str(fp32_path), hint="narrow op_types or add nodes_to_exclude") from exc
        qmodel = onnx.load(str(tmp_out))
        n_int = sum(1 for n in qmodel.graph.node if n.op_type in DYNAMIC_OPS)
        notes.append(f"{n_int} integer / dynamic-quantize nodes in the graph")
        if n_int == 0:
            notes.append("nothing was quantized: the model has none of the requested op types with constant weights")
        check = smoke_check(fp32_path, tmp_out, model, notes)
    return QuantReport(settings=settings, notes=tuple(notes), check=check, seconds=time.perf_counter() - t0)


def convert_fp16(fp32_path: Path, out_path: Path) -> QuantReport:
    """fp16 weights and compute (``onnxruntime.transformers.float16``), float32 inputs and outputs kept."""
    t0 = time.perf_counter()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    onnx = require("onnx", None, "converting ONNX models")
    model = load_model(fp32_path)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        half = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:
        raise QuantizationError(f"fp16 conversion failed: {first_line(exc, 240)}", where=str(fp32_path),
                                hint="the model may hold ops without fp16 support; use fp32 or int8") from exc
    notes = ["fp16 via onnxruntime.transformers.float16 (keep_io_types=True: float32 inputs and outputs)"]
    with atomic_path(out_path) as tmp_out:
        onnx.save_model(half, str(tmp_out))
        check = smoke_check(fp32_path, tmp_out, model, notes)
    return QuantReport(settings={"mode": "fp16", "keep_io_types": True}, notes=tuple(notes), check=check,
                       seconds=time.perf_counter() - t0)
