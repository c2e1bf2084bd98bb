"""End to end on real models: the bars of the core issue, measured with the real ORT kernels."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit
from edgekit.bench import BenchOptions
from edgekit.pipeline import RunOptions
from edgekit.report.recommend import MEASURED, budget_failures
from edgekit.results import RunResult
from edgekit.types import Precision

REPO = Path(__file__).resolve().parents[1]
QUICK_BENCH = BenchOptions(min_runs=10, min_seconds=0.3, warmup_runs=3, memory_pass=False)


def _row(result: RunResult, precision: Precision) -> edgekit.results.Row:  # type: ignore[name-defined]
    return next(r for r in result.rows if r.artifact.precision is precision)


def assert_budget_bars(result: RunResult, may_miss: frozenset[str] = frozenset()) -> None:
    """The bar for every artifact the run built, at the run's own budget: it is measured and within the
    budget; or, for one named in ``may_miss`` (a precision that legitimately misses on this model), every
    recommendation of a pair it ran on rejects it with the over-budget reason. Whatever is recommended is
    within the budget (never merely "fp32 qualifies")."""
    budget = result.budget
    assert result.artifacts, "the run built nothing"
    for art in result.artifacts:
        rows = [r for r in result.rows if r.artifact.name == art.name and r.status in MEASURED]
        assert rows and all(r.metrics is not None for r in rows), f"{art.name} was not validated and measured"
        failures = budget_failures(rows[0], budget)  # the metrics are the artifact's, the same on every row
        if not failures:
            continue
        assert art.name in may_miss, f"{art.name} misses the budget: {failures}"
        for r in rows:
            rec = next(x for x in result.recommendations if (x.target, x.runtime) == (r.target, r.runtime))
            line = next(x for x in rec.rejected if x.startswith(f"{art.name}: "))
            assert rec.artifact != art.name and "over budget" in line, line
    assert result.recommendations
    for rec in result.recommendations:
        assert rec.artifact is not None, rec.reason
        chosen = next(r for r in result.rows
                      if r.artifact.name == rec.artifact and (r.target, r.runtime) == (rec.target, rec.runtime))
        assert not budget_failures(chosen, budget), f"{rec.artifact} recommended over budget"


# Whole-process calibration peak of the digits int8 build, measured standalone (a fresh `edgekit run`
# process, 200 calibration items): 519 MB (README "Measured numbers"; 615-652 MB for 100 photo items at
# 224x224 in benchmarks/results/int8_accuracy_vs_defaults.md). The test runs the same command in a fresh
# process, so the figures compare; 1.5x leaves room for other library builds and CPUs.
DIGITS_CALIBRATION_PEAK_MB = 519
PEAK_MARGIN = 1.5


@pytest.mark.slow
def test_digits_efficientnet_int8_keeps_accuracy(digits_model_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "edgekit.cli", "run", "--model",
           f"{Path('examples/digits_model.py').resolve()}:build_model",
           "--checkpoint", str(digits_model_dir / "model.safetensors"), "--task", "image-classification",
           "--calibration", "digits", "--formats", "onnx", "--precisions", "fp32,int8", "--min-runs", "10",
           "--min-seconds", "0.3", "--warmup", "3", "--no-memory", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {r["precision"]: r for r in report["rows"] if r["runtime"] == "onnxruntime"}
    fp32, int8 = rows["fp32"]["metrics"], rows["int8"]["metrics"]
    assert fp32["n"] == 597 and fp32["accuracy"] > 0.95
    drop = int8["accuracy_drop_points"]
    assert drop is not None and drop <= report["budget"]["max_drop_points"], f"int8 lost {drop:.2f} points"
    assert int8["cosine_mean"] >= report["budget"]["min_cosine"], int8["cosine_mean"]
    settings = next(a for a in report["artifacts"] if a["name"] == "model.int8.onnx")["settings"]
    peak = settings["calibration_peak_rss_mb"]
    assert 0 < peak < PEAK_MARGIN * DIGITS_CALIBRATION_PEAK_MB, \
        f"calibration peak {peak:.0f} MB (standalone figure {DIGITS_CALIBRATION_PEAK_MB} MB)"
    assert 0 <= settings["calibration_rss_increase_mb"] < peak
    assert report["version"] == 1 and len(rows) == 2
    assert all(r["bench"]["samples_ms"] for r in report["rows"] if r["status"] == "measured")
    for rec in report["recommendations"]:  # what is recommended is within the budget
        chosen = next(r for r in report["rows"] if r["artifact"] == rec["artifact"] and r["runtime"] == rec["runtime"])
        assert chosen["metrics"]["accuracy_drop_points"] <= report["budget"]["max_drop_points"]
    md = (tmp_path / "report.md").read_text()
    assert "model.int8.onnx" in md and "Recommendation" in md
    # the report says whether the calibration set was big and varied enough (edgekit.calibration_check)
    assert "calibration check: 200 calibration items: 150 will set the ranges, 50 will judge" in md and "; ready" in md


@pytest.mark.slow
def test_minilm_int8_embeddings_keep_cosine(minilm_dir: Path, tmp_path: Path) -> None:
    opts = RunOptions(precisions=(Precision.FP32, Precision.INT8_DYNAMIC, Precision.INT8_WEIGHTS, Precision.INT8),
                      bench=QUICK_BENCH)
    result = edgekit.run(minilm_dir, calibration="sentences", out_dir=tmp_path, options=opts)
    assert result.model["task"] == "feature-extraction"
    built = {a.name: a.precision for a in result.artifacts}
    assert built["model.int8-dynamic.onnx"] is Precision.INT8_DYNAMIC
    if "model.fp32.xml" in built:  # OpenVINO's weight-only int8 under its own name, never as int8-dynamic
        assert built["model.int8-weights.xml"] is Precision.INT8_WEIGHTS and "model.int8-dynamic.xml" not in built
        assert any("openvino int8-dynamic could not be built" in n and "int8-weights" in n for n in result.notes)
    dyn = _row(result, Precision.INT8_DYNAMIC).metrics
    assert dyn is not None and dyn.n == 100
    # static int8 of a transformer (ONNX QDQ: cosine 0.84-0.94 measured) may miss the budget: it is measured,
    # reported, and rejected for it; every other precision must be within the budget
    assert_budget_bars(result, may_miss=frozenset({"model.int8.onnx", "model.int8.tflite"}))


@pytest.mark.slow
def test_hf_sequence_classifier_from_trainer_dir(sentiment_dir: Path, tmp_path: Path) -> None:
    opts = RunOptions(precisions=(Precision.FP32, Precision.INT8_DYNAMIC, Precision.INT8_WEIGHTS), bench=QUICK_BENCH)
    result = edgekit.run(sentiment_dir, calibration="sentences", out_dir=tmp_path, options=opts)
    assert result.model["task"] == "text-classification"
    fp32 = _row(result, Precision.FP32).metrics
    assert fp32 is not None and fp32.accuracy is not None and fp32.top1_agreement == 1.0
    dyn = _row(result, Precision.INT8_DYNAMIC).metrics
    assert dyn is not None and dyn.accuracy_drop_points is not None
    # ONNX Runtime dynamic int8 of this 2-class classifier measured here: logit cosine 0.980 (< 0.99) at a
    # 1.0 pt accuracy drop, so the cosine rule refuses it; TFLite's dynamic int8 and OpenVINO's weight-only
    # int8 kept cosine >= 0.9999. The ONNX one may miss; it must then be rejected for it.
    assert_budget_bars(result, may_miss=frozenset({"model.int8-dynamic.onnx"}))


def test_python_api_with_a_module_and_an_onnx_source(tiny_model: tuple[str, Path], tmp_path: Path) -> None:
    import importlib.util

    spec, _ = tiny_model
    path = spec.rpartition(":")[0]
    mod_spec = importlib.util.spec_from_file_location("tiny_for_api", path)
    assert mod_spec and mod_spec.loader
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    module = mod.build()
    src = edgekit.load_source(module, input_shapes={"input": (1, 3, 16, 16)}, task="image-classification",
                              preprocess={"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    fp32 = edgekit.export(src, tmp_path / "a", calibration="digits")
    assert fp32.precision is Precision.FP32 and fp32.path.exists()
    metrics = edgekit.validate(src, fp32, calibration="digits", limit=40)
    assert metrics.top1_agreement == 1.0 and metrics.cosine_min > 0.9999
    # the exported file is itself a valid source, validated against ORT fp32 of the file
    onnx_src = edgekit.load_source(fp32.path, task="image-classification")
    assert onnx_src.io.inputs[0].shape[1:] == (3, 16, 16)
    int8 = edgekit.quantize(onnx_src, edgekit.export(onnx_src, tmp_path / "b", calibration="digits"), "int8",
                            calibration="digits", out_dir=tmp_path / "b",
                            options=RunOptions(calibration_limit=32))
    assert int8.precision is Precision.INT8 and int8.settings["calibration_items"] == 32
    bench = edgekit.benchmark(int8, source=onnx_src, calibration="digits",
                              options=RunOptions(bench=QUICK_BENCH, threads=1))
    assert bench.stats.n >= 10 and bench.threads == 1 and bench.samples_ms
