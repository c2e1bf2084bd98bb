"""The executor protocol: the registry's table by access, job planning, the local executor, and a new executor
added with one registry entry (no other file), routed by the targets loader and the pipeline's run_targets."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import pytest

from edgekit import registry
from edgekit.artifacts import Artifact, sha256_file
from edgekit.bench import BenchOptions
from edgekit.errors import ConfigError, MissingDependencyError, UnknownNameError
from edgekit.executors.base import (
    Executor,
    ExecutorOptions,
    ExecutorResult,
    Feeds,
    Progress,
    TargetJob,
    get_executor,
    plan_jobs,
    run_targets,
)
from edgekit.executors.estimate import EstimateExecutor
from edgekit.executors.local import LocalExecutor
from edgekit.results import Metrics
from edgekit.targets import RuntimeSpec, load_target, parse_target
from edgekit.types import Format, IOSpec, Precision, TensorSpec

pytest.importorskip("onnxruntime")
from onnx_helpers import make_feeds, make_model

SIZE = 16
FAST = BenchOptions(threads=1, warmup_runs=1, min_runs=3, min_seconds=0.0, memory_pass=False)
IO = IOSpec((TensorSpec("X", (1, SIZE), "float32"),), (TensorSpec("Y", (1, SIZE), "float32"),))


@pytest.fixture(scope="module")
def arts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    d = tmp_path_factory.mktemp("exec")
    path = d / "model.fp32.onnx"
    make_model(path, SIZE)
    fp32 = Artifact(path, Format.ONNX, Precision.FP32, IO, sha256_file(path))
    broken = d / "model.fp16.onnx"
    broken.write_bytes(b"definitely not an onnx protobuf")
    fp16 = Artifact(broken, Format.ONNX, Precision.FP16, IO, sha256_file(broken))
    tfl = d / "model.int8.tflite"
    tfl.write_bytes(b"x")
    int8 = Artifact(tfl, Format.TFLITE, Precision.INT8, IO, sha256_file(tfl))
    return {"fp32": fp32, "fp16": fp16, "int8": int8}


def _target(access: str, runtimes: str, **extra: object) -> dict[str, object]:
    return {"schema": 1, "name": f"t-{access}", "access": access, "arch": "x86_64", "isa": [],
            "runtime": [{"name": n, "precisions": ["fp32", "fp16", "int8"]} for n in runtimes.split(",")], **extra}


def test_every_access_kind_has_a_registered_executor_that_implements_the_protocol() -> None:
    assert tuple(registry.EXECUTORS) == registry.access_kinds()
    for access in ("local", "estimate", "ssh"):
        assert isinstance(get_executor(access), Executor)
    assert isinstance(get_executor("local"), LocalExecutor)
    assert isinstance(get_executor("estimate"), EstimateExecutor)
    with pytest.raises(UnknownNameError, match="unknown access kind") as err:
        get_executor("carrier-pigeon")
    assert "local" in (err.value.expected or "")
    assert registry.EXECUTORS["ssh"].extra == "ssh" and registry.EXECUTORS["ssh"].requires == ("asyncssh",)


def test_plan_jobs_pairs_runtimes_with_the_formats_and_precisions_they_take(arts: dict[str, Artifact]) -> None:
    target = load_target("local-cpu")
    metrics = {arts["fp32"].name: Metrics(n=1, cosine_mean=1.0, cosine_min=1.0, max_abs=0.0, mean_abs=0.0)}
    jobs = plan_jobs(target, list(arts.values()), metrics)
    pairs = [(j.runtime.name, j.artifact.precision.value) for j in jobs]
    # ONNX goes to ONNX Runtime and OpenVINO, the .tflite to LiteRT, in the target's runtime order
    assert pairs == [("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("openvino", "fp32"), ("openvino", "fp16"),
                     ("litert", "int8")]
    assert jobs[0].metrics is metrics[arts["fp32"].name] and jobs[1].metrics is None
    only_int8 = replace(target, runtimes=tuple(replace(r, precisions=(Precision.INT8,)) for r in target.runtimes))
    assert [j.artifact.format for j in plan_jobs(only_int8, list(arts.values()))] == [Format.TFLITE]
    vela = load_target("ethos-u55-128")
    assert [(j.runtime.name, j.artifact.name) for j in plan_jobs(vela, list(arts.values()))] == [
        ("ethos-u-vela", arts["int8"].name)]  # the estimator's registered formats: int8 .tflite only


def test_local_executor_measures_and_reports_failures_as_rows(arts: dict[str, Artifact]) -> None:
    target = parse_target(_target("local", "onnxruntime"))
    jobs = plan_jobs(target, [arts["fp32"], arts["fp16"]])
    messages: list[str] = []
    result = LocalExecutor().run(jobs, make_feeds(2, SIZE), ExecutorOptions(bench=FAST), messages.append)
    fp32, fp16 = result.rows
    assert (fp32.status, fp32.kind, fp32.target, fp32.runtime) == ("measured", "measurement", "t-local", "onnxruntime")
    assert fp32.bench is not None and fp32.bench.stats.n >= 3 and fp32.bench.threads == 1
    assert fp16.status == "failed" and fp16.bench is None and fp16.reason and "model.fp16.onnx" in fp16.reason
    assert any("benchmark model.fp32.onnx on t-local/onnxruntime" in m for m in messages)
    threads = ExecutorOptions(bench=FAST, threads=2).threads_for(RuntimeSpec("onnxruntime", threads=1))
    assert threads == 2  # the run's threads win over the target's, the target's over the benchmark's
    assert ExecutorOptions(bench=FAST).threads_for(RuntimeSpec("onnxruntime", threads=3)) == 3


def test_a_runtime_whose_package_is_missing_is_not_available_with_the_pip_line(
        arts: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch) -> None:
    entry = replace(registry.RUNTIMES["onnxruntime"], requires=("edgekit_no_such_package_xyz",), extra="onnxrt-x")
    monkeypatch.setitem(registry.RUNTIMES, "onnxruntime", entry)
    target = parse_target(_target("local", "onnxruntime"))
    (row,) = LocalExecutor().run(plan_jobs(target, [arts["fp32"]]), make_feeds(1, SIZE),
                                 ExecutorOptions(bench=FAST), lambda _m: None).rows
    assert row.status == "not-available" and "pip install 'edgekit[onnxrt-x]'" in (row.reason or "")


# ------------------------------------------------------------------------------------------ a new executor
class EchoExecutor:
    """A new kind of executor, defined outside edgekit: one row per job saying where it would have run."""

    seen: ClassVar[list[list[str]]] = []

    def run(self, jobs: Sequence[TargetJob], feeds: Sequence[Feeds], options: ExecutorOptions,
            progress: Progress) -> ExecutorResult:
        EchoExecutor.seen.append([j.artifact.name for j in jobs])
        return ExecutorResult(tuple(j.row("not-available", reason=f"echo: {len(feeds)} feeds") for j in jobs),
                              notes=("echo ran",))


@pytest.fixture
def echo_registered() -> Iterator[None]:
    registry.register_executor(registry.Entry("echo", f"{__name__}:EchoExecutor", (), None, runs="runtime"))
    EchoExecutor.seen = []
    try:
        yield
    finally:
        registry.EXECUTORS.pop("echo", None)


def test_a_new_executor_needs_only_its_registry_entry(echo_registered: None, arts: dict[str, Artifact],
                                                      tmp_path: Path) -> None:
    """Targets accept the new access, and run_targets (the pipeline's loop) sends its jobs there, all at once,
    keeping the rows in target order among the other executors' rows."""
    echo = tmp_path / "echo-board.toml"
    echo.write_text('schema = 1\nname = "echo-board"\naccess = "echo"\n[[runtime]]\nname = "onnxruntime"\n')
    targets = [load_target(echo), parse_target(_target("local", "onnxruntime"))]
    assert targets[0].access == "echo" and "echo" in registry.access_kinds()
    result = run_targets(targets, [arts["fp32"]], {}, make_feeds(2, SIZE), ExecutorOptions(bench=FAST),
                         lambda _m: None)
    assert [(r.target, r.status) for r in result.rows] == [("echo-board", "not-available"), ("t-local", "measured")]
    assert result.rows[0].reason == "echo: 2 feeds" and result.notes == ("echo ran",)
    assert EchoExecutor.seen == [[arts["fp32"].name]]


def test_registry_refuses_bad_executor_entries_and_missing_packages_become_rows(
        echo_registered: None, arts: dict[str, Artifact], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="registered twice"):
        registry.register_executor(registry.Entry("echo", f"{__name__}:EchoExecutor", (), None, runs="runtime"))
    with pytest.raises(ConfigError, match="must say what its targets name"):
        registry.register_executor(registry.Entry("echo2", f"{__name__}:EchoExecutor", (), None))
    with pytest.raises(ConfigError, match="unknown access kind"):
        parse_target(_target("teleport", "onnxruntime"))
    monkeypatch.setitem(registry.EXECUTORS, "echo", replace(registry.EXECUTORS["echo"],
                                                            requires=("edgekit_no_such_module",), extra="echo"))
    with pytest.raises(MissingDependencyError):
        get_executor("echo")
    target = parse_target({**_target("echo", "onnxruntime"), "name": "e"})
    (row,) = run_targets([target], [arts["fp32"]], {}, [], ExecutorOptions(), lambda _m: None).rows
    assert row.status == "not-available" and "pip install 'edgekit[echo]'" in (row.reason or "")
