"""OpenVINO IR (``.xml`` graph + ``.bin`` weights): fp32 and fp16-compressed conversion, NNCF static int8
and weight-only int8 (quantization itself lives in :mod:`edgekit.quantization.openvino`).

Conversion path: from the canonical fp32 ONNX by default. Measured here on the demo EfficientNet-Lite0
digits model, ``openvino.convert_model`` of the ONNX file and of the torch module (``example_input``) gave
the same graph (248 ops, same op types) and the same latency (p50 0.73 ms, 1 thread, interleaved), but the
torch path loses the input/output names and the static input shape (``[?,?,?,?]``). So ``convert_from``
defaults to ``"onnx"``; ``"source"`` converts the torch module directly (used when no ONNX artifact exists).

Weight-only int8 (``nncf.compress_weights``: weights int8, activations float, no calibration data; the right
int8 for transformers on CPU) is its own precision, ``int8-weights``: it is not ``int8-dynamic`` (activations
quantized at run time, ONNX Runtime / TFLite), and this format does not make ``int8-dynamic``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path, cached_sha256_file
from edgekit.errors import ConfigError, DeviceUnavailableError, ExportError, SourceError, require
from edgekit.formats.base import BuildContext, BuildOutput, FormatOptions, own_options, verify
from edgekit.quantization.openvino import OvInt8Options, OvWeightOptions
from edgekit.quantization.openvino_qdq import choose_method, from_onnx_int8, same_onnx_int8
from edgekit.quantization.presets import int8_kernels_saturate, resolve_preset
from edgekit.quantization.report import QuantReport
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import RT_PRECISION, OpenVinoRuntime, ov_message, read_model, telemetry_off
from edgekit.types import Format, Precision

CONVERT_FROM = ("onnx", "source")


@dataclass(frozen=True)
class OpenVinoOptions:
    """Options of the OpenVINO format: conversion path, static int8 and weight-only int8 recipes."""

    convert_from: str = "onnx"
    int8: OvInt8Options = field(default_factory=OvInt8Options)
    weights: OvWeightOptions = field(default_factory=OvWeightOptions)

    def __post_init__(self) -> None:
        if self.convert_from not in CONVERT_FROM:
            raise ConfigError("unknown value", where="openvino.convert_from", expected=", ".join(CONVERT_FROM),
                              got=self.convert_from)


def save_ir(model: Any, out_path: Path, *, compress_to_fp16: bool = False) -> None:
    """Write ``model`` as ``out_path`` (.xml) + its ``.bin`` atomically: both are saved in a temporary folder
    beside them, the ``.bin`` is moved into place first and the ``.xml`` last (the pipeline's sidecar
    comes after that), so an interrupted save never leaves a readable half-written IR."""
    ov = require("openvino", "openvino", "writing OpenVINO IR")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_path.stem}.", dir=out_path.parent) as tmp:
        xml = Path(tmp) / out_path.name
        try:
            ov.save_model(model, str(xml), compress_to_fp16=compress_to_fp16)
        except Exception as exc:
            raise ExportError(f"OpenVINO could not save the IR: {ov_message(exc)}", where=str(out_path)) from exc
        umask = os.umask(0)
        os.umask(umask)
        for f in (xml.with_suffix(".bin"), xml):
            os.chmod(f, 0o666 & ~umask)
        os.replace(xml.with_suffix(".bin"), out_path.with_suffix(".bin"))
        os.replace(xml, out_path)


def convert_onnx(onnx_path: Path) -> Any:
    """``openvino.convert_model`` of an ONNX file; an unsupported op becomes an :class:`ExportError`."""
    ov = require("openvino", "openvino", "converting to OpenVINO IR")
    telemetry_off()
    try:
        return ov.convert_model(str(onnx_path))
    except Exception as exc:
        raise ExportError(f"OpenVINO cannot convert the ONNX model: {ov_message(exc)}", where=str(onnx_path),
                          hint="an op may be unsupported by OpenVINO's ONNX frontend: check the op list of "
                               "this OpenVINO version, or export with another opset") from exc


def convert_tflite(path: Path) -> Any:
    """``openvino.convert_model`` of a ``.tflite`` file; an op OpenVINO cannot translate (a custom op) is one
    :class:`ExportError` naming it."""
    ov = require("openvino", "openvino", "converting to OpenVINO IR")
    telemetry_off()
    try:
        return ov.convert_model(str(path))
    except Exception as exc:
        text = str(exc)
        op = re.search(r"No translator found for (\S+) node", text)
        if op:
            raise ExportError(f"OpenVINO cannot convert the .tflite: it has no translator for the op {op.group(1)} "
                              "(a custom op)", where=str(path),
                              hint="the other formats go on; re-export the model with builtin ops only to get an "
                                   "OpenVINO IR") from exc
        raise ExportError(f"OpenVINO cannot convert the .tflite: {ov_message(exc)}", where=str(path),
                          hint="an op may be unsupported by OpenVINO's TFLite frontend") from exc


def nchw_input(model: Any) -> Any:
    """``model`` (one NHWC image input) with a transpose in front, so that it takes NCHW input."""
    ov = require("openvino", "openvino", "OpenVINO")
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_layout(ov.Layout("NCHW"))
    ppp.input().model().set_layout(ov.Layout("NHWC"))
    return ppp.build()


def convert_torch(module: Any, input_names: tuple[str, ...], output_names: tuple[str, ...],
                  shape: tuple[int, ...], where: str) -> Any:
    """``openvino.convert_model`` of a torch module with ``example_input``; names and a dynamic batch set."""
    ov = require("openvino", "openvino", "converting to OpenVINO IR")
    torch = require("torch", "torch", "converting PyTorch models")
    telemetry_off()
    try:
        model = ov.convert_model(module, example_input=torch.zeros(shape),
                                 input=[ov.PartialShape([-1, *shape[1:]])])
    except Exception as exc:
        raise ExportError(f"OpenVINO cannot convert the torch module: {ov_message(exc)}", where=where,
                          hint="use convert_from='onnx' (the default)") from exc
    for port, name in zip(model.inputs, input_names, strict=False):
        port.get_tensor().set_names({name})
    for port, name in zip(model.outputs, output_names, strict=False):
        port.get_tensor().set_names({name})
    return model


def _parent_onnx(ctx: BuildContext) -> Path | None:
    """The fp32 ONNX the fp32 IR ``ctx.canonical`` was converted from (beside it, its hash the IR's parent), or the
    canonical itself when it is an ONNX file; None for an IR converted from another source."""
    art = ctx.canonical
    if art is None:
        return None
    if art.format is Format.ONNX:
        return art.path
    parent, onnx = art.recipe.get("parent"), art.path.with_name("model.fp32.onnx")
    return onnx if parent and onnx.is_file() and cached_sha256_file(onnx) == parent else None


class OpenVinoAdapter:
    """The OpenVINO format: fp32 IR, fp16-compressed IR, NNCF static int8, weight-only int8 (``int8-weights``)."""

    format = Format.OPENVINO
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8, Precision.INT8_WEIGHTS, Precision.BF16)
    libraries = ("openvino", "nncf")

    def options_from(self, options: FormatOptions) -> OpenVinoOptions:
        return options.get(OpenVinoOptions) or OpenVinoOptions()

    def recipe(self, precision: Precision, options: object) -> dict[str, object]:
        """The conversion path, and the recipe of the int8 kind being built (``int8`` for static int8,
        ``weights`` for int8-weights): changing the static int8 options rebuilds only the static int8 IR."""
        o = own_options(self, options, OpenVinoOptions)
        own: dict[str, object] = {"convert_from": o.convert_from}
        if precision is Precision.INT8:
            own["int8"] = asdict(o.int8)
        if precision is Precision.INT8_WEIGHTS:
            own["weights"] = asdict(o.weights)
        return {"openvino": own}

    def precision_hint(self, precision: Precision) -> str | None:
        if precision is Precision.INT8_DYNAMIC:
            return "OpenVINO's weight-only int8 is 'int8-weights' (activations stay float; not dynamic-range int8)"
        return None

    def file_name(self, precision: Precision) -> str:
        return f"model.{precision.value}.xml"

    def recipe_family(self, precision: Precision, options: object, isa_preset: str) -> str | None:
        """Static int8 depends on the ISA family: NNCF through its overflow fix (7-bit weights where u8 x s8 kernels
        saturate), the ONNX QDQ route through the ONNX preset (:mod:`edgekit.variants`); with ``method="auto"`` the
        ONNX preset, which splits the targets at least as finely as the overflow fix. A fixed ``overflow_fix``
        (NNCF) or ONNX preset and the other precisions do not depend on it."""
        o = own_options(self, options, OpenVinoOptions)
        if precision is not Precision.INT8:
            return None
        if o.int8.method == "nncf":
            if o.int8.overflow_fix != "auto":
                return None
            return "overflow-fix" if int8_kernels_saturate(isa_preset) else "full-range"
        return resolve_preset(o.int8.onnx.preset, isa_preset).name if o.int8.onnx.preset == "auto" else None

    def build(self, precision: Precision, ctx: BuildContext, out_path: Path) -> BuildOutput:
        options = own_options(self, ctx.options, OpenVinoOptions)
        if precision is Precision.FP32:
            return self._convert(ctx, options, out_path)
        if ctx.canonical is None:
            raise ExportError("no fp32 model to derive from", where=str(out_path))
        ov = require("openvino", "openvino", "OpenVINO")
        core = ov.Core()
        fp32 = read_model(core, ctx.canonical.path) if ctx.canonical.format is Format.OPENVINO else convert_onnx(
            ctx.canonical.path)
        if precision is Precision.BF16:
            return self._bf16(ctx, fp32, out_path)
        if precision is Precision.FP16:
            save_ir(fp32, out_path, compress_to_fp16=True)
            check, checked = self._check(ctx, out_path, precision)
            return BuildOutput(out_path, ("fp16-compressed weights (compute stays in the device's default "
                                          f"precision); {checked}",),
                               {"compress_to_fp16": True, "numeric_check": check})
        from edgekit.quantization import openvino as nncf_quant

        if precision is Precision.INT8:
            if ctx.split is None:
                raise ExportError("static int8 needs the calibration split", where=str(out_path),
                                  hint="pass --calibration")
            onnx_fp32 = _parent_onnx(ctx)
            method, why = choose_method(options.int8, fp32, onnx_fp32)
            if method == "onnx-qdq" and onnx_fp32 is not None:
                qmodel, rep = self._from_onnx_int8(ctx, options, fp32, onnx_fp32, out_path)
            else:
                qmodel, rep = nncf_quant.quantize_static(fp32, ctx.split, options.int8, ctx.isa_preset, ctx.budget)
                rep = replace(rep, settings={**rep.settings, "method": "nncf"})
            rep = replace(rep, notes=(f"method {method}: {why}", *rep.notes))
        elif precision is Precision.INT8_WEIGHTS:
            qmodel, rep = nncf_quant.compress_weights(fp32, options.weights)
        else:  # pragma: no cover - enum is closed
            raise ExportError("unsupported precision", where=str(out_path), got=precision.value)
        save_ir(qmodel, out_path)
        return BuildOutput(out_path, rep.notes, rep.artifact_settings())

    def _from_onnx_int8(self, ctx: BuildContext, options: OpenVinoOptions, fp32: Any, onnx_fp32: Path,
                        out_path: Path) -> tuple[Any, QuantReport]:
        """The int8 model read from the ONNX static int8 of ``onnx_fp32``: this run's ONNX int8 artifact when it has
        the same recipe, else one quantized here (:mod:`edgekit.quantization.openvino_qdq`)."""
        from edgekit.quantization import onnx as onnx_static

        assert ctx.split is not None
        t0 = time.perf_counter()
        art = same_onnx_int8(ctx.earlier, cached_sha256_file(onnx_fp32), options.int8, ctx.isa_preset)
        if art is not None:
            onnx_rep = QuantReport(art.settings, tuple(art.settings.get("kept_float", ())), art.notes)
            qmodel = convert_onnx(art.path)
            return qmodel, from_onnx_int8(qmodel, fp32, onnx_rep, ctx.split, ctx.budget,
                                          f"{art.name} of this run (the same ONNX int8 recipe)",
                                          time.perf_counter() - t0)
        with tempfile.TemporaryDirectory(prefix="edgekit-ov-qdq-", dir=out_path.parent) as tmp:
            qdq = Path(tmp) / "model.int8.qdq.onnx"
            onnx_rep = onnx_static.quantize_static(onnx_fp32, qdq, ctx.split, options.int8.onnx, ctx.isa_preset,
                                                   ctx.budget)
            qmodel = convert_onnx(qdq)
        return qmodel, from_onnx_int8(qmodel, fp32, onnx_rep, ctx.split, ctx.budget,
                                      f"edgekit's ONNX static int8 of {onnx_fp32.name}, quantized for this IR",
                                      time.perf_counter() - t0)

    def _convert(self, ctx: BuildContext, options: OpenVinoOptions, out_path: Path) -> BuildOutput:
        src = ctx.source
        if src.kind in ("tflite", "openvino") and src.path is not None:
            return self._from_file(ctx, Path(src.path), out_path)
        onnx_in = ctx.canonical.path if ctx.canonical is not None and ctx.canonical.format is Format.ONNX else None
        if onnx_in is None and src.kind == "onnx":
            onnx_in = src.path
        if options.convert_from == "onnx" and onnx_in is not None:
            model, how = convert_onnx(onnx_in), f"converted from {onnx_in.name}"
        elif src.kind == "torch":
            shape = src.io.inputs[0].concrete_shape(1)
            model = convert_torch(src.handle, src.io.input_names, src.io.output_names, shape, src.name)
            how = "converted from the torch module (example_input)"
        elif onnx_in is None:
            raise SourceError("OpenVINO conversion of this source needs the fp32 ONNX artifact", where=src.name,
                              got=src.kind, hint="include onnx in --formats (the default)")
        else:
            model, how = convert_onnx(onnx_in), f"converted from {onnx_in.name}"
        save_ir(model, out_path)
        check, checked = self._check(ctx, out_path, Precision.FP32)
        ops = len(model.get_ordered_ops())
        note = f"{how} ({ops} ops); {checked}"
        return BuildOutput(out_path, (note,), {"convert_from": options.convert_from, "ops": ops,
                                               "numeric_check": check})

    def _from_file(self, ctx: BuildContext, path: Path, out_path: Path) -> BuildOutput:
        """The fp32 IR of a ``.tflite`` source (``convert_model`` reads it) or an IR source (a copy of both files).
        An NHWC image input gets a transpose in front (OpenVINO's PrePostProcessor), so the IR takes the NCHW feeds
        every edgekit stage gives, NNCF calibration included."""
        nhwc = ctx.source.details.get("input_layout") == "NHWC"
        if path.suffix == ".xml" and not nhwc:
            with atomic_path(out_path.with_suffix(".bin")) as tmp:
                shutil.copyfile(path.with_suffix(".bin"), tmp)
            with atomic_path(out_path) as tmp:
                shutil.copyfile(path, tmp)
            how = "a copy of the given IR (.xml + .bin)"
        else:
            model = read_model(require("openvino", "openvino", "OpenVINO").Core(), path) if path.suffix == ".xml" \
                else convert_tflite(path)
            save_ir(nchw_input(model) if nhwc else model, out_path)
            how = ("the given IR" if path.suffix == ".xml" else f"converted from {path.name} (openvino's TFLite "
                   "frontend)") + ("; a transpose in front takes NCHW input" if nhwc else "")
        check, checked = self._check(ctx, out_path, Precision.FP32)
        return BuildOutput(out_path, (f"{how}; {checked}",), {"convert_from": ctx.source.kind, "numeric_check": check})

    def _bf16(self, ctx: BuildContext, fp32: Any, out_path: Path) -> BuildOutput:
        """The fp32 IR (fp32 weights) recording the CPU inference precision bf16 in its rt_info: OpenVINO (edgekit's
        runtime and a plain ``compile_model`` alike) runs it in bfloat16, and a CPU without BF16 refuses it."""
        fp32.set_rt_info("bf16", list(RT_PRECISION))
        save_ir(fp32, out_path)
        notes = ["fp32 weights, computed in bfloat16 by OpenVINO's CPU plugin (INFERENCE_PRECISION_HINT=bf16 recorded "
                 "in the IR's rt_info runtime_options); runs only where the CPU has AVX-512 BF16 or AMX"]
        try:
            check, checked = self._check(ctx, out_path, Precision.BF16)
        except DeviceUnavailableError as exc:  # built for another machine: judged there, on held-out items
            return BuildOutput(out_path, (*notes, f"no numeric check here: {exc}"), {"inference_precision": "bf16"})
        return BuildOutput(out_path, (*notes, checked), {"inference_precision": "bf16", "numeric_check": check})

    def _check(self, ctx: BuildContext, path: Path, precision: Precision) -> tuple[dict[str, float], str]:
        sess = OpenVinoRuntime().load(path, RuntimeOptions(threads=None))

        def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            return sess.run(feeds)

        return verify(path.name, precision, ctx.source.run_reference, run, list(ctx.check_feeds)[:8],
                      ctx.source.io.output_names)
