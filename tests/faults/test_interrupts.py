"""Interrupts and crashes: Ctrl-C (a real SIGINT to a real ``edgekit`` process) during a benchmark with OpenVINO
and ONNX Runtime loaded, writes killed with SIGKILL, and two runs on one ``--out``. See tests/faults/CASES.md
("Interrupts and crashes")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekit.artifacts import SIDECAR_SUFFIX, file_hashes

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "edgekit"]


@pytest.fixture(scope="module")
def tiny(tiny_model: tuple[str, Path]) -> str:
    """The conftest's small CNN factory (seeded weights; its checkpoint is not needed here)."""
    return tiny_model[0]


def _run_args(model: str, out: Path, *extra: str) -> list[str]:
    return [*CLI, "run", "--model", model, "--calibration", "digits", "--out", str(out), "--calibration-limit", "16",
            "--eval-limit", "16", "--min-runs", "5", "--no-memory", *extra]


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(proc: subprocess.Popen[str], pattern: str, seen: list[str], timeout: float = 300) -> None:
    """Read the child's stderr until a line matches ``pattern`` (kept in ``seen``)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        seen.append(line)
        if re.search(pattern, line):
            return
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail(f"never saw {pattern!r}; stderr:\n{''.join(seen)[-4000:]}")


def _complete_artifacts(art_dir: Path) -> list[str]:
    """Names of the artifacts whose sidecar exists and whose files all hash as the sidecar recorded."""
    names = []
    for side in sorted(art_dir.glob(f"*{SIDECAR_SUFFIX}")):
        model = side.with_name(side.name[: -len(SIDECAR_SUFFIX)])
        recorded = json.loads(side.read_text())["files"]
        assert file_hashes(model) == recorded, f"{model.name} changed after it was recorded complete"
        names.append(model.name)
    return names


def test_ctrl_c_during_an_onnxruntime_benchmark_with_openvino_loaded_exits_130(tiny: str, tmp_path: Path) -> None:
    """It was SIGSEGV (-11) with no message, 8 of 8 tries: OpenVINO's CPU plugin gives the main thread an alternate
    signal stack of exactly the kernel's minimum with AMX state, and Python's SIGINT handler runs there and
    overflows it. Three real runs, each interrupted half a second into its ONNX Runtime benchmark."""
    pytest.importorskip("openvino")
    out = tmp_path / "run"
    for attempt in range(3):
        proc = _start(_run_args(tiny, out, "--formats", "onnx,openvino", "--precisions", "fp32",
                                "--min-seconds", "60"))
        seen: list[str] = []
        _wait_for(proc, r"bench model\.fp32\.onnx \[warmup\]", seen)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
        err = "".join(seen) + rest
        assert proc.returncode == 130, (attempt, proc.returncode, err[-3000:])
        interrupted = [ln for ln in err.splitlines() if "interrupted" in ln]
        assert interrupted == ["edgekit: interrupted; re-run the same command to resume (complete artifacts are "
                               "reused)"], err[-3000:]
        assert "Traceback" not in err and "Fatal Python error" not in err, err[-3000:]
        assert _complete_artifacts(out / "artifacts") == ["model.fp32.onnx", "model.fp32.xml"]
        if attempt:
            assert "reuse model.fp32.onnx" in err and "reuse model.fp32.xml" in err, err[-3000:]
    assert not (out / "report.md").exists()


@pytest.mark.slow
def test_ctrl_c_during_a_litert_benchmark_with_openvino_loaded_exits_130(tiny: str, tmp_path: Path) -> None:
    """The same crash was seen in a LiteRT benchmark (OpenVINO loaded for validation): one real run."""
    pytest.importorskip("openvino")
    pytest.importorskip("litert_torch")
    out = tmp_path / "run"
    proc = _start(_run_args(tiny, out, "--formats", "onnx,openvino,tflite", "--precisions", "fp32",
                            "--min-seconds", "60"))
    seen: list[str] = []
    _wait_for(proc, r"bench model\.fp32\.tflite \[warmup\]", seen, timeout=600)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = "".join(seen) + rest
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert [ln for ln in err.splitlines() if "interrupted" in ln] == [
        "edgekit: interrupted; re-run the same command to resume (complete artifacts are reused)"], err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert _complete_artifacts(out / "artifacts") == ["model.fp32.onnx", "model.fp32.tflite", "model.fp32.xml"]


@pytest.mark.parametrize("phase", [r"bench model\.fp32\.xml \[warmup\]", r"validate model\.fp32\.xml"])
def test_sigterm_ends_a_run_with_one_line_exit_143_and_no_temp_folders(tiny: str, tmp_path: Path,
                                                                       phase: str) -> None:
    """``kill <pid>`` (a CI time-out, a service manager) printed nothing, left ``edgekit-mem-*`` folders in the temp
    folder and the ``--out`` lock behind. Now it unwinds like Ctrl-C: one line, exit 143, the temp folder empty, and
    the lock names nobody, complete artifacts are reused). Once in an OpenVINO benchmark (a native call: SIGTERM is
    taken by the watcher thread there), once while validating."""
    pytest.importorskip("openvino")
    out, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    argv = [*CLI, "run", "--model", tiny, "--calibration", "digits", "--out", str(out), "--calibration-limit", "16",
            "--eval-limit", "16", "--min-runs", "5", "--formats", "onnx,openvino", "--precisions", "fp32",
            "--min-seconds", "30"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)})
    seen: list[str] = []
    _wait_for(proc, phase, seen)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    err = "".join(seen) + rest
    assert proc.returncode == 143, (proc.returncode, err[-3000:])
    assert [ln for ln in err.splitlines() if ln.startswith("edgekit:")] == [
        "edgekit: terminated (SIGTERM); re-run the same command to resume (complete artifacts are reused)"], err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert list(tmp.iterdir()) == []
    assert (out / ".edgekit.lock").read_text() == "" and not (out / "report.md").exists()
    assert set(_complete_artifacts(out / "artifacts")) >= {"model.fp32.onnx", "model.fp32.xml"}


@pytest.mark.parametrize("gap", [0.05, 0.3, 0.5])
def test_a_second_ctrl_c_while_ending_still_exits_130_with_one_line(tiny: str, tmp_path: Path, gap: float) -> None:
    """A second Ctrl-C within about half a second of the first killed edgekit by the signal (status -2, 2 of 3
    tries in the fault pass): the "interrupted" line was printed, then the process died. The command line now
    ignores further SIGINT/SIGTERM once it is ending."""
    out = tmp_path / "run"
    proc = _start(_run_args(tiny, out, "--formats", "onnx", "--precisions", "fp32", "--min-seconds", "60"))
    seen: list[str] = []
    _wait_for(proc, r"bench model\.fp32\.onnx \[warmup\]", seen)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = "".join(seen) + rest
    assert proc.returncode == 130, (gap, proc.returncode, err[-3000:])
    assert [ln for ln in err.splitlines() if ln.startswith("edgekit:")] == [
        "edgekit: interrupted; re-run the same command to resume (complete artifacts are reused)"], err[-3000:]
    assert "Traceback" not in err, err[-3000:]


def test_ctrl_c_reaches_a_slow_user_metric_at_once(tiny: str, tmp_path: Path) -> None:
    """A ``--metric`` function sleeping 60 s held Ctrl-C for the whole minute: validation runs in a native block
    (SIGINT blocked in the main thread), and the user's Python ran inside it. It now runs with SIGINT let through."""
    metric = tmp_path / "slow.py"
    metric.write_text("import time\n\ndef slow(reference, candidate):\n    time.sleep(60)\n    return {'x': 1.0}\n")
    proc = _start(_run_args(tiny, tmp_path / "run", "--formats", "onnx", "--precisions", "fp32", "--metric",
                            f"logits={metric}:slow"))
    seen: list[str] = []
    _wait_for(proc, r"validate model\.fp32\.onnx", seen)
    time.sleep(2.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    waited = time.monotonic() - t0
    err = "".join(seen) + rest
    assert proc.returncode == 130 and waited < 20, (proc.returncode, waited, err[-3000:])
    assert [ln for ln in err.splitlines() if ln.startswith("edgekit:")] == [
        "edgekit: interrupted; re-run the same command to resume (complete artifacts are reused)"], err[-3000:]


KILLED_WRITE = '''
import sys, time
from edgekit.artifacts import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half an onnx file")
    print(tmp.name, flush=True)
    time.sleep(600)
'''


def test_a_run_removes_the_leftovers_of_killed_writes_and_nothing_else(tiny: str, tmp_path: Path) -> None:
    """A write killed with SIGKILL (no clean-up runs) leaves its temporary file; so did interrupted converters and
    older edgekit's temp names. The next run removes those, and only those: the user's look-alikes stay."""
    out = tmp_path / "run"
    art = out / "artifacts"
    art.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITE, str(art / "model.fp32.onnx")],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert writer.stdout is not None
    tmp_name = writer.stdout.readline().strip()
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert (art / tmp_name).is_file() and tmp_name.startswith(".model.fp32.onnx.edgekit-tmp-")
    leftovers = [art / ".model.fp32.onnx.3kx9_a0q.onnx",  # older edgekit's atomic_path name (a 0-byte one)
                 art / ".model.int8.tflite.edgekit-tmp-a1b2c3d4.tflite",
                 out / ".reference-0123456789abcdef.npy.x7y8z9w0.npy", out / ".report.md.qwertyui.md"]
    leftovers[0].write_bytes(b"")
    leftovers[1].write_bytes(b"\0" * 1_160_000)  # a partial .tflite from a converter that hit a full disk
    for p in leftovers[2:]:
        p.write_bytes(b"partial")
    dirs = [art / ".model.fp32.ab12cd34", art / "edgekit-onnx2tf-zz99yy88"]  # an IR save, an onnx2tf work folder
    for d in dirs:
        d.mkdir()
        (d / "model.fp32.bin").write_bytes(b"\0" * 1000)
    users = [out / "notes.txt", out / ".model.fp32.onnx.mine", art / "my.model.fp32.onnx.bak", out / ".hidden",
             art / ".model.txt", out / "edgekit-optimum-notmine"]
    for p in users:
        p.write_text("the user's own")
    got = subprocess.run(_run_args(tiny, out, "--formats", "onnx", "--precisions", "fp32", "--min-seconds", "0.1"),
                         capture_output=True, text=True, cwd=REPO, timeout=600, check=False)
    assert got.returncode == 0, got.stderr[-3000:]
    assert "removed 7 leftover temporary file(s) of an interrupted run" in got.stderr, got.stderr[-3000:]
    for p in [art / tmp_name, *leftovers, *dirs]:
        assert not p.exists(), f"{p} was left behind"
    for p in users:
        assert p.read_text() == "the user's own", f"{p} was touched"
    assert _complete_artifacts(art) == ["model.fp32.onnx"]


def test_a_second_run_on_the_same_out_is_refused_naming_the_first(tiny: str, tmp_path: Path) -> None:
    """Two runs on one --out wrote the same files at once. The second now stops before any work, naming the
    process that holds the folder; the first is not disturbed (and stops cleanly on Ctrl-C)."""
    out = tmp_path / "run"
    first = _start(_run_args(tiny, out, "--formats", "onnx", "--precisions", "fp32", "--min-seconds", "60"))
    seen: list[str] = []
    _wait_for(first, r"bench model\.fp32\.onnx \[", seen)
    t0 = time.monotonic()
    second = subprocess.run(_run_args(tiny, out, "--formats", "onnx", "--precisions", "fp32"), capture_output=True,
                            text=True, cwd=REPO, timeout=300, check=False)
    took = time.monotonic() - t0
    first.send_signal(signal.SIGINT)
    _, rest = first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr[-3000:]
    lines = [ln for ln in second.stderr.splitlines() if ln.startswith("edgekit: ")]
    assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert f"--out {out}" in lines[0] and f"pid {first.pid}," in lines[0] and "another edgekit process" in lines[0]
    assert "[edgekit" not in second.stderr, "the second run did some work first"
    assert took < 60, took
    assert first.returncode == 130, ("".join(seen) + rest)[-3000:]
    assert _complete_artifacts(out / "artifacts") == ["model.fp32.onnx"]
