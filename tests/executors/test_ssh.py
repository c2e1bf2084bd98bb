"""The SSH executor and the fleet against REAL sshd processes on loopback high ports.

Each server is Debian's ``/usr/sbin/sshd -D -e -f <private config>`` with a throw-away host key and an
authorized client key in a temp dir (tests/ssh_helpers.py); the remote Python is this venv's interpreter (numpy +
onnxruntime). The emulated aarch64 board's tests are in test_arm_board.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekit.agent import read_outputs_npz, write_feeds_npz
from edgekit.artifacts import Artifact, sha256_file
from edgekit.bench import BenchOptions, benchmark, result_from_dict
from edgekit.errors import ConfigError
from edgekit.executors.base import ExecutorOptions, get_executor, plan_jobs, run_targets
from edgekit.executors.fleet import BenchJob, SshExecutor, run_fleet
from edgekit.executors.ssh import (
    HostSpec,
    RemoteError,
    RemoteJob,
    agent_command,
    agent_files,
    doctor_remote,
    load_inventory,
    parse_host,
    remote_command,
    run_one,
)
from edgekit.runtimes.base import RuntimeOptions
from edgekit.targets import load_target
from edgekit.types import Format, IOSpec, Precision, TensorSpec

pytest.importorskip("asyncssh")
pytest.importorskip("onnxruntime")
from onnx_helpers import make_feeds, make_model
from ssh_helpers import SshEnv, free_port, keygen, kill_when_agent_runs, needs_sshd, running_sshd

pytestmark = needs_sshd
SIZE = 64
FAST = BenchOptions(threads=1, warmup_runs=2, min_runs=10, min_seconds=0.2, memory_pass=False)


@pytest.fixture(scope="session")
def ssh_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshEnv]:
    with running_sshd(tmp_path_factory.mktemp("sshd"), "a", "b") as env:
        yield env


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Artifact, Path]:
    d = tmp_path_factory.mktemp("model")
    path = d / "model.onnx"
    make_model(path, SIZE)
    feeds = d / "feeds.npz"
    write_feeds_npz(make_feeds(4, SIZE), feeds)
    io = IOSpec((TensorSpec("X", (1, SIZE), "float32"),), (TensorSpec("Y", (1, SIZE), "float32"),))
    return Artifact(path, Format.ONNX, Precision.FP32, io, sha256_file(path)), feeds


def _job(mode: str, bench: BenchOptions = FAST) -> dict[str, object]:
    return {"mode": mode, "runtime": "onnxruntime", "runtime_options": {"threads": 1},
            "bench_options": dataclasses.asdict(bench)}


def _bench_job(art: Artifact, feeds: Path, bench: BenchOptions = FAST) -> BenchJob:
    return BenchJob(art, "raspberry-pi-5", "onnxruntime", bench, RuntimeOptions(threads=1), feeds)


# ------------------------------------------------------------------------------------------ real runs
def test_remote_run_matches_local_run(ssh_env: SshEnv, model: tuple[Artifact, Path], tmp_path: Path) -> None:
    import onnxruntime as ort

    art, feeds = model
    spec = ssh_env.spec("a")
    out = tmp_path / "remote-outputs.npz"
    import asyncio

    info = asyncio.run(run_one(spec, RemoteJob(_job("outputs"), art.path, feeds, fetch_outputs=out)))
    assert info["feeds"] == 4
    sess = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"])
    from edgekit.agent import read_feeds_npz

    local = [sess.run(None, f) for f in read_feeds_npz(feeds)]
    remote = read_outputs_npz(out)
    for got, want in zip(remote, local, strict=True):
        np.testing.assert_array_equal(got[0], want[0])  # same runtime, same machine: bit-identical

    data = asyncio.run(run_one(spec, RemoteJob(_job("bench", dataclasses.replace(FAST, memory_pass=True)),
                                               art.path, feeds)))
    remote_res = result_from_dict(data)
    local_res = benchmark("onnxruntime", art.path, read_feeds_npz(feeds), FAST, RuntimeOptions(threads=1))
    assert set(remote_res.to_dict()) == set(local_res.to_dict())
    assert remote_res.stats.n >= FAST.min_runs and remote_res.threads == 1
    ratio = remote_res.stats.p50_ms / local_res.stats.p50_ms
    assert 0.1 < ratio < 10, (remote_res.stats, local_res.stats)  # the same order (noise on a shared 2-core box)
    assert remote_res.memory.get("peak_rss_mb", 0) > 0, remote_res.memory  # the board's own memory pass ran
    env = remote_res.environment
    assert env["cpu_model"] and env["logical_cores"] >= 1 and "onnxruntime" in env["runtime_versions"]
    assert env["memory_available_mb"] > 0


def test_two_hosts_in_parallel_one_job_at_a_time_each(ssh_env: SshEnv, model: tuple[Artifact, Path]) -> None:
    art, feeds = model
    slow = dataclasses.replace(FAST, min_seconds=1.0, min_runs=5)
    starts: dict[str, list[float]] = {}

    def progress(message: str) -> None:
        if message.startswith("benchmark "):
            starts.setdefault(message.rsplit(" at ", 1)[1], []).append(time.monotonic())

    a, b = ssh_env.spec("a", name="board-a"), ssh_env.spec("b", name="board-b")
    jobs = [_bench_job(art, feeds, slow), _bench_job(art, feeds, slow)]
    rows_a, rows_b = run_fleet([(a, jobs), (b, jobs)], progress)
    for rows, label in ((rows_a, "board-a"), (rows_b, "board-b")):
        assert [r.status for r in rows] == ["measured-remote"] * 2, [r.reason for r in rows]
        assert all(r.host == label and r.bench is not None and r.bench.stats.n >= 5 for r in rows)
        assert rows[0].bench is not None and rows[0].bench.environment["remote"]["host"] == label
    # parallel over hosts: each host started its first job before the other finished its first one
    assert starts["board-b"][0] < starts["board-a"][1] and starts["board-a"][0] < starts["board-b"][1]


def test_fleet_host_dying_mid_run_keeps_the_other_hosts_results(ssh_env: SshEnv,
                                                                model: tuple[Artifact, Path]) -> None:
    art, feeds = model
    doomed = ssh_env.add("doomed")
    long = dataclasses.replace(FAST, min_seconds=20.0, max_seconds=30.0, min_runs=5)

    thread = threading.Thread(target=kill_when_agent_runs, args=(doomed,))
    thread.start()
    healthy = ssh_env.spec("a", name="healthy")
    dying = ssh_env.spec("doomed", name="dying", retries=1)
    t0 = time.monotonic()
    rows_dead, rows_ok = run_fleet([(dying, [_bench_job(art, feeds, long), _bench_job(art, feeds)]),
                                    (healthy, [_bench_job(art, feeds), _bench_job(art, feeds)])])
    thread.join()
    assert time.monotonic() - t0 < 20  # the dead host did not hold the run until its benchmark would have ended
    assert [r.status for r in rows_ok] == ["measured-remote", "measured-remote"]
    assert [r.status for r in rows_dead] == ["failed", "failed"]
    assert "connection to dying lost during the agent run" in (rows_dead[0].reason or ""), rows_dead[0].reason
    assert "cannot connect to dying" in (rows_dead[1].reason or ""), rows_dead[1].reason
    assert all(r.host == "dying" and r.bench is None for r in rows_dead)


# ------------------------------------------------------------------------------------------ failures
def test_host_key_mismatch_is_a_clear_error(ssh_env: SshEnv, model: tuple[Artifact, Path], tmp_path: Path) -> None:
    import asyncio

    art, feeds = model
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{ssh_env.servers['a'].port} {ssh_env.servers['b'].host_pub}\n")
    with pytest.raises(RemoteError, match=r"host key of .* not verified") as err:
        asyncio.run(run_one(ssh_env.spec("a", known_hosts=wrong), RemoteJob(_job("outputs"), art.path, feeds)))
    assert "ssh-keygen -R" in (err.value.hint or "")
    # the explicit opt-out connects, and says so
    spec = ssh_env.spec("a", known_hosts=wrong, verify_host_key=False)
    out = tmp_path / "o.npz"
    asyncio.run(run_one(spec, RemoteJob(_job("outputs"), art.path, feeds, fetch_outputs=out)))
    assert out.exists() and "NOT verified" in spec.host_key_policy


def test_closed_port_is_a_clear_error_after_bounded_retries(ssh_env: SshEnv, model: tuple[Artifact, Path]) -> None:
    import asyncio

    art, feeds = model
    spec = ssh_env.spec("a", port=free_port(), retries=2)
    t0 = time.monotonic()
    with pytest.raises(RemoteError, match=r"cannot connect to .* after 3 attempt\(s\): .*(refused|Connect)"):
        asyncio.run(run_one(spec, RemoteJob(_job("outputs"), art.path, feeds)))
    assert time.monotonic() - t0 < 10


def test_missing_numpy_on_the_board_is_a_clear_error(ssh_env: SshEnv, model: tuple[Artifact, Path]) -> None:
    import asyncio

    system = Path("/usr/bin/python3")
    probe = subprocess.run([str(system), "-c", "import numpy"], capture_output=True, check=False)
    if not system.exists() or probe.returncode == 0:
        pytest.skip("needs a system python3 without numpy")
    art, feeds = model
    spec = ssh_env.spec("a", python=str(system))
    with pytest.raises(RemoteError, match="No module named 'numpy'") as err:
        asyncio.run(run_one(spec, RemoteJob(_job("outputs"), art.path, feeds)))
    assert f"{system} -m pip install numpy" in (err.value.hint or "")
    text, ok = doctor_remote(spec, ["onnxruntime"])
    assert not ok and "missing  numpy" in text
    assert f"{system} -m pip install numpy onnxruntime" in text


def test_doctor_on_a_good_board_and_via_the_cli(ssh_env: SshEnv, capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    s = ssh_env.spec("a")
    code = main(["doctor", "--target", "raspberry-pi-5", "--host", f"{s.user}@127.0.0.1:{s.port}",
                 "--ssh-key", str(s.key), "--ssh-known-hosts", str(s.known_hosts), "--remote-python", sys.executable])
    out = capsys.readouterr().out
    assert "ok       numpy" in out and "ok       onnxruntime" in out and "CPUExecutionProvider" in out
    assert "missing  litert" in out or "ok       litert" in out
    assert code == (0 if "missing" not in out else 1)


def test_unwritable_or_full_remote_disk_is_a_clear_error(ssh_env: SshEnv, model: tuple[Artifact, Path],
                                                          tmp_path: Path) -> None:
    import asyncio

    art, feeds = model
    with pytest.raises(RemoteError, match="cannot create a temp dir"):
        asyncio.run(run_one(ssh_env.spec("a", remote_tmp="/proc/edgekit-not-here"),
                            RemoteJob(_job("outputs"), art.path, feeds)))
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(tiny)],
                                                   capture_output=True, check=False).returncode == 0
    if not mounted:
        pytest.skip("mounting a 64 KiB tmpfs needs root")
    try:
        with pytest.raises(RemoteError, match=r"cannot copy files to .*(No space|Failure|full)") as err:
            asyncio.run(run_one(ssh_env.spec("a", remote_tmp=str(tiny)), RemoteJob(_job("outputs"), art.path, feeds)))
        assert "disk full" in (err.value.hint or "")
        assert list(tiny.iterdir()) == []  # the half-pushed run dir was cleaned up
    finally:
        subprocess.run(["umount", str(tiny)], check=False)


# ------------------------------------------------------------------------------------------ quoting
HOSTILE = "we ird; touch PWNED1; $(touch PWNED2) `touch PWNED3` 'q\" \\ && rm -rf {p}"


def test_hostile_names_are_quoted_never_executed(ssh_env: SshEnv, model: tuple[Artifact, Path],
                                                 tmp_path: Path) -> None:
    import asyncio

    art, feeds = model
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep").write_text("still here")
    hostile_tmp = Path(str(tmp_path) + "/" + HOSTILE.format(p=canary))  # "... && rm -rf /abs/canary"
    hostile_tmp.mkdir(parents=True)
    hostile_venv = tmp_path / "py $(touch PWNED4); touch PWNED5 'x"  # this venv under a hostile name
    hostile_venv.symlink_to(Path(sys.prefix), target_is_directory=True)
    hostile_py = hostile_venv / "bin" / Path(sys.executable).name
    hostile_art = tmp_path / "model $(touch PWNED6) `id` ;'\".onnx"
    hostile_art.write_bytes(art.path.read_bytes())
    spec = ssh_env.spec("a", python=str(hostile_py), remote_tmp=str(hostile_tmp))
    out = tmp_path / "o.npz"
    asyncio.run(run_one(spec, RemoteJob(_job("outputs"), hostile_art, feeds, fetch_outputs=out)))
    assert len(read_outputs_npz(out)) == 4
    assert sorted(p.name for p in canary.iterdir()) == ["keep"]
    assert not any(Path.home().glob("PWNED*")) and not any(tmp_path.glob("PWNED*"))
    assert list(hostile_tmp.iterdir()) == []  # per-run dir removed
    # a hostile user name is only ever an SSH login name: refused, nothing runs
    bad_user = ssh_env.spec("a", user=f"root; touch {canary}/PWNED7 $(touch {canary}/PWNED8)", retries=0)
    with pytest.raises(RemoteError, match="refused the login"):
        asyncio.run(run_one(bad_user, RemoteJob(_job("outputs"), art.path, feeds)))
    assert sorted(p.name for p in canary.iterdir()) == ["keep"]


def test_remote_commands_are_quoted_word_by_word() -> None:
    import shlex

    words = ["python; rm -rf /", "$(reboot)", "`id`", "a b", "'\"", "&&", "|", "\\n"]
    assert shlex.split(remote_command(words)) == words
    spec = HostSpec("h", python="/opt/my py/$(x)/python")
    argv = agent_command(spec, "/tmp/edgekit.abc d")
    assert shlex.split(remote_command(argv)) == argv and argv[2] == "/opt/my py/$(x)/python"
    with pytest.raises(ConfigError):
        remote_command(["a\x00b"])


# ------------------------------------------------------------------------------------------ parsing
def test_parse_host_and_inventory(tmp_path: Path) -> None:
    assert parse_host("pi@10.0.0.5:2222") == HostSpec("10.0.0.5", "pi", 2222)
    assert parse_host("board") == HostSpec("board", None, 22)
    assert parse_host("me@[::1]:22").host == "::1" and parse_host("me@[::1]:22").label == "me@[::1]:22"
    for bad in ("pi@host:99999", "a@b@c", "", "host:port"):
        with pytest.raises(ConfigError):
            parse_host(bad)
    inv = tmp_path / "hosts.toml"
    keygen(tmp_path / "id_test")  # a key the inventory names must be a private key file (checked on load)
    inv.write_text('[defaults]\nkey = "id_test"\npython = "/usr/bin/python3"\n'
                   '[[host]]\nname = "kitchen"\naddress = "pi@192.168.1.20"\ntarget = "raspberry-pi-5"\n'
                   '[[host]]\naddress = "nv@jet:2200"\ntarget = "jetson-orin-nano"\nrun_timeout = 60\n')
    a, b = load_inventory(inv)
    assert (a.label, a.target, a.key, a.python) == ("kitchen", "raspberry-pi-5", tmp_path / "id_test",
                                                     "/usr/bin/python3")
    assert (b.user, b.host, b.port, b.run_timeout, b.verify_host_key) == ("nv", "jet", 2200, 60.0, True)
    inv.write_text('[[host]]\naddress = "pi@x"\ntarget = "raspberry-pi-5"\npassword = "no"\n')
    with pytest.raises(ConfigError, match="unknown host key"):
        load_inventory(inv)


def test_ssh_target_without_host_is_not_available(model: tuple[Artifact, Path]) -> None:
    art, _ = model
    feeds = make_feeds(2, SIZE)
    jobs = plan_jobs(load_target("raspberry-pi-5"), [art])
    assert isinstance(get_executor("ssh"), SshExecutor)
    result = get_executor("ssh").run(jobs, feeds, ExecutorOptions(), lambda _m: None)
    assert [(r.status, r.reason, r.target) for r in result.rows] == [
        ("not-available", "no --host given (or inventory entry) for this ssh target", "raspberry-pi-5")]
    assert result.notes == ()


def test_ssh_executor_runs_each_job_on_every_host_of_its_target_in_job_order(
        ssh_env: SshEnv, model: tuple[Artifact, Path]) -> None:
    """Through the executor protocol: an inventory's two boards for one target, one CLI host for the others;
    rows per job and host in job order; ``hosts_per_target`` keeps the first; unverified keys are noted."""
    from dataclasses import replace

    from edgekit.targets import load_target

    art, _ = model
    int8 = replace(art, precision=Precision.INT8)  # the same file: the rows must keep the artifacts apart
    pi5, pi4 = load_target("raspberry-pi-5"), load_target("raspberry-pi-4")
    a = ssh_env.spec("a", name="kitchen", target="raspberry-pi-5")
    b = ssh_env.spec("b", name="garage", target="raspberry-pi-5", verify_host_key=False)
    anyhost = ssh_env.spec("a", name="any")  # names no target: used by targets no host names
    opts = ExecutorOptions(bench=FAST, threads=1, hosts=(a, b, anyhost))
    feeds = make_feeds(2, SIZE)
    result = run_targets([pi5, pi4], [art, int8], {}, feeds, opts, lambda _m: None)
    got = [(r.target, r.artifact.precision.value, r.host, r.status) for r in result.rows]
    assert got == [("raspberry-pi-5", "fp32", "kitchen", "measured-remote"),
                   ("raspberry-pi-5", "fp32", "garage", "measured-remote"),
                   ("raspberry-pi-5", "int8", "kitchen", "measured-remote"),
                   ("raspberry-pi-5", "int8", "garage", "measured-remote"),
                   ("raspberry-pi-4", "fp32", "any", "measured-remote"),
                   ("raspberry-pi-4", "int8", "any", "measured-remote")], [r.reason for r in result.rows]
    assert all(r.kind == "measurement" and r.bench is not None and r.bench.threads == 1 for r in result.rows)
    assert result.notes == ("host key of garage was NOT verified (--insecure-no-host-key-check)",)
    one = get_executor("ssh").run(plan_jobs(pi5, [art]), feeds, replace(opts, hosts_per_target=1), lambda _m: None)
    assert [(r.host, r.status) for r in one.rows] == [("kitchen", "measured-remote")]


def test_api_benchmark_on_an_ssh_target_uses_its_board(ssh_env: SshEnv, tiny_model: tuple[str, Path],
                                                         tmp_path: Path) -> None:
    import edgekit
    from edgekit.errors import DeviceUnavailableError
    from edgekit.pipeline import RunOptions
    from edgekit.targets import load_target

    spec_text, ckpt = tiny_model
    src = edgekit.load_source(spec_text, checkpoint=ckpt)
    fp32 = edgekit.export(src, tmp_path, calibration="digits", progress=lambda _m: None)
    hosts = (ssh_env.spec("a", name="board-a"), ssh_env.spec("b", name="board-b"))
    res = edgekit.benchmark(fp32, target="raspberry-pi-5", source=src, calibration="digits",
                            options=RunOptions(bench=FAST, threads=1, hosts=hosts), progress=lambda _m: None)
    assert res.runtime == "onnxruntime" and res.environment["remote"]["host"] == "board-a"  # the first board only
    with pytest.raises(DeviceUnavailableError, match="no --host given"):
        edgekit.benchmark(fp32, target=load_target("raspberry-pi-5"), source=src, calibration="digits",
                          options=RunOptions(bench=FAST), progress=lambda _m: None)


def test_a_board_python_older_than_edgekit_needs_gets_one_clear_line() -> None:
    """The README said boards need Python 3.9+, but the agent imports code that needs 3.10+ and only a grammar
    check guarded it (issue 12): the claim is now the Python edgekit is tested on (:data:`edgekit.MIN_PYTHON`,
    3.11 here and on the emulated aarch64 board), and an older interpreter stops at ``import edgekit`` with one
    line naming the requirement and the fix (a real interpreter whose ``sys.version_info`` is set to 3.9)."""
    import edgekit

    code = "import sys; sys.version_info = (3, 9, 2, 'final', 0); import edgekit"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(edgekit.__file__).resolve().parents[1])
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: edgekit needs Python >= 3.11") and "--remote-python" in last, last
    assert edgekit.MIN_PYTHON == (3, 11)


def test_pushed_modules_are_everything_the_agent_imports_and_every_registered_runtime() -> None:
    """The pushed set is closed under edgekit imports (a board has nothing else of edgekit), and a runtime added
    to the registry is pushed without touching this executor (``runtime_modules`` comes from the registry)."""
    from test_architecture import import_graph

    from edgekit.executors.ssh import runtime_modules
    from edgekit.registry import RUNTIMES

    assert set(runtime_modules()) == {"/".join(e.target.partition(":")[0].split(".")[1:]) + ".py"
                                      for e in RUNTIMES.values() if e.target.startswith("edgekit.")
                                      and not e.toolchain}  # a vendor toolchain's simulator runs here only
    pushed = {("edgekit." + rel[:-3].replace("/", ".")).removesuffix(".__init__") for _, rel in agent_files()}
    graph = import_graph()
    missing = {m: sorted(graph[m] - pushed) for m in pushed if graph[m] - pushed}
    assert not missing, f"agent modules import modules that are not pushed to the board: {missing}"


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_cli_run_on_raspberry_pi_5_over_ssh_matches_local_rows(ssh_env: SshEnv, tiny_model: tuple[str, Path],
                                                                tmp_path: Path) -> None:
    from edgekit.cli import main

    spec, ckpt = tiny_model
    s = ssh_env.spec("b")
    out = tmp_path / "run"
    code = main(["run", "--model", spec, "--checkpoint", str(ckpt), "--calibration", "digits", "--out", str(out),
                 "--formats", "onnx", "--precisions", "fp32,int8", "--calibration-limit", "32", "--eval-limit", "32",
                 "--min-runs", "5", "--min-seconds", "0.1", "--threads", "1",
                 "--target", "local-cpu", "--target", "raspberry-pi-5", "--target", "raspberry-pi-4",
                 "--host", f"{s.user}@127.0.0.1:{s.port}", "--ssh-key", str(s.key),
                 "--ssh-known-hosts", str(s.known_hosts), "--remote-python", sys.executable])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    rows = report["rows"]
    local = [r for r in rows if r["target"] == "local-cpu" and r["runtime"] == "onnxruntime"]
    remote = [r for r in rows if r["target"] == "raspberry-pi-5"]
    assert len(local) == len(remote) == 2
    label = f"{s.user}@127.0.0.1:{s.port}"
    assert all(r["status"] == "measured-remote" and r["host"] == label for r in remote)
    assert [sorted(r) for r in remote] == [sorted(r) for r in local]  # the same row shape
    # per-target recipes: this x86 machine's int8 and the Pi's (arm64: s8 x s8) are two builds, each target
    # gets its own; fp32 is one build for both
    local_family = load_target("local-cpu").int8_preset
    assert [r["artifact"] for r in local] == ["model.fp32.onnx", f"model.int8-{local_family}.onnx"]
    assert [r["artifact"] for r in remote] == ["model.fp32.onnx", "model.int8-arm64.onnx"]
    arm = next(a for a in report["artifacts"] if a["name"] == "model.int8-arm64.onnx")
    assert arm["recipe"]["isa_recipe"] == "arm64" and arm["settings"]["activation_type"] == "int8"
    # the board's rows carry the board's own validation (here the "board" is this machine's Python: the fp32
    # numbers equal the local ones), and say whose kernels computed them
    assert all(r["accuracy_from"].startswith(label) for r in remote)
    assert all(r["accuracy_from"] == "build machine" for r in local)
    assert remote[0]["metrics"] == local[0]["metrics"]
    for lr, rr in zip(local, remote, strict=True):
        assert sorted(rr["bench"]) == sorted(lr["bench"]) if isinstance(lr["bench"], dict) else True
    assert any(n.startswith("int8 recipe of raspberry-pi-5 (aarch64") and "arm64" in n for n in report["notes"])
    # the --host applies to every ssh target of the run: raspberry-pi-4 measured on the same host
    assert {r["status"] for r in rows if r["target"] == "raspberry-pi-4" and r["runtime"] == "onnxruntime"} == {
        "measured-remote"}
    md = (out / "report.md").read_text()
    assert "measured-remote on" in md
    # one answer per board target too, from its own rows (timed one after another there: unpaired ratios)
    boards = {d["target"]: d for d in report["decisions"] if d["target"].startswith("raspberry")}
    assert set(boards) == {"raspberry-pi-5", "raspberry-pi-4"}
    pi5 = boards["raspberry-pi-5"]
    assert pi5["rounds"] == 0 and pi5["artifact"] in {r["artifact"] for r in remote}
    assert f"Timed on {label} by edgekit's agent, one artifact after another" in pi5["reason"]
    for f in pi5["finalists"]:
        row = next(r for r in remote if r["artifact"] == f["artifact"])
        assert f["samples_ms"] == row["bench"]["samples_ms"]  # the row's own samples, not re-measured
        if f["artifact"] != pi5["artifact"]:
            lo, hi = f["interval_95"]
            assert lo <= f["ratio_vs_pick"] <= hi
