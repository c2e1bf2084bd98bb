"""Helpers of ``int8_vs_peers.py``: the held-out photo crops, the peer quantizers at their defaults and at their best
sensible settings, edgekit's runtime sessions, and shuffled interleaved timing.

Every peer quantizes the same fp32 artifact edgekit's int8 derives from (the pipeline's fp32 ONNX, IR or .tflite)
and gets every calibration item; each returns the file it wrote and what it did (settings and notes), and raises
on failure (the caller records the error).
"""

from __future__ import annotations

import contextlib
import io
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "scripts"))

from fetch_model_files import BENCH_PHOTOS, fetch  # noqa: E402
from int8_accuracy_vs_defaults import ort_default  # noqa: E402

from edgekit.layout import to_layout  # noqa: E402
from edgekit.targets import detect_isa  # noqa: E402

Feeds = dict[str, np.ndarray]
PHOTO_CACHE = REPO / "runs" / ".cache" / "bench-photos"
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")


@dataclass(frozen=True)
class PeerContext:
    """What a peer quantizer gets: every calibration item (edgekit feeds, NCHW images), the fp32 artifact's input
    layout, whether the model is a transformer, and a folder for its files."""

    calibration: list[Feeds]
    layout: str
    transformer: bool
    tmp: Path


PeerResult = tuple[Path, dict[str, Any]]
Peer = Callable[[Path, PeerContext], PeerResult]


# ---------------------------------------------------------------------------------------------- held-out data


def heldout_photos() -> list[Path]:
    """The real photos of other wheels (ultralytics, matplotlib, insightface), fetched once, SHA-256 checked."""
    return sorted(fetch(PHOTO_CACHE, BENCH_PHOTOS))


def crop_boxes(photos: Sequence[Path], n: int, seed: int = 0) -> list[tuple[Path, tuple[int, int, int, int]]]:
    """``n`` seeded random square crops (side 30-100% of the photo's short side), the photos in turn: the same
    boxes for every model (the first ``k`` of ``n`` are those of a run with ``k``)."""
    from PIL import Image, ImageOps

    sizes = {}
    for p in photos:
        with Image.open(p) as im:
            sizes[p] = ImageOps.exif_transpose(im).size
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(n):
        p = photos[i % len(photos)]
        w, h = sizes[p]
        side = round(float(rng.uniform(0.3, 1.0)) * min(w, h))
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        boxes.append((p, (x0, y0, x0 + side, y0 + side)))
    return boxes


def crop_feeds(boxes: Sequence[tuple[Path, tuple[int, int, int, int]]], pre: Any, name: str) -> list[Feeds]:
    """Each crop resized (Lanczos) to the model's size, then normalized as edgekit's own preprocessing does."""
    from PIL import Image, ImageOps

    from edgekit.data.preprocess import image_array

    h, w = pre.size
    out = []
    for path, box in boxes:
        with Image.open(path) as im:
            img = ImageOps.exif_transpose(im).convert("RGB").crop(box).resize((w, h), Image.Resampling.LANCZOS)
        out.append({name: image_array(np.asarray(img), str(path), pre, 3)[None]})
    return out


# ---------------------------------------------------------------------------------------------- ONNX Runtime


def has_vnni() -> bool:
    return any(f in detect_isa() for f in VNNI_FLAGS)


def _inputs_of(path: Path, items: list[Feeds]) -> list[Feeds]:
    import onnx

    names = [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    return [{n: f[n] for n in names} for f in items]


def ort_defaults(fp32: Path, ctx: PeerContext) -> PeerResult:
    out = ctx.tmp / "ort-defaults.onnx"
    items = _inputs_of(fp32, ctx.calibration)
    with contextlib.chdir(ctx.tmp):  # ORT may drop shape-inference files in the working directory
        ort_default(fp32, out, lambda: iter(items))
    return out, {"what": f"onnxruntime.quantization.quantize_static(model, out, reader), every default, "
                         f"{len(items)} calibration items"}


def ort_per_isa(fp32: Path, ctx: PeerContext) -> PeerResult:
    """What an ORT user would write for this CPU: quant_pre_process, QDQ, per-channel, U8 activations, S8 weights,
    reduce_range only without VNNI, MinMax."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre, out = ctx.tmp / "ort-pre.onnx", ctx.tmp / "ort-per-isa.onnx"
    items = _inputs_of(fp32, ctx.calibration)
    notes = []
    with contextlib.chdir(ctx.tmp):
        try:
            quant_pre_process(str(fp32), str(pre))
        except Exception as exc:  # symbolic shape inference fails on some graphs: what a user would retry
            notes.append(f"quant_pre_process failed ({type(exc).__name__}: {str(exc)[:120]}); "
                         "retried with skip_symbolic_shape=True")
            quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        it = iter(items)

        class Reader:
            def get_next(self) -> Feeds | None:
                return next(it, None)

        reduce = not has_vnni()
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=reduce,
                        calibrate_method=CalibrationMethod.MinMax)
    return out, {"what": f"quant_pre_process, then quantize_static QDQ, per_channel=True, QUInt8 activations, QInt8 "
                         f"weights, reduce_range={reduce} (CPU {'has' if not reduce else 'lacks'} VNNI), MinMax, "
                         f"{len(items)} calibration items", "reduce_range": reduce, "notes": notes}


def ort_dynamic(fp32: Path, ctx: PeerContext) -> PeerResult:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = ctx.tmp / "ort-dynamic.onnx"
    with contextlib.chdir(ctx.tmp):
        quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8)
    return out, {"what": "quantize_dynamic(per_channel=True, weight_type=QInt8): int8 weights, activations "
                         "quantized at run time (no calibration)"}


# ---------------------------------------------------------------------------------------------- OpenVINO / NNCF


def _nncf(fp32: Path, ctx: PeerContext, name: str, kwargs: dict[str, Any]) -> Path:
    import logging

    import nncf
    import openvino as ov

    from edgekit.formats.openvino import save_ir

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(fp32))
    names = [i.get_any_name() for i in model.inputs]
    items = [{n: f[n] for n in names} for f in ctx.calibration]
    data = nncf.Dataset([it[names[0]] for it in items] if len(names) == 1 else items)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        q = nncf.quantize(model, data, **kwargs)
    out = ctx.tmp / f"{name}.xml"
    save_ir(q, out)
    return out


def nncf_defaults(fp32: Path, ctx: PeerContext) -> PeerResult:
    from openvino_int8 import nncf_defaults as shown

    out = _nncf(fp32, ctx, "nncf-defaults", {})
    return out, {"what": f"nncf.quantize(model, nncf.Dataset(items)), every default ({shown()}), "
                         f"{len(ctx.calibration)} calibration items"}


def nncf_best(fp32: Path, ctx: PeerContext) -> PeerResult:
    import nncf

    kwargs: dict[str, Any] = {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False,
                              "subset_size": len(ctx.calibration)}
    if ctx.transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    out = _nncf(fp32, ctx, "nncf-best", kwargs)
    shown = ", ".join(f"{k}={getattr(v, 'value', v)}" for k, v in kwargs.items())
    return out, {"what": f"nncf.quantize with {shown} (full bias correction), {len(ctx.calibration)} calibration "
                         "items"}


# ---------------------------------------------------------------------------------------------- LiteRT / aeq


def _aeq(fp32: Path, ctx: PeerContext, recipe_name: str) -> PeerResult:
    from ai_edge_quantizer import quantizer, recipe

    from edgekit.quantization.tflite import _model_inputs, signature_inputs

    key, dtypes = signature_inputs(fp32)
    items = [_model_inputs(f, lambda x: to_layout(x, ctx.layout), dtypes, str(fp32)) for f in ctx.calibration]
    qt = quantizer.Quantizer(str(fp32))
    qt.load_quantization_recipe(getattr(recipe, recipe_name)())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = qt.quantize(qt.calibrate({key: items}))
        out = ctx.tmp / f"aeq-{recipe_name}.tflite"
        result.export_model(str(out), overwrite=True)
    return out, {"what": f"ai-edge-quantizer recipe.{recipe_name}() with every default, calibrate() on "
                         f"{len(items)} calibration items"}


def aeq_defaults(fp32: Path, ctx: PeerContext) -> PeerResult:
    return _aeq(fp32, ctx, "static_wi8_ai8")


def aeq_a16w8(fp32: Path, ctx: PeerContext) -> PeerResult:
    return _aeq(fp32, ctx, "static_wi8_ai16")


# ---------------------------------------------------------------------------------------------- running, timing


def session(fmt: str, path: Path) -> Any:
    """edgekit's runtime session of the format, 1 thread (OpenVINO: fp32 inference precision, as edgekit sets)."""
    from edgekit.runtimes.base import RuntimeOptions

    if fmt == "onnx":
        from edgekit.runtimes.ort import OrtRuntime

        return OrtRuntime().load(path, RuntimeOptions(threads=1))
    if fmt == "openvino":
        from edgekit.runtimes.openvino import OpenVinoRuntime

        return OpenVinoRuntime().load(path, RuntimeOptions(threads=1))
    from edgekit.runtimes.litert import LiteRTRuntime

    return LiteRTRuntime().load(path, RuntimeOptions(threads=1))


def outputs(sess: Any, feeds: Sequence[Feeds], layout: str) -> np.ndarray:
    """The first output of every feed, stacked (N, ...), float32."""
    return np.concatenate([np.asarray(sess.run(to_layout(f, layout))[0], np.float32) for f in feeds])


def timed(runners: Mapping[str, Callable[[], object]], rounds: int, per_round: int, warmup: int,
          seed: int = 0) -> dict[str, list[float]]:
    """Single-item latency samples (ms): ``warmup`` runs each, then ``rounds`` rounds in which every variant, in a
    freshly shuffled order, runs ``per_round`` times (load drifts hit every variant alike)."""
    for run in runners.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    order = list(runners)
    rng = random.Random(seed)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            run = runners[name]
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                run()
                samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return samples
