"""ONNX export: numeric check against the source on real inputs, static and dynamic batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import edgekit
from edgekit.errors import NumericMismatchError
from edgekit.formats.base import FormatOptions
from edgekit.formats.onnx import OnnxOptions
from edgekit.pipeline import RunOptions

PRE = {"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3}


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


class BranchOnData(Tiny):
    """Data-dependent Python control flow: tracing records one branch, real inputs take the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if float(x.mean()) > -0.01:  # zeros at trace time take this branch; real digits (mostly -1) do not
            return y
        return y * 3.0 + 1.0


def _batch_dim(path: Path) -> int | str:
    dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    return dim.dim_value if dim.HasField("dim_value") else dim.dim_param


def test_dynamic_and_static_batch(tmp_path: Path) -> None:
    src = edgekit.load_source(Tiny(), input_shapes={"input": (1, 3, 16, 16)}, preprocess=PRE)
    dyn = edgekit.export(src, tmp_path / "dyn", calibration="digits")
    static = edgekit.export(src, tmp_path / "static", calibration="digits",
                            options=RunOptions(format_options=FormatOptions(OnnxOptions(dynamic_batch=False))))
    assert isinstance(_batch_dim(dyn.path), str) and _batch_dim(static.path) == 1
    import onnxruntime as ort

    sess = ort.InferenceSession(str(dyn.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    got = sess.run(None, {"input": x})[0]
    want = src.run_reference({"input": x})[0]
    assert got.shape == (4, 10) and np.allclose(got, want, atol=1e-4)
    assert dyn.settings["numeric_check"]["min_cosine"] > 0.9999
    assert any("numeric check" in n for n in dyn.notes)


def test_export_that_disagrees_with_the_source_is_one_error_listing_every_failure(tmp_path: Path) -> None:
    src = edgekit.load_source(BranchOnData(), input_shapes={"input": (1, 3, 16, 16)}, preprocess=PRE)
    with pytest.raises(NumericMismatchError) as err:
        edgekit.export(src, tmp_path, calibration="digits")
    assert len(err.value.failures) > 1
    assert "model.fp32.onnx disagrees with the source" in str(err.value)
    # nothing half-done is left as if it were complete
    assert not list(tmp_path.glob("*.edgekit.json"))
