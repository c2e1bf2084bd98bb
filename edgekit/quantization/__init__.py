"""Quantization for every format, with one calibration split, one check and one search.

Shared by the three quantizers (written once, no per-backend branches):

* :mod:`~edgekit.quantization.calibration`: the calibration split divided into **ranges** items (set the
  quantization ranges) and a seeded, disjoint **tuning** subset (every check and decision is taken on it);
  streaming feeds, chunked readers, peak memory;
* :mod:`~edgekit.quantization.checks`: agreement with fp32 on the tuning items (the metrics of
  :mod:`edgekit.metrics`), and the run's budget with a margin (:class:`DecisionBudget`);
* :mod:`~edgekit.quantization.search`: the sensitivity search, against a small backend protocol ("build with
  these layers kept float; run it on these items");
* :mod:`~edgekit.quantization.presets`: int8 recipes by the target's ISA family;
* :mod:`~edgekit.quantization.report`: :class:`QuantReport`, what every quantizer returns.

Backends, each imported lazily by its format adapter: :mod:`~edgekit.quantization.onnx` (ONNX Runtime static
int8; with :mod:`~edgekit.quantization.onnx_ort` and :mod:`~edgekit.quantization.onnx_qdq`),
:mod:`~edgekit.quantization.onnx_dynamic` (dynamic int8, fp16), :mod:`~edgekit.quantization.openvino` (NNCF) and
:mod:`~edgekit.quantization.tflite` (ai-edge-quantizer).

Data flow of a static int8 build::

    calibration split ──split_calibration──▶ ranges items ──▶ backend calibrator ──▶ int8 model
                                     └─────▶ tuning items ──▶ check (budget + margin) ──▶ search ──▶ artifact

Held-out (eval) items are never seen by any of this: the validate stage judges the artifact on them.
"""

from edgekit.quantization.calibration import CalibrationSplit, TuningOptions, split_calibration
from edgekit.quantization.checks import Check, DecisionBudget
from edgekit.quantization.report import QuantReport

__all__ = ["CalibrationSplit", "Check", "DecisionBudget", "QuantReport", "TuningOptions", "split_calibration"]
