"""TFLite (LiteRT): fp32 conversion and the fp16 / dynamic int8 / full-integer int8 variants.

PyTorch sources and Hugging Face directories convert directly with ``litert-torch`` (torch stays pinned);
ONNX-only sources go through ``onnx2tf`` + TensorFlow, imported lazily here only. onnx2tf reaches for a
sample calibration file on GitHub unless one is present: edgekit hands
it the run's own calibration items instead, so nothing leaves the machine.

Image models take NHWC input in the ``.tflite`` (what LiteRT kernels and NPUs want, and what removes
layout transposes inside the graph): the artifact records ``layout = "NHWC"`` and the pipeline
transposes NCHW feeds for it (:func:`edgekit.layout.to_layout`).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path
from edgekit.errors import ExportError, SourceError, first_line, require
from edgekit.formats.base import BuildContext, BuildOutput, FormatOptions, own_options, verify
from edgekit.layout import to_layout
from edgekit.quantization.tflite import TfliteInt8Options
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

Feeds = dict[str, np.ndarray]
ONNX2TF_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"


@dataclass(frozen=True)
class TfliteOptions:
    """TFLite build options: ``nhwc`` image input (default on), full-integer int8 settings."""

    nhwc: bool = True
    int8: TfliteInt8Options = field(default_factory=TfliteInt8Options)


def _image_input(ctx: BuildContext) -> bool:
    return len(ctx.source.io.inputs) == 1 and len(ctx.source.io.inputs[0].shape) == 4


def convert_torch(ctx: BuildContext, out_path: Path, nhwc: bool) -> str:
    """litert-torch conversion of the torch source; returns the input layout of the written model."""
    with ctrl_c_not_swallowed():
        return _convert_torch(ctx, out_path, nhwc)


def _convert_torch(ctx: BuildContext, out_path: Path, nhwc: bool) -> str:
    torch = require("torch", "tflite-torch", "converting PyTorch models to TFLite")
    import logging

    logging.getLogger("torchao").setLevel(logging.ERROR)  # optional CUDA kernels it cannot load on CPU
    litert_torch = require("litert_torch", "tflite-torch", "converting PyTorch models to TFLite")
    module = ctx.source.handle if ctx.source.kind == "torch" else _hf_module(ctx)
    spec = ctx.source.io.inputs
    layout = "NHWC" if nhwc and _image_input(ctx) else "NCHW"
    if layout == "NHWC":
        module = litert_torch.to_channel_last_io(module, args=[0])
        n, c, h, w = spec[0].concrete_shape(1)
        args: tuple[Any, ...] = (torch.zeros(n, h, w, c),)
    elif ctx.source.kind == "torch":
        args = tuple(torch.zeros(t.concrete_shape(1)) for t in spec)
    else:  # token ids: shapes (and the sequence length) of a real item
        if not ctx.check_feeds:
            raise ExportError("converting a text model needs one data item for its shapes", where=ctx.source.name,
                              hint="pass --calibration")
        args = tuple(torch.from_numpy(np.ascontiguousarray(ctx.check_feeds[0][t.name])) for t in spec)
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            edge = litert_torch.convert(module.eval(), args)
            with atomic_path(out_path) as tmp:
                edge.export(str(tmp))
    except Exception as exc:
        raise ExportError(f"litert-torch conversion failed: {first_line(exc, 240)}", where=ctx.source.name,
                          hint="the model must be torch.export-able; or convert through ONNX") from exc
    from edgekit.formats.tflite_graph import rename_inputs

    rename_inputs(out_path, list(ctx.source.io.input_names))
    return layout


def _hf_module(ctx: BuildContext) -> Any:
    """The Hugging Face model of the source as a module taking the inputs positionally (the source's input
    order) and returning its first output (logits or last_hidden_state)."""
    torch = require("torch", "hf", "a Hugging Face source")
    transformers = require("transformers", "hf", "a Hugging Face source")
    task = ctx.source.task
    auto = {"text-classification": transformers.AutoModelForSequenceClassification,
            "image-classification": transformers.AutoModelForImageClassification}.get(task.value,
                                                                                      transformers.AutoModel)
    model = auto.from_pretrained(str(ctx.source.path), local_files_only=True,
                                 trust_remote_code=ctx.source.details.get("trust_remote_code") is True).eval()
    names = list(ctx.source.io.input_names)
    classify = task.is_classification

    class Positional(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            out = self.model(**dict(zip(names, args, strict=True)))
            return out.logits if classify else out.last_hidden_state

    return Positional()


def _calibration_sample(ctx: BuildContext, n: int = 20) -> np.ndarray | None:
    """Up to ``n`` calibration items in NHWC for onnx2tf's own output check (replaces its download)."""
    if not _image_input(ctx):
        return None
    items: list[np.ndarray] = []
    it: Iterator[Feeds] = ctx.calibration()
    for feeds in it:
        items.append(next(iter(feeds.values())).transpose(0, 2, 3, 1))
        if len(items) >= n:
            break
    if not items:
        items = [to_layout(f, "NHWC")[next(iter(f))] for f in ctx.check_feeds[:n]]
    return np.concatenate(items).astype(np.float32) if items else None


@contextlib.contextmanager
def ctrl_c_not_swallowed() -> Iterator[None]:
    """A Ctrl-C during the block ends it with :class:`KeyboardInterrupt`, even when the converter swallowed it.

    onnx2tf wraps many steps in bare ``except:`` clauses, so the ``KeyboardInterrupt`` raised inside one of them was
    dropped and the run went on (and exited 0). The SIGINT handler is wrapped to note the press; leaving the block
    with a noted press raises ``KeyboardInterrupt`` (from whatever else it raised). Main thread only, and only over
    a Python-callable handler (an ignored SIGINT stays ignored)."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield
        return
    pressed: list[int] = []

    def note(signum: int, frame: Any) -> Any:
        pressed.append(signum)
        return previous(signum, frame)

    signal.signal(signal.SIGINT, note)
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        if pressed:
            raise KeyboardInterrupt from exc
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def _converter_failure(exc: BaseException | None, output: str, lines: int = 3) -> str:
    """What a converter said when it failed: the exception (or exit status) and its last output lines."""
    said = [ln.strip() for ln in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines() if ln.strip()][-lines:]
    what = ""
    if isinstance(exc, SystemExit):
        what = f"the converter exited (status {exc.code})"
    elif exc is not None:
        what = first_line(exc, 240)
    return "; ".join([w for w in [what, *said] if w])[:600] or "no output"


def convert_onnx(ctx: BuildContext, out_path: Path) -> str:
    """onnx2tf conversion of the canonical fp32 ONNX model (or the given .onnx file), offline, on a private copy
    in a temporary folder; returns the input layout. A Ctrl-C anywhere in it, TensorFlow's import included, ends
    it (:func:`ctrl_c_not_swallowed`)."""
    with ctrl_c_not_swallowed():
        return _convert_onnx(ctx, out_path)


def _convert_onnx(ctx: BuildContext, out_path: Path) -> str:
    onnx_fp32 = ctx.canonical
    if onnx_fp32 is not None and onnx_fp32.format is Format.ONNX:
        onnx_path = Path(onnx_fp32.path).resolve()
    elif ctx.source.kind == "onnx" and ctx.source.path is not None and Path(ctx.source.path).is_file():
        onnx_path = Path(ctx.source.path).resolve()  # --formats tflite alone: the given .onnx file (a copy of it)
    else:
        raise ExportError("no fp32 ONNX model to convert", where=str(out_path),
                          hint="add onnx to --formats (--formats onnx,tflite): TFLite is converted from it")
    out_path = Path(out_path).resolve()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    onnx2tf = require("onnx2tf", "tflite-onnx", "converting ONNX models to TFLite")
    from onnx2tf import onnx2tf as o2t_main
    from onnx2tf.utils import common_functions

    sample = _calibration_sample(ctx)
    data = sample if sample is not None else np.zeros((1, 8, 8, 3), np.float32)

    def local_sample() -> np.ndarray:  # onnx2tf would fetch this file from GitHub
        return data

    saved = (o2t_main.download_test_image_data, common_functions.download_test_image_data)
    o2t_main.download_test_image_data = local_sample
    common_functions.download_test_image_data = local_sample
    cwd = os.getcwd()
    sink = io.StringIO()
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-onnx2tf-", dir=out_path.parent) as tmp_name:
            tmp = Path(tmp_name).resolve()
            np.save(tmp / ONNX2TF_SAMPLE, data)  # and, in any case, a local file is present
            private = tmp / "model.onnx"  # onnx2tf may rewrite its input: it only ever sees a copy
            shutil.copyfile(onnx_path, private)
            os.chdir(tmp)
            try:
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    onnx2tf.convert(input_onnx_file_path=str(private), output_folder_path=str(tmp / "out"),
                                    non_verbose=True, copy_onnx_input_output_names_to_tflite=True,
                                    output_signaturedefs=True)
            except (Exception, SystemExit) as exc:
                raise ExportError(f"onnx2tf conversion failed: {_converter_failure(exc, sink.getvalue())}",
                                  where=str(onnx_path),
                                  hint="see onnx2tf's parameter replacement; or convert from PyTorch") from exc
            finally:
                os.chdir(cwd)
            produced = sorted((tmp / "out").glob("*_float32.tflite"))
            if not produced:
                raise ExportError(f"onnx2tf wrote no *_float32.tflite: {_converter_failure(None, sink.getvalue())}",
                                  where=str(onnx_path))
            with atomic_path(out_path) as dst:
                dst.write_bytes(produced[0].read_bytes())
    finally:
        o2t_main.download_test_image_data, common_functions.download_test_image_data = saved
    from edgekit.formats.tflite_graph import ensure_signature

    ensure_signature(out_path, list(ctx.source.io.input_names), list(ctx.source.io.output_names))
    return "NHWC" if _image_input(ctx) else "NCHW"


def quantizable(fp32: Path, tmp: Path, ctx: BuildContext) -> Path:
    """``fp32`` as ai-edge-quantizer needs it: a private copy in ``tmp`` with float16 weights stored as float32,
    new-schema operator codes (:func:`~edgekit.formats.tflite_graph.float32_weights`) and a signature
    (:func:`~edgekit.formats.tflite_graph.ensure_signature`), when it lacks any of them (a ``.tflite`` given as the
    source often does); ``fp32`` itself when it needs nothing. The artifact ``fp32`` is never changed."""
    from edgekit.formats.tflite_graph import ensure_signature, float32_weights, has_signature

    data = Path(fp32).read_bytes()
    rewritten, changes = float32_weights(data)
    if not changes and has_signature(data):
        return Path(fp32)
    private = tmp / "fp32-quantizable.tflite"
    private.write_bytes(rewritten)
    ensure_signature(private, list(ctx.source.io.input_names), list(ctx.source.io.output_names))
    return private


class TfliteAdapter:
    """The TFLite format: fp32 conversion plus fp16, dynamic int8 and full-integer int8 variants."""

    format = Format.TFLITE
    precisions = (Precision.FP32, Precision.FP16, Precision.INT8, Precision.INT8_DYNAMIC)
    libraries = ("ai-edge-litert", "ai-edge-quantizer", "litert-torch", "onnx2tf", "tensorflow")

    def options_from(self, options: FormatOptions) -> TfliteOptions:
        return options.get(TfliteOptions) or TfliteOptions()

    def recipe(self, precision: Precision, options: object) -> dict[str, object]:
        """The input layout choice, and for full-integer int8 its settings (the other precisions have none)."""
        o = own_options(self, options, TfliteOptions)
        own: dict[str, object] = {"nhwc": o.nhwc}
        if precision is Precision.INT8:
            own["int8"] = asdict(o.int8)
        return {"tflite": own}

    def recipe_family(self, precision: Precision, options: object, isa_preset: str) -> str | None:
        """Full-integer int8 with ``io="auto"`` depends on the target: float I/O for CPU families, int8 I/O for the
        rest (:meth:`~edgekit.quantization.tflite.TfliteInt8Options.io_for`); every other build does not."""
        o = own_options(self, options, TfliteOptions)
        if precision is not Precision.INT8 or o.int8.io != "auto":
            return None
        return f"{o.int8.io_for(isa_preset)[0]}-io"

    def precision_hint(self, precision: Precision) -> str | None:
        if precision is Precision.INT8_WEIGHTS:
            return ("int8-weights is OpenVINO's weight-only int8; TFLite has int8-dynamic (dynamic-range "
                    "activations)")
        return None

    def file_name(self, precision: Precision) -> str:
        return f"model.{precision.value}.tflite"

    def cannot_build(self, source: ModelSource) -> str | None:
        """No converter from an OpenVINO IR to TFLite is installed with edgekit."""
        if source.kind == "openvino":
            return ("no converter from OpenVINO IR to TFLite is installed with edgekit; the OpenVINO artifacts are "
                    "built from the IR itself")
        return None

    def build(self, precision: Precision, ctx: BuildContext, out_path: Path) -> BuildOutput:
        options = own_options(self, ctx.options, TfliteOptions)
        if precision is Precision.FP32:
            return self._convert(ctx, options, out_path)
        if ctx.canonical is None or ctx.canonical.format is not Format.TFLITE:
            raise ExportError("no fp32 .tflite to derive from", where=str(out_path))
        with tempfile.TemporaryDirectory(prefix="edgekit-tflite-", dir=Path(out_path).parent) as tmp:
            return self._derive(precision, ctx, options, out_path, Path(tmp))

    def _derive(self, precision: Precision, ctx: BuildContext, options: TfliteOptions, out_path: Path,
                tmp: Path) -> BuildOutput:
        from edgekit.quantization import tflite as aeq

        assert ctx.canonical is not None
        fp32, layout = quantizable(ctx.canonical.path, tmp, ctx), ctx.canonical.layout
        if precision is Precision.FP16:
            rep = aeq.convert_fp16(fp32, out_path)
        elif precision is Precision.INT8_DYNAMIC:
            rep = aeq.quantize_dynamic(fp32, out_path)
        elif precision is Precision.INT8:
            if ctx.split is None:
                raise ExportError("full-integer int8 needs the calibration split", where=str(out_path),
                                  hint="pass --calibration")

            def adapt(feeds: Feeds) -> Feeds:
                return to_layout(feeds, layout)

            io_kind, why_io = options.int8.io_for(ctx.isa_preset)
            rep = aeq.quantize_full_int8(fp32, out_path, ctx.split, adapt, replace(options.int8, io=io_kind),
                                         ctx.budget)
            rep = replace(rep, notes=(why_io, *rep.notes))
        else:  # pragma: no cover - enum is closed
            raise ExportError("unsupported precision", where=str(out_path), got=precision.value)
        settings = rep.artifact_settings()
        notes = list(rep.notes)
        if precision is Precision.FP16:
            settings["numeric_check"], checked = self._check(ctx, out_path, precision, layout)
            notes.append(checked)
        return BuildOutput(out_path, tuple(notes), settings, layout=layout)

    def _convert(self, ctx: BuildContext, options: TfliteOptions, out_path: Path) -> BuildOutput:
        src = ctx.source
        if src.kind in ("torch", "huggingface"):
            layout = convert_torch(ctx, out_path, options.nhwc)
            how = "litert-torch"
        elif src.kind == "tflite" and src.path is not None:  # the user's file, copied as it is
            with atomic_path(out_path) as tmp:
                shutil.copyfile(src.path, tmp)
            layout, how = str(src.details.get("input_layout", "NCHW")), "a copy of the given .tflite file"
        elif src.kind == "onnx":
            layout = convert_onnx(ctx, out_path)
            how = "onnx2tf (from the fp32 ONNX model)"
        else:
            raise SourceError("unknown source kind", where=src.name, got=src.kind)
        check, checked = self._check(ctx, out_path, Precision.FP32, layout)
        note = (f"{how}; input layout {layout}; {checked}" if src.kind == "tflite" else
                f"converted from {src.kind} with {how}; input layout {layout}; {checked}")
        return BuildOutput(out_path, (note,), {"converter": how, "numeric_check": check}, layout=layout)

    def _check(self, ctx: BuildContext, path: Path, precision: Precision,
               layout: str) -> tuple[dict[str, float], str]:
        from edgekit.runtimes.base import RuntimeOptions
        from edgekit.runtimes.litert import LiteRTRuntime

        sess = LiteRTRuntime().load(path, RuntimeOptions(threads=None))
        names = list(ctx.source.io.input_names)

        def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            f = to_layout(feeds, layout)
            return sess.run({n: f[n] for n in names})

        return verify(path.name, precision, ctx.source.run_reference, run, list(ctx.check_feeds)[:8],
                      ctx.source.io.output_names)
