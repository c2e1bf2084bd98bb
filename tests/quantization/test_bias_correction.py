"""Bias correction and float graph outputs (ONNX static int8), with the real ONNX Runtime kernels.

Planted model over the 64 pixels of the scikit-learn digits, moved to [2.5, 3.5] (inputs with a large mean, like
activations after ReLU6): ``fc1 -> Relu -> fc2``, where each of fc1's output channels has one weight of 1 and 63
small ones at about half the int8 step (1 / 127). They all round up to one step, so every channel's output mean
shifts by about 0.75 while its signal spans +-0.5 around the Relu's kink (the depthwise-convolution case of
MobileNet / EfficientNet: few weights, large input means). Bias correction re-centres the means; keeping fc1 float
would also fix it, at the cost of a float layer.
Decisions on the tuning items only; held-out items (digits 1000+) are never seen by the quantizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_helpers import mean_cosine, run_rows
from quant_helpers import split_rows

from edgekit.errors import ConfigError
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.onnx import StaticInt8Options, quantize_static
from edgekit.quantization.onnx_qdq import float_graph_outputs
from edgekit.results import AccuracyBudget

BUDGET = DecisionBudget(AccuracyBudget(min_cosine=0.99))


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (3.0 + (load_digits().data / 16.0 - 0.5)).astype(np.float32)  # (n, 64) in [2.5, 3.5]


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    w1 = rng.uniform(0.55, 0.65, (64, 32)) / 127  # just over half the int8 step: each rounds up to one step
    w1[rng.integers(0, 64, 32), np.arange(32)] = 1.0
    b1 = -w1.sum(0) * 3.0  # the pre-activations centred on 0: the Relu keeps about half of them
    w2 = rng.normal(0, 0.5, (32, 10))
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w1", "b1"], ["h0"], name="fc1"),
         helper.make_node("Relu", ["h0"], ["h"], name="relu"),
         helper.make_node("Gemm", ["h", "w2"], ["y"], name="fc2")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in {"w1": w1, "b1": b1, "w2": w2}.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("bias") / "drifting.onnx"
    onnx.save(model, str(path))
    return path


def test_bias_correction_recovers_the_drifting_layer_in_int8(drifting: Path, pixels: np.ndarray,
                                                              tmp_path: Path) -> None:
    # weight rounding off: this drift is a rounding bias, which the optimized rounding alone removes (0.99966 ->
    # 0.99982 on the tuning items with it on); the test is about bias correction
    options = {"keep_input_layers_float": False, "sensitivity_search": False, "weight_rounding": False}
    plain, fixed = tmp_path / "plain.onnx", tmp_path / "fixed.onnx"
    quantize_static(drifting, plain, split_rows(pixels[:200]), StaticInt8Options(**options, bias_correction=False),
                    "vnni", BUDGET)
    rep = quantize_static(drifting, fixed, split_rows(pixels[:200]), StaticInt8Options(**options), "vnni", BUDGET)
    record = rep.settings["bias_correction"]
    assert record["applied"] and record["layers"] == 1 and record["items"] == 16
    assert record["tuning_cosine_with"] > record["tuning_cosine_without"] + 0.01
    assert any(n.startswith("bias correction: 1 layer's") and n.endswith("kept") for n in rep.notes)
    assert rep.kept_float == ()  # every layer int8: the fix is in the biases
    held = pixels[1000:1400]
    ref = run_rows(drifting, held)
    before, after = mean_cosine(ref, run_rows(plain, held)), mean_cosine(ref, run_rows(fixed, held))
    print(f"held-out cosine {before:.4f} -> {after:.4f}")
    assert before < 0.98 and after > 0.995 and after > before + 0.02
    # the real int8 kernels agree with the fp32 simulation of the corrected QDQ model
    assert mean_cosine(run_rows(fixed, held, 0), run_rows(fixed, held)) > 0.999


def test_the_search_keeps_the_correction_when_it_rebuilds(drifting: Path, pixels: np.ndarray,
                                                          tmp_path: Path) -> None:
    """A stricter budget makes the search rebuild the model (op types, float nodes): rebuilds start from the
    corrected float model, so the corrected biases are in the artifact."""
    out = tmp_path / "strict.onnx"
    strict = DecisionBudget(AccuracyBudget(min_cosine=0.99999))
    rep = quantize_static(drifting, out, split_rows(pixels[:200]), StaticInt8Options(keep_input_layers_float=False),
                          "vnni", strict)
    assert rep.settings["bias_correction"]["applied"]
    held = pixels[1000:1400]
    assert mean_cosine(run_rows(drifting, held), run_rows(out, held)) > 0.995


def test_a_correction_that_does_not_help_is_not_kept(tmp_path: Path, pixels: np.ndarray) -> None:
    """Weights that int8 represents exactly (multiples of the step): no drift, nothing gained."""
    w = np.round(np.random.default_rng(0).normal(0, 1, (64, 10)) * 20) / 20
    w[0] = 127 / 20  # the step is exactly 1/20 in every column
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
                              [numpy_helper.from_array(w.astype(np.float32), "w"),
                               numpy_helper.from_array(np.zeros(10, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "exact.onnx"
    onnx.save(model, str(path))
    rep = quantize_static(path, tmp_path / "q.onnx", split_rows(pixels[:200]),
                          StaticInt8Options(keep_input_layers_float=False), "vnni", BUDGET)
    assert rep.settings["bias_correction"]["applied"] is False
    assert any("bias correction" in n and "not kept" in n for n in rep.notes)


def test_graph_outputs_leave_int8_in_float_except_after_matmul(drifting: Path, pixels: np.ndarray,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "q.onnx"
    quantize_static(drifting, out, split_rows(pixels[:200]), StaticInt8Options(sensitivity_search=False), "vnni",
                    BUDGET)
    model = onnx.load(str(out))
    maker = next(n for n in model.graph.node if "y" in n.output)
    assert maker.op_type == "Gemm"  # no QuantizeLinear/DequantizeLinear in front of the output
    # ort-default reproduces plain quantize_static: its output keeps the pair
    quantize_static(drifting, tmp_path / "d.onnx", split_rows(pixels[:200]), StaticInt8Options(preset="ort-default"),
                    "vnni", BUDGET)
    assert next(n for n in onnx.load(str(tmp_path / "d.onnx")).graph.node if "y" in n.output).op_type \
        == "DequantizeLinear"
    # a MatMul output keeps its pair (ORT's MatMulNBits rewrite of DQ -> MatMul computes it wrongly)
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
                               helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
                               helper.make_node("MatMul", ["xd", "w"], ["m"]),
                               helper.make_node("QuantizeLinear", ["m", "s", "z"], ["mq"]),
                               helper.make_node("DequantizeLinear", ["mq", "s", "z"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.eye(4, dtype=np.float32), "w"),
                               numpy_helper.from_array(np.float32(0.1), "s"),
                               numpy_helper.from_array(np.uint8(128), "z")])
    mm = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert float_graph_outputs(mm) == [] and len(mm.graph.node) == 5


def test_bias_correction_option_is_checked_and_recorded() -> None:
    with pytest.raises(ConfigError, match=r"static_int8\.bias_correction"):
        StaticInt8Options(bias_correction="yes")
    from edgekit.quantization.onnx import static_settings

    assert static_settings(StaticInt8Options(), "vnni")["bias_correction"] == "auto"
    assert static_settings(StaticInt8Options(bias_correction=False), "vnni")["bias_correction"] is False
