"""A lowered precision (fp16) is judged by the accuracy budget on held-out items, not by the fp32 export
tolerance: it is built even when its values move, and the report says why it is not recommended.

The model is chosen so that the outcome does not depend on the CPU: ``x * 1.0003 - x`` is exact
cancellation once the constant is rounded to fp16 (1.0003 has no fp16 neighbour closer than 1.0), so the
fp16 artifact outputs zeros on every machine while the fp32 one outputs ``0.0003 * x``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgekit
from edgekit.bench import BenchOptions
from edgekit.errors import NumericMismatchError
from edgekit.formats.base import TOLERANCES, check_precision_change, verify
from edgekit.pipeline import RunOptions
from edgekit.types import Format, Precision


class Cancels(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0003 - x


def _data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    f = tmp_path / "x.npz"
    np.savez(f, calibration=rng.standard_normal((24, 8)).astype(np.float32),
             eval=rng.standard_normal((24, 8)).astype(np.float32))
    return f


def test_fp16_beyond_the_export_tolerance_is_built_and_refused_by_the_budget(tmp_path: Path) -> None:
    src = edgekit.load_source(Cancels(), input_shapes={"input": (1, 8)}, task="feature-extraction")
    opts = RunOptions(formats=(Format.ONNX,), precisions=(Precision.FP32, Precision.FP16),
                      bench=BenchOptions(warmup_runs=1, min_runs=5, min_seconds=0.0, memory_pass=False))
    result = edgekit.run(src, calibration=_data(tmp_path), out_dir=tmp_path / "run", options=opts)
    fp16 = next(a for a in result.artifacts if a.precision is Precision.FP16)
    assert fp16.settings["numeric_check"]["beyond_tolerance"] > 0
    assert any("judged by the accuracy budget" in n for n in fp16.notes), fp16.notes
    row = next(r for r in result.rows if r.artifact.name == fp16.name)
    assert row.status == "measured" and row.metrics is not None and row.metrics.cosine_mean < 0.5
    rec = next(r for r in result.recommendations if r.runtime == "onnxruntime")
    assert rec.artifact is not None and rec.artifact.endswith("model.fp32.onnx")
    assert any(line.startswith("model.fp16.onnx") and "over budget: cosine" in line for line in rec.rejected), \
        rec.rejected
    md = (tmp_path / "run" / "report.md").read_text()
    assert "model.fp16.onnx" in md


def _same(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [feed["x"]]


def test_fp32_check_stays_strict_and_structural_faults_always_raise() -> None:
    feeds = [{"x": np.ones((1, 4), np.float32)}]

    def moved(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [feed["x"] + 0.05]

    def reshaped(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [feed["x"].reshape(4, 1)]

    with pytest.raises(NumericMismatchError, match="disagrees with the source"):
        verify("m.fp32", Precision.FP32, _same, moved, feeds, ("y",))
    numbers, note = verify("m.fp16", Precision.FP16, _same, moved, feeds, ("y",))
    assert numbers["beyond_tolerance"] == 1.0 and "max-abs 0.05" in note
    with pytest.raises(NumericMismatchError, match="structurally different"):
        check_precision_change("m.fp16", _same, reshaped, feeds, TOLERANCES[Precision.FP16], ("y",))
    numbers, note = verify("m.fp16", Precision.FP16, _same, _same, feeds, ("y",))
    assert numbers["beyond_tolerance"] == 0.0 and "beyond" not in note
