"""Reuse can only happen when nothing that made an artifact changed: every file of it (the IR ``.bin`` too),
the content of the calibration data and the versions of the libraries that built it. Real builds of a small
CNN; each case shows a reuse first, then the change, then a rebuild."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import pipeline
from edgekit.artifacts import Artifact
from edgekit.data import Dataset, load_dataset
from edgekit.pipeline import RunOptions, build_artifact, dataset_identity
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

OPTS = RunOptions(calibration_limit=16)


@pytest.fixture(scope="module")
def tiny(tiny_model: tuple[str, Path]) -> ModelSource:
    spec, ckpt = tiny_model
    return edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")


@pytest.fixture
def digits_copy(tmp_path: Path) -> Path:
    """The bundled digits set copied to a folder a test may change."""
    from edgekit.data import builtin_calibration_dir

    folder = tmp_path / "digits"
    shutil.copytree(builtin_calibration_dir() / "digits", folder)
    return folder


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def take(self) -> list[str]:
        out, self.lines = self.lines, []
        return out


def _chain(src: ModelSource, ds: Dataset, out: Path, fmt: Format, prec: Precision, log: Log) -> Artifact:
    """Build (or reuse) ``fmt``/``prec`` the way a run does: ONNX fp32 first, the format's fp32, then ``prec``."""
    onnx = build_artifact(src, Format.ONNX, Precision.FP32, out, dataset=ds, options=OPTS, progress=log)
    fp32 = onnx if fmt is Format.ONNX else build_artifact(src, fmt, Precision.FP32, out, dataset=ds, canonical=onnx,
                                                          options=OPTS, progress=log)
    if prec is Precision.FP32:
        return fp32
    return build_artifact(src, fmt, prec, out, dataset=ds, canonical=fp32, options=OPTS, isa_preset="vnni",
                          progress=log)


def _built(log: Log, name: str) -> bool:
    """Whether ``name`` was built (True) or reused (False) by the calls since the last take."""
    lines = log.take()
    if any(line.startswith(f"reuse {name} ") for line in lines):
        return False
    assert any(line.startswith("build ") and line.endswith(f"/{name}") for line in lines), lines
    return True


def test_a_flipped_byte_in_the_ir_bin_is_rebuilt(tiny: ModelSource, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    ds, log = load_dataset("digits"), Log()
    ir = _chain(tiny, ds, tmp_path, Format.OPENVINO, Precision.FP32, log)
    assert _built(log, "model.fp32.xml")
    assert set(ir.files) == {"model.fp32.xml", "model.fp32.bin"}
    _chain(tiny, ds, tmp_path, Format.OPENVINO, Precision.FP32, log)
    assert not _built(log, "model.fp32.xml")
    weights = ir.path.with_suffix(".bin")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    again = _chain(tiny, ds, tmp_path, Format.OPENVINO, Precision.FP32, log)
    assert _built(log, "model.fp32.xml"), "a changed .bin is not the recorded artifact"
    assert again.files["model.fp32.bin"] == ir.files["model.fp32.bin"], "the rebuild restored the weights"


def test_a_changed_calibration_item_rebuilds_int8(tiny: ModelSource, digits_copy: Path, tmp_path: Path) -> None:
    log = Log()
    _chain(tiny, load_dataset(digits_copy), tmp_path, Format.ONNX, Precision.INT8, log)
    assert _built(log, "model.int8.onnx")
    _chain(tiny, load_dataset(digits_copy), tmp_path, Format.ONNX, Precision.INT8, log)
    assert not _built(log, "model.int8.onnx")
    before = dataset_identity(load_dataset(digits_copy))
    npz = digits_copy / "digits.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    first = int(arrays["calibration_index"][0])
    arrays["images"][first] = 255 - arrays["images"][first]  # same shapes, counts and labels: only content
    np.savez(npz, **arrays)  # type: ignore[arg-type]
    ds = load_dataset(digits_copy)
    after = dataset_identity(ds)
    assert {k: v for k, v in after.items() if k != "content_sha256"} == \
        {k: v for k, v in before.items() if k != "content_sha256"}, "nothing but the content tells them apart"
    assert after["content_sha256"] != before["content_sha256"]
    _chain(tiny, ds, tmp_path, Format.ONNX, Precision.INT8, log)
    assert _built(log, "model.int8.onnx"), "int8 calibrated on other data must be rebuilt"


LIBRARY_CASES = [
    (Format.ONNX, Precision.FP32, "torch", "model.fp32.onnx"),
    (Format.ONNX, Precision.INT8, "onnxruntime", "model.int8.onnx"),
    (Format.ONNX, Precision.INT8, "onnx", "model.int8.onnx"),
    (Format.OPENVINO, Precision.FP32, "openvino", "model.fp32.xml"),
    (Format.OPENVINO, Precision.INT8_WEIGHTS, "nncf", "model.int8-weights.xml"),
]


@pytest.mark.parametrize(("fmt", "prec", "package", "name"), LIBRARY_CASES,
                         ids=[f"{c[0].value}-{c[1].value}-{c[2]}" for c in LIBRARY_CASES])
def test_a_library_upgrade_rebuilds(fmt: Format, prec: Precision, package: str, name: str, tiny: ModelSource,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if fmt is Format.OPENVINO:
        pytest.importorskip("openvino")
    ds, log = load_dataset("digits"), Log()
    art = _chain(tiny, ds, tmp_path, fmt, prec, log)
    assert art.recipe["libraries"][package] == metadata.version(package)
    log.take()
    _chain(tiny, ds, tmp_path, fmt, prec, log)
    assert not _built(log, name)
    real: Callable[[Format, Precision, str], dict[str, str]] = pipeline.library_versions

    def upgraded(f: Format, p: Precision, kind: str) -> dict[str, str]:
        versions = real(f, p, kind)
        if package in versions:
            versions[package] += ".post1"
        return versions

    monkeypatch.setattr(pipeline, "library_versions", upgraded)
    again = _chain(tiny, ds, tmp_path, fmt, prec, log)
    assert _built(log, name), f"{name} was made by the old {package}"
    assert again.recipe["libraries"][package].endswith(".post1")
