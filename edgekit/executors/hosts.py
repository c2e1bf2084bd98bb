"""How to reach a board: :class:`HostSpec`, from ``--host USER@HOST:PORT`` (:func:`parse_host`) or a user's
inventory file (:func:`load_inventory`), never from the repository. Executors that reach machines by address
(:mod:`edgekit.executors.ssh`) take them from :attr:`edgekit.executors.base.ExecutorOptions.hosts`.

Numbers are range-checked (:data:`LIMITS`: a ``retries = 1000000`` or ``connect_timeout = 1e308`` would
otherwise hang silently) and a key file is checked to be a private key (:func:`check_private_key`) when it is
named, so a local mistake is one line naming the file or key, never a connection retried as if the board
were down.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError

#: The allowed range of each numeric host setting: (minimum, maximum, integer only).
LIMITS: dict[str, tuple[float, float, bool]] = {
    "connect_timeout": (1.0, 600.0, False),   # seconds, one connection attempt (and the login)
    "run_timeout": (1.0, 86400.0, False),     # seconds, one agent run on the board (a day at most)
    "retries": (0, 20, True),                 # extra connection attempts on transient errors
}

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

    def __post_init__(self) -> None:
        for key in LIMITS:
            check_limit(key, getattr(self, key), f"HostSpec.{key}")

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


def check_limit(key: str, value: Any, where: str) -> None:
    """Raise :class:`ConfigError` naming ``where``, ``value`` and the allowed range unless ``value`` is a finite
    number within :data:`LIMITS` ``[key]`` (an integer where the key counts something)."""
    low, high, integer = LIMITS[key]
    kind = "an integer" if integer else "a number of seconds"
    expected = f"{kind} from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise ConfigError(f"{key} must be {kind}", where=where, expected=expected, got=value)
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{key} is out of range", where=where, expected=expected, got=value)


#: The first line of a public key file (OpenSSH one-line format, RFC 4716) or of a key that is not a private key.
_PUBLIC_KEY = re.compile(r"^(ssh-(rsa|dss|ed25519|ed448)|ecdsa-sha2-|sk-(ssh|ecdsa)-|"
                         r"[a-z0-9-]+-cert-v01@openssh\.com|---- BEGIN SSH2 PUBLIC KEY)")
_PRIVATE_KEY = re.compile(r"^(-----BEGIN ([A-Z0-9]+ )?(ENCRYPTED )?PRIVATE KEY-----|PuTTY-User-Key-File-)", re.M)


def check_private_key(path: Path, where: str) -> Path:
    """``path`` if it is a readable file that looks like an SSH private key; else :class:`ConfigError` naming
    the file and ``where`` (``--ssh-key`` or ``file:host[i].key``): missing, a folder, unreadable, a public
    key (the ``.pub`` half) or not a key at all. A local mistake, so never a connection retry.

    This is a cheap check of the file's first line; :func:`edgekit.executors.ssh.connect` parses the key in
    full before the first attempt (an encrypted key, a corrupt one)."""
    shown = f"{where} {path}" if where != str(path) else str(path)
    expected = "an SSH private key file (e.g. ~/.ssh/id_ed25519, not the .pub)"
    if not path.exists():
        raise ConfigError("the SSH key file does not exist", where=shown, expected=expected,
                          hint="check the path (a missing key is a local mistake, not a board that is down)")
    if not path.is_file():
        raise ConfigError("the SSH key is not a file", where=shown, expected=expected)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError as exc:
        raise ConfigError(f"cannot read the SSH key: {exc.strerror}", where=shown, expected=expected,
                          hint="the key must be readable by you (chmod 600 it)") from exc
    first = head.lstrip().split("\n", 1)[0]
    if _PUBLIC_KEY.match(first):
        private = path.with_suffix("") if path.suffix == ".pub" else None
        hint = (f"pass the private key {private} instead" if private is not None and private.is_file()
                else "pass the private half of the key pair (the file without .pub)")
        raise ConfigError("this is a public key, not a private key", where=shown, expected=expected,
                          got=first[:40] + ("..." if len(first) > 40 else ""), hint=hint)
    if not _PRIVATE_KEY.search(head):
        raise ConfigError("this file is not an SSH private key", where=shown, expected=expected,
                          got=first[:40] + ("..." if len(first) > 40 else ""),
                          hint="ssh-keygen -t ed25519 makes a key pair; pass the private key file")
    return path


def load_inventory(path: Path) -> tuple[HostSpec, ...]:
    """Read a user's inventory TOML: ``[[host]]`` tables with ``address`` (``USER@HOST:PORT``) and ``target``,
    optionally ``name``, ``key``, ``python``, ``known_hosts``, ``remote_tmp``, ``connect_timeout``,
    ``run_timeout``, ``retries``. A ``[defaults]`` table gives values for every host. Numbers must lie in
    :data:`LIMITS`, a ``key`` must be a private key file (:func:`check_private_key`); errors name ``file:key``."""
    path = Path(path).expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the inventory: {exc.strerror}", where=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the inventory is not UTF-8 text", where=str(path), expected="a UTF-8 TOML file",
                          got=f"byte {exc.object[exc.start]:#04x} at offset {exc.start}") from exc
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
        # where a value came from: this host's table, or [defaults]
        at = {key: f"{path}:defaults.{key}" if key in defaults and key not in raw else f"{where}.{key}"
              for key in entry}
        numbers: dict[str, Any] = {}
        for key in LIMITS:
            if key in entry:
                check_limit(key, entry[key], at[key])
                numbers[key] = entry[key] if LIMITS[key][2] else float(entry[key])
        key_file = _opt_path(entry, "key", where, path.parent)
        if key_file is not None:
            check_private_key(key_file, at["key"])
        spec = parse_host(entry["address"], where=f"{where}.address")
        spec = replace(spec, target=entry["target"], name=_opt_str(entry, "name", where), key=key_file,
                       known_hosts=_opt_path(entry, "known_hosts", where, path.parent),
                       python=_opt_str(entry, "python", where) or "python3",
                       remote_tmp=_opt_str(entry, "remote_tmp", where), **numbers)
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
