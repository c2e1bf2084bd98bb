"""OpenVINO static int8 from edgekit's ONNX static int8: one quantization stage for both formats.

OpenVINO reads a QDQ ONNX model as FakeQuantize ops and runs them with its int8 kernels, so the ONNX quantizer's
work (the target's preset, bias correction in graph order, the sensitivity search, graph outputs left float) carries
over. Measured on photos from other sources than the calibration set (benchmarks/int8_vs_peers.py, machine A,
top-1 agreement / mean cosine with OpenVINO's fp32): EfficientNet-Lite0 0.867 / 0.991 with NNCF -> 0.958 / 0.997
read from the ONNX int8, Lite1 0.833 / 0.989 -> 0.942 / 0.997, MobileNetV2 0.750 / 0.998 -> 0.892 / 1.000, every
weighted layer but the float stem in u8 kernels. For MiniLM NNCF's transformer recipe stays ahead (embedding
cosine 0.997 vs the ONNX static int8's 0.991), so text models keep NNCF.

:func:`choose_method` picks; :func:`from_onnx_int8` turns the QDQ model (an ONNX int8 artifact of the same run
with the same recipe, or one it builds) into the int8 IR's model and report, checked with OpenVINO's kernels on
the tuning items (the ONNX quantizer decided with ONNX Runtime's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.quantization.calibration import CalibrationSplit
from edgekit.quantization.checks import DecisionBudget, Judge
from edgekit.quantization.openvino import NNCF_KEYS, OvInt8Options, all_outputs, is_text_model
from edgekit.quantization.presets import resolve_preset
from edgekit.quantization.report import QuantReport
from edgekit.quantization.search import budget_note
from edgekit.runtimes.openvino import port_name


def choose_method(options: OvInt8Options, fp32_model: Any, onnx_fp32: Path | None) -> tuple[str, str]:
    """The build method (``"onnx-qdq"`` or ``"nncf"``) for ``options.method`` and why."""
    if options.method != "auto":
        return options.method, f"openvino.int8.method={options.method!r}"
    if onnx_fp32 is None:
        return "nncf", "NNCF on the IR (method auto: no fp32 ONNX to quantize from, e.g. an OpenVINO IR source)"
    default = OvInt8Options()
    given = [f.name for f in fields(OvInt8Options) if f.name in NNCF_KEYS
             and getattr(options, f.name) != getattr(default, f.name)]
    if given:
        return "nncf", f"NNCF (method auto: NNCF options given: {', '.join(given)})"
    if is_text_model(fp32_model):
        return "nncf", ("NNCF (method auto: a text model; NNCF's transformer recipe kept MiniLM's embedding cosine "
                        "at 0.997, the ONNX static int8 at 0.991)")
    return "onnx-qdq", ("edgekit's ONNX static int8 read by OpenVINO (method auto, a CNN: on photos from other "
                        "sources it kept top-1 agreement 0.89-0.96 where NNCF kept 0.75-0.87, at the same speed; "
                        "openvino.int8.method='nncf' builds with NNCF)")


def same_onnx_int8(earlier: Sequence[Any], parent_sha: str, options: OvInt8Options, isa_preset: str) -> Any | None:
    """An ONNX static int8 artifact among ``earlier`` (this run's) quantized from the fp32 ONNX ``parent_sha`` with
    the options and ISA preset this build would use: reused instead of quantizing again."""
    wanted = json.loads(json.dumps(asdict(options.onnx)))
    preset = resolve_preset(options.onnx.preset, isa_preset).name
    for art in earlier:
        r = art.recipe
        if (art.format.value, art.precision.value) == ("onnx", "int8") and r.get("parent") == parent_sha \
                and json.loads(json.dumps(r.get("static_int8"))) == wanted and art.settings.get("preset") == preset:
            return art
    return None


def from_onnx_int8(qdq_model: Any, fp32_model: Any, onnx_report: QuantReport, data: CalibrationSplit,
                   budget: DecisionBudget, origin: str, seconds: float) -> QuantReport:
    """The report of the int8 IR converted from the QDQ model (``qdq_model``, in memory): the ONNX quantizer's
    settings and notes, then the check with OpenVINO's kernels on the tuning items. ``origin``: which ONNX int8
    it was read from."""
    names = [port_name(p) for p in fp32_model.inputs]
    tuning = [{n: np.asarray(f[n]) for n in names} for f in data.tuning]
    notes = [f"read from {origin}: OpenVINO runs its QDQ pairs as FakeQuantize with int8 kernels; the ONNX "
             "quantizer's decisions were taken with ONNX Runtime's kernels", *onnx_report.notes]
    check: dict[str, float] = {}
    if tuning:
        judge = Judge(tuning, all_outputs(fp32_model, tuning), data.tuning_labels, all_outputs)
        got = judge.check(qdq_model)
        notes.append(f"check with OpenVINO's CPU kernels: {got.text()}; {budget.describe()}")
        note = budget_note(budget, got)
        if note:
            notes.append(note)
        check = got.as_dict()
    settings = {"method": "onnx-qdq", "onnx_static_int8": dict(onnx_report.settings), "budget": budget.as_dict()}
    return replace(onnx_report, settings=settings, notes=tuple(notes), check=check, seconds=seconds)
