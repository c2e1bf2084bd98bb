"""Issue 10 item 5: ONNX static int8 of an opset-12 graph (PP-OCRv4's detector and recogniser) was an invalid graph
("Unrecognized attribute: axis for operator DequantizeLinear" on the int32 bias of a fused Conv): per-channel
weights need opset 13. edgekit converts the graph first; a quantized graph that ONNX Runtime still refuses has the
named node kept in float and is quantized again, with a note."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")


def conv_model(path: Path, opset: int = 12) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (4, 8, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.1, 4).astype(np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["c2"], ["y"], name="sigmoid")]
    graph = helper.make_graph(nodes, "convs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def feeds(n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for _ in range(n)]


def test_static_int8_of_an_opset_12_graph_is_valid_and_per_channel(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from edgekit.quantization.calibration import split_calibration
    from edgekit.quantization.onnx import StaticInt8Options, quantize_static

    src, out = tmp_path / "m.onnx", tmp_path / "m.int8.onnx"
    conv_model(src)
    items = feeds(40)
    report = quantize_static(src, out, split_calibration(lambda: iter(items)),
                             StaticInt8Options(preset="vnni", keep_input_layers_float=False), "vnni")
    assert any("opset 12" in n and "opset 13" in n for n in report.notes), report.notes
    q = onnx.load(str(out))
    assert next(o.version for o in q.opset_import if o.domain in ("", "ai.onnx")) >= 13
    assert any(a.name == "axis" for n in q.graph.node if n.op_type == "DequantizeLinear" for a in n.attribute)
    y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, items[0])[0]
    assert y.shape == (1, 4, 16, 16)


def test_a_graph_ort_refuses_gets_the_named_node_kept_float(tmp_path: Path) -> None:
    import onnx

    from edgekit.errors import QuantizationError
    from edgekit.quantization.onnx import _loadable

    src = tmp_path / "m.onnx"
    conv_model(src)
    float_model = onnx.load(str(src))
    broken = onnx.load(str(src))
    # an attribute the op does not have at opset 12, the shape of the original failure
    broken.graph.node[0].attribute.append(onnx.helper.make_attribute("axis", 0))
    notes: list[str] = []
    reasons: dict[str, str] = {}
    fixed = _loadable(broken, float_model, reasons, lambda: onnx.load(str(src)), "m.onnx", notes)
    assert "conv1" in reasons and any("invalid at conv1" in n and "kept conv1 float" in n for n in notes), notes
    assert fixed.graph.node[0].attribute[0].name != "axis"
    with pytest.raises(QuantizationError, match="not a valid graph"):  # nothing of the user's graph to keep float
        _loadable(broken, onnx.load(str(src)), {"conv1": "already"}, lambda: broken, "m.onnx", [])
