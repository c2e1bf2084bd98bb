"""Activation smoothing (ONNX static int8) on a planted transformer-style outlier, with the real ORT kernels.

``x -> fc1 (MatMul + bias) -> h -> fc2 (MatMul) -> y`` over the 64 digits pixels, where two channels of ``h`` sit
near 800 and fc2 nearly ignores them (its rows for them are 1e-4): the outlier channels of a transformer's
LayerNorm / GELU outputs. Per-tensor 8-bit ``h`` spreads its levels over [.., 800] and rounds the channels that
matter away. Smoothing divides ``h`` per channel and multiplies fc2's rows back: the same function, with ``h`` in
a range 8 bits hold. Decisions on the tuning items; held-out items (digits 1000+) are never seen by the quantizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_helpers import mean_cosine, outlier_model, run_rows
from quant_helpers import split_rows

from edgekit.errors import ConfigError
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.onnx import StaticInt8Options, quantize_static
from edgekit.quantization.smooth import has_smoothable_matmuls, smooth
from edgekit.results import AccuracyBudget

BUDGET = DecisionBudget(AccuracyBudget(min_cosine=0.99))


@pytest.fixture(scope="module")
def outliers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return outlier_model(tmp_path_factory.mktemp("smooth") / "outliers.onnx")


def test_smoothing_keeps_the_outlier_layer_in_int8(outliers: Path, pixels: np.ndarray, tmp_path: Path) -> None:
    held = pixels[1000:1300]
    ref = run_rows(outliers, held)
    common = {"keep_input_layers_float": False, "sensitivity_search": False, "bias_correction": False}
    plain, smoothed = tmp_path / "plain.onnx", tmp_path / "smoothed.onnx"
    off = quantize_static(outliers, plain, split_rows(pixels[:200]), StaticInt8Options(**common, smooth=False), "vnni",
                          BUDGET)
    rep = quantize_static(outliers, smoothed, split_rows(pixels[:200]), StaticInt8Options(**common), "vnni", BUDGET)
    assert off.settings["smoothing"] == {"applied": False, "reason": "smooth=False"}
    record = rep.settings["smoothing"]
    # pre-processing fuses fc1 and the Add into one Gemm: h's 1 / s goes into its columns, no Mul
    assert record["applied"] and record["groups"] == record["folded"] == 1 and record["outlier_ratio"] > 100
    assert record["tuning_cosine_without"] < 0.95 < 0.9925 < record["tuning_cosine_with"]
    assert any(n.startswith("activation smoothing (alpha 0.5): 1 MatMul input divided") and n.endswith(": kept")
               for n in rep.notes)
    assert rep.kept_float == () and rep.check["cosine"] >= 0.9925  # every MatMul int8, the aim met
    before, after = mean_cosine(ref, run_rows(plain, held)), mean_cosine(ref, run_rows(smoothed, held))
    assert before < 0.95 and after > 0.99  # held out


def test_the_smoothed_float_model_computes_the_same_function(outliers: Path, pixels: np.ndarray) -> None:
    model = onnx.load(str(outliers))
    sm = smooth(model, [{"x": v[None]} for v in pixels[:32]])
    # unprocessed: x (a graph input) and h (an Add's output) cannot take 1 / s: a Mul in front of each group
    assert sm is not None and sm.groups == 2 and sm.matmuls == 2 and sm.folded == 0
    assert [n.name for n in sm.model.graph.node if n.op_type == "Mul"] == ["SmoothQuant_0", "SmoothQuant_1"]
    held = pixels[1000:1100]
    np.testing.assert_allclose(run_rows(sm.model, held), run_rows(outliers, held), rtol=1e-4, atol=1e-3)


def test_convnets_are_not_smoothed_and_the_option_is_checked(outliers: Path) -> None:
    model = onnx.load(str(outliers))
    assert has_smoothable_matmuls(model)
    conv = helper.make_node("Conv", ["x4", "k"], ["c"], name="conv")
    model.graph.node.extend([conv, helper.make_node("Conv", ["x4", "k"], ["c2"], name="conv2")])
    assert not has_smoothable_matmuls(model)  # as many convolutions as MatMuls: a convnet's classifier head
    with pytest.raises(ConfigError, match=r"static_int8\.smooth"):
        StaticInt8Options(smooth="yes")
