"""What machine a result was measured on: CPU, ISA flags, frequency governor, temperature and
throttling, memory, thread settings and library versions.

Everything is best effort: an unreadable file or a missing tool leaves its key out and never raises.
Needs only the standard library and numpy (psutil is used when importable), so it runs on a board.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

#: Environment variables that change how many threads numeric libraries use.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                   "NUMEXPR_NUM_THREADS", "OMP_WAIT_POLICY", "OMP_PROC_BIND", "KMP_AFFINITY",
                   "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

#: CPU flags that change which kernels runtimes pick (x86 ``flags`` and Arm ``Features`` names).
FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx_vnni_int8", "amx_tile",
                     "amx_int8", "amx_bf16", "amx_fp16", "neon", "asimd", "asimdhp", "asimddp", "fphp",
                     "i8mm", "bf16", "sve", "sve2", "sme")

#: Arm "CPU part" numbers (implementer 0x41) of common cores, for boards whose cpuinfo has no model name.
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2", "0xd4b": "Cortex-A78C", "0xd4d": "Cortex-A715", "0xd4e": "Cortex-X3",
    "0xd4f": "Neoverse-V2", "0xd80": "Cortex-A520", "0xd81": "Cortex-A720", "0xd82": "Cortex-X4",
}


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip()
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _best_effort() -> Iterator[None]:
    """Swallow anything one probe raises: environment capture must never fail a benchmark."""
    try:
        yield
    except Exception:  # deliberately best effort
        pass


def _cpuinfo() -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per block (processor), keys stripped."""
    text = _read("/proc/cpuinfo")
    if not text:
        return []
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\n\s*\n", text):
        block: dict[str, str] = {}
        for line in chunk.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                block[key.strip()] = value.strip()
        if block:
            blocks.append(block)
    return blocks


def _cpu_model(blocks: list[dict[str, str]]) -> str | None:
    for block in blocks:
        for key in ("model name", "Processor", "cpu model"):
            if block.get(key):
                return block[key]
    parts = sorted({b["CPU part"] for b in blocks if b.get("CPU implementer") == "0x41" and "CPU part" in b})
    if parts:
        return " + ".join(ARM_PARTS.get(p, f"Arm part {p}") for p in parts)
    if sys.platform == "darwin":
        with _best_effort():
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=2, check=False).stdout.strip()
            if out:
                return out
    return platform.processor() or None


def _cpu_flags(blocks: list[dict[str, str]]) -> list[str]:
    found: set[str] = set()
    for block in blocks[:1]:
        found.update(block.get("flags", "").split())
        found.update(block.get("Features", "").split())
    if platform.machine().lower() in ("aarch64", "arm64"):
        found.add("neon")  # Advanced SIMD is mandatory on AArch64
    keep = {f for f in found if f in FLAGS_OF_INTEREST or f.startswith("avx512")}
    return sorted(keep)


def _physical_cores(blocks: list[dict[str, str]]) -> int | None:
    with _best_effort():
        import psutil

        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    if pairs:
        return len(pairs)
    topo: set[tuple[str | None, str | None]] = set()
    for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*"):
        core = _read(cpu / "topology" / "core_id")
        if core is not None:
            topo.add((_read(cpu / "topology" / "physical_package_id"), core))
    return len(topo) or None


def _core_types(blocks: list[dict[str, str]]) -> dict[str, str] | None:
    """Which CPUs are which kind where a machine mixes them (None on a uniform one): Intel hybrid parts list
    their performance / efficient cores under ``/sys/devices/cpu_core`` and ``cpu_atom``; Arm big.LITTLE shows
    different ``CPU part`` numbers per processor in /proc/cpuinfo. Timings depend on which kind ran them."""
    core, atom = _read("/sys/devices/cpu_core/cpus"), _read("/sys/devices/cpu_atom/cpus")
    if core and atom:
        return {"performance": core, "efficient": atom}
    parts: dict[str, list[str]] = {}
    for block in blocks:
        if "CPU part" in block and "processor" in block:
            parts.setdefault(f"part {block['CPU part']}", []).append(block["processor"])
    return {k: ",".join(v) for k, v in parts.items()} if len(parts) > 1 else None


def _cpu(env: dict[str, Any]) -> None:
    blocks = _cpuinfo()
    model = _cpu_model(blocks)
    if model:
        env["cpu_model"] = model
    env["cpu_flags"] = _cpu_flags(blocks)
    env["logical_cores"] = os.cpu_count()
    with _best_effort():
        env["usable_cores"] = len(os.sched_getaffinity(0))
    phys = _physical_cores(blocks)
    if phys:
        env["physical_cores"] = phys
    quota = _read("/sys/fs/cgroup/cpu.max")  # cgroup v2 "max 100000" or "200000 100000"
    if quota and not quota.startswith("max"):
        with _best_effort():
            q, period = quota.split()[:2]
            env["cgroup_cpu_limit"] = round(int(q) / int(period), 2)
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq")
    for key, name in (("cpufreq_governor", "scaling_governor"), ("cpufreq_cur_khz", "scaling_cur_freq"),
                      ("cpufreq_max_khz", "cpuinfo_max_freq")):
        value = _read(cpufreq / name)
        if value:
            env[key] = int(value) if value.isdigit() else value
    types = _core_types(blocks)
    if types:
        env["core_types"] = types
    board = _read("/proc/device-tree/model")
    if board:
        env["board_model"] = board.rstrip("\x00")


def _thermal(env: dict[str, Any]) -> None:
    temps: dict[str, float] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        raw = _read(zone / "temp")
        if raw and raw.lstrip("-").isdigit():
            kind = _read(zone / "type") or zone.name
            temps[f"{zone.name}:{kind}"] = int(raw) / 1000.0
    if temps:
        env["cpu_temperature_c"] = temps
    throttle: dict[str, int] = {}
    for cpu in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*")):
        raw = _read(cpu / "thermal_throttle" / "core_throttle_count")
        if raw and raw.isdigit():
            throttle[cpu.name] = int(raw)
    if throttle:
        env["core_throttle_count"] = throttle
    tool = shutil.which("vcgencmd")
    if tool:
        with _best_effort():
            out = subprocess.run([tool, "get_throttled"], capture_output=True, text=True, timeout=3,
                                 check=False).stdout.strip()
            if out:
                env["rpi_throttled"] = out.partition("=")[2] or out  # "throttled=0x0": 0x0 is clean


def _meminfo_mb(text: str, key: str) -> float | None:
    m = re.search(rf"^{key}:\s+(\d+)\s*kB", text, re.MULTILINE)
    return round(int(m.group(1)) / 1024.0, 1) if m else None


def _memory(env: dict[str, Any]) -> None:
    text = _read("/proc/meminfo")
    if text:
        for key, name in (("memory_total_mb", "MemTotal"), ("memory_available_mb", "MemAvailable")):
            value = _meminfo_mb(text, name)
            if value is not None:
                env[key] = value
        return
    with _best_effort():
        import psutil

        vm = psutil.virtual_memory()
        env["memory_total_mb"] = round(vm.total / 2**20, 1)
        env["memory_available_mb"] = round(vm.available / 2**20, 1)
        return
    with _best_effort():
        env["memory_total_mb"] = round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except (metadata.PackageNotFoundError, ValueError):
        return None


def runtime_versions(runtimes: Sequence[str]) -> dict[str, str]:
    """Installed versions of the packages behind each named runtime; missing ones are left out.

    A name is looked up as a distribution, then through the registry's import names and the
    distributions that provide them (``onnxruntime`` may come from ``onnxruntime-gpu``).
    """
    out: dict[str, str] = {}
    modules: list[str] = []
    for name in runtimes:
        modules.append(name)
        with _best_effort():
            from edgekit.registry import RUNTIMES

            entry = RUNTIMES.get(name)
            if entry is not None:
                modules.extend(entry.requires)
    providers = _providers()
    for mod in dict.fromkeys(modules):
        top = mod.split(".")[0]
        for dist in [mod, *providers.get(top, [])]:
            version = _dist_version(dist)
            if version is not None:
                out[dist] = version
    return out


def environment(runtimes: Sequence[str] = ()) -> dict[str, Any]:
    """Describe this machine and software stack as a JSON-ready dict (best effort, never raises)."""
    env: dict[str, Any] = {}
    with _best_effort():
        env["captured_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")  # noqa: UP017 (3.9 agent)
    with _best_effort():
        env["hostname"] = socket.gethostname()
    with _best_effort():
        env["os"] = platform.system()
        env["os_release"] = platform.release()
        env["platform"] = platform.platform()
        env["machine"] = platform.machine()
    with _best_effort():
        _cpu(env)
    with _best_effort():
        _thermal(env)
    with _best_effort():
        _memory(env)
    with _best_effort():
        env["load_average"] = [round(x, 2) for x in os.getloadavg()]
    env["python"] = platform.python_version()
    env["python_implementation"] = platform.python_implementation()
    with _best_effort():
        import numpy

        env["numpy"] = numpy.__version__
    with _best_effort():
        version = _dist_version("edgekit")
        if version:
            env["edgekit"] = version
    with _best_effort():
        env["runtime_versions"] = runtime_versions(runtimes)
    env["thread_env"] = {k: os.environ[k] for k in THREAD_ENV_VARS if k in os.environ}
    return env


@functools.lru_cache(maxsize=1)
def _providers() -> dict[str, list[str]]:
    """Top-level module -> distributions, read once per process (it parses every installed package's
    metadata: about a second with the full stack, which was paid again for every benchmarked artifact)."""
    providers: dict[str, list[str]] = {}
    with _best_effort():
        providers = {k: list(v) for k, v in metadata.packages_distributions().items()}
    return providers


def machine_notes(env: Mapping[str, Any]) -> list[str]:
    """What of this machine's description bears on its timings: a frequency governor that lets the clock move
    (anything but ``performance``), mixed core types (which kind ran the benchmark decides its speed)."""
    out: list[str] = []
    governor = env.get("cpufreq_governor")
    if isinstance(governor, str) and governor != "performance":
        out.append(f"CPU frequency governor '{governor}': the clock follows the load, so timings can move between "
                   "rows; 'performance' (cpupower frequency-set -g performance) holds it")
    if env.get("core_types"):
        kinds = "; ".join(f"{k}: CPUs {v}" for k, v in env["core_types"].items())
        out.append(f"this CPU mixes core types ({kinds}): pin the benchmark (taskset) to one kind for stable numbers")
    return out
