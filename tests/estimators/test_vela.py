"""Arm Ethos-U estimates through Vela: parsed numbers, op placement, memory fit, bad inputs, report rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edgekit.errors import ConfigError, RuntimeAdapterError
from edgekit.targets import load_target

pytest.importorskip("ethosu.vela")

from edgekit.estimators.vela import ACCELERATORS, as_bench, estimate, estimate_rows

TARGETS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512", "ethos-u85-256")


@pytest.mark.parametrize("name", TARGETS)
def test_every_ethos_u_target_compiles_the_int8_model_on_the_npu(name: str, small_tflite: dict[str, Any]) -> None:
    target = load_target(name)
    assert target.access == "estimate" and target.extra["estimate"]["accelerator"] in ACCELERATORS
    est = estimate(small_tflite["int8"].path, target.extra["estimate"]["accelerator"])
    assert est.accelerator == name
    assert est.npu_ops > 0 and est.cpu_ops == 0, est.cpu_op_messages
    assert 0 < est.latency_ms < 100 and est.inferences_per_second == pytest.approx(1000 / est.latency_ms, rel=0.01)
    assert est.cycles_npu > 0 and est.sram_kib > 0 and est.flash_kib + est.dram_kib > 0 and est.weights_in


def test_bigger_npu_is_estimated_no_slower(small_tflite: dict[str, Any]) -> None:
    small = estimate(small_tflite["int8"].path, "ethos-u55-128")
    big = estimate(small_tflite["int8"].path, "ethos-u85-256")
    assert big.cycles_npu <= small.cycles_npu


def test_float_model_to_ethos_u_is_a_clear_error(small_tflite: dict[str, Any]) -> None:
    with pytest.raises(RuntimeAdapterError) as err:
        estimate(small_tflite["fp32"].path, "ethos-u55-128")
    assert "int8" in str(err.value) and "--precisions int8" in (err.value.hint or "")


def test_unknown_accelerator_and_non_tflite_are_errors(small_tflite: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        estimate(small_tflite["int8"].path, "ethos-u99-1")
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(RuntimeAdapterError, match="not a TFLite flatbuffer"):
        estimate(bad, "ethos-u55-128")


def test_rows_are_estimated_and_a_model_over_budget_is_reported_as_not_fitting(small_tflite: dict[str, Any]) -> None:
    target = load_target("ethos-u55-128")
    arts = [small_tflite["fp32"], small_tflite["int8"]]
    rows = estimate_rows(target, arts, {}, lambda _m: None)
    assert [r.artifact.precision.value for r in rows] == ["int8"]  # the target only takes int8
    row = rows[0]
    assert row.status == "estimated" and row.kind == "estimate" and row.bench is not None
    assert row.bench.samples_ms == () and row.runtime == "ethos-u-vela" == row.bench.runtime
    assert row.bench.session_info["fits"] and row.reason is None
    tight = replace(target, sram_kb=1, flash_kb=1)
    (row,) = estimate_rows(tight, arts, {}, lambda _m: None)
    assert not row.bench.session_info["fits"]  # type: ignore[union-attr]
    assert row.reason is not None and "does not fit" in row.reason and "budget 1 KiB" in row.reason
    est = estimate(small_tflite["int8"].path, "ethos-u55-128")
    assert as_bench(est, tight).session_info["fit_problems"][0].startswith("SRAM")


def test_estimate_settings_are_checked_and_a_time_out_is_a_failed_row(small_tflite: dict[str, Any]) -> None:
    """Through the registry and the estimate executor: a misspelled [estimate] key names file:key, a
    compile past timeout_s is a failed row (never a crashed run)."""
    from edgekit.estimators.base import get_estimator
    from edgekit.estimators.vela import VelaEstimator
    from edgekit.executors.base import ExecutorOptions, get_executor, plan_jobs

    target = load_target("ethos-u55-128")
    assert isinstance(get_estimator("ethos-u-vela"), VelaEstimator)

    def rows(tgt: Any) -> list[Any]:
        jobs = plan_jobs(tgt, [small_tflite["int8"]])
        return list(get_executor("estimate").run(jobs, [], ExecutorOptions(), lambda _m: None).rows)

    (typo,) = rows(replace(target, extra={"estimate": {"accelerator": "ethos-u55-128", "sytem_config": "x"}}))
    assert typo.status == "failed" and typo.kind == "estimate" and "estimate.sytem_config" in (typo.reason or "")
    (slow,) = rows(replace(target, extra={"estimate": {"accelerator": "ethos-u55-128", "timeout_s": 0.001}}))
    assert slow.status == "failed" and "did not finish within 0.001 s" in (slow.reason or "")


@pytest.mark.slow
def test_run_reports_measured_tflite_rows_and_ethos_u_estimates_apart(small_tflite: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    from edgekit.pipeline import RunOptions, run
    from edgekit.types import Format, Precision

    opts = RunOptions(formats=(Format.TFLITE,), precisions=(Precision.FP32, Precision.INT8),
                      targets=("local-cpu", "ethos-u55-128"), calibration_limit=64, eval_limit=40)
    result = run(small_tflite["source"], small_tflite["dataset"], tmp_path, opts, progress=lambda _m: None)
    measured = [r for r in result.rows if r.status == "measured" and r.runtime == "litert"]
    estimated = [r for r in result.rows if r.status == "estimated"]
    assert {r.artifact.precision.value for r in measured} == {"fp32", "int8"}
    assert len(estimated) == 1 and estimated[0].artifact.precision is Precision.INT8
    assert all(r.target != "ethos-u55-128" for r in result.recommendations if r.artifact)
    md = (tmp_path / "report.md").read_text()
    results, _, rest = md.partition("## Compiler estimates (not measured)")
    assert "ethos-u55-128" not in results.split("## Results", 1)[1]  # kept apart from measured rows
    assert "ethos-u-vela" in rest and "yes" in rest.split("##")[0]


def test_relative_artifact_path_works(small_tflite: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """`edgekit run --out runs/x` gives relative artifact paths; Vela runs in a temp dir, so they must be resolved."""
    path = small_tflite["int8"].path
    monkeypatch.chdir(path.parent.parent)
    est = estimate(Path(path.parent.name) / path.name, "ethos-u55-128")
    assert est.npu_ops > 0
