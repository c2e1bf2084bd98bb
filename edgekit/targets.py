"""Targets are data: one TOML file per device, validated here.

Unknown keys are errors that cite ``file:key``. The built-in catalogue lives in the repository's
``targets/`` folder (and in the wheel, under ``edgekit/_data/targets``); users pass their own file
with ``--target path/to/board.toml``.
"""

from __future__ import annotations

import platform
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError, UnknownNameError
from edgekit.resources import bundled_dir
from edgekit.types import Precision

ISA_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8",
                "avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16",
                "neon", "asimddp", "asimdhp", "i8mm", "sve")


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime a target can run: registry name, threads, providers/device and allowed precisions."""

    name: str
    threads: int | None = None
    providers: tuple[str, ...] = ()
    device: str | None = None
    precisions: tuple[Precision, ...] = tuple(Precision)


@dataclass(frozen=True)
class Target:
    """A device edgekit can benchmark on (``access="local"``), reach over SSH, or estimate for."""

    name: str
    description: str
    access: str
    arch: str
    isa: tuple[str, ...]
    runtimes: tuple[RuntimeSpec, ...]
    memory_mb: int | None = None
    sram_kb: int | None = None
    flash_kb: int | None = None
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def runtime(self, name: str) -> RuntimeSpec | None:
        return next((r for r in self.runtimes if r.name == name), None)

    @property
    def has_bf16(self) -> bool:
        """Whether the target's CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16, as declared or read)."""
        return bool(set(self.isa) & {"avx512_bf16", "amx_bf16"})

    @property
    def int8_preset(self) -> str:
        """The int8 recipe family that suits this target's ISA (like optimum's avx2/avx512_vnni/arm64)."""
        isa = set(self.isa)
        if self.arch == "hexagon":
            return "qnn"
        if self.arch == "rknpu2":
            return "rknn"
        if isa & {"avx512_vnni", "avx_vnni", "amx_int8"}:
            return "vnni"
        if self.arch in ("aarch64", "arm64") or isa & {"neon", "asimddp"}:
            return "arm64"
        if "avx2" in isa:
            return "avx2"
        return "generic"


_TOP_KEYS = {"schema", "name", "description", "access", "arch", "isa", "memory_mb", "sram_kb", "flash_kb",
             "runtime", "estimate", "board"}
_RUNTIME_KEYS = {"name", "threads", "providers", "device", "precisions"}


def detect_isa() -> tuple[str, ...]:
    """ISA features of this machine's CPU, read from /proc/cpuinfo (Linux) where possible."""
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
            break
    aliases = {"avx512vnni": "avx512_vnni", "avx_vnni": "avx_vnni", "avx512_vnni": "avx512_vnni"}
    found = {aliases.get(f, f) for f in flags}
    if platform.machine() in ("aarch64", "arm64"):
        found.add("neon")
    return tuple(f for f in ISA_FEATURES if f in found)


def _check(cond: bool, where: str, message: str, expected: str, got: Any) -> None:
    if not cond:
        raise ConfigError(message, where=where, expected=expected, got=got)


def access_kinds() -> tuple[str, ...]:
    """The ``access`` a target may have: the executors of the registry (``local``, ``ssh``, ``estimate``, ...)."""
    from edgekit.registry import access_kinds as registered

    return registered()


def runs_here(access: str) -> bool:
    """Whether targets of ``access`` run on this machine (the registry's executor says so)."""
    from edgekit.registry import runs_here as registered

    return registered(access)


def runtime_names(access: str) -> tuple[str, ...]:
    """The names a target's ``[[runtime]]`` may give: registered runtimes (built-in and entry points) for
    ``local``/``ssh`` targets, the registered estimators for ``estimate`` targets (the access's executor says
    which)."""
    from edgekit.registry import target_runtime_names

    return target_runtime_names(access)


def _parse_runtime(raw: Any, where: str, access: str = "local") -> RuntimeSpec:
    _check(isinstance(raw, dict), where, "a runtime entry must be a table", "[[runtime]] table", raw)
    for key in raw:
        if key not in _RUNTIME_KEYS:
            raise ConfigError("unknown key", where=f"{where}.{key}", expected="one of " + ", ".join(sorted(
                _RUNTIME_KEYS)), got=key)
    name = raw.get("name")
    _check(isinstance(name, str) and bool(name), f"{where}.name", "runtime name missing", "a registry name",
           name)
    known = runtime_names(access)
    if name not in known:  # a misspelled name would otherwise match no artifact and give zero rows
        raise UnknownNameError(f"unknown runtime for an access = {access!r} target", where=f"{where}.name",
                               expected="one of: " + ", ".join(known), got=name,
                               hint="edgekit doctor lists the runtimes; a plugin's runtime needs its package "
                                    "installed")
    threads = raw.get("threads")
    _check(threads is None or (isinstance(threads, int) and threads > 0), f"{where}.threads",
           "bad thread count", "a positive integer", threads)
    providers = raw.get("providers", [])
    _check(isinstance(providers, list) and all(isinstance(p, str) for p in providers),
           f"{where}.providers", "bad providers", "a list of strings", providers)
    device = raw.get("device")
    _check(device is None or isinstance(device, str), f"{where}.device", "bad device", "a string", device)
    precisions = raw.get("precisions", [p.value for p in Precision])
    _check(isinstance(precisions, list), f"{where}.precisions", "bad precisions", "a list", precisions)
    _check(bool(precisions), f"{where}.precisions", "no precision listed: the runtime would run nothing",
           "one or more of " + ", ".join(p.value for p in Precision), precisions)
    parsed = tuple(Precision.parse(p, where=f"{where}.precisions") for p in precisions)
    return RuntimeSpec(str(name), threads, tuple(providers), device, parsed)


def parse_target(data: dict[str, Any], source: str = "<target>") -> Target:
    """Validate a target mapping (as read from TOML); every error cites ``source:key``."""
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError("unknown key", where=f"{source}:{key}",
                              expected="one of " + ", ".join(sorted(_TOP_KEYS)), got=key,
                              hint="check the spelling against targets/local-cpu.toml")
    schema = data.get("schema")
    _check(schema == 1, f"{source}:schema", "unsupported target schema" if "schema" in data else
           "the schema key is missing", "schema = 1", schema if "schema" in data else "(no schema key)")
    name = data.get("name")
    _check(isinstance(name, str) and bool(name), f"{source}:name", "target name missing", "a string", name)
    access = data.get("access", "local")
    kinds = access_kinds()
    _check(access in kinds, f"{source}:access", "unknown access kind", " | ".join(kinds), access)
    arch = data.get("arch", "auto")
    _check(isinstance(arch, str), f"{source}:arch", "bad arch", "a string such as x86_64 or aarch64", arch)
    if arch == "auto":
        arch = platform.machine()
    isa = data.get("isa", "auto" if runs_here(access) else [])  # this machine's CPU by default
    if isa == "auto":
        isa = list(detect_isa())
    _check(isinstance(isa, list) and all(isinstance(f, str) for f in isa), f"{source}:isa",
           "bad isa", 'a list of CPU features or "auto"', isa)
    for feat in isa:
        _check(feat in ISA_FEATURES, f"{source}:isa", "unknown ISA feature", ", ".join(ISA_FEATURES), feat)
    for key in ("memory_mb", "sram_kb", "flash_kb"):
        val = data.get(key)
        _check(val is None or (isinstance(val, int) and val > 0), f"{source}:{key}", "bad size",
               "a positive integer", val)
    raw_runtimes = data.get("runtime", [])
    _check(isinstance(raw_runtimes, list) and bool(raw_runtimes), f"{source}:runtime",
           "a target needs at least one [[runtime]]", "one or more [[runtime]] tables", raw_runtimes)
    runtimes = tuple(_parse_runtime(r, f"{source}:runtime[{i}]", str(access)) for i, r in enumerate(raw_runtimes))
    for i, spec in enumerate(runtimes):  # two tables of one runtime gave rows nobody could tell apart
        _check(spec.name not in [r.name for r in runtimes[:i]], f"{source}:runtime[{i}].name",
               "runtime listed twice in this target", "each runtime once (one [[runtime]] table per name)", spec.name)
    extra: dict[str, Any] = {k: data[k] for k in ("estimate", "board") if k in data}
    return Target(
        name=str(name), description=str(data.get("description", "")), access=str(access), arch=arch,
        isa=tuple(isa), runtimes=runtimes, memory_mb=data.get("memory_mb"), sram_kb=data.get("sram_kb"),
        flash_kb=data.get("flash_kb"), source=Path(source) if source != "<target>" else None, extra=extra,
    )


def builtin_targets_dir() -> Path:
    """Where the built-in target files are: the wheel's ``edgekit/_data/targets`` or the repo's ``targets/``."""
    return bundled_dir("targets")


def list_targets(extra_dirs: tuple[Path, ...] = ()) -> list[Target]:
    """All built-in targets (and those in ``extra_dirs``), sorted by name."""
    out = []
    for folder in (builtin_targets_dir(), *extra_dirs):
        for f in sorted(folder.glob("*.toml")):
            out.append(load_target_file(f))
    return sorted(out, key=lambda t: t.name)


def load_target_file(path: Path) -> Target:
    """Load and validate one target file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("cannot read target file", where=str(path), hint=str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("the target file is not UTF-8 text", where=str(path), expected="a UTF-8 TOML file",
                          got=f"byte {exc.object[exc.start]:#04x} at offset {exc.start}",
                          hint="save it as UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from exc
    return parse_target(data, str(path))


def load_target(name_or_path: str | Path) -> Target:
    """A target by built-in name (``local-cpu``) or by path to a ``.toml`` file."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ConfigError("target file not found", where=str(p), hint="edgekit targets list")
        return load_target_file(p)
    candidate = builtin_targets_dir() / f"{name_or_path}.toml"
    if candidate.exists():
        return load_target_file(candidate)
    names = sorted(f.stem for f in builtin_targets_dir().glob("*.toml"))
    raise UnknownNameError("unknown target", where="--target", expected="one of: " + ", ".join(names),
                           got=str(name_or_path), hint="edgekit targets list, or pass a path to a .toml file")
