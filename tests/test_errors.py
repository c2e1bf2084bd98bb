"""The error tree: one line with where / expected / got / hint."""

from __future__ import annotations

import pytest

from edgekit.errors import (
    CalibrationError,
    ConfigError,
    EdgekitError,
    MissingDependencyError,
    NumericMismatchError,
    require,
)
from edgekit.types import Precision


def test_message_names_everything_on_one_line() -> None:
    err = CalibrationError("wrong shape", where="data.npz", expected="(N,3,64,64)", got="(N,3,32,32)",
                           hint="resize the images")
    text = str(err)
    assert text == "data.npz: wrong shape (expected (N,3,64,64), got '(N,3,32,32)') hint: resize the images"
    assert isinstance(err, EdgekitError)


def test_numeric_mismatch_lists_all_failures() -> None:
    err = NumericMismatchError("model.onnx disagrees", failures=["item 0: a", "item 1: b"])
    assert err.failures == ["item 0: a", "item 1: b"]
    assert "item 0: a; item 1: b" in str(err)


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgekit\[openvino\]'"):
        require("definitely_not_a_module_xyz", "openvino", "the OpenVINO runtime")


def test_unknown_precision_lists_choices() -> None:
    with pytest.raises(ConfigError) as err:
        Precision.parse("int4", where="--precisions")
    assert "fp32, fp16, int8, int8-dynamic" in str(err.value) and "'int4'" in str(err.value)
