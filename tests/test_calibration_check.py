"""``edgekit calibration check``: size, repeats, leaks, classes and activation range stability, from outside the
Python API (the CLI) and inside it, on small real data sets and a real ONNX model run by ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.calibration_check import check_calibration
from edgekit.cli import main


def _mlp(path: Path) -> Path:
    """x[1, 8] -> MatMul -> Relu -> y[1, 4]: its activations scale with the input."""
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_the_bundled_sets_are_ready(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibration", "check", "digits"]) == 0
    out = capsys.readouterr().out
    assert "150 will set the ranges, 50 will judge" in out and "every one of the 10 eval classes" in out
    assert out.strip().endswith("ready")


def test_repeats_leaks_and_a_small_set_are_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(1)
    cal = rng.normal(size=(12, 1, 8)).astype(np.float32)
    cal[5] = cal[2]  # a repeat
    ev = rng.normal(size=(6, 1, 8)).astype(np.float32)
    ev[0] = cal[7]  # a leak
    path = tmp_path / "set.npz"
    np.savez(path, calibration=cal, eval=ev)
    assert main(["calibration", "check", str(path)]) == 3
    out = capsys.readouterr().out
    assert "[warning] size: 12 calibration items: 12 will set the ranges, 0 will judge" in out
    assert "[warning] duplicates: 1 calibration items repeat another" in out
    assert "[warning] leaks: 1 eval items are also calibration items" in out
    assert out.strip().endswith("not ready: see the warnings above")


def test_unstable_ranges_are_found_with_the_model(tmp_path: Path) -> None:
    """One calibration item 100x the others: whichever half holds it has a 100x wider span. The steady set is
    bounded like normalised pixels (uniform in [-1, 1])."""
    rng = np.random.default_rng(2)
    steady = rng.uniform(-1, 1, size=(120, 1, 8)).astype(np.float32)
    spiky = steady.copy()
    spiky[17] *= 100.0
    model = _mlp(tmp_path / "mlp.onnx")
    shapes = {"input_shapes": {"x": (1, 8)}}
    for name, data, level in (("steady", steady, "ok"), ("spiky", spiky, "warning")):
        path = tmp_path / f"{name}.npz"
        np.savez(path, calibration=data, eval=data[:10] + 1.0)
        result = check_calibration(path, model, source_options=shapes)
        [stability] = [f for f in result.findings if f.check == "range stability"]
        assert stability.level == level, stability.text
        assert set(result.ranges) >= {"h", "y"}
    assert "int8 scales depend on which items were picked" in stability.text


def test_a_model_that_is_not_onnx_is_refused_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibration", "check", "digits", "--model", str(tmp_path / "m.tflite")]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "an .onnx file" in err and "edgekit export" in err
