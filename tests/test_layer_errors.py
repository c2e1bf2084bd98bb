"""Per-layer error localisation on real int8 artifacts made by edgekit's own quantizers (ORT QDQ, NNCF IR, LiteRT),
calibrated on the scikit-learn digits; the layers are measured on calibration items only.

Planted case: a 3-layer MLP whose fc2 undoes, row by row, the per-channel scales (4 decades) fc1 gives its output:
fc1's output keeps its cosine under int8 (its large channels dominate), while fc2 loses the channels that int8 rounded
away in its input (per-tensor activations) and in its weights (the rows of the other channels): the jump is at fc2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from edgekit.errors import CalibrationError, ConfigError, RuntimeAdapterError
from edgekit.layer_errors import MAX_JUMPS, LayerReport, Stats, onnx_layer_errors
from edgekit.quantization.calibration import CalibrationSplit, TuningOptions, split_calibration
from edgekit.quantization.onnx import StaticInt8Options, quantize_static

Feeds = dict[str, np.ndarray]
CALIBRATION = slice(0, 200)  # the items every quantizer here calibrates on; layers are measured on the first 8


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The 1,797 scikit-learn digits as 3x16x16 float32 images in [-1, 1]."""
    from sklearn.datasets import load_digits

    x = np.kron(load_digits().images.astype(np.float32) / 16.0, np.ones((2, 2), np.float32))
    return np.ascontiguousarray(np.repeat(((x - 0.5) / 0.5)[:, None], 3, axis=1))


def _split(x: np.ndarray, name: str) -> CalibrationSplit:
    return split_calibration(lambda: ({name: v[None]} for v in x), TuningOptions())


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory, digits: np.ndarray) -> dict[str, Any]:
    """A small CNN exported by torch (stem conv, depthwise + pointwise convs, linear head) and its ORT static int8
    artifact with the default recipe: the stem reads the raw input and is kept float."""
    torch = pytest.importorskip("torch")
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU6(),
        nn.Conv2d(16, 32, 1), nn.ReLU6(),
        nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    folder = tmp_path_factory.mktemp("cnn")
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 16, 16),), str(fp32), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    report = quantize_static(fp32, int8, _split(digits[CALIBRATION], "input"),
                             StaticInt8Options(sensitivity_search=False), isa_preset="vnni")
    return {"fp32": fp32, "int8": int8, "report": report, "dir": folder}


def _feeds(digits: np.ndarray, n: int = 8) -> list[Feeds]:
    return [{"input": v[None]} for v in digits[CALIBRATION][:n]]


def _check_shape(rep: LayerReport) -> None:
    """What every report holds: cosines in (0, 1], jumps among the layers, largest drop first."""
    assert rep.layers and rep.note is None
    for la in rep.layers:
        assert 0.0 < la.cosine <= 1.0 + 1e-9 and la.max_abs >= 0.0
    drops = {la.tensor: la.drop for la in rep.layers}
    assert len(rep.jumps) <= MAX_JUMPS and all(t in drops for t in rep.jumps)
    assert [drops[t] for t in rep.jumps] == sorted((drops[t] for t in rep.jumps), reverse=True)


def test_onnx_layers_of_a_real_int8_cnn(cnn: dict[str, Any], digits: np.ndarray) -> None:
    rep = onnx_layer_errors(cnn["fp32"], cnn["int8"], _feeds(digits))
    _check_shape(rep)
    assert rep.items == 8 and rep.artifact == str(cnn["int8"])
    nodes = [n for n in onnx.load(str(cnn["fp32"])).graph.node]
    weighted = [n.name for n in nodes if n.op_type in ("Conv", "MatMul", "Gemm")]
    by_node = {la.node: la for la in rep.layers}
    assert set(weighted) <= set(by_node)  # every weighted layer, the Convs of absorbed Clips included
    order = [n.name for n in nodes]
    assert [order.index(la.node) for la in rep.layers] == sorted(order.index(la.node) for la in rep.layers)
    # the stem the quantizer kept float is float in the int8 graph: no rounding at all up to its output
    stem = weighted[0]
    assert cnn["report"].kept_float == (stem,)
    assert by_node[stem].kept_float and by_node[stem].cosine == pytest.approx(1.0, abs=1e-9)
    assert by_node[stem].max_abs == pytest.approx(0.0, abs=1e-5)
    assert not any(by_node[name].kept_float for name in weighted[1:])
    # the last layer is the model output: its cosine is the end-to-end one (Q/DQ in float, as measured here)
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    a, b = ([ort.InferenceSession(str(cnn[k]), so, providers=["CPUExecutionProvider"]).run(None, f)[0].ravel()
             for f in _feeds(digits)] for k in ("fp32", "int8"))
    end = float(np.mean([np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v) for u, v in zip(a, b, strict=True)]))
    assert rep.layers[-1].tensor == "logits" and rep.layers[-1].cosine == pytest.approx(end, abs=1e-6)


def test_onnx_tensors_in_chunks_give_the_same_layers(cnn: dict[str, Any], digits: np.ndarray) -> None:
    whole = onnx_layer_errors(cnn["fp32"], cnn["int8"], _feeds(digits, 4))
    chunked = onnx_layer_errors(cnn["fp32"], cnn["int8"], _feeds(digits, 4), max_tensors=3)
    assert chunked == whole and len(whole.layers) > 3
    # names passed by the quantizer mark a layer kept float even where the graph does not show it
    last = whole.layers[-1]
    named = onnx_layer_errors(cnn["fp32"], cnn["int8"], _feeds(digits, 4), kept_float=(last.node,))
    assert named.layers[-1].kept_float and not last.kept_float


def _planted(path: Path) -> Path:
    """x[n, 64] -> fc1 -> relu1 -> fc2 -> relu2 -> fc3 -> y: fc1's output columns scaled by 1e-2..1e2, fc2's rows by
    the inverse (the same function as without the scales; module docstring)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    s = np.logspace(-2, 2, 32)
    w = {"w1": rng.normal(0, 0.3, (64, 32)) * s, "w2": rng.normal(0, 0.3, (32, 32)) / s[:, None],
         "w3": rng.normal(0, 0.3, (32, 10))}
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="fc2"),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("MatMul", ["r2", "w3"], ["y"], name="fc3")]
    graph = helper.make_graph(nodes, "planted", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in w.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_onnx_jump_is_at_the_planted_layer(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    pixels = (load_digits().data.astype(np.float32) / 16.0 - 0.5) / 0.5
    fp32, int8 = _planted(tmp_path / "fp32.onnx"), tmp_path / "int8.onnx"
    options = StaticInt8Options(sensitivity_search=False, keep_input_layers_float=False, smooth=False,
                                bias_correction=False)  # leave the planted problem in place
    quantize_static(fp32, int8, _split(pixels[CALIBRATION], "x"), options, isa_preset="vnni")
    rep = onnx_layer_errors(fp32, int8, [{"x": v[None]} for v in pixels[CALIBRATION][:8]])
    _check_shape(rep)
    assert [la.node for la in rep.layers] == ["fc1", "relu1", "fc2", "relu2", "fc3"]
    h1, h2 = rep.layer("h1"), rep.layer("h2")
    assert h1 is not None and h2 is not None
    assert rep.jumps[0] == "h2" and h2.node == "fc2" and h2.drop > 0.2
    assert h1.cosine > 0.999 and all(la.drop < 0.05 for la in rep.layers if la.tensor != "h2")
    assert rep.as_dict()["jumps"][0] == "h2" and rep.as_dict()["layers"][2]["node"] == "fc2"


def test_errors_name_what_is_wrong(cnn: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(CalibrationError) as err:
        onnx_layer_errors(cnn["fp32"], cnn["int8"], [])
    assert "calibration items" in (err.value.expected or "")
    with pytest.raises(RuntimeAdapterError) as missing:
        onnx_layer_errors(cnn["fp32"], tmp_path / "nope.onnx", [{"input": np.zeros((1, 3, 16, 16), np.float32)}])
    assert missing.value.where == str(tmp_path / "nope.onnx")
    with pytest.raises(RuntimeAdapterError) as bad_feed:
        onnx_layer_errors(cnn["fp32"], cnn["int8"], [{"input": np.zeros((1, 16, 16, 3), np.float32)}])
    assert "calibration preprocessing" in (bad_feed.value.hint or "")
    with pytest.raises(ConfigError):
        onnx_layer_errors(cnn["fp32"], cnn["int8"], [{"input": np.zeros((1, 3, 16, 16), np.float32)}], max_tensors=0)


def test_openvino_layers_of_a_real_nncf_int8_ir(cnn: dict[str, Any], digits: np.ndarray) -> None:
    pytest.importorskip("nncf")
    from edgekit.formats.openvino import convert_onnx, save_ir
    from edgekit.layer_errors_openvino import _OvPair, _OvProbe, openvino_layer_errors
    from edgekit.quantization.openvino import OvInt8Options
    from edgekit.quantization.openvino import quantize_static as ov_quantize

    fp32_model = convert_onnx(cnn["fp32"])
    qmodel, report = ov_quantize(fp32_model, _split(digits[CALIBRATION][:64], "input"), OvInt8Options(), "vnni")
    fp32, int8 = cnn["dir"] / "fp32.xml", cnn["dir"] / "int8.xml"
    save_ir(fp32_model, fp32)
    save_ir(qmodel, int8)
    rep = openvino_layer_errors(fp32, int8, _feeds(digits), kept_float=report.kept_float)
    _check_shape(rep)
    by_node = {la.node: la for la in rep.layers}
    stem = report.kept_float[0]  # NNCF's ignored input layer: float, and read as it is
    assert by_node[stem].kept_float and by_node[stem].cosine == pytest.approx(1.0, abs=1e-6)
    assert by_node["logits"].cosine > 0.99 and not by_node["logits"].kept_float
    # the output of a quantized Convolution fused with its activation is not read (OpenVINO computed a broken model
    # with it as an output); if it is probed anyway, the guard leaves it out instead of reporting a broken compile
    import openvino as ov

    ops = {str(o.get_friendly_name()): o for o in ov.Core().read_model(str(fp32)).get_ordered_ops()}
    convs = [n for n, o in ops.items() if o.get_type_name() == "Convolution" and n != stem]
    assert convs and not any(c in by_node for c in convs)
    probe = _OvProbe(ov.Core(), (fp32, int8), _feeds(digits, 2))
    stats = Stats()
    pairs = [_OvPair(c, ops[c], 0, c, 0) for c in convs] + [_OvPair("logits", ops["logits"], 0, "logits", 0)]
    left_out = probe.measure(pairs, stats)
    assert set(left_out) <= set(convs) and "logits" in stats.cos
    assert all(min(v) > 0.95 for v in stats.cos.values())  # every value kept came from a compile like the model's


def test_tflite_layers_of_a_real_full_int8_model(small_tflite: dict[str, Any]) -> None:
    from edgekit.layer_errors_tflite import tflite_layer_errors
    from edgekit.layout import to_layout

    fp32, int8, src = small_tflite["fp32"], small_tflite["int8"], small_tflite["source"]
    feeds = [to_layout(f, int8.layout) for f in small_tflite["dataset"].batches("calibration", src.io,
                                                                               src.preprocess, limit=6)]
    rep = tflite_layer_errors(fp32.path, int8.path, feeds)
    _check_shape(rep)
    assert rep.items == 6
    ops = [la.op_type for la in rep.layers]
    assert ops.count("CONV_2D") == 2 and "FULLY_CONNECTED" in ops  # every weighted op, in execution order
    assert not any(la.kept_float for la in rep.layers)  # full integer: every op writes int8
    assert rep.layers[-1].cosine > 0.98
