"""Atomic writes and artifact reuse."""

from __future__ import annotations

import os
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


def _ir(tmp_path: Path) -> Path:
    xml = tmp_path / "model.fp32.xml"
    xml.write_bytes(b"<net name='m'/>")
    xml.with_suffix(".bin").write_bytes(bytes(range(256)) * 4)
    return xml


def _flip_byte(path: Path, at: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_sidecar_records_the_hash_of_every_file(tmp_path: Path) -> None:
    xml = _ir(tmp_path)
    art = finish_artifact(Artifact(xml, Format.OPENVINO, Precision.FP32, IOSpec(()), sha256_file(xml), {"a": 1}))
    assert art.files == {"model.fp32.xml": sha256_file(xml), "model.fp32.bin": sha256_file(xml.with_suffix(".bin"))}
    again = reuse_artifact(xml, {"a": 1})
    assert again is not None and again.files == art.files


@pytest.mark.parametrize("side", [".bin", ".onnx.data"])
def test_a_changed_side_file_is_rebuilt_not_reused(side: str, tmp_path: Path) -> None:
    """The IR .bin (or ONNX external data) is part of the artifact: one flipped byte in it means rebuild."""
    if side == ".bin":
        model = _ir(tmp_path)
        fmt = Format.OPENVINO
        side_file = model.with_suffix(".bin")
    else:
        model = tmp_path / "model.fp32.onnx"
        model.write_bytes(b"graph")
        side_file = tmp_path / "model.fp32.onnx.data"
        side_file.write_bytes(b"w" * 300)
        fmt = Format.ONNX
    recipe = {"format": fmt.value}
    finish_artifact(Artifact(model, fmt, Precision.FP32, IOSpec(()), sha256_file(model), recipe))
    assert reuse_artifact(model, recipe) is not None
    _flip_byte(side_file)
    assert reuse_artifact(model, recipe) is None
    side_file.unlink()  # a side file gone is not the recorded artifact either
    assert reuse_artifact(model, recipe) is None


def test_a_side_file_the_sidecar_does_not_list_means_rebuild(tmp_path: Path) -> None:
    """A sidecar that vouches only for the model file (an older edgekit, or external data written after it)
    cannot vouch for the side file beside it."""
    model = tmp_path / "model.fp32.onnx"
    model.write_bytes(b"graph")
    recipe = {"format": "onnx"}
    finish_artifact(Artifact(model, Format.ONNX, Precision.FP32, IOSpec(()), sha256_file(model), recipe))
    (tmp_path / "model.fp32.onnx.data").write_bytes(b"weights")
    assert reuse_artifact(model, recipe) is None


def test_content_hash_of_a_folder_follows_every_file(tmp_path: Path) -> None:
    from edgekit.artifacts import content_sha256

    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "a.png").write_bytes(b"image-a")
    (tmp_path / "manifest.toml").write_text("name = 'x'\n")
    first = content_sha256(tmp_path)
    assert content_sha256(tmp_path) == first
    (tmp_path / ".DS_Store").write_bytes(b"noise")  # hidden files are not data
    assert content_sha256(tmp_path) == first
    changed = tmp_path / "eval" / "a.png"
    changed.write_bytes(b"image-b")  # same size, new content (and a new mtime: the in-process cache key)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # clock ticks are coarser than a test
    assert content_sha256(tmp_path) != first
