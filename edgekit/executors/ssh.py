"""Run the on-device agent on a board over SSH (asyncssh).

One :class:`~edgekit.executors.hosts.HostSpec` says how to reach a board: host, user, port, key, the remote
Python command, known_hosts. It comes from the command line (``--host USER@HOST:PORT``, ``--ssh-key``,
``--remote-python``, ``--ssh-known-hosts``) or from a user's inventory file
(:func:`~edgekit.executors.hosts.load_inventory`), never from the repository.

A job (:func:`run_remote_job`) makes a per-run temp dir on the board (``mktemp -d``), pushes the
agent's modules (the same files local benchmarking runs: :data:`AGENT_MODULES` and every built-in
runtime of the registry), the artifact, the
feeds and ``job.json`` over SFTP, runs ``<python> -m edgekit.agent job.json`` with ``PYTHONPATH``
pointing at the pushed package, parses the one JSON object it prints, fetches any output file, and
removes the temp dir. The agent runs in a process group of its own (the session sshd makes for the command,
else ``setsid``), whose id it leaves in ``agent.pid`` in the temp dir (:data:`LAUNCH`); on every way out of
a job (done, failed, timed out, cancelled by Ctrl-C) that group is killed before the temp dir is removed
(:data:`CLEANUP`), so nothing of the job keeps running on the board. Every remote command is an argument
list joined with :func:`shlex.join` (each word quoted), never a string built from user input. Host keys
are verified against known_hosts unless :attr:`HostSpec.verify_host_key` is False (the ``--insecure-no-host-key-check``
flag, recorded in the report). Connecting has a timeout and is retried a bounded number of times on
transient errors (refused, reset, timeout); the agent run has its own timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shlex
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from edgekit import MIN_PYTHON as _MIN
from edgekit.errors import ConfigError, EdgekitError, require
from edgekit.executors.hosts import HostSpec, check_private_key
from edgekit.executors.hosts import load_inventory as load_inventory
from edgekit.executors.hosts import parse_host as parse_host
from edgekit.registry import RUNTIMES

#: The modules the agent imports (relative to the ``edgekit`` package): pushed to the board as they are,
#: with the built-in runtimes' modules (:func:`runtime_modules`).
AGENT_MODULES = ("__init__.py", "agent.py", "bench.py", "environment.py", "errors.py", "feeds.py", "types.py",
                 "results.py", "artifacts.py", "registry.py", "runtimes/__init__.py", "runtimes/base.py", "noise.py",
                 "comparison.py", "exit_codes.py", "machine_load.py", "interrupts.py",
                 "toolchains/__init__.py")  # the registry asks it whether a toolchain runtime is usable (never there)


def runtime_modules() -> tuple[str, ...]:
    """The files (relative to the package) of every built-in runtime of the registry: pushed when present
    (a runtime whose package is missing here may still be installed on the board). Runtimes that drive a vendor
    toolchain in its own virtualenv here (``Entry.toolchain``: an NPU simulator) never run on a board."""
    out = []
    for entry in RUNTIMES.values():
        if entry.toolchain:
            continue
        module = entry.target.partition(":")[0]
        if module.startswith("edgekit."):
            out.append("/".join(module.split(".")[1:]) + ".py")
    return tuple(dict.fromkeys(out))


class RemoteError(EdgekitError):
    """Reaching a board or running the agent there failed; the message says which step and why."""


# ------------------------------------------------------------------------------------------ commands
def remote_command(argv: Sequence[str]) -> str:
    """The one string sent to the remote shell for ``argv``: every word quoted (:func:`shlex.join`)."""
    if not argv or any(not isinstance(a, str) or "\x00" in a for a in argv):
        raise ConfigError("bad remote command", expected="non-empty words without NUL bytes", got=list(argv))
    return shlex.join(argv)


def agent_command(spec: HostSpec, run_dir: str) -> list[str]:
    """``env PYTHONPATH=<run_dir>/pkg <python> -m edgekit.agent <run_dir>/job.json`` as an argument list."""
    pkg = str(PurePosixPath(run_dir) / "pkg")
    return ["env", f"PYTHONPATH={pkg}", spec.python, "-m", "edgekit.agent", str(PurePosixPath(run_dir) / "job.json")]


#: ``sh -c LAUNCH edgekit-agent RUN_DIR ARGV...``: run ARGV in a process group of its own and write
#: ``group <pgid>`` (or, where no group of its own can be had, ``pid <pid>``) to ``RUN_DIR/agent.pid`` first.
#: sshd starts each command as a session leader, so the shell usually already leads its group (it is
#: ``exec``'d by the login shell); otherwise ``setsid`` (util-linux, busybox) makes one without forking.
#: One line, no ``!``: whatever the login shell (sh, bash, fish, csh) it reaches ``sh`` unchanged.
LAUNCH = ('d=$1; shift; g=; read -r _ _ _ _ g _ 2>/dev/null < "/proc/$$/stat"; '
          'if [ "$g" = "$$" ]; then echo "group $$" > "$d/agent.pid" || exit 125; exec "$@"; fi; '
          'if command -v setsid >/dev/null 2>&1; then echo "group $$" > "$d/agent.pid" || exit 125; '
          'exec setsid "$@"; fi; '
          'echo "pid $$" > "$d/agent.pid" || exit 125; exec "$@"')

#: ``sh -c CLEANUP edgekit-cleanup RUN_DIR``: TERM the job's group (or pid) from ``RUN_DIR/agent.pid``, KILL
#: what is left after ~2 s, then remove RUN_DIR. Only a plain integer > 1 is ever signalled (never ``kill -1``).
CLEANUP = ('d=$1; k=; p=; [ -r "$d/agent.pid" ] && read -r k p < "$d/agent.pid"; '
           'case $p in 0*|+*|-*) p= ;; esac; '
           'if [ -n "$p" ] && [ "$p" -gt 1 ] 2>/dev/null; then t=$p; [ "$k" = group ] && t=-$p; '
           'kill -TERM "$t" 2>/dev/null; i=0; '
           'while kill -0 "$t" 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; '
           'kill -KILL "$t" 2>/dev/null; fi; rm -rf -- "$d"')


def launch_command(run_dir: str, argv: Sequence[str]) -> list[str]:
    """``argv`` started through :data:`LAUNCH`: in its own process group, recorded in ``run_dir/agent.pid``."""
    return ["sh", "-c", LAUNCH, "edgekit-agent", run_dir, *argv]


def cleanup_command(run_dir: str) -> list[str]:
    """Kill what is left of the job in ``run_dir`` (its process group) and remove ``run_dir`` (:data:`CLEANUP`)."""
    return ["sh", "-c", CLEANUP, "edgekit-cleanup", run_dir]


def mktemp_command(spec: HostSpec) -> list[str]:
    """``mktemp -d`` in ``spec.remote_tmp`` (or the board's default temp folder)."""
    if spec.remote_tmp:
        return ["mktemp", "-d", "-p", spec.remote_tmp, "edgekit.XXXXXXXX"]
    return ["mktemp", "-d", "-t", "edgekit.XXXXXXXX"]


def agent_files() -> list[tuple[Path, str]]:
    """(local file, path under the pushed ``pkg/edgekit``) for every agent module present here."""
    root = Path(__file__).resolve().parent.parent
    out = []
    for rel in AGENT_MODULES:
        f = root / rel
        if not f.exists():
            raise RemoteError("an agent module is missing from this install", where=str(f))
        out.append((f, rel))
    return out + [(root / rel, rel) for rel in runtime_modules() if (root / rel).exists()]


# ------------------------------------------------------------------------------------------ connect
def _asyncssh() -> Any:
    return require("asyncssh", "ssh", "running benchmarks on boards over SSH")


async def connect(spec: HostSpec) -> Any:
    """Open an SSH connection (asyncssh ``SSHClientConnection``), retrying transient failures.

    Raises :class:`RemoteError` naming the host: host key mismatch / unknown host (not retried), auth
    refused (not retried), or the last transient error after ``1 + spec.retries`` attempts.
    """
    asyncssh = _asyncssh()
    if spec.key is not None:
        check_key(spec.key, f"{spec.label}: key")
    kwargs: dict[str, Any] = {"port": spec.port, "connect_timeout": spec.connect_timeout,
                              "login_timeout": spec.connect_timeout,
                              # a board that vanishes without closing TCP is noticed within ~1 minute
                              "keepalive_interval": 15.0, "keepalive_count_max": 4}
    if spec.user:
        kwargs["username"] = spec.user
    if spec.key is not None:
        kwargs["client_keys"] = [str(spec.key)]
    if not spec.verify_host_key:
        kwargs["known_hosts"] = None
    elif spec.known_hosts is not None:
        if not spec.known_hosts.exists():
            raise ConfigError("known_hosts file not found", where=str(spec.known_hosts),
                              hint=f"ssh-keyscan -p {spec.port} {spec.host} >> {spec.known_hosts} (check the key!)")
        kwargs["known_hosts"] = str(spec.known_hosts)
    last: BaseException | None = None
    for attempt in range(1 + max(0, spec.retries)):
        if attempt:
            await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        try:
            return await asyncio.wait_for(asyncssh.connect(spec.host, **kwargs), spec.connect_timeout + 5.0)
        except asyncssh.HostKeyNotVerifiable as exc:
            raise RemoteError(f"host key of {spec.label} not verified: {exc}", where=spec.label,
                              expected=f"a key listed in {spec.known_hosts or '~/.ssh/known_hosts'}",
                              hint="if the board was re-installed, check its key and update known_hosts "
                                   "(ssh-keygen -R HOST); --insecure-no-host-key-check skips the check") from exc
        except asyncssh.PermissionDenied as exc:
            raise RemoteError(f"{spec.label} refused the login: {exc}", where=spec.label,
                              hint="check the user and --ssh-key (ssh -i KEY USER@HOST must work)") from exc
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            # a local file (key, known_hosts, ssh config) that cannot be read: a local mistake, not retried
            raise ConfigError(f"cannot read a local SSH file: {exc.strerror}", where=str(exc.filename or spec.label),
                              hint="check --ssh-key / --ssh-known-hosts and the files they name") from exc
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            last = exc
    reason = _describe(last)
    raise RemoteError(f"cannot connect to {spec.label} after {1 + max(0, spec.retries)} attempt(s): {reason}",
                      where=spec.label, hint="is the board up and sshd listening on that port?")


def check_key(path: Path, where: str) -> None:
    """Refuse, before any connection attempt, a key file that is not a usable private key: missing, a public
    key, not a key (:func:`~edgekit.executors.hosts.check_private_key`), corrupt or passphrase-protected
    (parsed by asyncssh). :class:`ConfigError` naming ``where`` and the file; never retried."""
    check_private_key(path, where)
    asyncssh = _asyncssh()
    try:
        asyncssh.read_private_key(str(path))
    except (ValueError, OSError) as exc:  # asyncssh.KeyImportError is a ValueError
        shown = f"{where} {path}"
        if "assphrase" in str(exc):
            raise ConfigError("the SSH private key is passphrase-protected", where=shown,
                              expected="a key edgekit can read without a passphrase",
                              hint=f"load it into ssh-agent (ssh-add {path}) and leave out --ssh-key / key") from exc
        raise ConfigError(f"cannot read the SSH private key: {exc}", where=shown,
                          expected="an SSH private key (OpenSSH, PEM or PKCS#8 format)",
                          hint="ssh -i KEY USER@HOST must accept it") from exc


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


async def run_command(conn: Any, argv: Sequence[str], timeout: float, what: str,
                      spec: HostSpec) -> Any:
    """Run one quoted command; return asyncssh's ``SSHCompletedProcess``; transport errors -> RemoteError."""
    asyncssh = _asyncssh()
    try:
        proc = await conn.run(remote_command(argv), check=False, timeout=timeout)
    except asyncssh.TimeoutError as exc:
        raise RemoteError(f"{what} on {spec.label} timed out after {timeout:.0f} s", where=spec.label,
                          hint="raise run_timeout in the inventory, or lower --min-seconds") from exc
    except (OSError, asyncssh.Error) as exc:
        raise RemoteError(f"connection to {spec.label} lost during {what}: {_describe(exc)}",
                          where=spec.label) from exc
    if proc.exit_status is None:  # the channel closed without an exit status: the board or sshd went away
        signal = f"killed by signal {proc.exit_signal[0]}" if proc.exit_signal else "no exit status"
        raise RemoteError(f"connection to {spec.label} lost during {what} ({signal})", where=spec.label,
                          hint="did the board reboot, crash or run out of memory? (dmesg on the board)")
    return proc


def _tail(text: str | bytes | None, lines: int = 3) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    got = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(got[-lines:])[:600]


# ------------------------------------------------------------------------------------------ one job
@dataclass(frozen=True)
class RemoteJob:
    """What one agent run needs: the agent job (paths relative to the run dir are filled in here), the
    artifact's local file(s), and the feeds file."""

    job: Mapping[str, Any]
    artifact: Path
    feeds: Path
    fetch_outputs: Path | None = None  # for mode "outputs": where to save the board's outputs .npz


def _artifact_files(artifact: Path) -> list[Path]:
    """The artifact and its companions (same stem, e.g. OpenVINO ``.xml`` + ``.bin``)."""
    files = [artifact]
    if artifact.parent.is_dir():
        files += sorted(p for p in artifact.parent.iterdir()
                        if p.is_file() and p != artifact and p.stem == artifact.stem and p.suffix != ".json")
    return files


async def _push(conn: Any, spec: HostSpec, run_dir: str, job: RemoteJob) -> dict[str, Any]:
    asyncssh = _asyncssh()
    remote = PurePosixPath(run_dir)
    try:
        async with conn.start_sftp_client() as sftp:
            files = agent_files()
            subdirs = sorted({str(PurePosixPath(rel).parent) for _, rel in files} - {"."})
            for sub in ("pkg", "pkg/edgekit", *(f"pkg/edgekit/{d}" for d in subdirs), "work"):
                await sftp.mkdir(str(remote / sub))
            for local, rel in files:
                await sftp.put(str(local), str(remote / "pkg" / "edgekit" / rel))
            for f in _artifact_files(job.artifact):
                await sftp.put(str(f), str(remote / "work" / f.name))
            await sftp.put(str(job.feeds), str(remote / "work" / "feeds.npz"))
            data = {**job.job, "artifact": f"work/{job.artifact.name}", "inputs": "work/feeds.npz"}
            if job.fetch_outputs is not None:
                data["outputs_path"] = "work/outputs.npz"
            with tempfile.TemporaryDirectory(prefix="edgekit-ssh-") as tmp:
                local_job = Path(tmp) / "job.json"
                local_job.write_text(json.dumps(data))
                await sftp.put(str(local_job), str(remote / "job.json"))
    except asyncssh.SFTPError as exc:
        raise RemoteError(f"cannot copy files to {spec.label}:{run_dir}: {exc.reason}", where=spec.label,
                          hint="is the board's disk full or the temp folder read-only? (remote_tmp)") from exc
    except (OSError, asyncssh.Error) as exc:
        raise RemoteError(f"connection to {spec.label} lost while copying files: {_describe(exc)}",
                          where=spec.label) from exc
    return data


def parse_agent_output(stdout: str | bytes | None, stderr: str | bytes | None, status: int | None,
                       spec: HostSpec) -> dict[str, Any]:
    """The agent's one JSON object; a clear :class:`RemoteError` when it printed none or reported an error."""
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else (stdout or "")
    try:
        result = json.loads(text.strip().splitlines()[-1]) if text.strip() else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        why = _tail(stderr) or _tail(text) or "no output"
        missing = re.search(r"No module named '([^']+)'", why)
        hint = (f"install it on the board: {spec.python} -m pip install {missing.group(1).split('.')[0]}"
                if missing else f"edgekit doctor --target TARGET --host {spec.label}")
        if status == 127 or ("No such file or directory" in why and spec.python in why):
            hint = f"the remote Python '{spec.python}' was not found: set --remote-python"
        raise RemoteError(f"the agent on {spec.label} printed no result (exit {status}): {why}",
                          where=spec.label, hint=hint)
    err = result.get("error")
    if err is not None:
        info = err if isinstance(err, dict) else {"message": str(err)}
        message = str(info.get("message"))
        agent_hint = info.get("hint")
        exc = RemoteError(f"the agent on {spec.label} failed: {info.get('type', 'Error')}: {message}",
                          hint=None if agent_hint is None or str(agent_hint) in message else str(agent_hint))
        exc.agent_error_type = str(info.get("type", ""))  # type: ignore[attr-defined]
        raise exc
    return result


async def _make_run_dir(conn: Any, spec: HostSpec) -> str:
    made = await run_command(conn, mktemp_command(spec), spec.connect_timeout + 15.0, "mktemp", spec)
    run_dir = str(made.stdout or "").strip()
    if made.exit_status != 0 or not run_dir.startswith("/") or "\n" in run_dir:
        raise RemoteError(f"cannot create a temp dir on {spec.label}: {_tail(made.stderr) or run_dir or 'no output'}",
                          where=spec.remote_tmp or "$TMPDIR", hint="set a writable remote_tmp with free space")
    return run_dir


async def run_managed(conn: Any, spec: HostSpec, argv: Sequence[str], timeout: float, what: str) -> Any:
    """Run ``argv`` on the board the way the agent runs: in a temp dir, in a process group of its own, killed and
    removed on every way out (done, error, time-out, Ctrl-C). For commands that run the board's Python."""
    run_dir = await _make_run_dir(conn, spec)
    try:
        return await run_command(conn, launch_command(run_dir, argv), timeout, what, spec)
    finally:
        await _cleanup(conn, run_dir)


async def run_remote_job(conn: Any, spec: HostSpec, job: RemoteJob) -> dict[str, Any]:
    """Run one agent job on an open connection: temp dir, push, run, parse, fetch, clean up."""
    run_dir = await _make_run_dir(conn, spec)
    try:
        await _push(conn, spec, run_dir, job)
        proc = await run_command(conn, launch_command(run_dir, agent_command(spec, run_dir)), spec.run_timeout,
                                 "the agent run", spec)
        result = parse_agent_output(proc.stdout, proc.stderr, proc.exit_status, spec)
        if job.fetch_outputs is not None:
            try:
                async with conn.start_sftp_client() as sftp:
                    await sftp.get(str(PurePosixPath(run_dir) / "work" / "outputs.npz"), str(job.fetch_outputs))
            except (OSError, _asyncssh().Error) as exc:
                raise RemoteError(f"cannot fetch the outputs from {spec.label}: {_describe(exc)}",
                                  where=spec.label) from exc
        return result
    finally:
        # on every way out (done, error, time-out, Ctrl-C): kill the job's process group, remove the temp dir.
        # Best effort: the connection may be gone; never mask the job's own error.
        await _cleanup(conn, run_dir)


async def _cleanup(conn: Any, run_dir: str) -> None:
    """Run :func:`cleanup_command` for ``run_dir`` and wait for it (up to 30 s), even while being cancelled."""
    task = asyncio.ensure_future(conn.run(remote_command(cleanup_command(run_dir)), check=False))
    try:
        await asyncio.wait_for(asyncio.shield(task), 30.0)
    except asyncio.CancelledError:  # cancelled again (a second Ctrl-C) while cleaning up: finish it, then go
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 30.0)
        raise
    except Exception:
        pass


async def run_one(spec: HostSpec, job: RemoteJob) -> dict[str, Any]:
    """Connect, run one job, disconnect."""
    conn = await connect(spec)
    try:
        return await run_remote_job(conn, spec, job)
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------ doctor
_PROBE = r"""
import json, platform, sys, importlib
out = {"python": platform.python_version(), "machine": platform.machine(), "executable": sys.executable,
       "venv": sys.prefix != sys.base_prefix, "modules": {}}
for name in sys.argv[1:]:
    try:
        mod = importlib.import_module(name)
        info = {"ok": True, "version": str(getattr(mod, "__version__", ""))}
        providers = getattr(mod, "get_available_providers", None)  # e.g. ONNX Runtime's execution providers
        if callable(providers):
            info["providers"] = list(providers())
    except Exception as exc:
        info = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)}
    out["modules"][name] = info
print(json.dumps(out))
"""

async def probe_board(conn: Any, spec: HostSpec, modules: Sequence[str]) -> dict[str, Any]:
    """What the board's Python says (version, machine, executable, each of ``modules``: imports? version) and what
    its shell's ``uname -m`` says (``shell_machine``). ``emulated`` is True when they differ: the Python is an
    emulated one (qemu-user: an aarch64 Python on an x86 host), whose kernels are the emulated ISA's but whose
    timings are not the board's speed."""
    proc = await run_managed(conn, spec, [spec.python, "-c", _PROBE, *modules], spec.connect_timeout + 60.0,
                             "the probe")
    try:
        data: dict[str, Any] = json.loads(str(proc.stdout).strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise RemoteError(f"the board's Python '{spec.python}' did not run: {_tail(proc.stderr) or 'no output'}",
                          where=spec.label, hint=f"edgekit doctor --target TARGET --host {spec.label}") from exc
    shell = await run_command(conn, ["uname", "-m"], spec.connect_timeout + 15.0, "uname -m", spec)
    data["shell_machine"] = str(shell.stdout or "").strip()
    data["emulated"] = bool(data["shell_machine"]) and data["shell_machine"] != data.get("machine")
    return data


def board_needs(runtime: str) -> tuple[str, tuple[str, ...]]:
    """(module to import on the board, pip packages that install it there) for a registered runtime: its
    first non-edgekit ``requires`` and its ``pip`` (default: its ``requires``) in the registry."""
    entry = RUNTIMES.get(runtime)
    modules = [m for m in (entry.requires if entry else ()) if not m.startswith("edgekit.")] or [runtime]
    return modules[0], (entry.pip if entry and entry.pip else tuple(modules))


def doctor_remote(spec: HostSpec, runtimes: Sequence[str]) -> tuple[str, bool]:
    """Check Python (>= :data:`edgekit.MIN_PYTHON`), numpy and ``runtimes`` on the board; a report with the exact pip
    command for
    what is missing, and whether everything the agent needs is there."""
    modules = ["numpy"] + [board_needs(r)[0] for r in runtimes]

    async def probe() -> Any:
        conn = await connect(spec)
        try:  # managed like the agent: a Ctrl-C during the probe leaves nothing running on the board
            return await run_managed(conn, spec, [spec.python, "-c", _PROBE, *modules], spec.connect_timeout + 60.0,
                                     "the probe")
        finally:
            conn.close()

    proc = asyncio.run(probe())
    lines = [f"edgekit doctor for {spec.label} (host key {spec.host_key_policy})"]
    try:
        data = json.loads(str(proc.stdout).strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        lines.append(f"  missing  python       '{spec.python}' did not run: {_tail(proc.stderr) or 'no output'}")
        lines.append(f"  install Python {_MIN[0]}.{_MIN[1]}+ on the board (e.g. sudo apt-get install -y python3 "
                     "python3-pip), "
                     "or point --remote-python at it")
        return "\n".join(lines), False
    version = tuple(int(x) for x in re.findall(r"\d+", data["python"])[:2])
    ok = version >= _MIN
    lines.append(f"  {'ok' if ok else 'too old':8} python       {data['python']} ({data['machine']}) "
                 f"{data['executable']}" + ("" if ok else f": the agent needs Python >= {_MIN[0]}.{_MIN[1]}"))
    missing: list[str] = []
    for runtime, module in zip(["numpy", *runtimes], modules, strict=True):
        info = data["modules"].get(module, {})
        packages = ("numpy",) if runtime == "numpy" else board_needs(runtime)[1]
        if info.get("ok"):
            extra = f" providers: {', '.join(info['providers'])}" if info.get("providers") else ""
            lines.append(f"  ok       {runtime:12} {info.get('version', '')}{extra}")
        else:
            lines.append(f"  missing  {runtime:12} {info.get('error', '')}")
            missing.extend(p for p in packages if p not in missing)
    if missing:
        lines.append("install what is missing on the board with:")
        lines.append("  " + shlex.join([spec.python, "-m", "pip", "install", *missing]))
        if not data.get("venv"):
            lines.append("  (a system Python that refuses pip (PEP 668, Debian 12 / Raspberry Pi OS): make a venv: "
                         + shlex.join([spec.python, "-m", "venv", "edgekit-venv"]) + " && "
                         + shlex.join(["edgekit-venv/bin/pip", "install", *missing])
                         + "; then --remote-python ~/edgekit-venv/bin/python)")
        if "onnxruntime" in missing and data["machine"] == "aarch64":
            lines.append("  (Jetson: for CUDA/TensorRT use NVIDIA's onnxruntime-gpu wheel for your JetPack instead)")
    return "\n".join(lines), ok and not missing
