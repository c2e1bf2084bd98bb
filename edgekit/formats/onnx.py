"""ONNX: export from PyTorch / Hugging Face / an existing file (the canonical fp32 artifact), and the
fp16 / static int8 / dynamic int8 variants (quantization itself lives in :mod:`edgekit.quantization`)."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekit.artifacts import atomic_path
from edgekit.errors import ConfigError, ExportError, RuntimeAdapterError, SourceError, first_line, require
from edgekit.formats.base import BuildContext, BuildOutput, FormatOptions, own_options, verify
from edgekit.quantization.onnx import StaticInt8Options
from edgekit.quantization.onnx_dynamic import DynamicInt8Options
from edgekit.quantization.presets import PRESETS, resolve_preset
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

DEFAULT_OPSET = 17


@dataclass(frozen=True)
class OnnxOptions:
    """Options of the ONNX format: the export (``opset``: None means the exporter's default, torch
    :data:`DEFAULT_OPSET` and optimum's recommended one for Hugging Face; ``dynamic_batch``: a symbolic batch
    dimension) and the int8 recipes (``static_int8``: calibrated QDQ, ``dynamic_int8``: dynamic-range)."""

    opset: int | None = None
    dynamic_batch: bool = True
    static_int8: StaticInt8Options = field(default_factory=StaticInt8Options)
    dynamic_int8: DynamicInt8Options = field(default_factory=DynamicInt8Options)

    def __post_init__(self) -> None:
        if self.opset is not None and (isinstance(self.opset, bool) or not isinstance(self.opset, int)
                                       or self.opset < 1):
            raise ConfigError("must be a positive integer or None", where="onnx.opset", got=self.opset)


def export_torch(source: ModelSource, out_path: Path, *, opset: int, dynamic_batch: bool) -> None:
    """``torch.onnx.export`` (TorchScript exporter, one self-contained file) of a torch source."""
    torch = require("torch", "torch", "exporting PyTorch models")
    module = source.handle
    spec = source.io.inputs[0]
    example = torch.zeros(spec.concrete_shape(1))
    in_names = list(source.io.input_names)
    out_names = list(source.io.output_names)
    axes = {n: {0: "batch"} for n in in_names + out_names} if dynamic_batch else None
    with atomic_path(out_path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=in_names, output_names=out_names, dynamic_axes=axes,
                              do_constant_folding=True)
        except Exception as exc:
            raise ExportError(f"torch.onnx.export failed: {first_line(exc, 240)}", where=source.name,
                              hint="try another --opset; unsupported ops need a custom symbolic") from exc


def export_huggingface(source: ModelSource, out_path: Path, *, opset: int | None, dynamic_batch: bool) -> None:
    """Export an HF directory with optimum-onnx's ``main_export`` (offline), task from the config."""
    exporters = require("optimum.exporters.onnx", "hf", "exporting Hugging Face models")
    task = str(source.details.get("optimum_task", "auto"))
    with tempfile.TemporaryDirectory(prefix="edgekit-optimum-", dir=out_path.parent) as tmp, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exporters.main_export(str(source.path), output=tmp, task=task, opset=opset, local_files_only=True,
                                  do_validation=False, no_dynamic_axes=not dynamic_batch,
                                  library_name="transformers",
                                  trust_remote_code=source.details.get("trust_remote_code") is True)
        except Exception as exc:
            raise ExportError(f"optimum export failed: {first_line(exc, 240)}", where=str(source.path),
                              hint="is the architecture supported by optimum-onnx for this task?") from exc
        produced = Path(tmp) / "model.onnx"
        if not produced.exists():
            raise ExportError("optimum wrote no model.onnx", where=str(source.path))
        _copy_single_file(produced, out_path)


def _opset_of(path: Path) -> int:
    onnx = require("onnx", None, "reading ONNX files")
    model = onnx.load(str(path), load_external_data=False)
    return int(next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0))


def _copy_single_file(src: Path, out_path: Path) -> None:
    """Copy an ONNX model into one self-contained file (external data folded in) atomically."""
    onnx = require("onnx", None, "writing ONNX files")
    model = onnx.load(str(src))
    with atomic_path(out_path) as tmp:
        onnx.save_model(model, str(tmp), save_as_external_data=False)


class OnnxAdapter:
    """The ONNX format: fp32 export plus fp16, static int8 (QDQ) and dynamic int8 variants."""

    format = Format.ONNX
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8, Precision.INT8_DYNAMIC)
    libraries = ("onnx", "onnxruntime")

    def options_from(self, options: FormatOptions) -> OnnxOptions:
        return options.get(OnnxOptions) or OnnxOptions()

    def recipe(self, precision: Precision, options: object) -> dict[str, object]:
        o = own_options(self, options, OnnxOptions)
        # opset and batch for every precision (the lower ones hold them through their parent too), and the
        # recipe of the int8 kind being built: the same keys as before the options were typed (same recipes)
        out: dict[str, object] = {"opset": o.opset, "dynamic_batch": o.dynamic_batch}
        if precision is Precision.INT8:
            out["static_int8"] = asdict(o.static_int8)
        if precision is Precision.INT8_DYNAMIC:
            out["dynamic_int8"] = asdict(o.dynamic_int8)
        return out

    def precision_hint(self, precision: Precision) -> str | None:
        if precision is Precision.INT8_WEIGHTS:
            return "int8-weights is OpenVINO's weight-only int8; ONNX has int8-dynamic (dynamic-range activations)"
        return None

    def file_name(self, precision: Precision) -> str:
        return f"model.{precision.value}.onnx"

    def recipe_family(self, precision: Precision, options: object, isa_preset: str) -> str | None:
        """The int8 recipe an ISA family gets (:mod:`edgekit.variants`): static int8 the preset it resolves to
        (``vnni``, ``avx2``, ``arm64``, ...; a fixed ``--int8-preset`` is the same for every target), dynamic int8
        its weights' width (``reduce_range`` unless the option fixes it); None for the other precisions."""
        o = own_options(self, options, OnnxOptions)
        if precision is Precision.INT8:
            return resolve_preset(o.static_int8.preset, isa_preset).name
        if precision is Precision.INT8_DYNAMIC and o.dynamic_int8.reduce_range is None:
            preset = PRESETS.get(isa_preset, PRESETS["generic"])
            return "7bit" if preset.reduce_range else "8bit"
        return None

    def cannot_build(self, source: ModelSource) -> str | None:
        """No converter to ONNX from a ``.tflite`` file or an OpenVINO IR is installed with edgekit."""
        if source.kind in ("torch", "huggingface", "onnx"):
            return None
        what = {"tflite": ".tflite", "openvino": "OpenVINO IR"}.get(source.kind, f"a {source.kind} source")
        return (f"no converter from {what} to ONNX is installed with edgekit (tf2onnx / openvino2onnx are not "
                f"among its dependencies); the other formats are built from the {what} itself")

    def build(self, precision: Precision, ctx: BuildContext, out_path: Path) -> BuildOutput:
        options = own_options(self, ctx.options, OnnxOptions)
        if precision is Precision.FP32:
            return self._export(ctx, options, out_path)
        from edgekit.quantization import onnx as static
        from edgekit.quantization import onnx_dynamic

        if ctx.canonical is None:
            raise ExportError("no fp32 ONNX model to derive from", where=str(out_path))
        fp32 = ctx.canonical.path
        if precision is Precision.FP16:
            rep = onnx_dynamic.convert_fp16(fp32, out_path)
        elif precision is Precision.INT8:
            if ctx.split is None:
                raise ExportError("static int8 needs the calibration split", where=str(out_path),
                                  hint="pass --calibration")
            rep = static.quantize_static(fp32, out_path, ctx.split, options.static_int8, ctx.isa_preset, ctx.budget)
        elif precision is Precision.INT8_DYNAMIC:
            rep = onnx_dynamic.quantize_dynamic(fp32, out_path, options.dynamic_int8, ctx.isa_preset)
        else:  # pragma: no cover - enum is closed
            raise ExportError("unsupported precision", where=str(out_path), got=precision.value)
        settings = rep.artifact_settings()
        notes = list(rep.notes)
        if precision is Precision.FP16:
            settings["numeric_check"], note = self._check(ctx, out_path, precision)
            notes.append(note)
        return BuildOutput(out_path, tuple(notes), settings)

    def _export(self, ctx: BuildContext, options: OnnxOptions, out_path: Path) -> BuildOutput:
        src = ctx.source
        dynamic = options.dynamic_batch
        if src.kind == "torch":
            export_torch(src, out_path, opset=options.opset or DEFAULT_OPSET, dynamic_batch=dynamic)
        elif src.kind == "huggingface":
            export_huggingface(src, out_path, opset=options.opset, dynamic_batch=dynamic)
        elif src.kind == "onnx":
            assert src.path is not None
            _copy_single_file(src.path, out_path)
        else:
            raise SourceError("ONNX cannot be built from this source", where=src.name, got=src.kind,
                              hint=self.cannot_build(src))
        try:
            check, checked = self._check(ctx, out_path, Precision.FP32)
        except RuntimeAdapterError as exc:  # e.g. --opset 1: the exporter wrote what onnxruntime cannot load
            if options.opset is not None and src.kind != "onnx":
                exc.hint = (f"the model was exported at --opset {options.opset}, which onnxruntime cannot load: "
                            f"try --opset {DEFAULT_OPSET} (or drop --opset)")
            raise
        opset = _opset_of(out_path)
        notes = (f"exported from {src.kind} (opset {opset}, {'dynamic' if dynamic else 'static'} batch); "
                 f"{checked}",) if src.kind != "onnx" else (
                     "copied from the given .onnx file unchanged",)
        return BuildOutput(out_path, notes, {"opset": opset, "dynamic_batch": dynamic, "numeric_check": check})

    def _check(self, ctx: BuildContext, path: Path, precision: Precision) -> tuple[dict[str, float], str]:
        from edgekit.runtimes.base import RuntimeOptions
        from edgekit.runtimes.ort import OrtRuntime

        sess = OrtRuntime().load(path, RuntimeOptions(threads=None))

        def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            return sess.run(feeds)

        return verify(path.name, precision, ctx.source.run_reference, run, list(ctx.check_feeds)[:8],
                      ctx.source.io.output_names)
