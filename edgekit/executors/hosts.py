"""How to reach a board: :class:`HostSpec`, from ``--host USER@HOST:PORT`` (:func:`parse_host`) or a user's
inventory file (:func:`load_inventory`), never from the repository. Executors that reach machines by address
(:mod:`edgekit.executors.ssh`) take them from :attr:`edgekit.executors.base.ExecutorOptions.hosts`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError

_INVENTORY_KEYS = {"name", "address", "target", "key", "python", "known_hosts", "remote_tmp", "connect_timeout",
                   "run_timeout", "retries"}


@dataclass(frozen=True)
class HostSpec:
    """How to reach one board.

    ``python``: the remote Python executable (one word, e.g. ``python3`` or ``/home/pi/venv/bin/python``).
    ``known_hosts``: None = the user's ``~/.ssh/known_hosts``. ``verify_host_key=False`` disables host key
    checking (explicit opt-out, recorded in the report). ``remote_tmp``: the folder ``mktemp -d`` creates
    the per-run dir in (None: the board's ``$TMPDIR`` or ``/tmp``). ``target``: the target this host is
    (None: any ssh target of the run). ``retries``: extra connection attempts on transient errors.
    """

    host: str
    user: str | None = None
    port: int = 22
    key: Path | None = None
    python: str = "python3"
    known_hosts: Path | None = None
    verify_host_key: bool = True
    target: str | None = None
    name: str | None = None
    remote_tmp: str | None = None
    connect_timeout: float = 15.0
    run_timeout: float = 1800.0
    retries: int = 2

    @property
    def label(self) -> str:
        """``name`` or ``user@host:port``: how the host appears in rows and messages."""
        if self.name:
            return self.name
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user + '@' if self.user else ''}{host}:{self.port}"

    @property
    def host_key_policy(self) -> str:
        """What the report records about host key checking."""
        if not self.verify_host_key:
            return "NOT verified (--insecure-no-host-key-check)"
        return f"verified against {self.known_hosts or '~/.ssh/known_hosts'}"


_ADDRESS = re.compile(r"^(?:(?P<user>[^@]+)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:@\[\]]+))(?::(?P<port>\d+))?$")


def parse_host(text: str, where: str = "--host") -> HostSpec:
    """Parse ``[USER@]HOST[:PORT]`` (IPv6 as ``[addr]:port``) into a :class:`HostSpec`."""
    m = _ADDRESS.match(text.strip())
    if not m:
        raise ConfigError("cannot parse the host address", where=where, expected="[USER@]HOST[:PORT]", got=text)
    port = int(m.group("port") or 22)
    if not 0 < port < 65536:
        raise ConfigError("bad port", where=where, expected="1..65535", got=port)
    return HostSpec(host=m.group("v6") or m.group("host"), user=m.group("user"), port=port)


def load_inventory(path: Path) -> tuple[HostSpec, ...]:
    """Read a user's inventory TOML: ``[[host]]`` tables with ``address`` (``USER@HOST:PORT``) and ``target``,
    optionally ``name``, ``key``, ``python``, ``known_hosts``, ``remote_tmp``, ``connect_timeout``,
    ``run_timeout``, ``retries``. A ``[defaults]`` table gives values for every host."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the inventory: {exc.strerror}", where=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the inventory is not valid TOML: {exc}", where=str(path)) from exc
    unknown = sorted(set(data) - {"host", "defaults"})
    if unknown:
        raise ConfigError("unknown inventory key", where=f"{path}:{unknown[0]}", expected="[[host]] or [defaults]",
                          got=unknown[0])
    defaults = data.get("defaults", {})
    hosts = data.get("host", [])
    if not isinstance(defaults, dict) or not isinstance(hosts, list) or not hosts:
        raise ConfigError("an inventory needs one or more [[host]] tables", where=str(path),
                          expected='[[host]] address = "pi@192.168.1.20:22" target = "raspberry-pi-5"')
    out = []
    for i, raw in enumerate(hosts):
        where = f"{path}:host[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError("a host entry must be a table", where=where, got=raw)
        entry = {**defaults, **raw}
        bad = sorted(set(entry) - _INVENTORY_KEYS)
        if bad:
            raise ConfigError("unknown host key", where=f"{where}.{bad[0]}",
                              expected="one of " + ", ".join(sorted(_INVENTORY_KEYS)), got=bad[0])
        for key in ("address", "target"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError("missing host key", where=f"{where}.{key}", expected="a string", got=entry.get(key))
        spec = parse_host(entry["address"], where=f"{where}.address")
        spec = replace(spec, target=entry["target"], name=_opt_str(entry, "name", where),
                       key=_opt_path(entry, "key", where, path.parent),
                       known_hosts=_opt_path(entry, "known_hosts", where, path.parent),
                       python=_opt_str(entry, "python", where) or "python3",
                       remote_tmp=_opt_str(entry, "remote_tmp", where))
        for key, minimum in (("connect_timeout", 1.0), ("run_timeout", 1.0), ("retries", 0)):
            if key in entry:
                val = entry[key]
                if isinstance(val, bool) or not isinstance(val, (int, float)) or val < minimum:
                    raise ConfigError("bad value", where=f"{where}.{key}", expected=f"a number >= {minimum}", got=val)
                if key == "retries":
                    spec = replace(spec, retries=int(val))
                elif key == "run_timeout":
                    spec = replace(spec, run_timeout=float(val))
                else:
                    spec = replace(spec, connect_timeout=float(val))
        out.append(spec)
    return tuple(out)


def _opt_str(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    val = entry.get(key)
    if val is not None and (not isinstance(val, str) or not val):
        raise ConfigError("bad value", where=f"{where}.{key}", expected="a non-empty string", got=val)
    return val


def _opt_path(entry: Mapping[str, Any], key: str, where: str, base: Path) -> Path | None:
    val = _opt_str(entry, key, where)
    if val is None:
        return None
    p = Path(val).expanduser()
    return p if p.is_absolute() else base / p
