"""Faults on the way to a board, against REAL sshd on loopback (tests/ssh_helpers.py, as tests/executors/test_ssh.py):
an agent that outlives its time-out or a Ctrl-C, inventory numbers that hang, and key files that are a local
mistake rather than a board that is down. See tests/faults/CASES.md ("Boards").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("asyncssh")
pytest.importorskip("onnxruntime")

from onnx_helpers import make_feeds, make_model
from ssh_helpers import SshEnv, keygen, needs_sshd, running_sshd  # the real-sshd helpers (tests/ssh_helpers.py)

from edgekit.agent import write_feeds_npz
from edgekit.artifacts import Artifact, sha256_file
from edgekit.errors import ConfigError
from edgekit.executors.ssh import HostSpec, RemoteError, RemoteJob, load_inventory, run_one
from edgekit.types import Format, IOSpec, Precision, TensorSpec

pytestmark = needs_sshd
CLI = [sys.executable, "-c", "import sys; from edgekit.cli import main; sys.exit(main())"]
JOB = {"mode": "bench", "runtime": "onnxruntime", "runtime_options": {"threads": 1},
       "bench_options": {"threads": 1, "warmup_runs": 1, "min_runs": 5, "min_seconds": 0.1, "memory_pass": False}}


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshEnv]:
    """One real sshd on a loopback port with a throw-away client key (as tests/executors/test_ssh.py)."""
    with running_sshd(tmp_path_factory.mktemp("sshd"), "a") as env:
        yield env


@pytest.fixture(scope="module")
def matmul(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Path]:
    """A tiny real ONNX model (1x64 -> 1x64) and four feeds for it."""
    folder = tmp_path_factory.mktemp("model")
    path = folder / "model.onnx"
    make_model(path, 64)
    feeds = folder / "feeds.npz"
    write_feeds_npz(make_feeds(4, 64), feeds)
    io = IOSpec((TensorSpec("X", (1, 64), "float32"),), (TensorSpec("Y", (1, 64), "float32"),))
    return Artifact(path, Format.ONNX, Precision.FP32, io, sha256_file(path)), feeds


# ------------------------------------------------------------------------------------------ helpers
def _pids(marker: str) -> list[int]:
    """Live processes whose command line holds ``marker`` (``pgrep -f``), never this test's own process."""
    got = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True, check=False)
    return [int(p) for p in got.stdout.split() if int(p) != os.getpid()]


def _gone(marker: str, grace: float = 3.0) -> list[int]:
    """The marker's processes still alive after ``grace`` seconds (KILL is delivered, not instant)."""
    deadline = time.monotonic() + grace
    while (left := _pids(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _slow_python(folder: Path, marker: str) -> Path:
    """A ``--remote-python`` that first sleeps in a child (as a stuck runtime would), then runs the agent:
    the wrapper shell and its child both carry ``marker`` in their command line."""
    wrapper = folder / marker / "python"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(f'#!/bin/sh\n"{sys.executable}" -c "import time; time.sleep(600)" {marker}-sleeper\n'
                       f'exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique word for this test's remote processes; anything left with it is killed afterwards."""
    word = f"edgekit-fault-{uuid.uuid4().hex[:12]}"
    yield word
    for pid in _pids(word):  # never leave the machine with the old bug's orphans
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _watch(marker: str, seen: list[int], stop: threading.Event) -> threading.Thread:
    def run() -> None:
        while not stop.is_set():
            seen.extend(p for p in _pids(marker) if p not in seen)
            time.sleep(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------------------------------ agent left running
def test_agent_time_out_kills_the_remote_process_group_and_removes_the_temp_dir(
        board: SshEnv, matmul: tuple[Artifact, Path], tmp_path: Path, marker: str) -> None:
    art, feeds = matmul
    remote_tmp = tmp_path / "board-tmp"
    remote_tmp.mkdir()
    spec = board.spec("a", python=str(_slow_python(tmp_path, marker)), run_timeout=3.0,
                        remote_tmp=str(remote_tmp))
    seen: list[int] = []
    stop = threading.Event()
    watcher = _watch(marker, seen, stop)
    t0 = time.monotonic()
    try:
        with pytest.raises(RemoteError, match=r"the agent run on .* timed out after 3 s"):
            asyncio.run(run_one(spec, RemoteJob(JOB, art.path, feeds)))
    finally:
        stop.set()
        watcher.join()
    assert len(seen) >= 2, "the wrapper and its sleeping child never ran: the test proves nothing"
    assert time.monotonic() - t0 < 30
    assert _gone(marker) == [], "processes of the timed-out job still run on the board"
    assert list(remote_tmp.iterdir()) == [], "the job's temp dir was left on the board"


def test_ctrl_c_during_a_remote_benchmark_kills_the_remote_job(
        board: SshEnv, matmul: tuple[Artifact, Path], tmp_path: Path, marker: str) -> None:
    """A real Ctrl-C: SIGINT to the whole process group of `edgekit bench` (as a terminal sends it) while the
    board runs the agent; edgekit ends with its one line and 130, and nothing of the job is left on the board."""
    art, _ = matmul
    data = tmp_path / "inputs.npz"
    rng = np.random.default_rng(0)
    np.savez(data, calibration=rng.standard_normal((4, 64)).astype(np.float32),
             eval=rng.standard_normal((4, 64)).astype(np.float32))
    remote_tmp = tmp_path / "board-tmp"
    remote_tmp.mkdir()
    s = board.spec("a")
    argv = [*CLI, "bench", "--model", str(art.path), "--artifact", str(art.path), "--calibration", str(data),
            "--target", "raspberry-pi-5", "--min-runs", "5", "--min-seconds", "0.1",
            "--host", f"{s.user}@127.0.0.1:{s.port}", "--ssh-key", str(s.key), "--ssh-known-hosts",
            str(s.known_hosts), "--remote-python", str(_slow_python(tmp_path, marker)),
            "--remote-tmp", str(remote_tmp)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while len(_pids(marker)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and len(_pids(marker)) >= 2, "the remote job never started"
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    assert _gone(marker) == [], "processes of the interrupted job still run on the board"
    assert list(remote_tmp.iterdir()) == [], "the interrupted job's temp dir was left on the board"


# ------------------------------------------------------------------------------------------ inventory ranges
def _inventory(tmp_path: Path, line: str) -> Path:
    inv = tmp_path / "hosts.toml"
    inv.write_text(f'[[host]]\naddress = "pi@192.0.2.7"\ntarget = "raspberry-pi-5"\n{line}\n')
    return inv


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("retries", "1000000", "an integer from 0 to 20"),
    ("retries", "-1", "an integer from 0 to 20"),
    ("retries", "2.5", "an integer from 0 to 20"),
    ("retries", "nan", "an integer from 0 to 20"),
    ("retries", '"3"', "an integer from 0 to 20"),
    ("retries", "true", "an integer from 0 to 20"),
    ("connect_timeout", "1e308", "a number of seconds from 1 to 600"),
    ("connect_timeout", "inf", "a number of seconds from 1 to 600"),
    ("connect_timeout", "nan", "a number of seconds from 1 to 600"),
    ("connect_timeout", "-5", "a number of seconds from 1 to 600"),
    ("connect_timeout", '"10"', "a number of seconds from 1 to 600"),
    ("run_timeout", "1e308", "a number of seconds from 1 to 86400"),
    ("run_timeout", "-inf", "a number of seconds from 1 to 86400"),
    ("run_timeout", "0", "a number of seconds from 1 to 86400"),
])
def test_inventory_numbers_out_of_range_name_file_key_value_and_range(tmp_path: Path, key: str, value: str,
                                                                      allowed: str) -> None:
    inv = _inventory(tmp_path, f"{key} = {value}")
    with pytest.raises(ConfigError) as err:
        load_inventory(inv)
    text = str(err.value)
    assert f"{inv}:host[0].{key}" in text and allowed in text, text
    assert "got" in text and "\n" not in text


def test_inventory_defaults_and_api_host_specs_are_checked_too(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.toml"
    inv.write_text('[defaults]\nretries = 1000000\n[[host]]\naddress = "pi@192.0.2.7"\ntarget = "raspberry-pi-5"\n')
    with pytest.raises(ConfigError, match=r"hosts\.toml:defaults\.retries: retries is out of range"):
        load_inventory(inv)
    with pytest.raises(ConfigError, match=r"connect_timeout is out of range.*got inf"):
        HostSpec("board", connect_timeout=float("inf"))
    good = _inventory(tmp_path, "retries = 20\nconnect_timeout = 600\nrun_timeout = 86400")
    (spec,) = load_inventory(good)
    assert (spec.retries, spec.connect_timeout, spec.run_timeout) == (20, 600.0, 86400.0)


def test_a_hanging_inventory_value_is_one_line_from_the_cli(tmp_path: Path) -> None:
    inv = _inventory(tmp_path, "retries = 1000000")
    t0 = time.monotonic()
    got = subprocess.run([*CLI, "doctor", "--inventory", str(inv)], capture_output=True, text=True, timeout=60,
                         check=False, cwd=tmp_path)
    assert got.returncode == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{inv}:host[0].retries" in lines[0] and "1000000" in lines[0], got.stderr
    assert time.monotonic() - t0 < 30


# ------------------------------------------------------------------------------------------ key files
def _doctor(board: SshEnv, key: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    s = board.spec("a")
    t0 = time.monotonic()
    got = subprocess.run([*CLI, "doctor", "--target", "raspberry-pi-5", "--host", f"{s.user}@127.0.0.1:{s.port}",
                          "--ssh-key", str(key), "--ssh-known-hosts", str(s.known_hosts),
                          "--remote-python", sys.executable], capture_output=True, text=True, timeout=120,
                         check=False, cwd=tmp_path)
    return got, time.monotonic() - t0


def test_a_public_key_as_ssh_key_is_one_line_naming_it(board: SshEnv, tmp_path: Path) -> None:
    pub = board.key.with_suffix(".pub")
    got, took = _doctor(board, pub, tmp_path)
    assert got.returncode == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in got.stderr, got.stderr
    assert f"--ssh-key {pub}" in lines[0] and "public key, not a private key" in lines[0], lines[0]
    assert f"pass the private key {board.key} instead" in lines[0], lines[0]
    assert took < 30


def test_a_missing_key_file_is_not_retried_as_a_down_board(board: SshEnv, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-key"
    got, took = _doctor(board, missing, tmp_path)
    assert got.returncode == 2, got.stderr
    lines = got.stderr.strip().splitlines()
    assert len(lines) == 1 and f"--ssh-key {missing}" in lines[0] and "does not exist" in lines[0], got.stderr
    assert "is the board up" not in got.stderr and "attempt" not in got.stderr
    assert took < 30


def test_bad_key_files_through_the_api_fail_before_any_connection_attempt(
        board: SshEnv, matmul: tuple[Artifact, Path], tmp_path: Path) -> None:
    """The same checks for API users and inventory entries: a ConfigError naming the file, at once (no retry
    with back-off), for a public key, a missing file, a folder, a file that is not a key, an encrypted key."""
    art, feeds = matmul
    encrypted = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret words", "-f", str(encrypted)], check=True)
    junk = tmp_path / "notes.txt"
    junk.write_text("just some text\n")
    cases = {board.key.with_suffix(".pub"): "public key, not a private key",
             tmp_path / "gone": "does not exist", tmp_path: "not a file", junk: "not an SSH private key",
             encrypted: "passphrase-protected"}
    for key, why in cases.items():
        spec = board.spec("a", key=key, retries=3)
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=why) as err:
            asyncio.run(run_one(spec, RemoteJob(JOB, art.path, feeds)))
        assert str(key) in str(err.value) and time.monotonic() - t0 < 5, (key, str(err.value))
    inv = _inventory(tmp_path, f'key = "{board.key.with_suffix(".pub")}"')
    with pytest.raises(ConfigError, match=rf"{re.escape(str(inv))}:host\[0\]\.key .*public key, not a private key"):
        load_inventory(inv)
    # the good key still works (the check reads it; asyncssh loads it)
    ok = dataclasses.replace(board.spec("a"), key=board.key)
    assert asyncio.run(run_one(ok, RemoteJob(JOB, art.path, feeds)))["stats"]["n"] >= 5


def test_generated_keys_are_checked_by_content_not_by_name(tmp_path: Path) -> None:
    """A private key named ``*.pub`` is fine; a public key without ``.pub`` is refused."""
    from edgekit.executors.hosts import check_private_key

    key = tmp_path / "odd.pub"
    keygen(tmp_path / "pair")
    (tmp_path / "pair").rename(key)
    assert check_private_key(key, "--ssh-key") == key
    public = tmp_path / "public-without-suffix"
    (tmp_path / "pair.pub").rename(public)
    with pytest.raises(ConfigError, match="public key, not a private key"):
        check_private_key(public, "--ssh-key")
