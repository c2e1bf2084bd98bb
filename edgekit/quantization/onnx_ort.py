"""ONNX Runtime plumbing for the ONNX quantizers: load a model, run it with the real CPU kernels,
pre-process it, calibrate it on a stream (bounded memory), and call ``quantize_static`` from the ranges."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import CalibrationError, QuantizationError, first_line, not_found_hint, require
from edgekit.quantization.calibration import ChunkReader, Feeds, FeedStream, PeakRss

HISTOGRAM_CHUNK_BYTES = 256 << 20  # activations held at once by the entropy / percentile calibrators
MINMAX_CHUNK = 32  # feeds per collect_data call for MinMax (it keeps only two scalars per tensor)


class _DropOrtQuantLogs(logging.Filter):
    """Drops the root-logger chatter of ``onnxruntime.quantization`` (e.g. its pre-processing advice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname.replace("\\", "/")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence ORT quantization's prints (stdout) and root-logger warnings for the duration."""
    flt = _DropOrtQuantLogs()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(flt)


def load_model(path: Path) -> Any:
    """Load an ONNX model or raise :class:`QuantizationError` naming the file."""
    onnx = require("onnx", None, "quantizing ONNX models")
    if not Path(path).is_file():
        raise QuantizationError("model file not found", where=str(path),
                                hint=not_found_hint(path) + "; export the fp32 model first")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise QuantizationError(f"not a loadable ONNX model: {first_line(exc, 240)}", where=str(path),
                                hint="pass the fp32 .onnx file written by the export stage") from exc
    if not model.graph.node:
        raise QuantizationError("the ONNX graph has no nodes", where=str(path),
                                hint="pass the fp32 .onnx file written by the export stage")
    return model


def graph_inputs(model: Any) -> dict[str, int]:
    """Real graph inputs (not initializers) -> ONNX element type."""
    inits = {i.name for i in model.graph.initializer}
    return {i.name: i.type.tensor_type.elem_type for i in model.graph.input if i.name not in inits}


def session(model: Any, *, threads: int = 1, optimized_path: Path | None = None) -> Any:
    """An ORT CPU session with the default (full) graph optimizations: the real kernels. ``optimized_path``: where
    ORT writes the graph it optimized (to see which kernels run)."""
    from edgekit.runtimes.ort import import_ort

    ort = import_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    src = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def probe_session(model: Any, outputs: Sequence[str], fed: Sequence[str] = ()) -> Any:
    """An ORT CPU session (1 thread) of the in-memory ``model`` with graph optimizations off -- Q/DQ pairs run in
    float and every tensor keeps its name -- ``outputs`` added as graph outputs, and the initializers ``fed`` turned
    into graph inputs (given per run). For measuring inside a model: bias correction, smoothing, range checks."""
    import onnx

    from edgekit.runtimes.ort import import_ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for t in outputs:
        if t not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    as_input = set(fed)
    for init in m.graph.initializer:
        if init.name in as_input:
            m.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    keep = [i for i in m.graph.initializer if i.name not in as_input]
    del m.graph.initializer[:]
    m.graph.initializer.extend(keep)
    ort = import_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def first_outputs(sess: Any, feeds: Sequence[Feeds]) -> list[np.ndarray]:
    """The first output of ``sess`` on each feed."""
    return [np.asarray(sess.run(None, dict(f))[0]) for f in feeds]


def run_model(model: Any, feeds: Sequence[Feeds], where: str) -> list[list[np.ndarray]]:
    """Every output of an in-memory (or on-disk) model on each feed; a failure names ``where``."""
    try:
        sess = session(model)
        return [[np.asarray(o) for o in sess.run(None, dict(f))] for f in feeds]
    except Exception as exc:
        raise QuantizationError(f"onnxruntime cannot run the quantized model: {first_line(exc, 240)}", where=where,
                                hint="try op_types_to_exclude / nodes_to_exclude for the failing op") from exc


@contextlib.contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def preprocess(src: Path, tmp: Path, notes: list[str]) -> Path:
    """``quant_pre_process`` (symbolic shape inference + ORT basic optimizations); falls back gracefully.

    Runs with ``tmp`` as the working directory: when symbolic shape inference fails (MiniLM), ORT dumps
    ``sym_shape_infer_temp.onnx`` plus a ~90 MB external-data file into the current directory.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = Path(src).resolve(), (tmp / "preprocessed.onnx").resolve()
    last = ""
    for kwargs in ({}, {"skip_symbolic_shape": True}):
        try:
            with quiet(), _working_dir(tmp):
                quant_pre_process(str(src), str(out), **kwargs)
            if kwargs:
                notes.append("pre-processing: symbolic shape inference failed; used ONNX shape inference only")
            return out
        except Exception as exc:  # ORT's pre-processing raises assorted errors on unusual graphs
            last = first_line(exc, 240)
    notes.append(f"pre-processing skipped: quant_pre_process failed ({last})")
    return src


PER_AXIS_OPSET = 13  # DequantizeLinear's ``axis`` (per-channel weights, per-axis bias) exists from opset 13


def opset_of(model: Any) -> int:
    """The model's default-domain (``ai.onnx``) opset."""
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def per_axis_ready(model: Any, notes: list[str]) -> Any:
    """``model`` at an opset whose DequantizeLinear takes an ``axis`` (13), converted if older.

    ORT's ``quantize_static`` writes per-channel weights and their int32 biases with a per-axis DequantizeLinear
    whatever the model's opset; below 13 the graph is then invalid ("Unrecognized attribute: axis for operator
    DequantizeLinear", on the int32 bias of a fused Conv+BatchNorm in PP-OCRv4's opset-12 models), where plain
    ``quantize_static`` defaults (per-tensor) load. The conversion is said in the notes; a model the ONNX
    version converter cannot convert is returned as it is (the caller then quantizes per-tensor)."""
    import onnx

    old = opset_of(model)
    if not 0 < old < PER_AXIS_OPSET:
        return model
    try:
        new = onnx.version_converter.convert_version(model, PER_AXIS_OPSET)
        onnx.checker.check_model(new)
    except Exception as exc:  # the converter raises assorted errors on graphs it has no adapter for
        notes.append(f"the model's opset {old} has no per-axis DequantizeLinear and the ONNX version converter "
                     f"could not take it to {PER_AXIS_OPSET} ({first_line(exc, 160)}): weights quantized per-tensor")
        return model
    notes.append(f"the model's opset {old} has no per-axis DequantizeLinear (per-channel int8 would be an invalid "
                 f"graph): converted to opset {PER_AXIS_OPSET} for quantization")
    return new


def name_nodes(model: Any) -> None:
    """Give every node a unique name (ORT's exclusions and the search refer to nodes by name)."""
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def _method(q: Any, name: str) -> Any:
    return {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile}[name]


def _activation_bytes(model: Any) -> int | None:
    """Bytes of one item's float activations named as graph outputs (batch dim = 1), if shapes are known."""
    total = 0
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if not dims:
            return None
        n = 1
        for i, d in enumerate(dims):
            if d.HasField("dim_value"):
                n *= int(d.dim_value)
            elif i != 0:
                return None
        total += 4 * n
    return total


def calibrate(src: Path, calibration: Callable[[], Iterator[Feeds]], method: str, limit: int | None,
              op_types: Sequence[str], inputs: Mapping[str, int], tmp: Path,
              where: str) -> tuple[Any, FeedStream, float, PeakRss]:
    """Stream calibration feeds through the calibrator a chunk at a time; return (ranges, stream, s, memory).

    ``collect_data`` is called once per chunk: MinMax merges the chunk's per-tensor min/max into its
    running range; the histogram calibrators (entropy, percentile) merge the chunk's histograms. So at
    most one chunk of activations is held at once (sized to ~256 MB from the model's tensor shapes).
    ORT's own bound, ``CalibMaxIntermediateOutputs``, is not used: in ORT 1.32 it *drops* the collected
    outputs when the bound is reached, so only the last partial batch of items is kept.
    """
    q = require("onnxruntime.quantization", None, "quantizing ONNX models")
    t0 = time.perf_counter()
    try:
        it = iter(calibration())
    except Exception as exc:
        raise CalibrationError(f"the calibration data could not be opened: {first_line(exc, 240)}", where=where,
                               hint="check the calibration set path and its preprocessing") from exc
    stream = FeedStream(it, inputs, where, limit)
    first = stream.next_feed()
    if first is None:
        raise CalibrationError("no calibration items", where=where, expected="at least 1 item", got=0,
                               hint="give a calibration set with a non-empty 'calibration' split")
    stream.push_back(first)
    with PeakRss() as rss, quiet():
        try:
            calibrator = q.create_calibrator(src, list(op_types), augmented_model_path=str(tmp / "augmented.onnx"),
                                             calibrate_method=_method(q, method), extra_options={})
        except Exception as exc:
            raise QuantizationError(f"onnxruntime cannot prepare the model for calibration: {first_line(exc, 240)}",
                                    where=where, hint="try op_types_to_exclude for the failing op") from exc
        if method == "minmax":
            chunk = MINMAX_CHUNK
        else:
            per_item = _activation_bytes(calibrator.model)
            chunk = max(1, HISTOGRAM_CHUNK_BYTES // per_item) if per_item else 4
        while (feed := stream.next_feed()) is not None:
            stream.push_back(feed)
            try:
                calibrator.collect_data(ChunkReader(stream, chunk))
            except CalibrationError:
                raise
            except Exception as exc:
                raise CalibrationError(f"calibration failed near item {stream.feeds - 1}: {first_line(exc, 240)}",
                                       where=where, hint="check the data's input shapes and dtypes") from exc
        try:
            ranges = calibrator.compute_data()
        except Exception as exc:
            raise QuantizationError(f"computing calibration ranges failed: {first_line(exc, 240)}", where=where,
                                    hint="try calibration_method='minmax'") from exc
        del calibrator
    return ranges, stream, time.perf_counter() - t0, rss


def ort_quantize(src: Path, out: Path, ranges: Any, settings: Mapping[str, Any], op_types: Sequence[str],
                 exclude: Sequence[str], where: str, int16: Sequence[str] = ()) -> Any:
    """ORT ``quantize_static`` (QDQ) from already computed ranges (passed as its calibration cache).

    ``int16``: activation tensors given 16-bit Q/DQ (uint16 where activations are uint8, else int16), by ORT's
    ``TensorQuantOverrides``; ORT then converts the model to opset 21."""
    import onnx

    q = require("onnxruntime.quantization", None, "quantizing ONNX models")
    qt = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    wide = q.QuantType.QUInt16 if settings["activation_type"] == "uint8" else q.QuantType.QInt16
    extra: dict[str, Any] = {"TensorQuantOverrides": {t: [{"quant_type": wide}] for t in int16}} if int16 else {}
    if settings.get("float_outputs") and not int16:
        # a MatMul hands its output on in float (ORT runs it as MatMulIntegerToFloat): re-quantizing it before the
        # bias Add / residual took MiniLM's cosine from 0.988 to 0.941 (quantized outputs are what NNCF never adds).
        # Not with 16-bit islands: a MatMul reading a 16-bit tensor with a float output becomes ORT's MatMulNBits,
        # which computed a planted model at cosine 0.61 (onnx_qdq.float_graph_outputs)
        extra["OpTypesToExcludeOutputQuantization"] = ["MatMul"]
    cache = out.with_suffix(".ranges.json")
    q.save_tensors_data(ranges, cache)
    try:
        with quiet():
            q.quantize_static(str(src), str(out), None, quant_format=q.QuantFormat.QDQ,
                              op_types_to_quantize=list(op_types), per_channel=bool(settings["per_channel"]),
                              reduce_range=bool(settings["reduce_range"]),
                              activation_type=qt[settings["activation_type"]],
                              weight_type=qt[settings["weight_type"]], nodes_to_exclude=list(exclude),
                              calibrate_method=_method(q, settings["calibration_method"]),
                              calibration_cache_path=str(cache), extra_options=extra)
    except Exception as exc:
        raise QuantizationError(f"onnxruntime could not quantize the model: {first_line(exc, 240)}", where=where,
                                hint="try op_types_to_exclude for the op named, or another preset") from exc
    return onnx.load(str(out))
