"""Real ``sshd`` processes on loopback high ports for the SSH tests (tests/executors, tests/faults).

Each server is Debian's ``/usr/sbin/sshd -D -e -f <private config>`` with a throw-away host key and an
authorized client key in a temp dir (design.md section 7: as root it needs ``/run/sshd``; the keys in a
world-writable temp dir need ``StrictModes no``). Servers are stopped by their pid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgekit.executors.hosts import HostSpec

SSHD = Path("/usr/sbin/sshd")
#: skip marker for modules that start servers
needs_sshd = pytest.mark.skipif(not SSHD.exists() or not Path("/usr/bin/ssh-keygen").exists(),
                                reason="openssh-server missing: run `make setup` as root (installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (by /proc ppid), deepest last."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@dataclass
class Sshd:
    """One running sshd: its port, process and the host key line for known_hosts."""

    port: int
    proc: subprocess.Popen[bytes]
    host_pub: str
    log: Path

    def kill_all(self) -> None:
        """Kill the daemon and every session below it (the board 'dies')."""
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def start_sshd(folder: Path, name: str, client_pub: str) -> Sshd:
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    host_pub = keygen(folder / f"{name}_host")
    (folder / f"{name}_authorized_keys").write_text(client_pub + "\n")
    port = free_port()
    config = folder / f"{name}.conf"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / f'{name}_host'}",
        f"PidFile {folder / f'{name}.pid'}", f"AuthorizedKeysFile {folder / f'{name}_authorized_keys'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp",
        "MaxSessions 20", "MaxStartups 50", "LogLevel ERROR", ""]))
    log = folder / f"{name}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return Sshd(port, proc, host_pub, log)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"sshd did not listen: {log.read_text()}")


@dataclass
class SshEnv:
    folder: Path
    key: Path
    client_pub: str
    known_hosts: Path
    servers: dict[str, Sshd]

    def spec(self, server: str, **kw: object) -> HostSpec:
        base = HostSpec(host="127.0.0.1", user=getpass.getuser(), port=self.servers[server].port, key=self.key,
                        python=sys.executable, known_hosts=self.known_hosts, connect_timeout=10.0, retries=1,
                        run_timeout=120.0)
        return dataclasses.replace(base, **kw)  # type: ignore[arg-type]

    def add(self, name: str) -> Sshd:
        server = start_sshd(self.folder, name, self.client_pub)
        self.servers[name] = server
        with open(self.known_hosts, "a") as fh:
            fh.write(f"[127.0.0.1]:{server.port} {server.host_pub}\n")
        return server


@contextlib.contextmanager
def running_sshd(folder: Path, *names: str) -> Iterator[SshEnv]:
    """One real sshd per name on loopback ports, a throw-away client key and known_hosts in ``folder``;
    every server is stopped on the way out."""
    key = folder / "client"
    env = SshEnv(folder, key, keygen(key), folder / "known_hosts", {})
    env.known_hosts.write_text("")
    try:
        for name in names:
            env.add(name)
        yield env
    finally:
        for server in env.servers.values():
            if server.proc.poll() is None:
                server.proc.terminate()
                server.proc.wait(timeout=10)


def kill_when_agent_runs(board: Sshd, delay: float = 0.5, timeout: float = 60.0) -> None:
    """Kill ``board`` (sshd and its sessions) ``delay`` seconds after edgekit's agent starts on it: the board dies
    mid-run. Meant for a thread beside the run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in descendants(board.proc.pid):
            with contextlib.suppress(OSError):
                if b"edgekit.agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    time.sleep(delay)
                    board.kill_all()
                    return
        time.sleep(0.05)
