"""LiteRT runtime: XNNPACK on/off with the op report, int8 I/O quantization of feeds, and bad inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.artifacts import Artifact
from edgekit.errors import RuntimeAdapterError
from edgekit.layout import to_layout
from edgekit.runtimes.base import RuntimeOptions

pytest.importorskip("ai_edge_litert")

from edgekit.runtimes.litert import LiteRTRuntime


def _feeds(small: dict[str, Any], n: int = 6) -> list[dict[str, np.ndarray]]:
    src = small["source"]
    return list(small["dataset"].batches("eval", src.io, src.preprocess, limit=n))


def test_xnnpack_on_and_off_report_where_ops_ran(small_tflite: dict[str, Any]) -> None:
    art: Artifact = small_tflite["fp32"]
    on = LiteRTRuntime().load(art.path, RuntimeOptions(threads=1))
    off = LiteRTRuntime(xnnpack=False).load(art.path, RuntimeOptions(threads=1))
    i_on, i_off = on.info(), off.info()
    assert i_on["xnnpack"] and "XNNPACK" in i_on["delegates"]
    assert sum(i_on["ops_on_delegate"].values()) == i_on["ops_total"] > 0  # every op of this CNN is delegated
    assert not i_off["xnnpack"] and i_off["ops_on_delegate"] == {}
    assert sum(i_off["ops_on_builtin_kernels"].values()) == i_off["ops_total"]
    assert i_on["threads"] == 1
    for feed in _feeds(small_tflite):
        f = to_layout(feed, art.layout)
        np.testing.assert_allclose(on.run(f)[0], off.run(f)[0], atol=1e-4, rtol=1e-4)


def test_target_device_no_xnnpack_turns_the_delegate_off(small_tflite: dict[str, Any]) -> None:
    sess = LiteRTRuntime().load(small_tflite["fp32"].path, RuntimeOptions(threads=1, device="no-xnnpack"))
    assert sess.info()["delegates"] == ["CPU builtin kernels"]


def test_int8_io_feeds_are_quantized_and_outputs_dequantized(small_tflite: dict[str, Any]) -> None:
    fp32, int8 = small_tflite["fp32"], small_tflite["int8"]
    s32 = LiteRTRuntime().load(fp32.path, RuntimeOptions(threads=1))
    s8 = LiteRTRuntime().load(int8.path, RuntimeOptions(threads=1))
    assert s8.info()["input_dtypes"] == ["int8"] and s8.info()["output_dtypes"] == ["int8"]
    for feed in _feeds(small_tflite):
        f = to_layout(feed, int8.layout)
        a, b = s32.run(f)[0], s8.run(f)[0]
        assert b.dtype == np.float32 and b.shape == a.shape
        cos = float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))
        assert cos > 0.98


def test_nchw_feed_to_an_nhwc_model_is_an_error_naming_layout(small_tflite: dict[str, Any]) -> None:
    art = small_tflite["fp32"]
    assert art.layout == "NHWC"
    sess = LiteRTRuntime().load(art.path, RuntimeOptions(threads=1))
    with pytest.raises(RuntimeAdapterError) as err:
        sess.run(_feeds(small_tflite, 1)[0])  # 1x3x16x16 into a 1x16x16x3 model
    assert "layout" in (err.value.hint or "")


def test_not_a_flatbuffer_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a TFLite flatbuffer" * 4)
    with pytest.raises(RuntimeAdapterError) as err:
        LiteRTRuntime().load(bad, RuntimeOptions())
    assert "not a TFLite flatbuffer" in str(err.value) and err.value.hint


def test_op_the_runtime_lacks_is_a_clear_error(small_tflite: dict[str, Any], tmp_path: Path) -> None:
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model(str(small_tflite["fp32"].path))
    code = model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    code.customCode = b"EdgekitNoSuchOp"
    path = tmp_path / "custom.tflite"
    path.write_bytes(bytes(fu.convert_object_to_bytearray(model)))
    with pytest.raises(RuntimeAdapterError) as err:
        LiteRTRuntime().load(path, RuntimeOptions())
    assert "EdgekitNoSuchOp" in str(err.value) or "custom" in str(err.value).lower()
    assert "op this runtime does not have" in (err.value.hint or "")
