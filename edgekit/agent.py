"""The small on-device runner: ``python -m edgekit.agent JOB.json`` (or ``-`` to read the job from stdin).

It needs only the standard library, numpy and one runtime, so the same file runs the local memory
pass and benchmarks on a remote board. A job is a JSON object::

    {"mode": "bench" | "memory" | "outputs", "runtime": "onnxruntime", "artifact": "model.onnx",
     "inputs": "feeds.npz", "runtime_options": {"threads": 1, "providers": [], "device": null},
     "bench_options": {...BenchOptions fields...}, "outputs_path": "out.npz"}

Relative paths are resolved against the job file's folder. Feeds files hold one array per key
``"<i>/<input_name>"`` for feed ``i`` (see :mod:`edgekit.feeds`, re-exported here); outputs files use
``"<i>/<output_index>"``.

Exactly one JSON object is printed on stdout (anything the runtime prints goes to stderr):
``bench`` prints the ``BenchResult`` as a dict, ``memory`` the peak-RSS report, ``outputs`` the
outputs' keys, shapes and dtypes. On any error it prints ``{"error": {"type", "message", ...}}``
and exits 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BenchmarkError, ConfigError, EdgekitError
from edgekit.feeds import read_feeds_npz as read_feeds_npz
from edgekit.feeds import read_outputs_npz as read_outputs_npz
from edgekit.feeds import write_feeds_npz as write_feeds_npz
from edgekit.feeds import write_npz
from edgekit.runtimes.base import RuntimeOptions

MODES = ("bench", "memory", "outputs")


# ------------------------------------------------------------------------------------------------ job
@dataclass(frozen=True)
class Job:
    """One agent job (see the module docstring); paths already resolved."""

    mode: str
    runtime: str
    artifact: Path
    inputs: Path
    runtime_options: RuntimeOptions = field(default_factory=RuntimeOptions)
    bench_options: dict[str, Any] = field(default_factory=dict)
    outputs_path: Path | None = None

    @classmethod
    def from_dict(cls, data: Any, base: Path, where: str = "job") -> Job:
        """Validate a job object; unknown or missing keys raise :class:`ConfigError` naming them."""
        if not isinstance(data, dict):
            raise ConfigError("a job must be a JSON object", where=where, got=type(data).__name__)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("unknown job key", where=f"{where}.{unknown[0]}",
                              expected="one of: " + ", ".join(sorted(known)), got=unknown[0])
        required = ["mode", "runtime", "artifact", "inputs"]
        if data.get("mode") == "outputs":
            required.append("outputs_path")
        for key in required:
            if not isinstance(data.get(key), str) or not data[key]:
                raise ConfigError("missing or empty job key", where=f"{where}.{key}", expected="a string",
                                  got=data.get(key))
        if data["mode"] not in MODES:
            raise ConfigError("unknown job mode", where=f"{where}.mode", expected=" | ".join(MODES),
                              got=data["mode"])
        ro = data.get("runtime_options") or {}
        ro_keys = {"threads", "providers", "device"}
        if not isinstance(ro, dict) or set(ro) - ro_keys:
            raise ConfigError("invalid runtime_options", where=f"{where}.runtime_options",
                              expected="an object with keys " + ", ".join(sorted(ro_keys)), got=ro)
        bo = data.get("bench_options") or {}
        if not isinstance(bo, dict):
            raise ConfigError("invalid bench_options", where=f"{where}.bench_options", expected="an object",
                              got=bo)

        def resolve(p: str) -> Path:
            return Path(p) if Path(p).is_absolute() else base / p

        return cls(mode=data["mode"], runtime=data["runtime"], artifact=resolve(data["artifact"]),
                   inputs=resolve(data["inputs"]),
                   runtime_options=RuntimeOptions(threads=ro.get("threads"),
                                                  providers=tuple(ro.get("providers") or ()),
                                                  device=ro.get("device")),
                   bench_options=dict(bo),
                   outputs_path=resolve(data["outputs_path"]) if data.get("outputs_path") else None)


# ---------------------------------------------------------------------------------------------- modes
def _bench(job: Job) -> dict[str, Any]:
    from edgekit.bench import BenchOptions, benchmark

    options = BenchOptions.from_dict(job.bench_options, where="job.bench_options")
    feeds = read_feeds_npz(job.inputs)
    return benchmark(job.runtime, job.artifact, feeds, options, job.runtime_options).to_dict()


def _status_mb(key: str) -> float | None:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process from /proc/self/status, in MiB."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{key}:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(m.group(1)) / 1024.0 if m else None


def _max_rss_mb() -> float:
    import resource

    raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return raw / 2**20 if sys.platform == "darwin" else raw / 1024.0  # bytes on macOS, KiB elsewhere


def _reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0: ``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _memory(job: Job) -> dict[str, Any]:
    """Peak RSS of loading the artifact and running ``memory_runs`` inferences in this fresh process.

    Linux: ``VmHWM`` (reset just before loading) rather than ``ru_maxrss``, which after fork+exec
    still holds the *parent's* resident size and so overstates a child started from a big process.
    """
    from edgekit.bench import BenchOptions
    from edgekit.registry import get_runtime

    options = BenchOptions.from_dict(job.bench_options, where="job.bench_options")
    feeds = read_feeds_npz(job.inputs)
    if not feeds:
        raise BenchmarkError("no feeds for the memory pass", where=str(job.inputs))
    runtime = get_runtime(job.runtime)
    versions = runtime.versions()  # imports the runtime's package, so the baseline includes it
    gc.collect()
    reset = _reset_peak_rss()
    current = _status_mb("VmRSS")
    use_hwm = current is not None and _status_mb("VmHWM") is not None
    baseline = current if current is not None else _max_rss_mb()
    session = runtime.load(job.artifact, job.runtime_options)
    after_load = _status_mb("VmRSS")
    for i in range(options.memory_runs):
        session.run(feeds[i % len(feeds)])
    hwm = _status_mb("VmHWM") if use_hwm else None
    peak = hwm if hwm is not None else _max_rss_mb()
    if use_hwm:
        method = ("VmHWM of a fresh process" + (", high-water mark reset via /proc/self/clear_refs" if reset
                  else "") + "; baseline = VmRSS after importing the runtime, before loading")
    else:
        method = "getrusage ru_maxrss of a fresh process; baseline = ru_maxrss before loading"
    report: dict[str, Any] = {"method": method, "baseline_rss_mb": round(baseline, 2),
                              "peak_rss_mb": round(peak, 2), "delta_mb": round(peak - baseline, 2),
                              "runs": options.memory_runs, "runtime_versions": versions}
    if after_load is not None:
        report["after_load_rss_mb"] = round(after_load, 2)
    return report


def _outputs(job: Job) -> dict[str, Any]:
    from edgekit.registry import get_runtime

    assert job.outputs_path is not None  # enforced by Job.from_dict
    feeds = read_feeds_npz(job.inputs)
    session = get_runtime(job.runtime).load(job.artifact, job.runtime_options)
    arrays: dict[str, np.ndarray] = {}
    for i, feed in enumerate(feeds):
        for k, out in enumerate(session.run(feed)):
            arrays[f"{i}/{k}"] = np.asarray(out)
    write_npz(arrays, job.outputs_path)
    return {"outputs_path": str(job.outputs_path), "feeds": len(feeds),
            "outputs": [{"name": key, "shape": list(a.shape), "dtype": str(a.dtype)}
                        for key, a in arrays.items()]}


def run_job(job: Job) -> dict[str, Any]:
    """Run one job in this process and return its JSON-ready result (errors propagate)."""
    handler = {"bench": _bench, "memory": _memory, "outputs": _outputs}[job.mode]
    return handler(job)


# ------------------------------------------------------------------------------------------------ CLI
def _jsonable(value: Any) -> Any:
    """Make ``value`` strict-JSON safe: non-finite floats become None, numpy scalars/paths plain values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send fd 1 to stderr while the job runs: runtimes print from C, and stdout must hold only the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        with contextlib.suppress(Exception):  # flush C stdio buffers while fd 1 still points at stderr
            import ctypes

            ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)


def _error(exc: BaseException) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, EdgekitError):
        err.update({k: v for k, v in (("where", exc.where), ("hint", exc.hint)) if v is not None})
    return {"error": err}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry: run the job named by ``argv[0]`` ("-" = stdin); print one JSON object; 0 or 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = 0
    with _stdout_to_stderr():
        try:
            if len(args) != 1:
                raise ConfigError("usage: python -m edgekit.agent JOB.json", expected="one argument (or -)",
                                  got=args)
            if args[0] == "-":
                raw, base = sys.stdin.read(), Path.cwd()
            else:
                job_file = Path(args[0])
                try:
                    raw, base = job_file.read_text(), job_file.resolve().parent
                except OSError as exc:
                    raise ConfigError(f"cannot read the job file: {exc.strerror}",
                                      where=str(job_file)) from exc
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"the job is not valid JSON: {exc}", where=args[0]) from exc
            result = run_job(Job.from_dict(data, base))
        except Exception as exc:
            result, code = _error(exc), 2
        text = json.dumps(_jsonable(result), allow_nan=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
