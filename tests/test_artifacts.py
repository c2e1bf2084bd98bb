"""Atomic writes and artifact reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.artifacts import (
    Artifact,
    atomic_path,
    atomic_write_text,
    finish_artifact,
    reuse_artifact,
    sha256_file,
)
from edgekit.types import Format, IOSpec, Precision, TensorSpec


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def _artifact(path: Path, recipe: dict[str, object]) -> Artifact:
    io = IOSpec((TensorSpec("x", ("batch", 4)),), (TensorSpec("y", ("batch", 2)),))
    return Artifact(path, Format.ONNX, Precision.FP32, io, sha256_file(path), recipe)


def test_reuse_needs_sidecar_same_recipe_and_same_bytes(tmp_path: Path) -> None:
    model = tmp_path / "model.fp32.onnx"
    model.write_bytes(b"model-bytes")
    recipe = {"format": "onnx", "source": "abc"}
    assert reuse_artifact(model, recipe) is None  # no sidecar: an interrupted write is rebuilt
    finish_artifact(_artifact(model, recipe))
    again = reuse_artifact(model, recipe)
    assert again is not None and again.sha256 == sha256_file(model)
    assert reuse_artifact(model, {"format": "onnx", "source": "changed"}) is None
    model.write_bytes(b"tampered")
    assert reuse_artifact(model, recipe) is None


def test_size_counts_side_files_of_its_own_format_only(tmp_path: Path) -> None:
    onnx_file = tmp_path / "model.fp32.onnx"
    onnx_file.write_bytes(b"x" * 10)
    (tmp_path / "model.fp32.bin").write_bytes(b"y" * 100)  # an OpenVINO IR's weights beside it
    (tmp_path / "model.fp32.onnx.data").write_bytes(b"z" * 5)  # ONNX external data
    assert _artifact(onnx_file, {}).size_bytes == 15
    xml = tmp_path / "model.fp32.xml"
    xml.write_bytes(b"<net/>")
    assert _artifact(xml, {}).size_bytes == 6 + 100
