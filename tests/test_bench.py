"""edgekit.bench and edgekit.environment on a tiny real ONNX model run by ONNX Runtime."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.bench import BenchOptions, benchmark, memory_pass, result_from_dict, summarize, time_session
from edgekit.environment import environment
from edgekit.errors import BenchmarkError, ConfigError
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.ort import OrtRuntime, OrtSession

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_helpers import make_feeds, make_model  # noqa: E402

FAST = BenchOptions(warmup_runs=2, min_runs=5, min_seconds=0.0, memory_pass=False)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "matmul_relu.onnx"
    make_model(path)
    return path


@pytest.fixture(scope="module")
def session(model_path: Path) -> OrtSession:
    return OrtRuntime().load(model_path, RuntimeOptions(threads=1))


class RecordingSession:
    """The real session, plus a record of which feed each run used."""

    def __init__(self, inner: OrtSession) -> None:
        self._inner = inner
        self.input_names = inner.input_names
        self.used: list[int] = []

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.used.append(int(feeds["tag"][0]))
        return self._inner.run({"X": feeds["X"]})

    def info(self) -> dict[str, Any]:
        return self._inner.info()


def test_summarize_matches_numpy_and_statistics() -> None:
    samples = [3.0, 1.0, 2.0, 10.0, 4.0, 5.0, 2.5, 7.0, 1.5, 100.0]
    s = summarize(samples)
    assert s.n == 10
    assert (s.p50_ms, s.p90_ms, s.p99_ms) == tuple(np.percentile(samples, [50, 90, 99]))
    assert s.p50_ms == pytest.approx(3.5)
    assert s.p90_ms == pytest.approx(19.0)  # linear between 10 and 100
    assert s.mean_ms == pytest.approx(statistics.fmean(samples))
    assert s.stdev_ms == pytest.approx(statistics.stdev(samples))
    assert (s.min_ms, s.max_ms) == (1.0, 100.0)


def test_summarize_edge_cases() -> None:
    one = summarize([2.5])
    assert (one.n, one.p50_ms, one.p99_ms, one.stdev_ms) == (1, 2.5, 2.5, 0.0)
    with pytest.raises(BenchmarkError, match="no latency samples"):
        summarize([])


def test_time_session_respects_min_runs_and_min_seconds(session: OrtSession) -> None:
    opts = BenchOptions(warmup_runs=3, min_runs=5, min_seconds=0.2, memory_pass=False)
    first, warmup, samples = time_session(session, make_feeds(4), opts)
    assert first > 0
    assert len(warmup) == 3
    assert len(samples) >= 5
    assert sum(samples) >= 200.0  # timed inference time, ms
    assert all(x > 0 for x in samples)


def test_time_session_stops_at_min_runs_when_time_is_met(session: OrtSession) -> None:
    _, warmup, samples = time_session(session, make_feeds(2), BenchOptions(warmup_runs=0, min_runs=7,
                                                                           min_seconds=0.0))
    assert (len(warmup), len(samples)) == (0, 7)


def test_time_session_caps_at_max_runs_and_max_seconds(session: OrtSession) -> None:
    _, _, samples = time_session(session, make_feeds(1), BenchOptions(warmup_runs=0, min_runs=3, max_runs=3,
                                                                      min_seconds=30.0))
    assert len(samples) == 3
    t0 = time.perf_counter()
    _, _, samples = time_session(session, make_feeds(1), BenchOptions(warmup_runs=0, min_runs=10**9,
                                                                      max_runs=10**9, min_seconds=30.0,
                                                                      max_seconds=0.15))
    assert time.perf_counter() - t0 < 2.0
    assert len(samples) > 10


def test_time_session_cycles_through_feeds(session: OrtSession) -> None:
    feeds = [{"X": f["X"], "tag": np.array([i])} for i, f in enumerate(make_feeds(3))]
    rec = RecordingSession(session)
    time_session(rec, feeds, BenchOptions(warmup_runs=2, min_runs=4, min_seconds=0.0))
    assert rec.used == [0, 1, 2, 0, 1, 2, 0]  # first, 2 warmups, 4 timed


def test_progress_is_throttled(session: OrtSession) -> None:
    calls: list[tuple[str, int, int]] = []
    t0 = time.perf_counter()
    time_session(session, make_feeds(2), BenchOptions(warmup_runs=5, min_runs=5, min_seconds=0.35),
                 progress=lambda phase, done, total: calls.append((phase, done, total)))
    elapsed = time.perf_counter() - t0
    phases = [c[0] for c in calls]
    assert phases[0] == "warmup" and phases[-1] == "timed"
    assert calls[-1][1] == calls[-1][2] > 5  # final call: done == total == samples taken
    assert len(calls) <= 10 * elapsed + 6  # ~10/s plus start/end of each phase


def test_time_session_errors(session: OrtSession) -> None:
    with pytest.raises(BenchmarkError, match="no input feeds") as err:
        time_session(session, [], FAST)
    assert err.value.hint
    with pytest.raises(BenchmarkError, match="lacks model inputs") as err:
        time_session(session, [{"Z": np.zeros((1, 64), np.float32)}], FAST)
    assert err.value.where == "feeds[0]"
    with pytest.raises(BenchmarkError, match="inference failed during first run") as err:
        time_session(session, [{"X": np.zeros((1, 64), np.float64)}], FAST)  # wrong dtype
    assert "dtypes" in (err.value.hint or "")


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"bench\.min_runs \(--min-runs\).*max_runs = 5"):
        BenchOptions(min_runs=10, max_runs=5)
    with pytest.raises(ConfigError, match=r"bench\.threads"):
        BenchOptions(threads=0)
    with pytest.raises(ConfigError, match=r"bench_options\.warmups"):
        BenchOptions.from_dict({"warmups": 3})
    assert BenchOptions.from_dict({"min_runs": 3}) == BenchOptions(min_runs=3)


def test_benchmark_end_to_end_with_memory_pass(model_path: Path) -> None:
    opts = BenchOptions(warmup_runs=3, min_runs=20, min_seconds=0.1, memory_runs=3)
    seen: list[str] = []
    res = benchmark("onnxruntime", model_path, make_feeds(4), opts, RuntimeOptions(),
                    progress=lambda phase, done, total: seen.append(phase))
    assert res.runtime == "onnxruntime" and res.threads == 1
    assert res.load_ms > 0 and res.first_inference_ms > 0
    assert len(res.warmup_ms) == 3 and len(res.samples_ms) >= 20
    assert res.stats == summarize(res.samples_ms)
    assert res.session_info["providers"] == ["CPUExecutionProvider"]
    assert res.session_info["intra_op_threads"] == 1
    assert res.environment["runtime_versions"]["onnxruntime"]
    assert res.environment["bench_method"]["options"]["min_runs"] == 20
    mem = res.memory
    assert "error" not in mem, mem
    assert mem["peak_rss_mb"] > mem["baseline_rss_mb"] > 0
    assert mem["delta_mb"] == pytest.approx(mem["peak_rss_mb"] - mem["baseline_rss_mb"], abs=0.02)
    assert mem["runs"] == 3 and mem["method"]
    assert res.peak_rss_mb == mem["peak_rss_mb"]
    assert {"warmup", "timed"} <= set(seen)
    assert result_from_dict(res.to_dict()) == res


def test_benchmark_thread_conflict_and_empty_feeds(model_path: Path) -> None:
    with pytest.raises(ConfigError, match="thread"):
        benchmark("onnxruntime", model_path, make_feeds(1), FAST, RuntimeOptions(threads=4))
    with pytest.raises(BenchmarkError, match="no input feeds"):
        benchmark("onnxruntime", model_path, [], FAST, RuntimeOptions())
    res = benchmark("onnxruntime", model_path, make_feeds(1), BenchOptions(threads=None, min_runs=2,
                    warmup_runs=0, min_seconds=0.0, memory_pass=False), RuntimeOptions(threads=2))
    assert res.threads == 2 and res.peak_rss_mb is None and res.memory == {}


def test_failed_memory_pass_is_reported_not_raised(tmp_path: Path) -> None:
    out = memory_pass("onnxruntime", tmp_path / "missing.onnx", make_feeds(1), FAST, RuntimeOptions(threads=1))
    assert set(out) == {"error"}
    assert "model file not found" in out["error"]


def test_environment_has_cpu_and_runtime_versions() -> None:
    env = environment(["onnxruntime", "no-such-runtime"])
    assert env["cpu_model"]
    assert env["logical_cores"] >= 1
    assert env["machine"] and env["python"] and env["numpy"] == np.__version__
    import onnxruntime

    assert env["runtime_versions"] == {"onnxruntime": onnxruntime.__version__}
    assert env["memory_total_mb"] > env["memory_available_mb"] > 0
    assert isinstance(env["cpu_flags"], list) and isinstance(env["thread_env"], dict)


def test_environment_reads_thread_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert environment()["thread_env"]["OMP_NUM_THREADS"] == "3"


def test_core_types_are_recorded_where_a_machine_mixes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """big.LITTLE: different CPU part numbers per processor (a 2+2 cpuinfo as an RK3399-like board shows it);
    a uniform machine records none. (The Intel-hybrid sysfs lists are read as they are; not on this VM.)"""
    from edgekit import environment as env_module
    from edgekit.environment import _core_types

    monkeypatch.setattr(env_module, "_read", lambda _path: None)

    def block(n: int, part: str) -> dict[str, str]:
        return {"processor": str(n), "CPU implementer": "0x41", "CPU part": part}

    mixed = [block(0, "0xd03"), block(1, "0xd03"), block(2, "0xd08"), block(3, "0xd08")]
    assert _core_types(mixed) == {"part 0xd03": "0,1", "part 0xd08": "2,3"}
    assert _core_types([block(0, "0xd0b"), block(1, "0xd0b")]) is None


def test_machine_notes_name_a_moving_clock_and_mixed_cores() -> None:
    from edgekit.environment import machine_notes

    assert machine_notes({"cpufreq_governor": "performance"}) == []
    (line,) = machine_notes({"cpufreq_governor": "powersave"})
    assert "governor 'powersave'" in line and "cpupower frequency-set -g performance" in line
    (line,) = machine_notes({"core_types": {"performance": "0-7", "efficient": "8-15"}})
    assert "performance: CPUs 0-7; efficient: CPUs 8-15" in line and "taskset" in line
