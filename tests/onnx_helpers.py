"""A tiny real ONNX model shared by the bench and agent tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_model(path: Path, size: int = 64) -> np.ndarray:
    """Write Y = Relu(X @ W) with X: float32 (1, size); return W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((size, size)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["H"]), helper.make_node("Relu", ["H"], ["Y"])],
        "matmul_relu",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, size])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return w


def make_feeds(n: int, size: int = 64) -> list[dict[str, np.ndarray]]:
    """``n`` seeded random feeds for :func:`make_model`."""
    rng = np.random.default_rng(1)
    return [{"X": rng.standard_normal((1, size)).astype(np.float32)} for _ in range(n)]
