"""ONNX static int8 (QDQ, calibrated) with ONNX Runtime, as a plain function on files.

:func:`quantize_static` runs in five steps, each measured and recorded in the returned
:class:`~edgekit.quantization.report.QuantReport`:

1. pre-process the fp32 model (``quant_pre_process``: shape inference + basic graph optimizations);
2. calibrate on a *stream* of the calibration split's **ranges** items, a bounded chunk at a time
   (:func:`edgekit.quantization.onnx_ort.calibrate`);
3. quantize with ``onnxruntime.quantization.quantize_static`` from those ranges, with the recipe of the
   target's ISA preset (:mod:`edgekit.quantization.presets`); tensors whose calibrated range reaches 1e4
   (attention masks: -3.4e38) are kept float with the nodes around them (:func:`range_guard`): one such
   tensor took MiniLM's cosine to 0.38;
4. keep float nodes float: ONNX Runtime's ``WeightBiasQuantization`` optimizer re-quantizes, at session
   load, the float weights of any Conv/Gemm sitting between a per-tensor DequantizeLinear and a
   QuantizeLinear, per-tensor (a kept-float depthwise conv then dropped cosine 0.98 -> 0.85). Each such
   node gets a dedicated, numerically identical per-axis DequantizeLinear (:mod:`edgekit.quantization.onnx_qdq`);
5. check the model against fp32 with the real ORT CPU kernels on the **tuning** items (disjoint from the
   ranges items; :mod:`edgekit.quantization.checks`). If it misses the aim (the run's budget with a margin),
   search: first the op types whose quantization costs most (:func:`op_type_search`; a transformer's
   Add + LayerNormalization residual stream), then the weighted nodes: each sensitive node gets the cheapest fix
   that reaches the aim, a 16-bit island (its activations in 16 bits) or float (it reads its float weights
   again), each priced by its measured latency (:mod:`edgekit.quantization.islands`).

Every decision becomes a sentence in the report's notes.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path
from edgekit.errors import ConfigError, QuantizationError, first_line, require
from edgekit.quantization.bias_correction import MAX_ITEMS as BIAS_ITEMS
from edgekit.quantization.bias_correction import bias_correction_step
from edgekit.quantization.calibration import CalibrationSplit, Feeds, check_feed
from edgekit.quantization.checks import DecisionBudget, Judge
from edgekit.quantization.equalize import CLIP_MODES, with_equalization
from edgekit.quantization.islands import OnnxIslands, check_islands, island_search
from edgekit.quantization.onnx_optypes import op_type_search, quantized_op_types
from edgekit.quantization.onnx_ort import (
    PER_AXIS_OPSET,
    calibrate,
    graph_inputs,
    load_model,
    name_nodes,
    opset_of,
    ort_quantize,
    per_axis_ready,
    preprocess,
    run_model,
    session,
)
from edgekit.quantization.onnx_qdq import (
    WEIGHTED_OPS,
    float_graph_outputs,
    float_weights,
    protect_float_nodes,
    quantized_weighted_nodes,
)
from edgekit.quantization.presets import PRESETS, QTYPES, check_choice, check_names, resolve_preset
from edgekit.quantization.ranges import MAX_ITEMS as RANGE_ITEMS
from edgekit.quantization.ranges import range_choice_step, with_minmax
from edgekit.quantization.report import QuantReport
from edgekit.quantization.rounding import MAX_ITEMS as ROUNDING_ITEMS
from edgekit.quantization.rounding import rounded_with, weight_rounding_step
from edgekit.quantization.search import budget_note
from edgekit.quantization.smooth import MAX_ITEMS as SMOOTH_ITEMS
from edgekit.quantization.smooth import PREFIX as SMOOTH_PREFIX
from edgekit.quantization.smooth import with_smoothing

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
WILD_RANGE = 1e4  # activations reaching this magnitude are masks / sentinels, not values to spread over 8 bits

@dataclass(frozen=True)
class StaticInt8Options:
    """Static (calibrated) int8 in QDQ format. ``None`` fields come from the preset.

    The search aims for the run's budget (``--min-cosine`` / ``--max-drop`` / ``--budget-rule``, with the
    tuning margin: :class:`~edgekit.quantization.checks.DecisionBudget`), measured on the tuning items with the
    real ORT CPU kernels. It first leaves whole op types float where that pays (no limit: there are few),
    then gives at most ``max_float_nodes`` weighted nodes a fix: each fix of ``islands`` is tried and priced by its
    latency, the cheapest that reaches the aim kept (``"int16"``: 16-bit activations around the node; ``"float"``:
    its float weights; ``("float",)``: the float-only search, unpriced; :mod:`edgekit.quantization.islands`).
    ``calibration_limit`` caps the items that set the ranges. ``preset="ort-default"`` with
    ``sensitivity_search=False`` reproduces plain ``onnxruntime.quantization.quantize_static``.

    ``equalize``: cross-layer equalization of conv pairs before calibration (:mod:`edgekit.quantization.equalize`);
    ``"auto"`` tries it on models with depthwise convolutions and keeps it only when it improves the check on the
    tuning items; ``True`` always applies it, ``False`` (the default) never: on EfficientNet-Lite0 with the per-channel
    presets it did not help (benchmarks/results/int8_cle.md) and ``"auto"`` calibrates twice. ``equalize_clip``:
    pairs through a ReLU6 / Clip with a finite bound are skipped (``"skip"``) or get a per-channel ``Min`` bound, a
    float op (``"bound"``).

    ``range_choice``: each activation tensor takes the range (min-max or a clipped one) with the least expected
    squared error on a few ranges items (:mod:`edgekit.quantization.ranges`); off by default: it lost held-out top-1
    agreement on EfficientNet-Lite0/Lite1 photos from other sources.

    ``weight_rounding``: each layer's int8 weights chosen for its output on the ranges items, not rounded to the
    nearest step one by one (:mod:`edgekit.quantization.rounding`); ``"auto"`` keeps it when it improves the check
    on the tuning items.

    ``islands``: the fixes the search tries for a sensitive node, in order (:mod:`edgekit.quantization.islands`):
    ``("int16", "float")`` first gives it 16-bit activations and keeps it float only when that does not reach the
    aim, each fix priced by its measured latency; the default ``("float",)`` keeps today's float fallback: without
    int16 kernels in this ONNX Runtime build a 16-bit island runs in float and costs more than float weights
    (EfficientNet-Lite0: 1.40x vs 1.64x over fp32, about 100 s more search; benchmarks/results/int8_islands.md).
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
    equalize: bool | str = False
    equalize_clip: str = "skip"
    islands: tuple[str, ...] = ("float",)
    bias_correction: bool | str = "auto"
    smooth: bool | str = "auto"
    range_choice: bool = False
    weight_rounding: bool | str = "auto"

    def __post_init__(self) -> None:
        check_choice(self.preset, ("auto", *PRESETS), "static_int8.preset (--int8-preset)")
        check_choice(self.calibration_method, CALIBRATION_METHODS, "static_int8.calibration_method")
        check_choice(self.activation_type, (*QTYPES, None), "static_int8.activation_type")
        check_choice(self.weight_type, (*QTYPES, None), "static_int8.weight_type")
        for key in ("nodes_to_exclude", "op_types_to_exclude"):
            object.__setattr__(self, key, check_names(getattr(self, key), f"static_int8.{key}"))
        if not isinstance(self.max_float_nodes, int) or self.max_float_nodes < 0:
            raise ConfigError("must be an integer >= 0", where="static_int8.max_float_nodes", got=self.max_float_nodes)
        check_choice(self.equalize_clip, CLIP_MODES, "static_int8.equalize_clip")
        if not isinstance(self.range_choice, bool):
            raise ConfigError("unknown value", where="static_int8.range_choice", expected="True, False",
                              got=self.range_choice)
        for key in ("equalize", "smooth", "bias_correction", "weight_rounding"):
            value = getattr(self, key)
            if not (isinstance(value, bool) or value == "auto"):
                raise ConfigError("unknown value", where=f"static_int8.{key}", expected="auto, True, False", got=value)
        object.__setattr__(self, "islands", check_islands(self.islands))
        if self.calibration_limit is not None and (not isinstance(self.calibration_limit, int)
                                                   or self.calibration_limit < 1):
            raise ConfigError("must be a positive integer or None", where="static_int8.calibration_limit",
                              got=self.calibration_limit)


def static_settings(options: StaticInt8Options, isa_preset: str) -> dict[str, Any]:
    """The effective recipe: the preset's values where the options leave them None."""
    preset = resolve_preset(options.preset, isa_preset)
    pick = {k: (getattr(options, k) if getattr(options, k) is not None else getattr(preset, k))
            for k in ("activation_type", "weight_type", "per_channel", "reduce_range", "keep_input_layers_float")}
    return {"quant_format": "QDQ", "preset": preset.name, "requested_preset": options.preset,
            "isa_preset": isa_preset, "preset_reason": preset.why, **pick,
            "calibration_method": options.calibration_method, "calibration_limit": options.calibration_limit,
            "preprocess": preset.preprocess, "nodes_to_exclude": list(options.nodes_to_exclude),
            "op_types_to_exclude": list(options.op_types_to_exclude),
            "sensitivity_search": options.sensitivity_search, "max_float_nodes": options.max_float_nodes,
            "equalize": options.equalize, "equalize_clip": options.equalize_clip, "islands": list(options.islands),
            "bias_correction": options.bias_correction, "smooth": options.smooth,
            "weight_rounding": options.weight_rounding,
            "float_outputs": preset.float_outputs}


def exclusions(float_model: Any, options: StaticInt8Options, settings: Mapping[str, Any],
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


def range_guard(float_model: Any, ranges: Any, reasons: dict[str, str]) -> None:
    """Keep float every node that produces or reads a tensor whose calibrated range is wild.

    A tensor reaching +-1e4 (attention masks add -1e4 ... -3.4e38) cannot be spread over 256 levels: its
    scale wipes out every real value (MiniLM: cosine 0.38 with the masks quantized).
    """
    wild: dict[str, tuple[float, float]] = {}
    for name, data in ranges.data.items():
        lo_v = float(np.min(np.asarray(data.range_value[0])))
        hi_v = float(np.max(np.asarray(data.range_value[1])))
        if not (np.isfinite(lo_v) and np.isfinite(hi_v)) or max(abs(lo_v), abs(hi_v)) >= WILD_RANGE:
            wild[name] = (lo_v, hi_v)
    for node in float_model.graph.node:
        hit = [t for t in (*node.input, *node.output) if t in wild]
        if hit and node.name not in reasons:
            lo_v, hi_v = wild[hit[0]]
            reasons[node.name] = (f"tensor {hit[0]} has calibrated range [{lo_v:.3g}, {hi_v:.3g}] "
                                  f"(|x| >= {WILD_RANGE:g}: a mask or sentinel, not 8-bit material)")


@contextlib.contextmanager
def _temp_root(folder: str) -> Iterator[None]:
    """Make ``folder`` the root of :mod:`tempfile` (libraries' temp dirs land there) for the block."""
    before = tempfile.tempdir
    tempfile.tempdir = folder
    try:
        yield
    finally:
        tempfile.tempdir = before


def quantize_static(fp32_path: Path, out_path: Path, data: CalibrationSplit, options: StaticInt8Options,
                    isa_preset: str, budget: DecisionBudget = DecisionBudget()) -> QuantReport:
    """Static int8 (QDQ) of ``fp32_path`` into ``out_path`` (atomically).

    ``data``: the calibration split, divided (:func:`~edgekit.quantization.calibration.split_calibration`): its
    ranges items set the ranges, its tuning items are the only items checks and decisions are taken on,
    against ``budget``.
    """
    t0 = time.perf_counter()
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    onnx = require("onnx", None, "quantizing ONNX models")
    require("onnxruntime.quantization", None, "quantizing ONNX models")
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    where = str(fp32_path)
    inputs = graph_inputs(load_model(fp32_path))
    settings = static_settings(options, isa_preset)
    settings["budget"] = budget.as_dict()
    notes: list[str] = [f"preset {settings['preset']}: {settings['preset_reason']}"]
    tuning = [check_feed(f, inputs, where, f"tuning item {i}") for i, f in enumerate(data.tuning)]
    op_types = sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - set(options.op_types_to_exclude))
    # under the run's folder, not /tmp: a run killed here (SIGTERM) leaves it there, and the next run's
    # clean_leftovers removes it; ORT's own temp dirs (pre.quant.*, ort.quant.*) are made inside it
    with tempfile.TemporaryDirectory(prefix="edgekit-quant-", dir=out_path.parent.resolve()) as tmp_dir, \
            _temp_root(tmp_dir):
        tmp = Path(tmp_dir)
        src = preprocess(fp32_path, tmp, notes) if settings["preprocess"] else fp32_path
        float_model = per_axis_ready(onnx.load(str(src)), notes)
        per_axis = opset_of(float_model) >= PER_AXIS_OPSET  # else per-tensor, and no per-axis protection
        if not per_axis:
            settings["per_channel"] = False
        name_nodes(float_model)
        src = tmp / "float.onnx"
        onnx.save_model(float_model, str(src))
        base = exclusions(float_model, options, settings, inputs)

        transformed = itertools.count()

        def quantize(model: Any) -> _Quantized:  # the model as given, or equalized / smoothed
            path = src if model is float_model else tmp / f"transformed{next(transformed)}.onnx"
            if path != src:
                onnx.save_model(model, str(path))
            return _calibrate_and_quantize(path, model, base, data, options, settings, op_types, inputs,
                                           per_axis, tmp, where)

        run = partial(run_model, where=where)
        # smoothing acts on MatMul inputs: judged with only the weighted ops quantized (the residual stream's Add /
        # LayerNormalization, which the op-type search then settles, swamp it otherwise)
        smoothed = with_smoothing(quantize, lambda q: q.build(quantized_op_types(q.model), ()), float_model,
                                  options.smooth, tuning,
                                  lambda: list(itertools.islice(data.ranges(), SMOOTH_ITEMS)), data.tuning_labels,
                                  run, budget, settings, notes, " (only the weighted ops quantized)")
        got, tried = smoothed or with_equalization(
            quantize, lambda q: q.model, float_model, options.equalize, options.equalize_clip, tuning,
            lambda: list(itertools.islice(data.ranges(), 4)), data.tuning_labels, run, budget, settings, notes)
        float_model, reasons, stream, rss, qmodel, build = (
            got.float_model, got.reasons, got.stream, got.rss, got.model, got.build)
        secs = sum(q.secs for q in tried)
        notes += got.notes
        if len(tried) > 1:
            what = "smoothing" if smoothed else "equalization"
            notes.append(f"calibrated {len(tried)} candidates (with and without {what}): {secs:.1f} s in all")
        settings["calibration_rss_increase_mb"] = round(rss.increase_mb, 1)
        # one judge (fp32's outputs on the tuning items, computed once) for bias correction and the search
        judge = Judge(tuning, run_model(fp32_path, tuning, where), data.tuning_labels, run) if tuning else None
        _range_choice(got, judge, data, options, settings, notes)
        _weight_rounding(got, judge, data, options, budget, settings, notes)
        qmodel, float_model = _bias_corrected(got, judge, data, options, budget, settings, notes, tmp, where)
        qmodel, skipped, fixes, check = _check_and_search(qmodel, build, float_model, judge, options, budget, where,
                                                          notes, settings)
        settings["op_types_left_float_by_search"] = skipped
        settings["islands_16bit"] = [n for n, f in fixes.items() if f == "int16"]
        settings.setdefault("island_decisions", [])
        found = [n for n, f in fixes.items() if f == "float"]
        with atomic_path(out_path) as tmp_out:
            onnx.save_model(qmodel, str(tmp_out))
    kept = (*(r for r in reasons if not r.startswith(SMOOTH_PREFIX)), *found)  # smoothing's Mul: not layers
    return QuantReport(settings=settings, kept_float=kept, notes=tuple(notes),
                       split=data.describe(stream.items), calibration_seconds=secs,
                       calibration_peak_rss_mb=rss.peak_mb, seconds=time.perf_counter() - t0, check=check)


def _bias_corrected(got: _Quantized, judge: Judge | None, data: CalibrationSplit, options: StaticInt8Options,
                    budget: DecisionBudget, settings: dict[str, Any], notes: list[str], tmp: Path,
                    where: str) -> tuple[Any, Any]:
    """The quantized and float model after bias correction (:mod:`edgekit.quantization.bias_correction`), decided on
    the tuning items (``judge``; None without them); when kept, later builds start from the corrected float model."""
    onnx = require("onnx", None, "quantizing ONNX models")
    wanted = options.bias_correction is True or (options.bias_correction == "auto" and judge is not None)
    items = _ranges_items(data, options, BIAS_ITEMS) if wanted else []
    fixed = bias_correction_step(got.model, got.float_model, items, judge, budget, options.bias_correction, settings,
                                 notes, where)
    if fixed is None:
        return got.model, got.float_model
    path = tmp / "bias_corrected.onnx"
    onnx.save_model(fixed.float_model, str(path))
    got.use_source(path)
    return fixed.model, fixed.float_model


def _ranges_items(data: CalibrationSplit, options: StaticInt8Options, most: int) -> list[Feeds]:
    """The first ranges items a measuring step uses: at most ``most``, and never more than ``calibration_limit``."""
    return list(itertools.islice(data.ranges(), min(most, options.calibration_limit or most)))


def _range_choice(got: _Quantized, judge: Judge | None, data: CalibrationSplit, options: StaticInt8Options,
                  settings: dict[str, Any], notes: list[str]) -> None:
    """Per-tensor ranges (:mod:`edgekit.quantization.ranges`) if ``range_choice``; later builds of ``got`` use them."""
    if not options.range_choice:
        settings["range_choice"] = {"applied": False, "reason": "range_choice=False"}
        return
    items = _ranges_items(data, options, RANGE_ITEMS)
    got.ranges[0], got.model = range_choice_step(got.model, got.float_model, got.ranges[0], items, judge, settings,
                                                 notes, got.with_ranges)


def _weight_rounding(got: _Quantized, judge: Judge | None, data: CalibrationSplit, options: StaticInt8Options,
                     budget: DecisionBudget, settings: dict[str, Any], notes: list[str]) -> None:
    """Optimized weight rounding (:mod:`edgekit.quantization.rounding`), decided on the tuning items; when kept,
    later builds of ``got`` are rounded with the same input moments."""
    wanted = options.weight_rounding is True or (options.weight_rounding == "auto" and judge is not None)
    items = _ranges_items(data, options, ROUNDING_ITEMS) if wanted else []
    fixed = weight_rounding_step(got.model, got.float_model, items, judge, budget, options.weight_rounding,
                                 settings, notes)
    if fixed is not None:
        got.model = fixed.model
        got.post[0] = partial(rounded_with, float_model=got.float_model, moments=fixed.moments)


@dataclass
class _Quantized:
    """One calibrated + quantized candidate (the model as given, or equalized) and what made it."""

    float_model: Any
    reasons: dict[str, str]
    stream: Any
    secs: float
    rss: Any
    model: Any
    build: Callable[[Sequence[str], Sequence[str]], Any]
    notes: list[str]
    use_source: Callable[[Path], None]  # builds start from this float model from now on
    ranges: list[Any]  # [the ranges builds use]: min-max, or the per-tensor choice once kept
    with_ranges: Callable[[Any], Any]  # the full build from other ranges
    post: list[Callable[[Any], Any] | None]  # [what each later build's QDQ model goes through]: weight rounding


def _calibrate_and_quantize(src: Path, float_model: Any, base: Mapping[str, str], data: CalibrationSplit,
                            options: StaticInt8Options, settings: Mapping[str, Any], op_types: Sequence[str],
                            inputs: Mapping[str, int], per_axis: bool, tmp: Path, where: str) -> _Quantized:
    """Calibrate ``src`` (``float_model`` saved) on the ranges items and quantize it, loadable by ORT."""
    notes: list[str] = []
    reasons = dict(base)
    reasons.update({n.name: "activation smoothing's X / s (float: X keeps its outlier channels until divided)"
                    for n in float_model.graph.node if n.name.startswith(SMOOTH_PREFIX)})
    ranges, stream, secs, rss = calibrate(src, data.ranges, options.calibration_method,
                                          options.calibration_limit, op_types, inputs, tmp, where)
    range_guard(float_model, ranges, reasons)
    notes += [f"kept {name} in float: {why}" for name, why in reasons.items() if not name.startswith(SMOOTH_PREFIX)]
    smoothing = sum(name.startswith(SMOOTH_PREFIX) for name in reasons)
    if smoothing:
        notes.append(f"the {smoothing} Mul nodes of activation smoothing (X / s) stay float")
    notes.append(data.note(stream.items))
    notes.append(f"calibrated {options.calibration_method} on the {stream.items} ranges items in {secs:.1f} s, "
                 f"peak RSS {rss.peak_mb:.0f} MB (whole process, sampled every 10 ms; calibration itself added "
                 f"{rss.increase_mb:.0f} MB)")

    source = [src]  # the float model builds start from: bias correction replaces it (use_source)
    chosen = [ranges]  # the per-tensor range choice replaces it (_range_choice)
    post: list[Callable[[Any], Any] | None] = [None]  # weight rounding sets it (_weight_rounding)

    def quantized(types: Sequence[str], int16: Sequence[str] = (), use: Any = None) -> Any:
        qm = ort_quantize(source[0], tmp / "quantized.onnx", with_minmax(use or chosen[0], ranges, int16), settings,
                          types, list(reasons), where, int16)
        if post[0] is not None:
            qm = post[0](qm)
        if settings["float_outputs"]:
            float_graph_outputs(qm)
        return qm

    def build(skip_types: Sequence[str], int16: Sequence[str] = (), use: Any = None) -> Any:
        qm = quantized([t for t in op_types if t not in skip_types], int16, use)
        if per_axis:
            protect_float_nodes(qm)
        return qm

    qmodel = _loadable(quantized(op_types), float_model, reasons, lambda: quantized(op_types), where, notes)
    protected = protect_float_nodes(qmodel) if per_axis else []
    if protected:
        notes.append("float nodes between int8 tensors given a per-axis DequantizeLinear input so that ORT's "
                     f"WeightBiasQuantization keeps them float: {', '.join(protected)}")
    return _Quantized(float_model, reasons, stream, secs, rss, qmodel, build, notes,
                      lambda path: source.__setitem__(0, path), chosen, lambda use: build((), (), use), post)


MAX_INVALID_RETRIES = 8
_BAD_NODE = re.compile(r'Node,? \(\"?([^",)]+)')


def _loadable(qmodel: Any, float_model: Any, reasons: dict[str, str], rebuild: Callable[[], Any], where: str,
              notes: list[str]) -> Any:
    """``qmodel``, or a rebuild that ONNX Runtime loads: a quantized graph that ORT refuses (INVALID_GRAPH)
    names a node; the nodes of the user's graph that read or make its tensors are kept float (``reasons``, said
    in the notes) and the model re-quantized, up to :data:`MAX_INVALID_RETRIES` times; else one error naming
    the node of the user's graph."""
    originals = {n.name for n in float_model.graph.node}
    for _ in range(MAX_INVALID_RETRIES + 1):
        try:
            session(qmodel)
            return qmodel
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            message = first_line(exc, 400)
        found = _BAD_NODE.search(message)
        bad = found.group(1) if found else None
        node = next((n for n in qmodel.graph.node if n.name == bad), None)
        tensors = set(node.input) | set(node.output) if node is not None else set()
        users = sorted(n.name for n in qmodel.graph.node if n.name in originals and n.name not in reasons
                       and (set(n.input) | set(n.output)) & tensors)
        if bad in originals and bad not in reasons:
            users = [bad]
        if not users:
            raise QuantizationError(f"the quantized model is not a valid graph: {message}", where=where,
                                    hint="keep the node named float: --exclude-nodes NAME, or its op type: "
                                         "--exclude-op-types TYPE")
        for name in users:
            reasons[name] = f"quantizing it made an invalid graph ({message[:160]})"
        notes.append(f"the quantized graph was invalid at {bad}: kept {', '.join(users)} float and quantized again")
        qmodel = rebuild()
    raise QuantizationError("the quantized model is still not a valid graph after keeping "
                            f"{MAX_INVALID_RETRIES} node groups float", where=where,
                            hint="--exclude-op-types for the op types named in the notes, or --int8-preset ort-default")


def _check_and_search(qmodel: Any, build: Callable[[Sequence[str], Sequence[str]], Any], float_model: Any,
                      judge: Judge | None, options: StaticInt8Options, budget: DecisionBudget, where: str,
                      notes: list[str],
                      settings: dict[str, Any]) -> tuple[Any, list[str], dict[str, str], dict[str, float]]:
    """Check ``qmodel`` on the tuning items (``judge``; None without them); if it misses the aim, search (op types,
    then nodes).

    Returns (model, op types left float, each node's fix: "int16" or "float", check as a dict); the priced
    decisions go to ``settings["island_decisions"]``."""
    if judge is None:
        notes.append("no tuning items: accuracy not measured here, no sensitivity search")
        return qmodel, [], {}, {}
    check = judge.check(qmodel)
    notes.append(f"check after quantization: {check.text()}; {budget.describe()}")
    skipped: list[str] = []
    fixes: dict[str, str] = {}
    before = check
    searched = options.sensitivity_search and not budget.meets(check)
    if searched:
        qmodel, skipped, check = op_type_search(qmodel, check, lambda types: build(types, ()), judge, notes)
        if not budget.meets(check):
            weights = float_weights(float_model)
            candidates = [n for n in quantized_weighted_nodes(qmodel) if weights.get(n)]
            islands = OnnxIslands(qmodel, lambda tensors: build(skipped, tensors), float_model, weights, where)
            result = island_search(islands, candidates, judge, qmodel, check, budget, options.islands,
                                   max_nodes=options.max_float_nodes, notes=notes)
            qmodel, fixes, check = result.model, result.fixes, result.check
            settings["island_decisions"] = list(result.decisions)
    out = check.after(before) if searched else check.as_dict()
    note = budget_note(budget, check)
    if note:
        notes.append(note)
    return qmodel, skipped, fixes, out
