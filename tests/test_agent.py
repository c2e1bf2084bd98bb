"""The on-device agent: feeds files, job validation and the CLI in every mode, on a real ONNX model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.agent import Job, read_feeds_npz, read_outputs_npz, write_feeds_npz
from edgekit.bench import result_from_dict
from edgekit.errors import BenchmarkError, ConfigError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx_helpers import make_feeds, make_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZE = 64


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding model.onnx (Y = Relu(X @ W)), W.npy and feeds.npz (3 feeds)."""
    d = tmp_path_factory.mktemp("agent")
    w = make_model(d / "model.onnx", SIZE)
    np.save(d / "W.npy", w)
    write_feeds_npz(make_feeds(3, SIZE), d / "feeds.npz")
    return d


def run_agent(job: dict[str, Any] | None, folder: Path, args: list[str] | None = None,
              stdin: str | None = None) -> tuple[int, dict[str, Any], str]:
    """Run ``python -m edgekit.agent`` as a board would; return (exit code, the JSON printed, stderr)."""
    if job is not None:
        (folder / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    argv = args if args is not None else [str(folder / "job.json")]
    proc = subprocess.run([sys.executable, "-m", "edgekit.agent", *argv],
                          capture_output=True, text=True, env=env, cwd=folder, input=stdin, timeout=120)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr  # exactly one JSON object on stdout
    return proc.returncode, json.loads(lines[0]), proc.stderr


def test_feeds_npz_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    feeds = [{"input_ids": rng.integers(0, 100, (1, 8)), "/model/x:0": rng.standard_normal((2, 3)).astype(
        np.float16)} for _ in range(12)]
    write_feeds_npz(feeds, tmp_path / "f.npz")
    back = read_feeds_npz(tmp_path / "f.npz")
    assert len(back) == 12
    for a, b in zip(feeds, back, strict=True):
        assert set(a) == set(b)
        for k in a:
            assert b[k].dtype == a[k].dtype
            np.testing.assert_array_equal(a[k], b[k])
    assert list(tmp_path.iterdir()) == [tmp_path / "f.npz"]  # no temporary file left behind


def test_read_feeds_rejects_bad_files(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", X=np.zeros(3))
    with pytest.raises(BenchmarkError, match="malformed key"):
        read_feeds_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "gap.npz", **{"0/X": np.zeros(3), "2/X": np.zeros(3)})
    with pytest.raises(BenchmarkError, match=r"0\.\.n-1"):
        read_feeds_npz(tmp_path / "gap.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BenchmarkError, match="cannot read"):
        read_feeds_npz(tmp_path / "junk.npz")


def test_job_validation(tmp_path: Path) -> None:
    base = {"mode": "memory", "runtime": "onnxruntime", "artifact": "m.onnx", "inputs": "f.npz"}
    job = Job.from_dict({**base, "runtime_options": {"threads": 2, "providers": ["CPUExecutionProvider"]}},
                        tmp_path)
    assert job.artifact == tmp_path / "m.onnx" and job.runtime_options.threads == 2
    assert job.runtime_options.providers == ("CPUExecutionProvider",)
    with pytest.raises(ConfigError, match=r"job\.artefact"):
        Job.from_dict({**base, "artefact": "x"}, tmp_path)
    with pytest.raises(ConfigError, match=r"job\.mode"):
        Job.from_dict({**base, "mode": "speed"}, tmp_path)
    with pytest.raises(ConfigError, match=r"job\.outputs_path"):
        Job.from_dict({**base, "mode": "outputs"}, tmp_path)
    with pytest.raises(ConfigError, match=r"job\.runtime_options"):
        Job.from_dict({**base, "runtime_options": {"thread": 1}}, tmp_path)


def test_agent_bench_mode(workdir: Path) -> None:
    job = {"mode": "bench", "runtime": "onnxruntime", "artifact": "model.onnx", "inputs": "feeds.npz",
           "runtime_options": {"threads": 1},
           "bench_options": {"warmup_runs": 2, "min_runs": 6, "min_seconds": 0.0, "memory_pass": False}}
    code, out, _ = run_agent(job, workdir)
    assert code == 0, out
    res = result_from_dict(out)
    assert res.threads == 1 and res.stats.n == len(res.samples_ms) >= 6 and len(res.warmup_ms) == 2
    assert res.session_info["providers"] == ["CPUExecutionProvider"]
    assert res.environment["cpu_model"] and res.environment["runtime_versions"]["onnxruntime"]


def test_agent_memory_mode(workdir: Path) -> None:
    job = {"mode": "memory", "runtime": "onnxruntime", "artifact": str(workdir / "model.onnx"),
           "inputs": str(workdir / "feeds.npz"), "bench_options": {"memory_runs": 4}}
    code, out, _ = run_agent(job, workdir)
    assert code == 0, out
    assert out["peak_rss_mb"] > out["baseline_rss_mb"] > 0
    assert out["runs"] == 4 and "VmHWM" in out["method"]
    assert out["runtime_versions"]["onnxruntime"]


def test_agent_outputs_mode_matches_numpy(workdir: Path) -> None:
    job = {"mode": "outputs", "runtime": "onnxruntime", "artifact": "model.onnx", "inputs": "feeds.npz",
           "outputs_path": "out/outputs.npz"}
    code, out, _ = run_agent(job, workdir)
    assert code == 0, out
    assert out["feeds"] == 3
    assert out["outputs"][0] == {"name": "0/0", "shape": [1, SIZE], "dtype": "float32"}
    outputs = read_outputs_npz(workdir / "out" / "outputs.npz")
    w = np.load(workdir / "W.npy")
    for feed, outs in zip(read_feeds_npz(workdir / "feeds.npz"), outputs, strict=True):
        assert len(outs) == 1
        np.testing.assert_allclose(outs[0], np.maximum(feed["X"] @ w, 0), rtol=1e-5, atol=1e-5)


def test_agent_missing_artifact_exits_2_with_json_error(workdir: Path) -> None:
    job = {"mode": "outputs", "runtime": "onnxruntime", "artifact": "missing.onnx", "inputs": "feeds.npz",
           "outputs_path": "never.npz"}
    code, out, _ = run_agent(job, workdir)
    assert code == 2
    assert out["error"]["type"] == "RuntimeAdapterError"
    assert "model file not found" in out["error"]["message"]
    assert out["error"]["where"].endswith("missing.onnx")
    assert not (workdir / "never.npz").exists()


def test_agent_bad_job_from_stdin_exits_2(workdir: Path) -> None:
    code, out, _ = run_agent(None, workdir, args=["-"], stdin='{"mode": "bench", "runtime": "onnxruntime"}')
    assert code == 2 and out["error"]["type"] == "ConfigError"
    assert "job.artifact" in out["error"]["message"]
    code, out, _ = run_agent(None, workdir, args=[])
    assert code == 2 and "usage" in out["error"]["message"]


def test_agent_modules_import_no_heavy_frameworks() -> None:
    code = ("import sys, edgekit.agent, edgekit.bench, edgekit.environment, edgekit.registry, edgekit.results\n"
            "heavy = {'torch', 'onnx', 'onnxruntime', 'transformers', 'openvino', 'tensorflow'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60).stdout
    assert json.loads(out.replace("'", '"')) == []
