"""Report logic: recommendation rules, Markdown content, versioned JSON and atomic writing.

Artifacts are real files with real hashes; metrics and latencies are fixed numbers so that each
rule of the recommendation can be pinned down exactly.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.artifacts import Artifact, sha256_file
from edgekit.errors import ConfigError
from edgekit.report import load_report, recommend, render_markdown, to_json_dict, write_report
from edgekit.report.markdown import DASH
from edgekit.report.recommend import speedups
from edgekit.results import AccuracyBudget, BenchResult, LatencyStats, Metrics, Row, RunResult
from edgekit.types import Format, IOSpec, Precision, TensorSpec

IO = IOSpec((TensorSpec("input", ("batch", 3, 64, 64)),), (TensorSpec("logits", ("batch", 10)),))
BUDGET = AccuracyBudget(max_drop_points=1.0, min_cosine=0.99)
SOURCE_ACC = 0.972
ORT = ("local-cpu", "onnxruntime", "measured")
OV = ("local-cpu", "openvino", "measured")


def make_artifact(tmp_path: Path, name: str, fmt: Format, precision: Precision, size: int,
                  notes: tuple[str, ...] = ()) -> Artifact:
    path = tmp_path / "artifacts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * (size // 256) + b"\0" * (size % 256))
    return Artifact(path=path, format=fmt, precision=precision, io=IO, sha256=sha256_file(path),
                    recipe={"stage": "test", "precision": precision.value}, notes=notes)


def make_bench(p50: float, runtime: str = "onnxruntime") -> BenchResult:
    """Samples spread around ``p50`` so that their median is exactly ``p50``."""
    samples = tuple(round(p50 * f, 6) for f in (0.96, 0.98, 1.0, 1.0, 1.0, 1.03, 1.07, 1.2, 0.99))
    ordered = sorted(samples)
    stats = LatencyStats(
        n=len(samples), p50_ms=statistics.median(samples), p90_ms=ordered[7], p99_ms=ordered[8],
        mean_ms=statistics.fmean(samples), stdev_ms=statistics.stdev(samples), min_ms=ordered[0],
        max_ms=ordered[-1])
    return BenchResult(runtime=runtime, threads=2, load_ms=40.0, first_inference_ms=p50 * 3,
                       warmup_ms=(p50 * 2, p50 * 1.1, p50 * 1.05), samples_ms=samples, stats=stats,
                       peak_rss_mb=123.4,
                       session_info={"providers": ["CPUExecutionProvider"], "fallback": []},
                       environment={"cpu_model": "Test CPU", "threads": 2})


def make_metrics(cosine: float, accuracy: float) -> Metrics:
    return Metrics(n=597, cosine_mean=cosine, cosine_min=cosine - 0.02, max_abs=0.5, mean_abs=0.01,
                   top1_agreement=0.99, accuracy=accuracy, source_accuracy=SOURCE_ACC)


@pytest.fixture
def arts(tmp_path: Path) -> dict[str, Artifact]:
    return {
        "fp32": make_artifact(tmp_path, "model.fp32.onnx", Format.ONNX, Precision.FP32, 4 * 2**20),
        "int8": make_artifact(tmp_path, "model.int8.onnx", Format.ONNX, Precision.INT8, 2**20,
                              notes=("kept in float: /stem/conv",)),
        "dyn": make_artifact(tmp_path, "model.int8-dynamic.onnx", Format.ONNX, Precision.INT8_DYNAMIC, 2**20),
        "ir32": make_artifact(tmp_path, "model.fp32.xml", Format.OPENVINO, Precision.FP32, 3000),
        "ir8": make_artifact(tmp_path, "model.int8.xml", Format.OPENVINO, Precision.INT8, 1000),
    }


def local_rows(a: dict[str, Artifact]) -> list[Row]:
    """Local CPU: int8 is fast and accurate; int8-dynamic is faster still but over budget."""
    return [
        Row(a["fp32"], *ORT, make_metrics(1.0, SOURCE_ACC), make_bench(3.5)),
        Row(a["int8"], *ORT, make_metrics(0.998, SOURCE_ACC), make_bench(1.31)),
        Row(a["dyn"], *ORT, make_metrics(0.91, 0.90), make_bench(1.0)),
    ]


def pi_rows(a: dict[str, Artifact]) -> list[Row]:
    """A remote board where int8 is accurate but slower than fp32."""
    return [
        Row(a["fp32"], "raspberry-pi-5", "onnxruntime", "measured-remote", make_metrics(1.0, SOURCE_ACC),
            make_bench(10.0), host="pi@192.0.2.7"),
        Row(a["int8"], "raspberry-pi-5", "onnxruntime", "measured-remote", make_metrics(0.998, SOURCE_ACC),
            make_bench(12.5), host="pi@192.0.2.7"),
    ]


def other_rows(a: dict[str, Artifact]) -> list[Row]:
    return [
        Row(a["ir32"], "local-cpu", "openvino", "not-available",
            reason="runtime 'openvino' is not installed: pip install 'edgekit[openvino]'"),
        Row(a["int8"], "ethos-u55", "vela", "estimated", make_metrics(0.998, SOURCE_ACC),
            make_bench(0.8, "vela"), reason="compiler estimate (ethos-u-vela)", kind="estimate"),
    ]


def make_result(rows: list[Row], arts: dict[str, Artifact]) -> RunResult:
    return RunResult(
        model={"name": "effnet-lite0-digits", "source": "/models/digits.pt", "task": "image-classification"},
        dataset={"name": "digits-64", "eval_items": 597, "calibration_items": 200},
        budget=BUDGET, artifacts=tuple(arts.values()), rows=tuple(rows),
        recommendations=recommend(rows, BUDGET),
        environment={"cpu_model": "Test CPU", "cpu_flags": ["avx2", "fma"], "threads": 2,
                     "versions": {"onnxruntime": "1.32.0", "numpy": "2.4.6"}},
        notes=("calibration used 200 training items",),
    )


def table_row(md: str, artifact: str, target: str, runtime: str) -> list[str]:
    """The cells of the results-table line for one artifact × target × runtime."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 15 and cells[0] == artifact and cells[4] == target and cells[5] == runtime:
            return cells
    raise AssertionError(f"no table row for {artifact} on {target}/{runtime}")


def test_speedups_are_relative_to_fp32_of_same_format_target_and_runtime(arts: dict[str, Artifact]) -> None:
    rows = local_rows(arts) + pi_rows(arts) + other_rows(arts)
    s = speedups(rows)
    assert s[0] == pytest.approx(1.0)
    assert s[1] == pytest.approx(3.5 / 1.31)
    assert s[2] == pytest.approx(3.5 / 1.0)
    assert s[4] == pytest.approx(10.0 / 12.5)  # pi int8 compared with pi fp32, not the local one
    assert s[5] is None  # not measured
    assert s[6] is None  # an estimate has no estimated fp32 baseline


def test_recommends_fastest_within_budget_and_rejects_over_budget(arts: dict[str, Artifact]) -> None:
    (rec,) = recommend(local_rows(arts), BUDGET)
    assert (rec.target, rec.runtime, rec.artifact) == ("local-cpu", "onnxruntime", "model.int8.onnx")
    assert rec.reason == ("fastest within budget: p50 1.31 ms (2.67x vs fp32), accuracy 97.2% (+0.0 pt), "
                          "cosine 0.9980")
    dyn = next(r for r in rec.rejected if r.startswith("model.int8-dynamic.onnx"))
    assert "cosine 0.9100 < 0.99" in dyn
    assert "accuracy drop 7.2 pt > 1 pt" in dyn
    fp32 = next(r for r in rec.rejected if r.startswith("model.fp32.onnx"))
    assert "within budget but slower" in fp32 and "3.50 ms" in fp32


def test_int8_slower_than_fp32_is_not_recommended_and_report_says_so(arts: dict[str, Artifact]) -> None:
    rows = local_rows(arts) + pi_rows(arts)
    recs = {r.target: r for r in recommend(rows, BUDGET)}
    pi = recs["raspberry-pi-5"]
    assert pi.artifact == "model.fp32.onnx"
    assert pi.reason.startswith("fastest within budget: p50 10.00 ms (the fp32 baseline)")
    assert "model.int8.onnx: int8 is slower than fp32 here (0.80x): not recommended" in pi.rejected
    md = render_markdown(make_result(rows, arts))
    assert "int8 is slower than fp32 here (0.80x): not recommended" in md
    assert "### raspberry-pi-5 (onnxruntime): **model.fp32.onnx**" in md
    assert table_row(md, "model.int8.onnx", "raspberry-pi-5", "onnxruntime")[12] == "0.80x"


def test_slower_int8_loses_even_when_its_fp32_cannot_be_chosen(arts: dict[str, Artifact]) -> None:
    # OpenVINO runs both the ONNX file and the IR. The IR fp32 has no metrics (not eligible), its int8
    # is slower than it but faster than the ONNX fp32: the int8 must still not be recommended.
    rows = [
        Row(arts["fp32"], *OV, make_metrics(1.0, SOURCE_ACC), make_bench(5.0)),
        Row(arts["ir32"], *OV, None, make_bench(3.0)),
        Row(arts["ir8"], *OV, make_metrics(0.999, SOURCE_ACC), make_bench(4.0)),
    ]
    (rec,) = recommend(rows, BUDGET)
    assert rec.artifact == "model.fp32.onnx"
    assert any(r.startswith("model.int8.xml: int8 is slower than fp32 here (0.75x)") for r in rec.rejected)
    assert any(r.startswith("model.fp32.xml: not validated") for r in rec.rejected)


def test_nothing_qualifies_gives_no_artifact(arts: dict[str, Artifact]) -> None:
    rows = [Row(arts["dyn"], *ORT, make_metrics(0.91, 0.90), make_bench(1.0))]
    (rec,) = recommend(rows, BUDGET)
    assert rec.artifact is None
    assert rec.reason.startswith("nothing qualifies on local-cpu/onnxruntime")
    assert "**nothing**" in render_markdown(make_result(rows, arts))


def test_unmeasured_rows_are_never_recommended_and_show_reason_not_numbers(arts: dict[str, Artifact]) -> None:
    rows = local_rows(arts) + other_rows(arts)
    recs = recommend(rows, BUDGET)
    # Only the pair with measured rows gets a recommendation: the estimate and the missing runtime do not.
    assert [(r.target, r.runtime) for r in recs] == [("local-cpu", "onnxruntime")]
    md = render_markdown(make_result(rows, arts))
    na = table_row(md, "model.fp32.xml", "local-cpu", "openvino")
    assert na[14] == "not-available: runtime 'openvino' is not installed: pip install 'edgekit[openvino]'"
    assert na[6:14] == [DASH] * 8  # accuracy .. peak memory: nothing invented
    results, _, estimates = md.split("## Results", 1)[1].partition("## Compiler estimates (not measured)")
    assert "ethos-u55" not in results  # estimates are kept apart from measured rows
    est = next(ln for ln in estimates.splitlines() if ln.startswith("| model.int8.onnx | ethos-u55 | vela |"))
    assert "| 0.80 |" in est and "estimated" in est
    assert "ethos-u55 (vela): nothing was measured there, so no recommendation." in md
    latency = md.split("## How latency was measured", 1)[1]
    assert "ethos-u55" not in latency  # an estimate is not listed as a timed run


def test_markdown_sections_and_formatting(arts: dict[str, Artifact]) -> None:
    md = render_markdown(make_result(local_rows(arts) + pi_rows(arts), arts))
    assert md.startswith("# edgekit report: effnet-lite0-digits\n")
    for heading in ("## Dataset", "## Accuracy budget", "## Results", "## Recommendation", "## Notes",
                    "## Environment", "## How latency was measured"):
        assert f"\n{heading}\n" in md
    assert "- evaluation items (held out): 597" in md and "- calibration items: 200" in md
    assert "- model.int8.onnx: kept in float: /stem/conv" in md
    assert "- calibration used 200 training items" in md
    assert "- cpu_flags: avx2, fma" in md and "  - onnxruntime: 1.32.0" in md
    assert "### Environment on raspberry-pi-5 (pi@192.0.2.7)" in md
    cells = table_row(md, "model.int8.onnx", "local-cpu", "onnxruntime")
    assert cells[1:4] == ["onnx", "int8", "1.00"]
    assert cells[6:14] == ["97.2% (+0.0)", "99.0%", "0.9980 / 0.9780", "0.5", "1.31", "1.40", "2.67x", "123"]
    assert cells[14] == "measured"
    pi_status = table_row(md, "model.fp32.onnx", "raspberry-pi-5", "onnxruntime")[14]
    assert pi_status == "measured-remote on pi@192.0.2.7"
    # latency table: threads, ran on, n, warmup count
    lat = next(ln for ln in md.splitlines() if ln.startswith("| model.int8.onnx | local-cpu | onnxruntime"))
    assert "| 2 | CPUExecutionProvider | 9 | 3 | 40.00 | 3.93 | 1.31 |" in lat


def test_provider_fallback_is_reported(arts: dict[str, Artifact]) -> None:
    rows = local_rows(arts)
    bench = replace(make_bench(2.0), session_info={"providers": ["CPUExecutionProvider"],
                                                    "fallback": ["OpenVINOExecutionProvider"]})
    rows[1] = replace(rows[1], bench=bench)
    md = render_markdown(make_result(rows, arts))
    assert ("- model.int8.onnx on local-cpu/onnxruntime: requested OpenVINOExecutionProvider but ran on "
            "CPUExecutionProvider") in md


def test_json_round_trip_keeps_raw_samples(tmp_path: Path, arts: dict[str, Artifact]) -> None:
    rows = local_rows(arts) + pi_rows(arts) + other_rows(arts)
    result = make_result(rows, arts)
    doc = to_json_dict(result)
    assert json.loads(json.dumps(doc)) == doc  # plain JSON types only
    json_path, md_path = write_report(result, tmp_path / "out")
    loaded = load_report(json_path)
    assert (loaded["schema"], loaded["version"]) == ("edgekit.report", 1)
    assert loaded["created"].endswith("+00:00")
    assert loaded["rows"] == doc["rows"] and loaded["recommendations"] == doc["recommendations"]
    r1 = loaded["rows"][1]
    assert (r1["artifact"], r1["precision"], r1["status"], r1["kind"]) == ("model.int8.onnx", "int8", "measured",
                                                                       "measurement")
    assert r1["size_bytes"] == 2**20 and r1["artifact_sha256"] == arts["int8"].sha256
    assert r1["bench"]["samples_ms"] == list(rows[1].bench.samples_ms)  # type: ignore[union-attr]
    assert r1["bench"]["warmup_ms"] == list(rows[1].bench.warmup_ms)  # type: ignore[union-attr]
    assert r1["speedup_vs_fp32"] == pytest.approx(3.5 / 1.31)
    assert r1["metrics"]["accuracy_drop_points"] == pytest.approx(0.0)
    na = loaded["rows"][5]
    assert na["metrics"] is None and na["bench"] is None and na["speedup_vs_fp32"] is None
    assert [a["name"] for a in loaded["artifacts"]] == [a.name for a in arts.values()]
    assert loaded["budget"] == {"max_drop_points": 1.0, "min_cosine": 0.99, "governs": "both", "max_flip_rate": 0.01,
                                "max_relative_error": 0.05, "min_iou": 0.9, "min_detection_match": 0.9,
                                "max_sequence_error": 0.02}
    marker, _, body = md_path.read_text(encoding="utf-8").partition("\n")
    assert marker.startswith("<!-- edgekit report") and body == render_markdown(result)  # marked as edgekit's


def test_missing_artifact_file_does_not_break_the_report(tmp_path: Path, arts: dict[str, Artifact]) -> None:
    rows = local_rows(arts)
    arts["dyn"].path.unlink()
    result = make_result(rows, arts)
    doc = to_json_dict(result)
    assert doc["rows"][2]["size_bytes"] is None
    assert next(a for a in doc["artifacts"] if a["name"] == "model.int8-dynamic.onnx")["size_bytes"] is None
    md = render_markdown(result)
    assert table_row(md, "model.int8-dynamic.onnx", "local-cpu", "onnxruntime")[3] == DASH


def test_load_report_rejects_unknown_version_and_other_files(tmp_path: Path,
                                                              arts: dict[str, Artifact]) -> None:
    json_path, _ = write_report(make_result(local_rows(arts), arts), tmp_path)
    doc = json.loads(json_path.read_text())
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**doc, "version": 2}))
    with pytest.raises(ConfigError, match="unknown report version") as info:
        load_report(newer)
    assert info.value.where == f"{newer}:version" and info.value.got == 2
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**doc, "schema": "pyperf"}))
    with pytest.raises(ConfigError, match="not an edgekit report"):
        load_report(other)
    broken = tmp_path / "broken.json"
    broken.write_text(json_path.read_text()[:100])
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_report(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_report(tmp_path / "missing.json")


def test_write_report_is_atomic_and_overwrites(tmp_path: Path, arts: dict[str, Artifact]) -> None:
    out = tmp_path / "run" / "report"
    first = make_result(local_rows(arts), arts)
    write_report(first, out)
    second = replace(first, notes=("second run",))
    json_path, md_path = write_report(second, out)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]  # no temp files
    assert load_report(json_path)["notes"] == ["second run"]
    assert "- second run" in md_path.read_text(encoding="utf-8")
