"""Quantize an fp32 ``.tflite`` with ``ai-edge-quantizer`` (no TensorFlow needed).

- fp16: weights cast to float16 (``FLOAT_CASTING``), compute in float;
- int8-dynamic: int8 weights, float activations quantized on the fly;
- int8 (full integer): int8 weights and activations, min/max calibrated on the calibration split's
  **ranges** items; I/O int8 (what MCUs and NPUs want; the LiteRT session quantizes feeds with each tensor's
  scale/zero point) or float (a QUANTIZE op in front of each input, a DEQUANTIZE after each output). The
  result is checked against the fp32 ``.tflite`` with the real LiteRT kernels on the **tuning** items
  (:mod:`edgekit.quantization.checks`), against the run's budget with the tuning margin.

Keeping layers float: ai-edge-quantizer takes per-op recipe entries (a ``no_quantize`` entry whose regex
matches the op's output tensor names), so the shared :func:`~edgekit.quantization.search.sensitivity_search`
runs here too, re-quantizing from the same calibration statistics per trial. It is off by default for
int8 I/O (``sensitivity_search=None``): a full-integer model promises integer-only ops to NPUs / MCUs (Vela
runs a float op on the CPU), and a float op breaks that promise; with float I/O it is on. The artifact's
notes say which applied.

Models are written with inline buffers (Vela and older runtimes do not read offset buffers).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_write_bytes
from edgekit.errors import CalibrationError, ConfigError, QuantizationError, first_line, require
from edgekit.formats.tflite_graph import io_types
from edgekit.quantization.bias_correction import bias_correction_step
from edgekit.quantization.calibration import CalibrationSplit, Feeds
from edgekit.quantization.checks import DecisionBudget, Judge
from edgekit.quantization.islands import check_islands, island_search
from edgekit.quantization.report import QuantReport
from edgekit.quantization.rounding import weight_rounding_step
from edgekit.quantization.search import MIN_GAIN, budget_note
from edgekit.quantization.tflite_bias import tflite_corrector
from edgekit.quantization.tflite_rounding import rounded_again, tflite_rounder
from edgekit.quantization.tflite_search import (
    STATIC_OPS,
    TfliteBackend,
    TfliteIslands,
    grow_islands,
    model_bytes,
    quiet_quantize,
    run_tflite,
)

IO_TYPES = ("auto", "int8", "float")
#: ISA families whose targets run .tflite on a CPU (LiteRT / XNNPACK): io "auto" gives them float I/O; every other
#: family (unknown CPUs, Ethos-U and other integer-only NPUs / MCUs) keeps int8 I/O.
CPU_FAMILIES = ("vnni", "avx2", "arm64")
#: What the int8 build quantizes: "all" = full integer (every op, ``static_wi8_ai8``); "weighted" = the weighted ops
#: (FULLY_CONNECTED / convolutions) static int8, embedding tables int8 weights, every other op float, and the search's
#: island is dynamic-range int8 (weights int8, activations quantized at run time), not float; "auto" picks by model.
SCOPES = ("auto", "all", "weighted")
WEIGHTED_OPS = {3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 9: "FULLY_CONNECTED", 67: "TRANSPOSE_CONV",
                126: "BATCH_MATMUL"}  # builtin operator codes


@dataclass(frozen=True)
class TfliteInt8Options:
    """Full-integer int8: ``io`` is "int8" or "float"; ``max_items`` caps the ranges items used.

    ``sensitivity_search``: give the most sensitive ops a fix of ``islands`` (at most ``max_float_ops``; with scope
    "weighted": dynamic-range int8, at most ``max_dynamic_ops``) until the budget holds on the tuning items;
    ``None`` = with float I/O, scope "weighted", or ``islands`` without "float" (see the module docstring).
    ``bias_correction``: re-centre each biased op's output-channel means on fp32's
    (:mod:`edgekit.quantization.tflite_bias`; ``"auto"`` keeps it when the check on the tuning items improves:
    EfficientNet-Lite0 held-out cosine 0.980 -> 0.993).
    ``weight_rounding``: int8 weights chosen for each op's output (:mod:`edgekit.quantization.tflite_rounding`),
    before bias correction; ``"auto"`` keeps it when the check on the tuning items improves.
    ``islands`` (scope "all"): the fixes the search tries on a sensitive op, in order, each priced by its measured
    LiteRT latency (:mod:`edgekit.quantization.islands`): ``"int16"`` (the op runs 16x8: integer-only, for NPUs
    with A16W8; on XNNPACK CPUs a 16x8 op runs on builtin kernels, slow), ``"float"`` (``no_quantize``);
    ``("float",)``, the default, is the float-only search, unpriced; ``("int16",)`` keeps a full-integer model
    integer-only, so the search runs with int8 I/O too.
    ``price_on``: what the island search prices each fix by: ``"litert"`` (this machine's LiteRT kernels, timed) or an
    Arm Ethos-U accelerator (``"ethos-u55-128"`` ...: Vela's estimated latency of each trial compiled for it; needs
    ``edgekit[ethos-u]``; islands int16 only, since Vela does not estimate the CPU ops a float island becomes).
    ``scope`` (:data:`SCOPES`): full integer, or the weighted ops only with dynamic-range islands (transformers:
    MiniLM 0.64 -> 0.993 held-out cosine of the pooled embeddings at ~3x fp32 on XNNPACK,
    benchmarks/results/int8_vs_peers.md).
    """

    io: str = "auto"
    max_items: int | None = 300
    sensitivity_search: bool | None = None
    max_float_ops: int = 6
    bias_correction: bool | str = "auto"
    scope: str = "auto"
    max_dynamic_ops: int = 12
    float_outputs: bool | None = None
    weight_rounding: bool | str = "auto"
    islands: tuple[str, ...] = ("float",)
    price_on: str = "litert"

    def __post_init__(self) -> None:
        object.__setattr__(self, "islands", check_islands(self.islands, "tflite.int8.islands"))
        from edgekit.estimators.vela import ACCELERATORS

        if self.price_on not in ("litert", *ACCELERATORS):
            raise ConfigError("unknown value", where="tflite.int8.price_on",
                              expected="litert | " + " | ".join(ACCELERATORS), got=self.price_on)
        if self.price_on != "litert" and "float" in self.islands:
            raise ConfigError("a float island cannot be priced on an Ethos-U NPU: it runs on the CPU, which Vela "
                              "does not estimate", where="tflite.int8.islands", got=list(self.islands),
                              expected="['int16'] with tflite.int8.price_on=" + repr(self.price_on),
                              hint="islands=['int16'] keeps the model integer-only for the NPU")
        if self.io not in IO_TYPES:
            raise QuantizationError("unknown int8 I/O type", where="tflite.int8.io",
                                    expected=" | ".join(IO_TYPES), got=self.io)
        for key in ("max_float_ops", "max_dynamic_ops"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError("must be an integer >= 0", where=f"tflite.int8.{key}", got=value)
        if self.scope not in SCOPES:
            raise ConfigError("unknown value", where="tflite.int8.scope", expected=" | ".join(SCOPES), got=self.scope)
        if self.float_outputs not in (None, True, False):
            raise ConfigError("unknown value", where="tflite.int8.float_outputs", expected="None, True, False",
                              got=self.float_outputs)
        for key in ("bias_correction", "weight_rounding"):
            if not (isinstance(getattr(self, key), bool) or getattr(self, key) == "auto"):
                raise ConfigError("unknown value", where=f"tflite.int8.{key}", expected="auto, True, False",
                                  got=getattr(self, key))

    def io_for(self, isa_preset: str) -> tuple[str, str]:
        """The I/O a build for ISA family ``isa_preset`` gets and why (``"auto"``: float for CPU families)."""
        if self.io != "auto":
            return self.io, f"{self.io} I/O (tflite.int8.io={self.io!r})"
        if isa_preset in CPU_FAMILIES:
            return "float", (f"io auto -> float for ISA family '{isa_preset}': LiteRT runs it on a CPU (XNNPACK), "
                             "where float I/O costs two cheap ops and lets the output layer stay float (8-bit "
                             "logits tie); int8 I/O is for integer-only NPUs / MCUs: tflite.int8.io='int8'")
        return "int8", (f"io auto -> int8 for ISA family '{isa_preset}' (not a CPU family known to run LiteRT: "
                        "integer-only NPUs / MCUs such as Ethos-U take int8 I/O)")

    def keeps_outputs_float(self, scope: str) -> bool:
        """Whether the ops that make the graph outputs stay float (``float_outputs``; None: with float I/O)."""
        if scope != "all":
            return False  # scope "weighted": the outputs are float already
        return self.float_outputs if self.float_outputs is not None else self.io == "float"

    def search(self, scope: str) -> bool:
        """Whether the sensitivity search runs for a build of ``scope`` ("all" / "weighted")."""
        if self.sensitivity_search is not None:
            return self.sensitivity_search
        return self.io == "float" or scope == "weighted" or "float" not in self.islands

    def scope_for(self, fp32: Path) -> tuple[str, str]:
        """The scope a build of ``fp32`` gets and why (``"auto"``: "weighted" for a model without convolutions)."""
        if self.scope != "auto":
            return self.scope, f"tflite.int8.scope={self.scope!r}"
        if has_convolutions(fp32):
            return "all", "a convnet (scope auto)"
        return "weighted", ("no convolution: a transformer-like model (scope auto; full-integer MiniLM measured "
                            "cosine 0.64: the -3.4e38 attention-mask fill is dropped by min/max calibration, "
                            "LayerNorm variances reach 5e4)")


def _quantizer() -> Any:
    return require("ai_edge_quantizer.quantizer", "tflite", "quantizing .tflite models")


def convert_fp16(fp32: Path, out_path: Path) -> QuantReport:
    """Weights to float16 (compute stays float32 on CPUs; GPUs may run it in half)."""
    t0 = time.perf_counter()
    q = _quantizer()
    from ai_edge_quantizer import qtyping
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.recipe_manager import RecipeManager

    rm = RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                              algorithm_key=AlgorithmName.FLOAT_CASTING)
    qt = q.Quantizer(str(fp32))
    qt.load_quantization_recipe(rm.get_quantization_recipe())
    atomic_write_bytes(out_path, model_bytes(quiet_quantize(qt)))
    return QuantReport({"method": "ai-edge-quantizer float_casting", "weights": "float16"},
                       notes=("fp16 weights (ai-edge-quantizer float casting), float compute",),
                       seconds=time.perf_counter() - t0)


def quantize_dynamic(fp32: Path, out_path: Path) -> QuantReport:
    """Dynamic-range int8: int8 per-channel weights, activations quantized at run time."""
    t0 = time.perf_counter()
    q = _quantizer()
    from ai_edge_quantizer import recipe

    qt = q.Quantizer(str(fp32))
    qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    atomic_write_bytes(out_path, model_bytes(quiet_quantize(qt)))
    return QuantReport({"method": "ai-edge-quantizer dynamic_wi8_afp32"},
                       notes=("dynamic-range int8: int8 weights, float activations",), seconds=time.perf_counter() - t0)


def signature_inputs(fp32: Path) -> tuple[str, dict[str, Any]]:
    """The model's first signature key and its inputs (name -> numpy dtype), in order (a signature is required)."""
    interp = require("ai_edge_litert.interpreter", "tflite", "reading .tflite signatures")
    it = interp.Interpreter(model_path=str(fp32))
    sigs = it.get_signature_list()
    if not sigs:
        raise QuantizationError("the .tflite model has no signature", where=str(fp32),
                                hint="ai-edge-quantizer needs a model with a signature; convert with edgekit")
    key = next(iter(sigs))
    details = it.get_signature_runner(key).get_input_details()
    return key, {str(n): details[n]["dtype"] for n in sigs[key]["inputs"]}


def _operators(fp32: Path) -> tuple[Any, list[tuple[int, Any]]]:
    """The first subgraph of the ``.tflite`` and its operators with their builtin codes, in order."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model(str(fp32))
    sg = model.subgraphs[0]
    return sg, [(fu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]), op)
                for op in sg.operators]


def has_convolutions(fp32: Path) -> bool:
    """Whether the model has a CONV_2D or DEPTHWISE_CONV_2D (a convnet, as opposed to a transformer)."""
    return any(WEIGHTED_OPS.get(code) in ("CONV_2D", "DEPTHWISE_CONV_2D") for code, _ in _operators(fp32)[1])


def weighted_ops(fp32: Path, only: Sequence[str] | None = None) -> list[str]:
    """The scope (output tensor names) of every weighted op (of the kinds ``only``, by name), as ai-edge-quantizer's
    recipes match them."""
    return list(weighted_outputs(fp32, only))


def output_ops(fp32: Path, max_depth: int = 8) -> list[str]:
    """The scopes of the ops that make each graph output, back to and with the first weighted op on the way (a
    classifier's last FULLY_CONNECTED, and the RESHAPE / SOFTMAX after it); an output with no weighted op within
    ``max_depth`` ops gives none."""
    sg, ops = _operators(fp32)
    producer = {int(t): (code, op) for code, op in ops for t in op.outputs}
    found: list[str] = []
    for out in sg.outputs:
        path, tensor = [], int(out)
        for _ in range(max_depth):
            if tensor not in producer:
                break
            code, op = producer[tensor]
            path.append(";".join((sg.tensors[i].name or b"").decode() for i in op.outputs))
            if code in WEIGHTED_OPS:
                found += [p for p in path if p not in found]
                break
            tensor = int(op.inputs[0])
    return found


def input_producers(fp32: Path) -> dict[str, list[str]]:
    """Each weighted op's scope -> the scopes of the ops that make its activation inputs (not constants, not graph
    inputs): a 16-bit island runs them at 16 bits too, so the tensor it reads is 16-bit from the start."""
    sg, ops = _operators(fp32)
    scope = {id(op): ";".join((sg.tensors[i].name or b"").decode() for i in op.outputs) for _, op in ops}
    producer = {int(t): scope[id(op)] for _, op in ops for t in op.outputs}
    return {scope[id(op)]: [producer[int(t)] for t in op.inputs if int(t) in producer]
            for code, op in ops if code in WEIGHTED_OPS}


def weighted_outputs(fp32: Path, only: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Each weighted op's scope (see :func:`weighted_ops`) -> its output tensors' names (names may hold ';')."""
    sg, ops = _operators(fp32)
    out: dict[str, list[str]] = {}
    for code, op in ops:
        if code in WEIGHTED_OPS and (only is None or WEIGHTED_OPS[code] in only):
            names = [(sg.tensors[i].name or b"").decode() for i in op.outputs]
            out[";".join(names)] = names
    return out


def _model_inputs(feeds: Feeds, adapt: Callable[[Feeds], Feeds], dtypes: Mapping[str, Any], where: str) -> Feeds:
    """``adapt``ed feeds matched to the signature by name (by position only when the names differ), cast to
    the declared dtypes (token ids stay integers)."""
    names = list(dtypes)
    given = adapt(feeds)
    values = [given[n] for n in names] if all(n in given for n in names) else list(given.values())
    if len(values) != len(names):
        raise CalibrationError("calibration items do not match the model's inputs", where=where,
                               expected=", ".join(names), got=sorted(given))
    return {n: np.asarray(v).astype(dtypes[n]) for n, v in zip(names, values, strict=True)}


def quantize_full_int8(fp32: Path, out_path: Path, data: CalibrationSplit, adapt: Callable[[Feeds], Feeds],
                       options: TfliteInt8Options, budget: DecisionBudget = DecisionBudget()) -> QuantReport:
    """Full-integer int8 calibrated with min/max on the ranges items (``adapt`` turns edgekit feeds into the
    model's inputs, e.g. NCHW→NHWC), checked (and searched, see the module docstring) on the tuning items."""
    q = _quantizer()
    from ai_edge_quantizer import recipe

    if options.io == "auto":  # the TFLite adapter resolves it from the target; called directly: no target known
        options = replace(options, io=options.io_for("generic")[0])
    if options.price_on != "litert":  # before calibrating: a missing Vela is known now, with its extra
        from edgekit.estimators.vela import vela_command

        vela_command()
    key, dtypes = signature_inputs(fp32)
    where = str(out_path)
    t0 = time.perf_counter()
    samples: list[Feeds] = []
    ranges: Iterator[Feeds] = data.ranges()
    for feeds in ranges:
        if options.max_items is not None and len(samples) >= options.max_items:
            break
        samples.append(_model_inputs(feeds, adapt, dtypes, where))
    if not samples:
        raise CalibrationError("full-integer int8 needs calibration items; the calibration split is empty",
                               where=where, hint="pass --calibration with a calibration split")
    qt = q.Quantizer(str(fp32))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            stats = qt.calibrate({key: samples})
    except Exception as exc:  # ai-edge-quantizer raises plain ValueError/RuntimeError
        raise QuantizationError(f"ai-edge-quantizer calibration failed: {first_line(exc, 200)}", where=where,
                                hint="check that the calibration items match the model's inputs") from exc
    calibration_seconds = time.perf_counter() - t0
    scope, why_scope = options.scope_for(fp32)
    weighted = scope == "weighted"
    search_on = options.search(scope)
    notes = [data.note(len(samples)),
             f"full-integer int8 (ai-edge-quantizer static_wi8_ai8, min/max on the {len(samples)} ranges items)"
             if not weighted else
             f"weighted ops int8 ({', '.join(STATIC_OPS)} static, min/max on the {len(samples)} ranges items; "
             f"embedding tables int8 weights; every other op float, model I/O unchanged): {why_scope}"]
    limit = options.max_dynamic_ops if weighted else options.max_float_ops
    settings: dict[str, Any] = {"method": "ai-edge-quantizer static_wi8_ai8 (min/max)" if not weighted else
                                "ai-edge-quantizer static int8 weighted ops + dynamic-range islands (min/max)",
                                "scope": scope, "sensitivity_search": search_on,
                                ("max_dynamic_ops" if weighted else "max_float_ops"): limit,
                                "budget": budget.as_dict()}
    kept: tuple[str, ...] = ()
    check: dict[str, float] = {}
    float_outs = output_ops(fp32) if options.keeps_outputs_float(scope) else []
    if float_outs:
        settings["float_output_ops"] = float_outs
        notes.append(f"the ops that make the outputs stay float ({', '.join(float_outs)}): an 8-bit output ties and "
                     "clips (EfficientNet-Lite0, 120 held-out photo crops: 52 with tied top-1 logits, top-1 agreement "
                     "0.69 -> 0.84 with a float output layer; tflite.int8.float_outputs=False quantizes them)")
    with tempfile.TemporaryDirectory(prefix="edgekit-aeq-", dir=Path(out_path).parent) as tmp_dir:
        backend = TfliteBackend(qt, stats, options.io, Path(tmp_dir), scope, weighted_outputs(fp32), float_outs)
        model = backend.build([])
        tuning = [_model_inputs(f, adapt, dtypes, where) for f in data.tuning]
        if not tuning:
            notes.append("no tuning items: accuracy not measured here, no search")
        else:
            judge = Judge(tuning, run_tflite(fp32, tuning), data.tuning_labels, backend.run)
            fixed = rounded = None
            if options.bias_correction == "auto" and (weighted or not has_convolutions(fp32)):
                settings["bias_correction"] = {"applied": False, "reason": "scope 'weighted' (float activations "
                                               "between the int8 ops)" if weighted and has_convolutions(fp32) else
                                               "no convolution (a transformer-like model: MiniLM gained nothing, at "
                                               "+60 s)"}
                settings["weight_rounding"] = {**settings["bias_correction"]}
            else:
                fp32_bytes = Path(fp32).read_bytes()
                rounded = weight_rounding_step(model, None, samples, judge, budget, options.weight_rounding, settings,
                                               notes, tflite_rounder(fp32_bytes))
                model = rounded.model if rounded is not None else model
                correct = tflite_corrector(fp32_bytes)
                fixed = bias_correction_step(model, None, samples, judge, budget, options.bias_correction, settings,
                                             notes, where, correct)
            model = fixed.model if fixed is not None else model
            result = judge.check(model)
            notes.append(f"check after quantization: {result.text()}; {budget.describe()}")
            before, searched = result, search_on and not budget.meets(result)
            if searched and weighted:
                found = grow_islands(backend, weighted_ops(fp32, STATIC_OPS), judge, model, result, budget, limit,
                                     notes)
                model, kept, result = found.model, found.kept, found.check
            elif searched:
                islands = TfliteIslands(backend, model, input_producers(fp32), options.price_on)
                found16 = island_search(islands, [o for o in weighted_ops(fp32) if o not in float_outs], judge, model,
                                        result, budget, options.islands, max_nodes=limit, notes=notes,
                                        what="weighted op")
                model, result = found16.model, found16.check
                kept = tuple(n for n, f in found16.fixes.items() if f == "float")
                settings["islands_16bit"] = [n for n, f in found16.fixes.items() if f == "int16"]
                settings["island_decisions"] = list(found16.decisions)
                settings["islands_priced_on"] = options.price_on
                if (fixed or rounded) and found16.fixes:  # trials carried them (carry_constants); measured again
                    again = rounded_again(model, fp32_bytes, rounded, correct if fixed else None, samples, where)
                    if budget.improves(got := judge.check(again), result, MIN_GAIN):
                        model, result = again, got
                        notes.append(f"weight rounding / bias correction applied again after the search: cosine "
                                     f"{result.cosine:.4f}")
            elif not budget.meets(result):
                notes.append("sensitivity search off: full-integer int8 with int8 I/O promises integer-only ops to "
                             "NPUs / MCUs, and an op kept float would break it (tflite.int8.islands=['int16'] "
                             "searches with 16-bit islands only, which keep it; tflite.int8.sensitivity_search="
                             "True allows float; float I/O turns it on)")
            note = budget_note(budget, result)
            if note:
                notes.append(note)
            check = result.after(before) if searched else result.as_dict()
    io_now = io_types(model)
    if weighted:
        notes.append(f"model I/O unchanged ({io_now}): only the weighted ops are quantized (tflite.int8.scope='all' "
                     "gives a full-integer model with int8 I/O, for NPUs / MCUs)")
    elif options.io == "float":
        notes.append("float input/output: QUANTIZE/DEQUANTIZE ops at the graph boundary")
    elif io_now != "int8":
        notes.append(f"int8 I/O asked, but the quantizer left {io_now} I/O")
    if kept and weighted:  # islands of int8 weights, not float ops
        settings["dynamic_int8_ops"], kept = list(kept), ()
    elif kept:
        settings["kept_float_ops"] = len(kept)
    kept = (*float_outs, *kept)
    atomic_write_bytes(out_path, model)
    settings["io"] = io_types(model)
    return QuantReport(settings, kept, tuple(notes), data.describe(len(samples)),
                       calibration_seconds=calibration_seconds, seconds=time.perf_counter() - t0, check=check)
