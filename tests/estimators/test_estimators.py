"""The estimator protocol: a new estimator is one registry entry; the ``estimate`` executor turns its answer (or
its failure) into rows of kind ``estimate``, and the report renders them by that kind, not by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekit import registry
from edgekit.artifacts import Artifact, sha256_file
from edgekit.errors import RuntimeAdapterError, UnknownNameError
from edgekit.estimators.base import Estimate, Estimator, estimate_bench, get_estimator, memory_budgets
from edgekit.executors.base import ExecutorOptions, get_executor, plan_jobs, run_targets
from edgekit.report import recommend, render_markdown
from edgekit.results import AccuracyBudget, RunResult
from edgekit.targets import Target, parse_target
from edgekit.types import Format, IOSpec, Precision, TensorSpec

IO = IOSpec((TensorSpec("x", (1, 4)),), (TensorSpec("y", (1, 2)),))


class ToyNpuEstimator:
    """A compiler estimate for a made-up NPU: latency from the file size; 'slow.onnx' fails."""

    def estimate(self, artifact: Artifact, target: Target, progress: Callable[[str], None]) -> Estimate:
        if artifact.path.name.startswith("slow"):
            raise RuntimeAdapterError("toy compiler did not finish within 1 s", where=str(artifact.path))
        size = artifact.path.stat().st_size
        return Estimate(estimator="toy-npu", accelerator="toy-1", latency_ms=size / 10.0,
                        inferences_per_second=10_000.0 / size, memory_kib={"SRAM": 3.5, "DRAM": 700.0},
                        accelerator_ops=7, cpu_ops=1, cpu_op_messages=("Softmax placed on the CPU",),
                        fit_problems=("DRAM 700 KiB > budget 512 KiB",), budgets=memory_budgets(target),
                        details={"cycles": 1234})


@pytest.fixture
def toy_registered() -> Iterator[None]:
    registry.register_estimator(registry.Entry("toy-npu", f"{__name__}:ToyNpuEstimator", (), None,
                                               formats=("onnx",)))
    registry.register_estimator(registry.Entry("absent-npu", f"{__name__}:ToyNpuEstimator",
                                               ("edgekit_no_such_compiler",), "absent", formats=("onnx",)))
    try:
        yield
    finally:
        registry.ESTIMATORS.pop("toy-npu", None)
        registry.ESTIMATORS.pop("absent-npu", None)


def _art(tmp_path: Path, name: str, size: int) -> Artifact:
    path = tmp_path / name
    path.write_bytes(b"\0" * size)
    return Artifact(path, Format.ONNX, Precision.FP32, IO, sha256_file(path))


def _toy_target(runtimes: tuple[str, ...] = ("toy-npu",)) -> Target:
    return parse_target({"schema": 1, "name": "toy-board", "access": "estimate", "memory_mb": 1,
                         "runtime": [{"name": n, "precisions": ["fp32"]} for n in runtimes]})


def test_a_new_estimator_needs_only_its_registry_entry(toy_registered: None, tmp_path: Path) -> None:
    target = _toy_target(("toy-npu", "absent-npu"))  # the targets loader knows the new names
    assert isinstance(get_estimator("toy-npu"), Estimator)
    arts = [_art(tmp_path, "model.onnx", 50), _art(tmp_path, "slow.onnx", 10)]
    rows = run_targets([target], arts, {}, [], ExecutorOptions(), lambda _m: None).rows
    got = [(r.runtime, r.artifact.name, r.status, r.kind) for r in rows]
    assert got == [("toy-npu", "model.onnx", "estimated", "estimate"), ("toy-npu", "slow.onnx", "failed", "estimate"),
                   ("absent-npu", "model.onnx", "not-available", "estimate"),
                   ("absent-npu", "slow.onnx", "not-available", "estimate")]
    est, slow, absent = rows[0], rows[1], rows[2]
    assert est.bench is not None and est.bench.stats.p50_ms == 5.0 and est.bench.samples_ms == ()
    assert est.reason == "1 op(s) placed on the CPU; does not fit: DRAM 700 KiB > budget 512 KiB"
    info = est.bench.session_info
    assert (info["fits"], info["budgets"], info["accelerator_ops"], info["details"]) == (
        False, ["DRAM 1 MB"], 7, {"cycles": 1234})
    assert est.bench.memory == {"sram_kib": 3.5, "dram_kib": 700.0}
    assert "did not finish within 1 s" in (slow.reason or "")  # a time-out is a failed row, not a crash
    assert "pip install 'edgekit[absent]'" in (absent.reason or "")
    with pytest.raises(UnknownNameError, match="unknown estimator"):
        get_estimator("no-such-npu")


def test_the_report_renders_estimates_by_kind_not_by_estimator_name(toy_registered: None, tmp_path: Path) -> None:
    arts = [_art(tmp_path, "model.onnx", 50), _art(tmp_path, "slow.onnx", 10)]
    rows = get_executor("estimate").run(plan_jobs(_toy_target(), arts), [], ExecutorOptions(), lambda _m: None).rows
    budget = AccuracyBudget()
    result = RunResult(model={"name": "m"}, dataset={"name": "d"}, budget=budget, artifacts=tuple(arts),
                       rows=rows, recommendations=recommend(rows, budget), environment={})
    md = render_markdown(result)
    results, _, estimates = md.partition("## Compiler estimates (not measured)")
    assert "toy-board" not in results.split("## Results", 1)[1]
    lines = [ln for ln in estimates.splitlines() if ln.startswith("| ") and "toy-board" in ln]
    ok = next(ln for ln in lines if ln.startswith("| model.onnx |"))
    assert "| toy-npu |" in ok and "| 5.00 |" in ok and "SRAM 3.5, DRAM 700.0" in ok
    assert "7 / 1 **(CPU fallback)**" in ok and "**NO** (DRAM 1 MB)" in ok
    failed = next(ln for ln in lines if ln.startswith("| slow.onnx |"))  # a failed estimate stays with estimates
    assert "failed: " in failed and "did not finish" in failed
    assert not result.recommendations  # estimates are never recommended


def test_estimate_bench_is_a_latency_record_without_samples() -> None:
    est = Estimate(estimator="e", accelerator="a", latency_ms=2.0, inferences_per_second=500.0,
                   memory_kib={"SRAM": 1.0}, accelerator_ops=3, cpu_ops=0)
    bench = estimate_bench(est)
    assert bench.runtime == "e" and bench.stats.n == 1 and bench.stats.p99_ms == 2.0 and bench.warmup_ms == ()
    assert bench.session_info["fits"] and bench.session_info["delegates"] == ["NPU a"] and est.problems == ()
