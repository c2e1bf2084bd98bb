"""NNCF quantization of OpenVINO models: static int8 (calibrated) and weight-only int8.

Static int8 (:func:`quantize_static`):

1. ``nncf.quantize`` on the calibration split's **ranges** items, with the recipe of :class:`OvInt8Options`
   (preset, subset size, bias correction, an :class:`nncf.IgnoredScope` for layers kept float,
   ``ModelType.TRANSFORMER`` for text models, and the overflow fix of the target's ISA: 7-bit weights only
   where the int8 kernels can saturate, i.e. without VNNI). By default the input layers (the convolutions /
   matmuls fed straight by the model's inputs: raw-range data, the usual culprit) stay float;
2. check the result against fp32 with the real OpenVINO CPU kernels on the **tuning** items (disjoint from
   the ranges items; :mod:`edgekit.quantization.checks`), against the run's budget with the tuning margin;
3. if it misses: where the accuracy rule is what misses and the tuning items are labelled,
   ``nncf.quantize_with_accuracy_control`` validated on the labelled tuning items (``accuracy_control``);
   otherwise the shared :func:`~edgekit.quantization.search.sensitivity_search`, layers kept float through
   ``IgnoredScope`` and ranked by how far each one's output moves from fp32's when quantized.

Weight-only int8 (:func:`compress_weights`): ``nncf.compress_weights`` (INT8_ASYM by default), no data.

Every decision becomes a sentence in the report's notes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, QuantizationError, first_line, require
from edgekit.quantization.calibration import CalibrationSplit, Feeds
from edgekit.quantization.checks import DecisionBudget, Judge
from edgekit.quantization.onnx import StaticInt8Options
from edgekit.quantization.presets import check_choice, check_names, int8_kernels_saturate
from edgekit.quantization.report import QuantReport
from edgekit.quantization.search import Ranked, budget_note, sensitivity_search
from edgekit.runtimes.openvino import port_name, telemetry_off

PRESETS = ("auto", "performance", "mixed")
#: How the int8 IR is made: NNCF on the IR, or OpenVINO reading edgekit's ONNX static int8 (QDQ -> FakeQuantize);
#: "auto" picks (:func:`edgekit.quantization.openvino_qdq.choose_method`).
METHODS = ("auto", "onnx-qdq", "nncf")
#: The options that shape an NNCF build: one given (not its default) makes "auto" pick NNCF.
NNCF_KEYS = ("preset", "subset_size", "fast_bias_correction", "model_type", "overflow_fix", "ignored_names",
             "ignored_types", "keep_input_layers_float", "accuracy_control", "max_float_layers", "nncf_defaults")
MODEL_TYPES = ("auto", "cnn", "transformer")
OVERFLOW_FIX = ("auto", "enable", "disable", "first_layer_only")
WEIGHT_MODES = ("int8_asym", "int8_sym")
WEIGHTED_TYPES = ("Convolution", "GroupConvolution", "MatMul")
MAX_SUBSET = 300  # NNCF's default subset size; "all" is capped here to bound time


@dataclass(frozen=True)
class OvInt8Options:
    """NNCF static int8 settings. ``nncf_defaults=True`` calls plain ``nncf.quantize(model, dataset)``.

    ``subset_size=None``: every ranges item (up to 300). ``overflow_fix="auto"``: from the target's ISA
    preset (``enable`` without VNNI, ``disable`` with it). ``model_type="auto"``: transformer for text
    models (integer token inputs). ``keep_input_layers_float``: ignore the weighted layers that read the
    model inputs directly. ``accuracy_control``: ``auto`` = when the accuracy rule misses on labelled tuning
    items; ``always`` / ``never``. ``max_float_layers``: most layers the shared search keeps float.
    ``fast_bias_correction=None``: full bias correction for CNNs (on ImageNet EfficientNet-Lite0 photo crops:
    top-1 agreement 0.86 vs 0.81, cosine 0.984 vs 0.970), the fast one for transformers (full bias correction
    took MiniLM's embedding cosine from 0.997 to 0.893). ``preset="auto"``: ``performance`` (symmetric activations)
    for CNNs, ``mixed`` (asymmetric activations: GELU / LayerNorm outputs go negative) for transformers; on
    EfficientNet-Lite0 (120 crops of other-wheel photos, machine A) performance kept the held-out cosine (0.9908
    either way, top-1 0.867 vs 0.858) and ran 2.12x fp32 against 1.88x for mixed (n=60 interleaved). The thresholds
    come from the run's budget.

    ``method`` (:data:`METHODS`): ``"onnx-qdq"`` has OpenVINO read edgekit's ONNX static int8 of the same fp32 ONNX
    (built with ``onnx``, the ONNX format's options type; QDQ pairs become FakeQuantize, int8 kernels), checked with
    OpenVINO's kernels on the tuning items; ``"nncf"`` is the NNCF build above; ``"auto"``: onnx-qdq for CNNs from an
    fp32 ONNX, NNCF for text models, IR sources or when an NNCF option (:data:`NNCF_KEYS`) is given
    (:mod:`edgekit.quantization.openvino_qdq`).
    """

    preset: str = "auto"
    subset_size: int | None = None
    fast_bias_correction: bool | None = None
    model_type: str = "auto"
    overflow_fix: str = "auto"
    ignored_names: tuple[str, ...] = ()
    ignored_types: tuple[str, ...] = ()
    keep_input_layers_float: bool = True
    accuracy_control: str = "auto"
    max_float_layers: int = 6
    nncf_defaults: bool = False
    method: str = "auto"
    onnx: StaticInt8Options = field(default_factory=StaticInt8Options)

    def __post_init__(self) -> None:
        check_choice(self.method, METHODS, "openvino.int8.method")
        if not isinstance(self.onnx, StaticInt8Options):
            raise ConfigError("expected a StaticInt8Options", where="openvino.int8.onnx", got=type(self.onnx).__name__)
        for name, value, allowed in (("preset", self.preset, PRESETS), ("model_type", self.model_type, MODEL_TYPES),
                                     ("overflow_fix", self.overflow_fix, OVERFLOW_FIX),
                                     ("accuracy_control", self.accuracy_control, ("auto", "always", "never"))):
            check_choice(value, allowed, f"openvino.int8.{name}")
        for key in ("ignored_names", "ignored_types"):
            object.__setattr__(self, key, check_names(getattr(self, key), f"openvino.int8.{key}"))
        if self.subset_size is not None and (not isinstance(self.subset_size, int) or self.subset_size < 1):
            raise ConfigError("bad subset size", where="openvino.int8.subset_size", expected="a positive integer",
                              got=self.subset_size)
        if not isinstance(self.max_float_layers, int) or self.max_float_layers < 0:
            raise ConfigError("must be an integer >= 0", where="openvino.int8.max_float_layers",
                              got=self.max_float_layers)


@dataclass(frozen=True)
class OvWeightOptions:
    """Weight-only int8 with ``nncf.compress_weights`` (activations stay float; no calibration data)."""

    mode: str = "int8_asym"

    def __post_init__(self) -> None:
        check_choice(self.mode, WEIGHT_MODES, "openvino.weights.mode")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """NNCF prints progress bars and INFO logs: keep edgekit's output to its own progress lines."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _nncf() -> Any:
    telemetry_off()
    return require("nncf", "openvino", "NNCF quantization")


def _compile(model: Any, threads: int | None = None) -> Any:
    ov = require("openvino", "openvino", "OpenVINO")
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(model, "CPU", config)


def all_outputs(model: Any, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
    """Every output of the model on each feed (real OpenVINO CPU kernels, fp32 inference precision)."""
    compiled = _compile(model, 2)
    names = [port_name(p) for p in compiled.inputs]
    out = []
    for f in feeds:
        res = compiled({n: f[n] for n in names})
        out.append([np.asarray(res[o], dtype=np.float32) for o in compiled.outputs])
    return out


def is_text_model(model: Any) -> bool:
    """True when every model input is an integer tensor (token ids / masks): a transformer text model."""
    return all(p.get_element_type().is_integral() for p in model.inputs)


def input_layers(model: Any) -> list[str]:
    """Friendly names of the weighted layers that read a model input (through at most a few reshapes)."""
    params = {id(p.get_node()) for p in model.inputs}
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_TYPES:
            continue
        src = op.input_value(0).get_node()
        hops = 0
        while src.get_type_name() in ("Convert", "Reshape", "Transpose", "Gather") and hops < 3:
            src = src.input_value(0).get_node()
            hops += 1
        if src.get_type_name() == "Parameter" or id(src) in params:
            names.append(op.get_friendly_name())
    return names


def _settings(model: Any, options: OvInt8Options, isa_preset: str, n_items: int) -> dict[str, Any]:
    text = is_text_model(model)
    model_type = ("transformer" if text else "cnn") if options.model_type == "auto" else options.model_type
    ignored = list(options.ignored_names)
    if options.keep_input_layers_float and not text:
        ignored += [n for n in input_layers(model) if n not in ignored]
    overflow = options.overflow_fix
    if overflow == "auto":
        overflow = "enable" if int8_kernels_saturate(isa_preset) else "disable"
    preset = options.preset if options.preset != "auto" else ("mixed" if model_type == "transformer" else "performance")
    return {"preset": preset, "requested_preset": options.preset,
            "subset_size": min(options.subset_size or n_items, MAX_SUBSET),
            "fast_bias_correction": (model_type == "transformer") if options.fast_bias_correction is None
            else options.fast_bias_correction, "model_type": model_type, "overflow_fix": overflow,
            "ignored_names": ignored, "ignored_types": list(options.ignored_types), "isa_preset": isa_preset,
            "max_float_layers": options.max_float_layers, "accuracy_control_mode": options.accuracy_control}


def _common(nncf: Any, s: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    return {"preset": nncf.QuantizationPreset(s["preset"]), "subset_size": int(s["subset_size"]),
            "fast_bias_correction": bool(s["fast_bias_correction"]),
            "model_type": nncf.ModelType.TRANSFORMER if s["model_type"] == "transformer" else None,
            "ignored_scope": nncf.IgnoredScope(names=list(names), types=list(s["ignored_types"]), validate=False),
            "advanced": AdvancedQuantizationParameters(overflow_fix=OverflowFix(s["overflow_fix"]))}


def _quantize(nncf: Any, model: Any, dataset: Any, s: Mapping[str, Any], extra_ignored: Sequence[str] = ()) -> Any:
    names = list(s["ignored_names"]) + [n for n in extra_ignored if n not in s["ignored_names"]]
    kw = _common(nncf, s, names)
    advanced = kw.pop("advanced")
    with _quiet():
        return nncf.quantize(model, dataset, advanced_parameters=advanced, **kw)


class OvBackend:
    """The search backend of NNCF: layers kept float join the ``IgnoredScope`` (one ``nncf.quantize`` per
    trial); the ranking is each layer's relative output error in the quantized model on one tuning item
    (two probe inferences instead of one quantization per candidate)."""

    def __init__(self, nncf: Any, fp32: Any, dataset: Any, settings: Mapping[str, Any], base: Any) -> None:
        self._nncf, self._fp32, self._dataset, self._s, self._base = nncf, fp32, dataset, settings, base

    def build(self, kept_float: Sequence[str]) -> Any:
        return _quantize(self._nncf, self._fp32, self._dataset, self._s, kept_float) if kept_float else self._base

    def run(self, model: Any, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
        return all_outputs(model, feeds)

    def rank(self, candidates: Sequence[str], judge: Judge) -> list[Ranked] | None:
        probe_f, probe_q = self._fp32.clone(), self._base.clone()
        ops_f = {op.get_friendly_name(): op for op in probe_f.get_ordered_ops()}
        ops_q = {op.get_friendly_name(): op for op in probe_q.get_ordered_ops()}
        present = [n for n in candidates if n in ops_f and n in ops_q]
        probe_f.add_outputs([ops_f[n].output(0) for n in present])
        probe_q.add_outputs([ops_q[n].output(0) for n in present])
        feed = judge.feeds[0]
        outs_f, outs_q = _compile(probe_f, 2)(feed), _compile(probe_q, 2)(feed)
        n_out = len(self._fp32.outputs)
        ranked = []
        for i, name in enumerate(present):
            a = np.asarray(outs_f[n_out + i], np.float64).ravel()
            b = np.asarray(outs_q[n_out + i], np.float64).ravel()
            err = float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(a)), 1e-12)
            ranked.append(Ranked(name, err, is_gain=False, what="relative output error when quantized"))
        return sorted(ranked, key=lambda r: -r.score)


def _accuracy_control(nncf: Any, fp32: Any, dataset: Any, s: Mapping[str, Any], labeled: Sequence[tuple[Feeds, int]],
                      max_drop_points: float) -> Any:
    """``nncf.quantize_with_accuracy_control``: accuracy on the labelled *tuning* items (never the ranges
    items, never held-out items), ``max_drop`` in absolute accuracy (points / 100)."""
    def validate(compiled: Any, items: Any) -> float:
        names = [port_name(p) for p in compiled.inputs]
        hits = [int(np.argmax(compiled({n: f[n] for n in names})[0])) == int(y) for f, y in items]
        return float(np.mean(hits)) if hits else 0.0

    kw = _common(nncf, s, s["ignored_names"])
    advanced = kw.pop("advanced")
    with _quiet():
        return nncf.quantize_with_accuracy_control(
            fp32, dataset, nncf.Dataset(list(labeled)), validation_fn=validate, max_drop=max_drop_points / 100.0,
            drop_type=nncf.DropType.ABSOLUTE, advanced_quantization_parameters=advanced, **kw)


def quantize_static(fp32_model: Any, data: CalibrationSplit, options: OvInt8Options, isa_preset: str,
                    budget: DecisionBudget = DecisionBudget()) -> tuple[Any, QuantReport]:
    """NNCF static int8 of an in-memory OpenVINO model; returns the quantized model and the report.

    ``data``: the calibration split, divided: NNCF reads up to ``subset_size`` ranges items; the tuning
    items (and their labels, for accuracy control) are the only items checks and decisions use.
    """
    nncf = _nncf()
    t0 = time.perf_counter()
    names = [port_name(p) for p in fp32_model.inputs]
    cap = min(options.subset_size or MAX_SUBSET, MAX_SUBSET)
    items: list[Feeds] = []
    for f in data.ranges():
        if len(items) >= cap:
            break
        items.append({n: np.asarray(f[n]) for n in names})
    if not items:
        raise QuantizationError("no calibration items", where="calibration",
                                hint="static int8 needs the calibration split of a data set")
    dataset = nncf.Dataset(items)
    tuning = [{n: np.asarray(f[n]) for n in names} for f in data.tuning]
    judge = Judge(tuning, all_outputs(fp32_model, tuning), data.tuning_labels, all_outputs) if tuning else None
    notes = [data.note(len(items))]
    try:
        if options.nncf_defaults:
            with _quiet():
                qmodel = nncf.quantize(fp32_model, dataset)
            check = judge.check(qmodel) if judge else None
            notes.append("plain nncf.quantize defaults" + (f": {check.text()}" if check else ""))
            return qmodel, QuantReport({"nncf_defaults": True}, (), tuple(notes), data.describe(len(items)),
                                       seconds=time.perf_counter() - t0, check=check.as_dict() if check else {})
        s = _settings(fp32_model, options, isa_preset, len(items))
        settings: dict[str, Any] = {**s, "budget": budget.as_dict()}
        qmodel = _quantize(nncf, fp32_model, dataset, s)
        kept: list[str] = list(s["ignored_names"])
        head = (f"NNCF int8 ({s['preset']}, {s['model_type']}, overflow fix {s['overflow_fix']}, {s['subset_size']} "
                f"ranges items, {len(s['ignored_names'])} layer(s) kept float)")
        if judge is None:
            notes.append(f"{head}; no tuning items: accuracy not measured here, no search")
            return qmodel, QuantReport(settings, tuple(kept), tuple(notes), data.describe(len(items)),
                                       seconds=time.perf_counter() - t0)
        check = before = judge.check(qmodel)
        notes.append(f"{head}: {check.text()}; {budget.describe()}")
        aim = budget.aim
        labelled = data.tuning_labels is not None and not is_text_model(fp32_model)
        acc_missed = (check.accuracy_drop_points is not None and "accuracy" in aim.rules(True)
                      and not check.accuracy_drop_points <= aim.max_drop_points)
        use_ac = labelled and (options.accuracy_control == "always"
                               or (options.accuracy_control == "auto" and acc_missed))
        if use_ac:
            assert data.tuning_labels is not None
            labeled = list(zip(tuning, (int(y) for y in data.tuning_labels), strict=True))
            qmodel = _accuracy_control(nncf, fp32_model, dataset, s, labeled, aim.max_drop_points)
            check = judge.check(qmodel)
            settings["accuracy_control"] = {"max_drop": aim.max_drop_points / 100.0, "validation_items": len(labeled),
                                            "split": "tuning"}
            notes.append(f"quantize_with_accuracy_control (max_drop {aim.max_drop_points / 100:.4f} absolute, "
                         f"validated on the {len(labeled)} labelled tuning items): {check.text()}")
        elif not budget.meets(check):
            candidates = [op.get_friendly_name() for op in fp32_model.get_ordered_ops()
                          if op.get_type_name() in WEIGHTED_TYPES and op.get_friendly_name() not in s["ignored_names"]]
            backend = OvBackend(nncf, fp32_model, dataset, s, qmodel)
            result = sensitivity_search(backend, candidates, judge, qmodel, check, budget,
                                        max_float=options.max_float_layers, notes=notes, what="weighted layer")
            qmodel, check, before = result.model, result.check, check
            kept += result.kept
            settings["sensitivity_search"] = {"kept_float": list(result.kept)}
        note = budget_note(budget, check)
        if note:
            notes.append(note)
    except QuantizationError:
        raise
    except Exception as exc:
        raise QuantizationError(f"NNCF quantization failed: {first_line(exc, 240)}", where="nncf.quantize",
                                hint="an op may be unsupported by NNCF: add it to ignored_types") from exc
    return qmodel, QuantReport(settings, tuple(kept), tuple(notes), data.describe(len(items)),
                               seconds=time.perf_counter() - t0,
                               check=check.after(before) if check is not before else check.as_dict())


def compress_weights(fp32_model: Any, options: OvWeightOptions) -> tuple[Any, QuantReport]:
    """Weight-only int8 (``nncf.compress_weights``): activations stay float, no calibration data needed."""
    nncf = _nncf()
    t0 = time.perf_counter()
    try:
        with _quiet():
            modes = nncf.CompressWeightsMode
            mode = modes.INT8_ASYM if options.mode == "int8_asym" else modes.INT8_SYM
            model = nncf.compress_weights(fp32_model, mode=mode)
    except Exception as exc:
        raise QuantizationError(f"NNCF weight compression failed: {first_line(exc, 240)}",
                                where="nncf.compress_weights", hint="try mode int8_sym") from exc
    return model, QuantReport({"mode": options.mode, "weights_only": True}, (),
                              (f"weight-only int8 ({options.mode}) with nncf.compress_weights; activations float",),
                              seconds=time.perf_counter() - t0)
