"""ONNX quantization as plain functions on files: static int8 (QDQ, calibrated), dynamic int8, fp16.

Static int8 runs in five steps, each measured and recorded in the returned :class:`QuantReport`:

1. pre-process the fp32 model (``quant_pre_process``: shape inference + basic graph optimizations);
2. calibrate on a *stream* of feeds, a bounded chunk at a time (ranges are merged between chunks, so
   memory does not grow with the number of items; see :func:`_calibrate`);
3. quantize with ``onnxruntime.quantization.quantize_static`` from the cached ranges, with the recipe
   of the target's ISA preset (:func:`resolve_preset`);
4. keep float nodes float: ONNX Runtime's ``WeightBiasQuantization`` optimizer re-quantizes, at session
   load, the float weights of any Conv/Gemm sitting between a per-tensor DequantizeLinear and a
   QuantizeLinear, per-tensor (a kept-float depthwise conv then dropped cosine 0.98 -> 0.85). Each such
   node gets a dedicated, numerically identical per-axis DequantizeLinear so that the optimizer leaves it
   alone (:func:`~edgekit.formats.onnx_qdq.protect_float_nodes`);
5. measure the model against fp32 with the real ORT CPU kernels on ``check_feeds`` plus up to 16
   calibration items sampled uniformly from the stream (all calibration split); if it misses the
   budget, search: first the op types whose quantization costs most (:func:`_op_type_search`; a
   transformer's Add + LayerNormalization residual stream), then the weighted nodes, ranked by the gain
   from giving that one node its float weights back, kept float greedily until the budget holds or
   ``max_float_nodes`` is reached (:func:`_sensitivity_search`).

Before quantizing, tensors whose calibrated range reaches 1e4 (attention masks: -3.4e38) are kept float
with the nodes around them (:func:`_range_guard`): one such tensor took MiniLM's cosine to 0.38.

Every decision becomes a sentence in ``QuantReport.notes``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path
from edgekit.errors import CalibrationError, ConfigError, QuantizationError, UnknownNameError, first_line, require
from edgekit.formats.onnx_qdq import (
    WEIGHTED_OPS,
    float_weights,
    protect_float_nodes,
    quantized_weighted_nodes,
    with_float_weights,
)

Feeds = dict[str, np.ndarray]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QTYPES = ("uint8", "int8")
_HISTOGRAM_CHUNK_BYTES = 256 << 20  # activations held at once by the entropy / percentile calibrators
_MINMAX_CHUNK = 32  # feeds per collect_data call for MinMax (it keeps only two scalars per tensor)
_RANK_ITEMS = 8  # check items used to rank node sensitivity (all check items verify each decision)
_MIN_GAIN = 1e-4  # cosine gain below which keeping a node float is not worth its speed
_WILD_RANGE = 1e4  # activations reaching this magnitude are masks / sentinels, not values to spread over 8 bits
_SAMPLE_ITEMS = 16  # calibration items sampled across the whole stream to join the check items
_SAMPLE_BYTES = 64 << 20  # ...at most this many bytes of them

# The recipes, keyed by the ISA family of the target (``Target.int8_preset``), like optimum's avx2 /
# avx512_vnni / arm64 configurations. optimum's avx2 config uses u8 weights (u8 x u8 kernels); on an AVX2
# machine those were as accurate but 6x slower than u8 x s8 with reduce_range (design notes §7), hence ours.
# On an AVX-512 VNNI machine the real u8 x s8 kernels matched an fp32 simulation of the same QDQ model, and
# reduce_range only cost accuracy (EfficientNet-Lite0 cosine 0.981 -> 0.942 before the search).
PRESETS: dict[str, dict[str, Any]] = {
    "avx2": {
        "activation_type": "uint8", "weight_type": "int8", "per_channel": True, "reduce_range": True,
        "keep_input_layers_float": True, "preprocess": True,
        "why": "AVX2 without VNNI: the u8 x s8 kernels sum pairs of products in saturating 16-bit "
               "registers; 7-bit weights (reduce_range) keep the sums in range",
    },
    "vnni": {
        "activation_type": "uint8", "weight_type": "int8", "per_channel": True, "reduce_range": False,
        "keep_input_layers_float": True, "preprocess": True,
        "why": "AVX-512 VNNI / AVX-VNNI accumulate u8 x s8 products in 32 bits: full 8-bit weights",
    },
    "arm64": {
        "activation_type": "int8", "weight_type": "int8", "per_channel": True, "reduce_range": False,
        "keep_input_layers_float": True, "preprocess": True,
        "why": "Arm64 dot-product kernels: s8 x s8, as ONNX Runtime's quantize_static guide recommends for Arm",
    },
    "generic": {
        "activation_type": "uint8", "weight_type": "int8", "per_channel": True, "reduce_range": True,
        "keep_input_layers_float": True, "preprocess": True,
        "why": "unknown CPU: assume no VNNI (SSE/AVX2 u8 x s8 kernels saturate), so 7-bit weights",
    },
    "ort-default": {
        "activation_type": "int8", "weight_type": "int8", "per_channel": False, "reduce_range": False,
        "keep_input_layers_float": False, "preprocess": False,
        "why": "exactly onnxruntime.quantization.quantize_static's defaults (QDQ, S8S8, per-tensor, MinMax)",
    },
}


def resolve_preset(name: str, isa_preset: str) -> dict[str, Any]:
    """The settings of preset ``name``; ``"auto"`` takes the target's ISA family ``isa_preset``."""
    chosen = isa_preset if name == "auto" else name
    if chosen not in PRESETS:
        what = "ISA preset of the target" if name == "auto" else "int8 preset"
        raise UnknownNameError(f"unknown {what}", where="static_int8.preset",
                               expected=", ".join(["auto", *PRESETS]), got=chosen,
                               hint="pick one of the listed presets")
    return {"preset": chosen, "requested_preset": name, **PRESETS[chosen]}


def _check_choice(value: Any, allowed: Sequence[Any], where: str) -> None:
    if value not in allowed:
        raise ConfigError("unknown value", where=where, expected=", ".join(map(str, allowed)), got=value)


@dataclass(frozen=True)
class StaticInt8Options:
    """Static (calibrated) int8 in QDQ format. ``None`` fields come from the preset.

    ``min_cosine`` / ``min_top1_agreement`` are the budget the sensitivity search aims for, measured on
    the calibration-split check items with the real ORT CPU kernels (never on held-out items). The
    search first leaves whole op types float where that pays (no limit: there are few), then keeps at
    most ``max_float_nodes`` weighted nodes float. ``preset="ort-default"`` with ``sensitivity_search=False``
    reproduces plain ``onnxruntime.quantization.quantize_static``.
    """

    preset: str = "auto"
    calibration_method: str = "minmax"
    per_channel: bool | None = None
    activation_type: str | None = None
    weight_type: str | None = None
    reduce_range: bool | None = None
    nodes_to_exclude: tuple[str, ...] = ()
    op_types_to_exclude: tuple[str, ...] = ()
    keep_input_layers_float: bool | None = None
    sensitivity_search: bool = True
    max_float_nodes: int = 6
    calibration_limit: int | None = None
    min_cosine: float = 0.99
    min_top1_agreement: float | None = None

    def __post_init__(self) -> None:
        _check_choice(self.preset, ("auto", *PRESETS), "static_int8.preset")
        _check_choice(self.calibration_method, CALIBRATION_METHODS, "static_int8.calibration_method")
        _check_choice(self.activation_type, (*QTYPES, None), "static_int8.activation_type")
        _check_choice(self.weight_type, (*QTYPES, None), "static_int8.weight_type")
        for key in ("nodes_to_exclude", "op_types_to_exclude"):
            val = getattr(self, key)
            if isinstance(val, str) or not all(isinstance(v, str) for v in val):
                raise ConfigError("expected a list of names", where=f"static_int8.{key}", got=val)
            object.__setattr__(self, key, tuple(val))
        if not isinstance(self.max_float_nodes, int) or self.max_float_nodes < 0:
            raise ConfigError("must be an integer >= 0", where="static_int8.max_float_nodes", got=self.max_float_nodes)
        if self.calibration_limit is not None and (not isinstance(self.calibration_limit, int)
                                                   or self.calibration_limit < 1):
            raise ConfigError("must be a positive integer or None", where="static_int8.calibration_limit",
                              got=self.calibration_limit)
        for key in ("min_cosine", "min_top1_agreement"):
            val = getattr(self, key)
            if val is not None and not (isinstance(val, (int, float)) and 0.0 <= val <= 1.0):
                raise ConfigError("must be a number in [0, 1]", where=f"static_int8.{key}", got=val)


@dataclass(frozen=True)
class DynamicInt8Options:
    """Dynamic int8: weights quantized offline, activations at run time (no calibration)."""

    per_channel: bool = True
    weight_type: str = "int8"
    reduce_range: bool | None = None
    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Attention")
    nodes_to_exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_choice(self.weight_type, QTYPES, "dynamic_int8.weight_type")
        for key in ("op_types", "nodes_to_exclude"):
            val = getattr(self, key)
            if isinstance(val, str) or not all(isinstance(v, str) for v in val):
                raise ConfigError("expected a list of names", where=f"dynamic_int8.{key}", got=val)
            object.__setattr__(self, key, tuple(val))
        if not self.op_types:
            raise ConfigError("needs at least one op type", where="dynamic_int8.op_types", got=self.op_types)


@dataclass(frozen=True)
class QuantReport:
    """What a quantizer did: effective settings, nodes it kept in float and why, cost, and the check.

    ``calibration_peak_rss_mb`` is the peak resident memory of this whole process, sampled every 10 ms
    by a psutil thread while calibration ran (0 where there was no calibration).
    """

    settings: dict[str, Any]
    nodes_kept_float: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    calibration_items: int = 0
    calibration_seconds: float = 0.0
    calibration_peak_rss_mb: float = 0.0
    check: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ helpers


class _DropOrtQuantLogs(logging.Filter):
    """Drops the root-logger chatter of ``onnxruntime.quantization`` (e.g. its pre-processing advice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname.replace("\\", "/")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ORT quantization's prints (stdout) and root-logger warnings for the duration."""
    flt = _DropOrtQuantLogs()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(flt)


def _load_model(path: Path) -> Any:
    """Load an ONNX model or raise :class:`QuantizationError` naming the file."""
    onnx = require("onnx", "onnx", "quantizing ONNX models")
    if not Path(path).is_file():
        raise QuantizationError("model file not found", where=str(path), hint="export the fp32 model first")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise QuantizationError(f"not a loadable ONNX model: {first_line(exc, 240)}", where=str(path),
                                hint="pass the fp32 .onnx file written by the export stage") from exc
    if not model.graph.node:
        raise QuantizationError("the ONNX graph has no nodes", where=str(path),
                                hint="pass the fp32 .onnx file written by the export stage")
    return model


def _graph_inputs(model: Any) -> dict[str, int]:
    """Real graph inputs (not initializers) -> ONNX element type."""
    inits = {i.name for i in model.graph.initializer}
    return {i.name: i.type.tensor_type.elem_type for i in model.graph.input if i.name not in inits}


def _session(model: Any, *, threads: int = 1) -> Any:
    """An ORT CPU session with the default (full) graph optimizations: the real kernels."""
    from edgekit.runtimes.ort import import_ort

    ort = import_ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    src = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _run_all(sess: Any, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
    return [[np.asarray(o) for o in sess.run(None, dict(f))] for f in feeds]


class _PeakRss:
    """Samples this process's RSS every 10 ms on a thread; ``peak_mb`` is the largest sample."""

    def __init__(self) -> None:
        psutil = require("psutil", "core", "measuring calibration memory")
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._peak = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self._peak = max(self._peak, int(self._proc.memory_info().rss))
            if self._stop.wait(0.01):
                return

    def __enter__(self) -> _PeakRss:
        self._peak = self._baseline = int(self._proc.memory_info().rss)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, int(self._proc.memory_info().rss))

    @property
    def peak_mb(self) -> float:
        return self._peak / 2**20

    @property
    def increase_mb(self) -> float:
        """Peak minus the RSS when calibration started: what calibration itself added."""
        return (self._peak - self._baseline) / 2**20


def _check_feed(feed: Mapping[str, np.ndarray], inputs: Mapping[str, int], where: str, what: str) -> Feeds:
    """Validate one feed: the model's input names, numeric arrays, no NaN/Inf."""
    if not isinstance(feed, Mapping):
        raise CalibrationError(f"{what} is not a dict of input name -> array", where=where, got=type(feed).__name__)
    missing = [n for n in inputs if n not in feed]
    extra = [n for n in feed if n not in inputs]
    if missing or extra:
        raise CalibrationError(f"{what} does not match the model's inputs", where=where,
                               expected=", ".join(inputs), got=", ".join(map(str, feed)),
                               hint="the calibration data must be preprocessed for this model")
    out: Feeds = {}
    for name, value in feed.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = "NaN" if np.isnan(arr).any() else "Inf"
            raise CalibrationError(f"{what} input {name!r} contains {bad}", where=where,
                                   hint="fix the data or its preprocessing (e.g. a zero std)")
        if arr.dtype.kind not in "fiub":
            raise CalibrationError(f"{what} input {name!r} is not numeric", where=where, got=str(arr.dtype))
        out[name] = arr
    return out


def _items_in(feed: Feeds) -> int:
    first = next(iter(feed.values()))
    return int(first.shape[0]) if first.ndim else 1


class _ChunkReader:
    """An ORT ``CalibrationDataReader`` (duck-typed: ``get_next``) over at most ``size`` feeds of a stream."""

    def __init__(self, source: _CalibrationStream, size: int) -> None:
        self._source = source
        self._left = size

    def get_next(self) -> Feeds | None:
        if self._left <= 0:
            return None
        self._left -= 1
        return self._source.next_feed()


class _CalibrationStream:
    """Pulls validated feeds one at a time from the user's iterator, up to ``limit`` items.

    On the way it keeps a seeded reservoir sample (``sample``) of up to 16 feeds (64 MB), spread
    uniformly over the whole stream, for the check and the sensitivity search.
    """

    def __init__(self, it: Iterator[Mapping[str, np.ndarray]], inputs: Mapping[str, int], where: str,
                 limit: int | None) -> None:
        self._it = it
        self._inputs = inputs
        self._where = where
        self._limit = limit
        self.items = 0
        self.feeds = 0
        self.done = False
        self._pushed: list[Feeds] = []
        self.sample: list[Feeds] = []  # a uniform reservoir sample of the feeds seen (seeded)
        self._sample_size = _SAMPLE_ITEMS
        self._rng = np.random.default_rng(0)

    def _keep_sample(self, feed: Feeds) -> None:
        if self.feeds == 1:
            size = sum(a.nbytes for a in feed.values())
            self._sample_size = min(_SAMPLE_ITEMS, _SAMPLE_BYTES // max(size, 1))
        if len(self.sample) < self._sample_size:
            self.sample.append(feed)
        elif self._sample_size:
            j = int(self._rng.integers(0, self.feeds))
            if j < self._sample_size:
                self.sample[j] = feed

    def push_back(self, feed: Feeds) -> None:
        """Return ``feed`` to the stream: the next :meth:`next_feed` yields it again."""
        self._pushed.append(feed)

    def next_feed(self) -> Feeds | None:
        if self._pushed:
            return self._pushed.pop()
        if self.done or (self._limit is not None and self.items >= self._limit):
            self.done = True
            return None
        try:
            raw = next(self._it)
        except StopIteration:
            self.done = True
            return None
        feed = _check_feed(raw, self._inputs, self._where, f"calibration item {self.feeds}")
        self.feeds += 1
        self.items += _items_in(feed)
        self._keep_sample(feed)
        return feed


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


def _calibrate(src: Path, calibration: Callable[[], Iterator[Feeds]], settings: Mapping[str, Any],
               op_types: Sequence[str], inputs: Mapping[str, int], tmp: Path,
               where: str) -> tuple[Any, _CalibrationStream, float, tuple[float, float]]:
    """Stream calibration feeds through the calibrator a chunk at a time; return (ranges, stream, s, (peak, added) MB).

    ``collect_data`` is called once per chunk: MinMax merges the chunk's per-tensor min/max into its
    running range; the histogram calibrators (entropy, percentile) merge the chunk's histograms. So at
    most one chunk of activations is held at once (sized to ~256 MB from the model's tensor shapes).
    ORT's own bound, ``CalibMaxIntermediateOutputs``, is not used: in ORT 1.32 it *drops* the collected
    outputs when the bound is reached, so only the last partial batch of items is kept.
    """
    q = require("onnxruntime.quantization", "onnx", "quantizing ONNX models")
    method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
              "percentile": q.CalibrationMethod.Percentile}[settings["calibration_method"]]
    t0 = time.perf_counter()
    try:
        it = iter(calibration())
    except Exception as exc:
        raise CalibrationError(f"the calibration data could not be opened: {first_line(exc, 240)}", where=where,
                               hint="check the calibration set path and its preprocessing") from exc
    stream = _CalibrationStream(it, inputs, where, settings["calibration_limit"])
    first = stream.next_feed()
    if first is None:
        raise CalibrationError("no calibration items", where=where, expected="at least 1 item", got=0,
                               hint="give a calibration set with a non-empty 'calibration' split")
    stream.push_back(first)
    with _PeakRss() as rss, _quiet():
        try:
            calibrator = q.create_calibrator(src, list(op_types), augmented_model_path=str(tmp / "augmented.onnx"),
                                             calibrate_method=method, extra_options={})
        except Exception as exc:
            raise QuantizationError(f"onnxruntime cannot prepare the model for calibration: {first_line(exc, 240)}",
                                    where=where, hint="try op_types_to_exclude for the failing op") from exc
        if method == q.CalibrationMethod.MinMax:
            chunk = _MINMAX_CHUNK
        else:
            per_item = _activation_bytes(calibrator.model)
            chunk = max(1, _HISTOGRAM_CHUNK_BYTES // per_item) if per_item else 4
        while (feed := stream.next_feed()) is not None:
            stream.push_back(feed)
            try:
                calibrator.collect_data(_ChunkReader(stream, chunk))
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
    return ranges, stream, time.perf_counter() - t0, (rss.peak_mb, rss.increase_mb)


# ------------------------------------------------------------------------------------------ checking


def _rows(out: np.ndarray, feed: Mapping[str, np.ndarray]) -> np.ndarray:
    """One row per batch item; a (B, S, H) output with an ``attention_mask`` (B, S) input is mean-pooled over
    the real tokens first (padding positions carry no meaning), as edgekit's validation does."""
    x = out.astype(np.float64)
    mask = feed.get("attention_mask")
    if x.ndim == 3 and mask is not None and mask.shape == x.shape[:2]:
        m = mask.astype(np.float64)[..., None]
        x = (x * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return x.reshape(x.shape[0] if x.ndim > 1 else 1, -1)


def _agreement(feeds: Sequence[Feeds], ref: Sequence[Sequence[np.ndarray]],
               got: Sequence[Sequence[np.ndarray]]) -> dict[str, float]:
    """Mean / min cosine over items x outputs; top-1 agreement if the first output is (batch, classes)."""
    cos: list[float] = []
    top1: list[float] = []
    for feed, r_outs, g_outs in zip(feeds, ref, got, strict=True):
        for k, (r, g) in enumerate(zip(r_outs, g_outs, strict=True)):
            for a, b in zip(_rows(r, feed), _rows(g, feed), strict=True):
                na, nb = np.linalg.norm(a), np.linalg.norm(b)
                cos.append(1.0 if na == nb == 0 else float(a @ b / (na * nb)) if na and nb else 0.0)
            if k == 0 and r.ndim == 2 and r.shape[1] > 1:
                top1.extend((r.argmax(-1) == g.argmax(-1)).astype(float).tolist())
    out = {"items": float(len(ref)), "cosine": float(np.mean(cos)), "cosine_min": float(np.min(cos))}
    if top1:
        out["top1_agreement"] = float(np.mean(top1))
    return out


def _meets(check: Mapping[str, float], options: StaticInt8Options) -> bool:
    if check["cosine"] < options.min_cosine:
        return False
    top1 = options.min_top1_agreement
    return top1 is None or check.get("top1_agreement", 1.0) >= top1


def _c(x: float) -> str:
    """A cosine, with enough digits to tell values near 1 apart."""
    return f"{x:.4f}" if x < 0.9995 else f"{x:.6f}"


def _fmt(check: Mapping[str, float]) -> str:
    text = f"cosine {_c(check['cosine'])} (min {_c(check['cosine_min'])})"
    if "top1_agreement" in check:
        text += f", top-1 agreement {check['top1_agreement']:.3f}"
    return text + f" on {int(check['items'])} check items"


def _measure(model: Any, feeds: Sequence[Feeds], ref: Sequence[Sequence[np.ndarray]], where: str) -> dict[str, float]:
    try:
        sess = _session(model)
        return _agreement(feeds, ref, _run_all(sess, feeds))
    except Exception as exc:
        raise QuantizationError(f"onnxruntime cannot run the quantized model: {first_line(exc, 240)}", where=where,
                                hint="try op_types_to_exclude / nodes_to_exclude for the failing op") from exc


def _range_guard(float_model: Any, ranges: Any, reasons: dict[str, str]) -> None:
    """Keep float every node that produces or reads a tensor whose calibrated range is wild (see below).

    A tensor reaching +-1e4 (attention masks add -1e4 ... -3.4e38) cannot be spread over 256 levels: its
    scale wipes out every real value (MiniLM: cosine 0.38 with the masks quantized).
    """
    wild: dict[str, tuple[float, float]] = {}
    for name, data in ranges.data.items():
        lo_v = float(np.min(np.asarray(data.range_value[0])))
        hi_v = float(np.max(np.asarray(data.range_value[1])))
        if not (np.isfinite(lo_v) and np.isfinite(hi_v)) or max(abs(lo_v), abs(hi_v)) >= _WILD_RANGE:
            wild[name] = (lo_v, hi_v)
    for node in float_model.graph.node:
        hit = [t for t in (*node.input, *node.output) if t in wild]
        if hit and node.name not in reasons:
            lo_v, hi_v = wild[hit[0]]
            reasons[node.name] = (f"tensor {hit[0]} has calibrated range [{lo_v:.3g}, {hi_v:.3g}] "
                                  f"(|x| >= {_WILD_RANGE:g}: a mask or sentinel, not 8-bit material)")


# Ops that only move or select values: ORT gives their output the input's scale, so leaving them float
# cannot make the model more accurate; the op-type search does not spend time on them.
_VALUE_PRESERVING_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Shape", "Slice",
                                   "Split", "Expand", "Identity", "Tile", "MaxPool", "DepthToSpace", "SpaceToDepth"})


def _quantized_op_types(qmodel: Any) -> list[str]:
    """Op types (other than weighted and value-preserving ops) that read a DequantizeLinear output."""
    producers = {o: n.op_type for n in qmodel.graph.node for o in n.output}
    skip = {"QuantizeLinear", "DequantizeLinear", *WEIGHTED_OPS, *_VALUE_PRESERVING_OPS}
    found = {n.op_type for n in qmodel.graph.node
             if n.op_type not in skip and any(producers.get(i) == "DequantizeLinear" for i in n.input)}
    return sorted(found)


def _op_type_search(qmodel: Any, build: Callable[[Sequence[str]], Any], feeds: Sequence[Feeds],
                    ref: Sequence[Sequence[np.ndarray]], check: dict[str, float], options: StaticInt8Options,
                    where: str, notes: list[str]) -> tuple[Any, list[str], dict[str, float]]:
    """Find the op types (Add, LayerNormalization, ...) whose quantization costs accuracy; leave them float.

    Forward selection from the model that quantizes only weighted (and value-preserving) ops: if that is
    no better than quantizing everything, stop; else add each other op type back (re-quantized from the
    same ranges) and keep it int8 when the cosine on all check items drops by less than ``_MIN_GAIN``.
    Adding types one at a time from this side handles pairs that only matter together (a transformer's
    residual stream is int8 while either the Add that makes it or the LayerNormalization that reads it is).
    """
    types = _quantized_op_types(qmodel)
    if not types:
        return qmodel, [], check
    cur_model = build(types)
    cur = _measure(cur_model, feeds, ref, where)
    if cur["cosine"] < check["cosine"] + _MIN_GAIN:
        notes.append(f"op-type search: quantizing only weighted ops gives cosine {_c(cur['cosine'])}, no better: "
                     f"kept {', '.join(types)} int8")
        return qmodel, [], check
    notes.append(f"op-type search: quantizing only weighted ops gives cosine {_c(check['cosine'])} -> "
                 f"{_c(cur['cosine'])}; adding back {', '.join(types)} one at a time")
    floats = list(types)
    for op_type in types:
        trial_skip = [t for t in floats if t != op_type]
        trial = build(trial_skip)
        trial_check = _measure(trial, feeds, ref, where)
        if trial_check["cosine"] > cur["cosine"] - _MIN_GAIN:
            notes.append(f"quantized {op_type} again: cosine {_c(cur['cosine'])} -> {_c(trial_check['cosine'])}")
            floats, cur_model, cur = trial_skip, trial, trial_check
        else:
            notes.append(f"left every {op_type} float: quantizing it costs cosine {_c(cur['cosine'])} -> "
                         f"{_c(trial_check['cosine'])} on {len(feeds)} check items")
    return cur_model, floats, cur


def _sensitivity_search(qmodel: Any, weights: Mapping[str, list[tuple[int, Any]]], feeds: Sequence[Feeds],
                        ref: Sequence[Sequence[np.ndarray]], check: dict[str, float], options: StaticInt8Options,
                        where: str, notes: list[str]) -> tuple[Any, list[str], dict[str, float]]:
    """Rank quantized weighted nodes by the gain from restoring their float weights; keep the worst float.

    Ranking: for each candidate, the model with only that node's weights back in float, on the first
    ``_RANK_ITEMS`` check items, real kernels (one model, session and a few runs per candidate; no
    re-calibration, no re-quantization). Greedy: take candidates in ranked order, keep one if it raises
    the cosine on all check items by at least ``_MIN_GAIN``, stop when the budget holds or
    ``max_float_nodes`` are kept.
    """
    candidates = [n for n in quantized_weighted_nodes(qmodel) if weights.get(n)]
    if not candidates or options.max_float_nodes == 0:
        notes.append("sensitivity search: nothing to do (no candidate nodes or max_float_nodes=0)")
        return qmodel, [], check
    rank_feeds, rank_ref = feeds[:_RANK_ITEMS], ref[:_RANK_ITEMS]
    base = _measure(qmodel, rank_feeds, rank_ref, where)["cosine"]
    gains = []
    for name in candidates:
        trial = with_float_weights(qmodel, [name], weights)
        gains.append((_measure(trial, rank_feeds, rank_ref, where)["cosine"] - base, name))
    gains.sort(key=lambda g: -g[0])
    top = ", ".join(f"{n} {g:+.2g}" for g, n in gains[:5])
    notes.append(f"sensitivity search: ranked {len(candidates)} weighted nodes by the cosine gain of keeping "
                 f"each alone in float ({len(rank_feeds)} check items, real kernels); top: {top}")
    kept: list[str] = []
    current, cur_check = qmodel, check
    tries = 0
    for gain, name in gains:
        if _meets(cur_check, options) or len(kept) >= options.max_float_nodes:
            break
        if gain < _MIN_GAIN or tries >= 2 * options.max_float_nodes:
            notes.append(f"sensitivity search stopped: next gain {gain:+.2g} < {_MIN_GAIN:g}" if gain < _MIN_GAIN
                         else f"sensitivity search stopped after {tries} tries")
            break
        tries += 1
        trial = with_float_weights(qmodel, [*kept, name], weights)
        trial_check = _measure(trial, feeds, ref, where)
        if trial_check["cosine"] >= cur_check["cosine"] + _MIN_GAIN:
            notes.append(f"kept {name} in float: sensitivity {gain:+.2g}; cosine {_c(cur_check['cosine'])} -> "
                         f"{_c(trial_check['cosine'])} on {len(feeds)} check items")
            kept.append(name)
            current, cur_check = trial, trial_check
        else:
            notes.append(f"left {name} in int8: keeping it float did not raise the cosine on all check items by "
                         f"{_MIN_GAIN:g} ({_c(cur_check['cosine'])} -> {_c(trial_check['cosine'])})")
    return current, kept, cur_check


# ------------------------------------------------------------------------------------------ public API


@contextlib.contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _preprocess(src: Path, tmp: Path, notes: list[str]) -> Path:
    """``quant_pre_process`` (symbolic shape inference + ORT basic optimizations); falls back gracefully.

    Runs with ``tmp`` as the working directory: when symbolic shape inference fails (MiniLM), ORT dumps
    ``sym_shape_infer_temp.onnx`` plus a ~90 MB external-data file into the current directory.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, out = Path(src).resolve(), (tmp / "preprocessed.onnx").resolve()
    for kwargs in ({}, {"skip_symbolic_shape": True}):
        try:
            with _quiet(), _working_dir(tmp):
                quant_pre_process(str(src), str(out), **kwargs)
            if kwargs:
                notes.append("pre-processing: symbolic shape inference failed; used ONNX shape inference only")
            return out
        except Exception as exc:  # ORT's pre-processing raises assorted errors on unusual graphs
            last = first_line(exc, 240)
    notes.append(f"pre-processing skipped: quant_pre_process failed ({last})")
    return src


def _name_nodes(model: Any) -> None:
    seen: set[str] = set()
    for i, n in enumerate(model.graph.node):
        if not n.name or n.name in seen:
            n.name = f"{n.op_type}_{i}"
        seen.add(n.name)


def _static_settings(options: StaticInt8Options, isa_preset: str) -> dict[str, Any]:
    preset = resolve_preset(options.preset, isa_preset)
    pick = {k: (getattr(options, k) if getattr(options, k) is not None else preset[k])
            for k in ("activation_type", "weight_type", "per_channel", "reduce_range", "keep_input_layers_float")}
    return {"quant_format": "QDQ", "preset": preset["preset"], "requested_preset": options.preset,
            "isa_preset": isa_preset, "preset_reason": preset["why"], **pick,
            "calibration_method": options.calibration_method, "calibration_limit": options.calibration_limit,
            "preprocess": preset["preprocess"], "nodes_to_exclude": list(options.nodes_to_exclude),
            "op_types_to_exclude": list(options.op_types_to_exclude),
            "sensitivity_search": options.sensitivity_search, "max_float_nodes": options.max_float_nodes,
            "min_cosine": options.min_cosine, "min_top1_agreement": options.min_top1_agreement}


def _exclusions(float_model: Any, options: StaticInt8Options, settings: Mapping[str, Any],
                inputs: Mapping[str, int]) -> dict[str, str]:
    """Nodes ORT must leave float, with the reason: ``nodes_to_exclude`` and, if asked, the input layers."""
    names = {n.name for n in float_model.graph.node}
    unknown = [n for n in options.nodes_to_exclude if n not in names]
    if unknown:
        examples = sorted(n.name for n in float_model.graph.node if n.op_type in WEIGHTED_OPS)[:3]
        raise ConfigError("unknown node names in nodes_to_exclude", where="static_int8.nodes_to_exclude",
                          got=unknown, expected="node names of the model, e.g. " + ", ".join(examples))
    reasons = {n: "listed in nodes_to_exclude" for n in options.nodes_to_exclude}
    if settings["keep_input_layers_float"]:
        for n in float_model.graph.node:
            if n.op_type in WEIGHTED_OPS and n.input and n.input[0] in inputs and n.name not in reasons:
                reasons[n.name] = "reads a raw graph input (keep_input_layers_float)"
    return reasons


def _ort_quantize(src: Path, out: Path, ranges: Any, settings: Mapping[str, Any], op_types: Sequence[str],
                  exclude: Sequence[str], where: str) -> Any:
    """ORT ``quantize_static`` (QDQ) from already computed ranges (passed as its calibration cache)."""
    import onnx

    q = require("onnxruntime.quantization", "onnx", "quantizing ONNX models")
    qt = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    method = {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
              "percentile": q.CalibrationMethod.Percentile}[settings["calibration_method"]]
    cache = out.with_suffix(".ranges.json")
    q.save_tensors_data(ranges, cache)
    try:
        with _quiet():
            q.quantize_static(str(src), str(out), None, quant_format=q.QuantFormat.QDQ,
                              op_types_to_quantize=list(op_types), per_channel=bool(settings["per_channel"]),
                              reduce_range=bool(settings["reduce_range"]),
                              activation_type=qt[settings["activation_type"]],
                              weight_type=qt[settings["weight_type"]], nodes_to_exclude=list(exclude),
                              calibrate_method=method, calibration_cache_path=str(cache))
    except Exception as exc:
        raise QuantizationError(f"onnxruntime could not quantize the model: {first_line(exc, 240)}", where=where,
                                hint="try op_types_to_exclude for the op named, or another preset") from exc
    return onnx.load(str(out))


def _check_and_search(fp32_path: Path, qmodel: Any, build: Callable[[Sequence[str]], Any], float_model: Any,
                      checks: list[Feeds], options: StaticInt8Options, where: str,
                      notes: list[str]) -> tuple[Any, list[str], list[str], dict[str, float]]:
    """Measure ``qmodel`` against fp32 on ``checks``; if it misses the budget, search (op types, then nodes).

    Returns (model, op types left float, nodes kept float, check).
    """
    if not checks:
        notes.append("no check items (inputs too large to sample): accuracy not measured, no sensitivity search")
        return qmodel, [], [], {}
    ref = _run_all(_session(fp32_path), checks)
    check = _measure(qmodel, checks, ref, where)
    notes.append(f"check after quantization: {_fmt(check)}")
    skipped: list[str] = []
    found: list[str] = []
    if options.sensitivity_search and not _meets(check, options):
        before = check
        qmodel, skipped, check = _op_type_search(qmodel, build, checks, ref, check, options, where, notes)
        if not _meets(check, options):
            qmodel, found, check = _sensitivity_search(qmodel, float_weights(float_model), checks, ref, check,
                                                       options, where, notes)
        check = {**check, "cosine_before_search": before["cosine"]}
        if "top1_agreement" in before:
            check["top1_agreement_before_search"] = before["top1_agreement"]
    if not _meets(check, options):
        top1 = options.min_top1_agreement
        notes.append(f"budget not met (min_cosine {options.min_cosine}"
                     + (f", min_top1_agreement {top1}" if top1 is not None else "")
                     + f"): {_fmt(check)}; the validate stage measures held-out data")
    return qmodel, skipped, found, check


def quantize_static(fp32_path: Path, out_path: Path, calibration: Callable[[], Iterator[Feeds]],
                    check_feeds: Sequence[Feeds], options: StaticInt8Options, isa_preset: str) -> QuantReport:
    """Static int8 (QDQ) of ``fp32_path`` into ``out_path`` (atomically), calibrated on ``calibration()``.

    ``calibration`` returns a fresh streaming iterator of feeds (calibration split); ``check_feeds`` are
    a few calibration-split items on which the result is measured against fp32 with the real kernels,
    together with up to 16 calibration items sampled uniformly from the stream.
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    onnx = require("onnx", "onnx", "quantizing ONNX models")
    require("onnxruntime.quantization", "onnx", "quantizing ONNX models")
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    where = str(fp32_path)
    inputs = _graph_inputs(_load_model(fp32_path))
    settings = _static_settings(options, isa_preset)
    notes: list[str] = [f"preset {settings['preset']}: {settings['preset_reason']}"]
    given = [_check_feed(f, inputs, where, f"check item {i}") for i, f in enumerate(check_feeds)]
    op_types = sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - set(options.op_types_to_exclude))
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-") as tmp_dir:
        tmp = Path(tmp_dir)
        src = _preprocess(fp32_path, tmp, notes) if settings["preprocess"] else fp32_path
        float_model = onnx.load(str(src))
        _name_nodes(float_model)
        src = tmp / "float.onnx"
        onnx.save_model(float_model, str(src))
        reasons = _exclusions(float_model, options, settings, inputs)
        ranges, stream, secs, (peak, increase) = _calibrate(src, calibration, settings, op_types, inputs, tmp,
                                                            where)
        settings["calibration_rss_increase_mb"] = round(increase, 1)
        _range_guard(float_model, ranges, reasons)
        notes += [f"kept {name} in float: {why}" for name, why in reasons.items()]
        notes.append(f"calibrated {settings['calibration_method']} on {stream.items} items in {secs:.1f} s, "
                     f"peak RSS {peak:.0f} MB (whole process, sampled every 10 ms; calibration itself added "
                     f"{increase:.0f} MB)")

        def build(skip_types: Sequence[str]) -> Any:
            types = [t for t in op_types if t not in skip_types]
            qm = _ort_quantize(src, tmp / "quantized.onnx", ranges, settings, types, list(reasons), where)
            protect_float_nodes(qm)
            return qm

        qmodel = _ort_quantize(src, tmp / "quantized.onnx", ranges, settings, op_types, list(reasons), where)
        protected = protect_float_nodes(qmodel)
        if protected:
            notes.append("float nodes between int8 tensors given a per-axis DequantizeLinear input so that ORT's "
                         f"WeightBiasQuantization keeps them float: {', '.join(protected)}")
        # the sample comes first, so the ranking uses it: callers often give their first few items, which
        # can all be crops of one or two source photos
        checks = stream.sample + given
        if checks:
            notes.append(f"check items: {len(given)} given + {len(stream.sample)} sampled uniformly from the "
                         "calibration stream (seeded), all from the calibration split")
        qmodel, skipped, found, check = _check_and_search(fp32_path, qmodel, build, float_model, checks, options,
                                                          where, notes)
        settings["op_types_left_float_by_search"] = skipped
        with atomic_path(out_path) as tmp_out:
            onnx.save_model(qmodel, str(tmp_out))
    return QuantReport(settings=settings, nodes_kept_float=(*reasons, *found), notes=tuple(notes),
                       calibration_items=stream.items, calibration_seconds=round(secs, 3),
                       calibration_peak_rss_mb=round(peak, 1), check=check)


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


def _smoke_check(fp32_path: Path, model_path: Path, model: Any, notes: list[str]) -> dict[str, float]:
    """Load ``model_path`` in ORT (raises if it cannot) and compare it with fp32 on one synthetic input."""
    try:
        sess = _session(model_path)
    except Exception as exc:
        raise QuantizationError(f"onnxruntime cannot load the converted model: {first_line(exc, 240)}",
                                where=str(model_path), hint="exclude the op named from conversion") from exc
    feed = _synthetic_feed(model)
    try:
        ref = _run_all(_session(fp32_path), [feed])
    except Exception:
        notes.append("no smoke check: the fp32 model does not run on a synthetic input")
        return {}
    try:
        got = _run_all(sess, [feed])
    except Exception as exc:
        raise QuantizationError(f"onnxruntime cannot run the converted model: {first_line(exc, 240)}",
                                where=str(model_path), hint="exclude the op named from conversion") from exc
    check = _agreement([feed], ref, got)
    notes.append("smoke check on one synthetic input (seeded normal / zeros): loads and runs in onnxruntime, "
                 f"cosine {check['cosine']:.5f} vs fp32; accuracy on real data is measured by validate")
    return {"items": 1.0, "cosine": check["cosine"]}


def quantize_dynamic(fp32_path: Path, out_path: Path, options: DynamicInt8Options, isa_preset: str) -> QuantReport:
    """Dynamic int8 (weights int8 offline, activations quantized at run time) of ``op_types``."""
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    q = require("onnxruntime.quantization", "onnx", "quantizing ONNX models")
    onnx = require("onnx", "onnx", "quantizing ONNX models")
    model = _load_model(fp32_path)
    preset = resolve_preset("auto", isa_preset) if isa_preset in PRESETS else resolve_preset("generic", "generic")
    reduce_range = options.reduce_range if options.reduce_range is not None else bool(preset["reduce_range"])
    settings: dict[str, Any] = {"mode": "dynamic", "isa_preset": isa_preset, "preset": preset["preset"],
                                "per_channel": options.per_channel, "weight_type": options.weight_type,
                                "reduce_range": reduce_range, "op_types": list(options.op_types),
                                "nodes_to_exclude": list(options.nodes_to_exclude)}
    notes = [f"dynamic int8 of {', '.join(options.op_types)}; reduce_range={reduce_range} "
             f"({'option' if options.reduce_range is not None else 'preset ' + preset['preset']})"]
    qt = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}[options.weight_type]
    with atomic_path(out_path) as tmp_out:
        try:
            with _quiet():
                q.quantize_dynamic(str(fp32_path), str(tmp_out), op_types_to_quantize=list(options.op_types),
                                   per_channel=options.per_channel, reduce_range=reduce_range, weight_type=qt,
                                   nodes_to_exclude=list(options.nodes_to_exclude))
        except Exception as exc:
            raise QuantizationError(f"onnxruntime could not quantize the model: {first_line(exc, 240)}",
                                    where=str(fp32_path), hint="narrow op_types or add nodes_to_exclude") from exc
        qmodel = onnx.load(str(tmp_out))
        n_int = sum(1 for n in qmodel.graph.node
                    if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
                                     "DynamicQuantizeMatMul", "QAttention"))
        notes.append(f"{n_int} integer / dynamic-quantize nodes in the graph")
        if n_int == 0:
            notes.append("nothing was quantized: the model has none of the requested op types with constant weights")
        check = _smoke_check(fp32_path, tmp_out, model, notes)
    return QuantReport(settings=settings, notes=tuple(notes), check=check)


def convert_fp16(fp32_path: Path, out_path: Path) -> QuantReport:
    """fp16 weights and compute (``onnxruntime.transformers.float16``), float32 inputs and outputs kept."""
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    onnx = require("onnx", "onnx", "converting ONNX models")
    model = _load_model(fp32_path)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    try:
        half = convert_float_to_float16(model, keep_io_types=True)
    except Exception as exc:
        raise QuantizationError(f"fp16 conversion failed: {first_line(exc, 240)}", where=str(fp32_path),
                                hint="the model may hold ops without fp16 support; use fp32 or int8") from exc
    notes = ["fp16 via onnxruntime.transformers.float16 (keep_io_types=True: float32 inputs and outputs)"]
    with atomic_path(out_path) as tmp_out:
        onnx.save_model(half, str(tmp_out))
        check = _smoke_check(fp32_path, tmp_out, model, notes)
    return QuantReport(settings={"mode": "fp16", "keep_io_types": True}, notes=tuple(notes), check=check)
