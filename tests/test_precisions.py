"""One name per meaning: OpenVINO's weight-only int8 (``int8-weights``: int8 weights, float activations) is not
``int8-dynamic`` (activations quantized at run time, ONNX Runtime / TFLite). Each is built under its own name,
asking a format for the other one's precision says which name it has, and the report never shows the two
as one precision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgekit
from edgekit.bench import BenchOptions
from edgekit.errors import ConfigError
from edgekit.pipeline import RunOptions, build_artifact, default_precisions
from edgekit.types import Format, Precision, Task

pytest.importorskip("openvino")


def test_the_names_differ_and_transformers_get_both_by_default() -> None:
    assert Precision.parse("int8-weights") is Precision.INT8_WEIGHTS != Precision.INT8_DYNAMIC
    for task in (Task.TEXT_CLASSIFICATION, Task.FEATURE_EXTRACTION):
        assert {Precision.INT8_DYNAMIC, Precision.INT8_WEIGHTS} <= set(default_precisions(task))


@pytest.mark.parametrize(("fmt", "prec", "points_to"), [
    (Format.OPENVINO, Precision.INT8_DYNAMIC, "'int8-weights'"),
    (Format.ONNX, Precision.INT8_WEIGHTS, "int8-dynamic"),
])
def test_asking_a_format_for_the_other_name_says_which_it_has(fmt: Format, prec: Precision, points_to: str,
                                                              tiny_model: tuple[str, Path], tmp_path: Path) -> None:
    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    with pytest.raises(ConfigError) as err:  # refused before anything is built
        build_artifact(src, fmt, prec, tmp_path, progress=lambda _m: None)
    assert err.value.where == fmt.value and prec.value in str(err.value) and points_to in (err.value.hint or "")


def test_a_run_builds_each_under_its_own_name_and_reports_them_apart(tiny_model: tuple[str, Path],
                                                                     tmp_path: Path) -> None:
    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    opts = RunOptions(formats=(Format.ONNX, Format.OPENVINO),
                      precisions=(Precision.FP32, Precision.INT8_DYNAMIC, Precision.INT8_WEIGHTS),
                      calibration_limit=16, eval_limit=32,
                      bench=BenchOptions(min_runs=3, min_seconds=0.05, warmup_runs=1, memory_pass=False))
    result = edgekit.run(src, calibration="digits", out_dir=tmp_path, options=opts, progress=lambda _m: None)
    built = {a.name: a.precision.value for a in result.artifacts}
    assert built == {"model.fp32.onnx": "fp32", "model.int8-dynamic.onnx": "int8-dynamic",
                     "model.fp32.xml": "fp32", "model.int8-weights.xml": "int8-weights"}
    notes = " | ".join(result.notes)
    assert "openvino int8-dynamic could not be built" in notes and "'int8-weights'" in notes
    assert "onnx int8-weights could not be built" in notes
    report = json.loads((tmp_path / "report.json").read_text())
    by_name = {r["artifact"]: r["precision"] for r in report["rows"]}
    assert by_name["model.int8-weights.xml"] == "int8-weights" and by_name["model.int8-dynamic.onnx"] == "int8-dynamic"
    md = (tmp_path / "report.md").read_text()
    weights_lines = [line for line in md.splitlines() if "model.int8-weights.xml" in line and line.startswith("|")]
    assert weights_lines and all("int8-dynamic" not in line for line in weights_lines)


def test_default_precisions_a_format_lacks_are_skipped_without_a_note(tiny_model: tuple[str, Path], tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A transformer's defaults name both int8 flavours; each format builds the one it has, and a default the
    format lacks is no failure to report (asked for explicitly, it is: see the test above)."""
    from edgekit import pipeline

    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    monkeypatch.setattr(pipeline, "default_precisions", lambda task: (Precision.FP32, Precision.INT8_WEIGHTS))
    opts = RunOptions(formats=(Format.ONNX, Format.OPENVINO), eval_limit=16,
                      bench=BenchOptions(min_runs=3, min_seconds=0.05, warmup_runs=1, memory_pass=False))
    result = edgekit.run(src, calibration="digits", out_dir=tmp_path, options=opts, progress=lambda _m: None)
    assert sorted(a.name for a in result.artifacts) == ["model.fp32.onnx", "model.fp32.xml", "model.int8-weights.xml"]
    assert not [n for n in result.notes if "could not be built" in n], result.notes
