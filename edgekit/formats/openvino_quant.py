"""NNCF quantization of OpenVINO IR as plain functions on files: static int8 (calibrated), weight-only int8.

Static int8 (:func:`quantize_static`):

1. ``nncf.quantize`` with the recipe of :class:`OvInt8Options` (preset, subset size, bias correction,
   an :class:`nncf.IgnoredScope` for layers kept float, ``ModelType.TRANSFORMER`` for text models and
   the overflow fix of the target's ISA: 7-bit weights only where the int8 kernels can saturate, i.e.
   without VNNI). By default the input layers (the convolutions / matmuls fed straight by the model's
   inputs: raw-range data, the usual culprit) stay float, and all calibration items are used;
2. measure the result against fp32 with the real OpenVINO CPU kernels on the calibration-split check
   items (never held-out items);
3. if labels exist for the calibration split and ``accuracy_control`` allows it, or the check misses the
   budget and labels exist, re-run as ``nncf.quantize_with_accuracy_control`` with the run's accuracy
   budget as ``max_drop``, validating on calibration-split items only; without labels, fall back to
   keeping float the weighted layers whose output deviates most (a sensitivity ranking on check items).

Weight-only int8 (:func:`compress_weights`): ``nncf.compress_weights`` (INT8_ASYM by default), no data.

Every decision becomes a sentence in ``OvQuantReport.notes``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, QuantizationError, first_line, require
from edgekit.metrics import primary_output
from edgekit.runtimes.openvino import port_name, telemetry_off
from edgekit.types import Task

Feeds = dict[str, np.ndarray]

PRESETS = ("performance", "mixed")
MODEL_TYPES = ("auto", "cnn", "transformer")
OVERFLOW_FIX = ("auto", "enable", "disable", "first_layer_only")
WEIGHT_MODES = ("int8_asym", "int8_sym")
WEIGHTED_TYPES = ("Convolution", "GroupConvolution", "MatMul")
_MAX_SUBSET = 300  # NNCF's default subset size; "all" is capped here to bound time


@dataclass(frozen=True)
class OvInt8Options:
    """NNCF static int8 settings. ``nncf_defaults=True`` calls plain ``nncf.quantize(model, dataset)``.

    ``subset_size=None``: every calibration item (up to 300). ``overflow_fix="auto"``: from the target's
    ISA preset (``enable`` without VNNI, ``disable`` with it). ``model_type="auto"``: transformer for text
    models (integer token inputs). ``keep_input_layers_float``: ignore the weighted layers that read the
    model inputs directly. ``accuracy_control``: ``auto`` = when the calibration split has labels and the
    check items miss the budget; ``always`` / ``never``. ``max_float_layers``: most layers the label-free
    sensitivity fallback keeps float. ``fast_bias_correction=None``: full bias correction for CNNs (on
    ImageNet EfficientNet-Lite0 photo crops: top-1 agreement 0.86 vs 0.81, cosine 0.984 vs 0.970), the fast
    one for transformers (full bias correction took MiniLM's embedding cosine from 0.997 to 0.893).
    """

    preset: str = "mixed"
    subset_size: int | None = None
    fast_bias_correction: bool | None = None
    model_type: str = "auto"
    overflow_fix: str = "auto"
    ignored_names: tuple[str, ...] = ()
    ignored_types: tuple[str, ...] = ()
    keep_input_layers_float: bool = True
    accuracy_control: str = "auto"
    max_float_layers: int = 6
    min_cosine: float = 0.99
    min_top1_agreement: float = 0.97
    nncf_defaults: bool = False

    def __post_init__(self) -> None:
        for name, value, allowed in (("preset", self.preset, PRESETS), ("model_type", self.model_type, MODEL_TYPES),
                                     ("overflow_fix", self.overflow_fix, OVERFLOW_FIX),
                                     ("accuracy_control", self.accuracy_control, ("auto", "always", "never"))):
            if value not in allowed:
                raise ConfigError("unknown value", where=f"openvino.int8.{name}", expected=", ".join(allowed),
                                  got=value)
        if self.subset_size is not None and self.subset_size < 1:
            raise ConfigError("bad subset size", where="openvino.int8.subset_size", expected="a positive integer",
                              got=self.subset_size)


@dataclass(frozen=True)
class OvWeightOptions:
    """Weight-only int8 with ``nncf.compress_weights`` (activations stay float; no calibration data)."""

    mode: str = "int8_asym"

    def __post_init__(self) -> None:
        if self.mode not in WEIGHT_MODES:
            raise ConfigError("unknown value", where="openvino.weights.mode", expected=", ".join(WEIGHT_MODES),
                              got=self.mode)


@dataclass(frozen=True)
class OvQuantReport:
    """What a quantizer did: settings used, layers kept float, the calibration-item check and notes."""

    settings: Mapping[str, Any]
    layers_kept_float: tuple[str, ...] = ()
    check: Mapping[str, float] = field(default_factory=dict)
    calibration_items: int = 0
    seconds: float = 0.0
    notes: tuple[str, ...] = ()


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


def _outputs(compiled: Any, feeds: Sequence[Feeds]) -> list[np.ndarray]:
    """First output per feed, one row per item; token outputs are mean-pooled over real tokens (the
    sentence embedding the validation stage compares), so padding positions do not weigh in."""
    names = [port_name(p) for p in compiled.inputs]
    rows = []
    for f in feeds:
        out = np.asarray(compiled({n: f[n] for n in names})[0], dtype=np.float32)
        rows.append(primary_output([out], f, Task.FEATURE_EXTRACTION if out.ndim == 3 else Task.GENERIC))
    return rows


def agreement(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], *, top1: bool = True) -> dict[str, float]:
    """Mean / min cosine and (``top1``: for logits, not embeddings) top-1 agreement of per-item outputs."""
    r = np.concatenate([x.reshape(x.shape[0], -1) for x in ref]).astype(np.float64)
    g = np.concatenate([x.reshape(x.shape[0], -1) for x in got]).astype(np.float64)
    den = np.linalg.norm(r, axis=1) * np.linalg.norm(g, axis=1)
    cos = np.where(den > 0, np.sum(r * g, 1) / np.where(den > 0, den, 1.0), 1.0)
    out = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()), "items": float(len(r))}
    if top1 and r.shape[1] > 1:
        out["top1_agreement"] = float(np.mean(r.argmax(1) == g.argmax(1)))
    return out


def _meets(check: Mapping[str, float], options: OvInt8Options) -> bool:
    return check["cosine_mean"] >= options.min_cosine and check.get("top1_agreement", 1.0) >= options.min_top1_agreement


def _fmt(check: Mapping[str, float]) -> str:
    top1 = f", top-1 agreement {check['top1_agreement']:.3f}" if "top1_agreement" in check else ""
    return f"cosine {check['cosine_mean']:.4f} (min {check['cosine_min']:.4f}){top1}"


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


def _overflow_fix(options: OvInt8Options, isa_preset: str) -> str:
    if options.overflow_fix != "auto":
        return options.overflow_fix
    return "disable" if isa_preset in ("vnni", "arm64") else "enable"


def _settings(model: Any, options: OvInt8Options, isa_preset: str, n_items: int) -> dict[str, Any]:
    text = is_text_model(model)
    model_type = ("transformer" if text else "cnn") if options.model_type == "auto" else options.model_type
    ignored = list(options.ignored_names)
    if options.keep_input_layers_float and not text:
        ignored += [n for n in input_layers(model) if n not in ignored]
    return {"preset": options.preset, "subset_size": min(options.subset_size or n_items, _MAX_SUBSET),
            "fast_bias_correction": (model_type == "transformer") if options.fast_bias_correction is None
            else options.fast_bias_correction, "model_type": model_type,
            "overflow_fix": _overflow_fix(options, isa_preset), "ignored_names": ignored,
            "ignored_types": list(options.ignored_types), "isa_preset": isa_preset}


def _quantize(nncf: Any, model: Any, dataset: Any, s: Mapping[str, Any], extra_ignored: Sequence[str] = ()) -> Any:
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    names = list(s["ignored_names"]) + [n for n in extra_ignored if n not in s["ignored_names"]]
    scope = nncf.IgnoredScope(names=names, types=list(s["ignored_types"]), validate=False)
    return nncf.quantize(
        model, dataset, preset=nncf.QuantizationPreset(s["preset"]), subset_size=int(s["subset_size"]),
        fast_bias_correction=bool(s["fast_bias_correction"]),
        model_type=nncf.ModelType.TRANSFORMER if s["model_type"] == "transformer" else None,
        ignored_scope=scope,
        advanced_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(s["overflow_fix"])))


def _sensitivity(nncf: Any, fp32: Any, dataset: Any, s: Mapping[str, Any], feeds: Sequence[Feeds],
                 measure: Callable[[Any], dict[str, float]], options: OvInt8Options, check: dict[str, float],
                 notes: list[str]) -> tuple[Any, list[str], dict[str, float]]:
    """Label-free fallback: rank the weighted layers by how far their quantized output moves from fp32's
    on the first check item, keep the worst float one at a time while it helps, until the budget holds."""
    candidates = [op.get_friendly_name() for op in fp32.get_ordered_ops()
                  if op.get_type_name() in WEIGHTED_TYPES and op.get_friendly_name() not in s["ignored_names"]]
    # rank by the relative error each layer's output shows in the quantized model (probe outputs)
    probe_f = fp32.clone()
    ops_f = {op.get_friendly_name(): op for op in probe_f.get_ordered_ops()}
    qmodel = _quantize(nncf, fp32, dataset, s)
    probe_q = qmodel.clone()
    ops_q = {op.get_friendly_name(): op for op in probe_q.get_ordered_ops()}
    present = [n for n in candidates if n in ops_f and n in ops_q]
    probe_f.add_outputs([ops_f[n].output(0) for n in present])
    probe_q.add_outputs([ops_q[n].output(0) for n in present])
    feed = feeds[0]
    outs_f = _compile(probe_f, 2)(feed)
    outs_q = _compile(probe_q, 2)(feed)
    errors: list[tuple[float, str]] = []
    n_out = len(fp32.outputs)
    for i, name in enumerate(present):
        a = np.asarray(outs_f[n_out + i], np.float64).ravel()
        b = np.asarray(outs_q[n_out + i], np.float64).ravel()
        errors.append((float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(a)), 1e-12), name))
    kept: list[str] = []
    best = qmodel
    misses = 0
    for err, name in sorted(errors, reverse=True)[: options.max_float_layers]:
        trial = _quantize(nncf, fp32, dataset, s, [*kept, name])
        got = measure(trial)
        if got["cosine_mean"] > check["cosine_mean"] + 1e-4 or got.get("top1_agreement", 1) > check.get(
                "top1_agreement", 1):
            kept.append(name)
            best, check, misses = trial, got, 0
            notes.append(f"kept {name} float (relative output error {err:.3f} when quantized): {_fmt(check)}")
            if _meets(check, options):
                break
        else:
            misses += 1
            if misses == 2:  # the ranking has stopped finding layers that help
                break
    return best, kept, check


def _accuracy_control(nncf: Any, fp32: Any, dataset: Any, s: Mapping[str, Any], labeled: Sequence[tuple[Feeds, int]],
                      max_drop_points: float) -> Any:
    """``nncf.quantize_with_accuracy_control``: accuracy on labelled *calibration-split* items, ``max_drop``
    in absolute accuracy (the run's budget, points / 100)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    val = nncf.Dataset(list(labeled))

    def validate(compiled: Any, items: Any) -> float:
        names = [port_name(p) for p in compiled.inputs]
        hits = [int(np.argmax(compiled({n: f[n] for n in names})[0])) == int(y) for f, y in items]
        return float(np.mean(hits)) if hits else 0.0

    scope = nncf.IgnoredScope(names=list(s["ignored_names"]), types=list(s["ignored_types"]), validate=False)
    return nncf.quantize_with_accuracy_control(
        fp32, dataset, val, validation_fn=validate, max_drop=max_drop_points / 100.0,
        drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset(s["preset"]),
        subset_size=int(s["subset_size"]), fast_bias_correction=bool(s["fast_bias_correction"]),
        model_type=nncf.ModelType.TRANSFORMER if s["model_type"] == "transformer" else None, ignored_scope=scope,
        advanced_quantization_parameters=AdvancedQuantizationParameters(overflow_fix=OverflowFix(s["overflow_fix"])))


def quantize_static(fp32_model: Any, calibration: Callable[[], Iterator[Feeds]], check_feeds: Sequence[Feeds],
                    options: OvInt8Options, isa_preset: str, *, labels: np.ndarray | None = None,
                    max_drop_points: float = 1.0) -> tuple[Any, OvQuantReport]:
    """NNCF static int8 of an in-memory OpenVINO model; returns the quantized model and the report.

    ``calibration`` streams calibration-split feeds (NNCF reads up to ``subset_size`` of them); ``labels``
    are that split's labels in stream order (enables accuracy control); ``check_feeds`` are calibration
    items too. Held-out items are never seen here.
    """
    nncf = _nncf()
    t0 = time.perf_counter()
    names = [port_name(p) for p in fp32_model.inputs]
    items = [{n: np.asarray(f[n]) for n in names} for f in calibration()]
    if not items:
        raise QuantizationError("no calibration items", where="calibration",
                                hint="static int8 needs the calibration split of a data set")
    dataset = nncf.Dataset(items)
    notes: list[str] = []
    feeds = [{n: f[n] for n in names} for f in check_feeds] or items[:16]
    ref = _outputs(_compile(fp32_model, 2), feeds)
    logits = fp32_model.outputs[0].get_partial_shape().rank.get_length() != 3  # not token embeddings

    def measure(model: Any) -> dict[str, float]:
        return agreement(ref, _outputs(_compile(model, 2), feeds), top1=logits)
    try:
        with _quiet():
            if options.nncf_defaults:
                qmodel = nncf.quantize(fp32_model, dataset)
                settings: dict[str, Any] = {"nncf_defaults": True}
                check = measure(qmodel)
                return qmodel, OvQuantReport(settings, (), check, len(items), time.perf_counter() - t0,
                                             (f"plain nncf.quantize defaults: {_fmt(check)} on {len(feeds)} "
                                              "calibration items",))
            s = _settings(fp32_model, options, isa_preset, len(items))
            settings = dict(s)
            qmodel = _quantize(nncf, fp32_model, dataset, s)
            check = measure(qmodel)
            notes.append(f"NNCF int8 ({s['preset']}, {s['model_type']}, overflow fix {s['overflow_fix']}, "
                         f"{s['subset_size']} calibration items, {len(s['ignored_names'])} layer(s) kept float): "
                         f"{_fmt(check)} on {len(feeds)} calibration-split check items")
            kept: list[str] = list(s["ignored_names"])
            has_labels = labels is not None and len(labels) >= len(items) and not is_text_model(fp32_model)
            want_ac = options.accuracy_control == "always" or (
                options.accuracy_control == "auto" and not _meets(check, options))
            if want_ac and has_labels:
                assert labels is not None
                labeled = list(zip(items, (int(y) for y in labels[: len(items)]), strict=True))
                qmodel = _accuracy_control(nncf, fp32_model, dataset, s, labeled, max_drop_points)
                check = measure(qmodel)
                settings["accuracy_control"] = {"max_drop": max_drop_points / 100.0, "validation_items": len(labeled),
                                                "split": "calibration"}
                notes.append(f"quantize_with_accuracy_control (max_drop {max_drop_points / 100:.3f} absolute, "
                             f"validated on {len(labeled)} labelled calibration items): {_fmt(check)}")
            elif want_ac and options.max_float_layers > 0:
                qmodel, extra, check = _sensitivity(nncf, fp32_model, dataset, s, feeds, measure, options, check, notes)
                kept += extra
                settings["sensitivity_search"] = {"kept_float": extra}
                if not _meets(check, options):
                    notes.append(f"budget not met after keeping {len(extra)} more layer(s) float: {_fmt(check)}")
    except QuantizationError:
        raise
    except Exception as exc:
        raise QuantizationError(f"NNCF quantization failed: {first_line(exc, 240)}", where="nncf.quantize",
                                hint="an op may be unsupported by NNCF: add it to ignored_types") from exc
    return qmodel, OvQuantReport(settings, tuple(kept), check, len(items), time.perf_counter() - t0, tuple(notes))


def compress_weights(fp32_model: Any, options: OvWeightOptions) -> tuple[Any, OvQuantReport]:
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
                                where="nncf.compress_weights",
                                hint="try mode int8_sym") from exc
    return model, OvQuantReport({"mode": options.mode, "weights_only": True}, (), {}, 0, time.perf_counter() - t0,
                                (f"weight-only int8 ({options.mode}) with nncf.compress_weights; activations float",))
