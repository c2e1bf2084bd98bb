"""Tiny real ONNX models and helpers shared by the tests (bench, agent, quantization)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def run_rows(model: Any, x: np.ndarray, level: int = 99) -> np.ndarray:
    """The first output of a model with one input ``x`` [n, d], run row by row with the real ORT CPU kernels
    (``level``: graph optimization level; 0 runs Q/DQ pairs in float), as an (n, -1) array."""
    import onnxruntime as ort

    src = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel(level)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": v[None]})[0] for v in x]).reshape(len(x), -1)


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean row cosine of two (n, d) arrays."""
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def outlier_model(path: Path) -> Path:
    """``x[n, 64] -> fc1 (MatMul) -> Add -> h -> fc2 (MatMul) -> y[n, 10]``: two channels of h near 800 that fc2
    all but ignores (its rows for them are 1e-4): a transformer's outlier channels, planted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (64, 32))
    w1[:, :2] = 0.0
    bias = np.zeros(32)
    bias[:2] = 800.0
    w2 = rng.normal(0, 0.5, (32, 10))
    w2[:2] = 1e-4
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
         helper.make_node("Add", ["h0", "b"], ["h"], name="add"),
         helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in {"w1": w1, "b": bias, "w2": w2}.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
