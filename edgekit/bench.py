"""Benchmark one artifact on one runtime the way benchmark_app / onnxruntime_perf_test / pyperf do.

Phases are timed apart: load, first inference, warmup, then a steady-state loop over real inputs that
stops once it has both ``min_runs`` samples and ``min_seconds`` of timed inference (or at ``max_runs``
/ ``max_seconds``). Raw samples are kept. Peak memory is measured in a separate process (the agent in
``memory`` mode), so the timing loop is not disturbed and the number is not polluted by whatever the
calling process already holds.

Imports only the standard library and numpy at module level (edgekit's runtime registry lazily), so
it runs on a board that has numpy and one runtime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import BenchmarkError, ConfigError, EdgekitError
from edgekit.machine_load import noise_between, snapshot
from edgekit.results import BenchResult, LatencyStats
from edgekit.runtimes.base import TIMED_CALL, RuntimeOptions, Session, adapter_overhead_ms, timed_call

Progress = Callable[[str, int, int], None]

#: Seconds between two progress calls at most (10 per second).
PROGRESS_INTERVAL_S = 0.1


@dataclass(frozen=True)
class BenchOptions:
    """How to time one artifact.

    ``threads`` pins the runtime's intra-op threads (None: keep ``RuntimeOptions.threads``). The timed
    loop stops when it has both ``min_runs`` samples and ``min_seconds`` of summed inference time, or at
    ``max_runs`` samples / ``max_seconds`` of wall time, whichever comes first. Warmup is cut short
    after ``max_seconds`` too. ``memory_pass`` measures peak RSS in a separate process over
    ``memory_runs`` inferences.
    """

    threads: int | None = 1
    warmup_runs: int = 10
    min_runs: int = 50
    min_seconds: float = 3.0
    max_runs: int = 100_000
    max_seconds: float = 60.0
    memory_pass: bool = True
    memory_runs: int = 5

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (self.threads is None or self.threads >= 1, "threads", "None or an integer >= 1"),
            (self.warmup_runs >= 0, "warmup_runs", "an integer >= 0"),
            (self.min_runs >= 1, "min_runs", "an integer >= 1"),
            (self.min_seconds >= 0, "min_seconds", "a number >= 0"),
            (self.min_runs <= self.max_runs, "min_runs", f"an integer in [1, max_runs = {self.max_runs}]"),
            (self.max_seconds > 0, "max_seconds", "a number > 0"),
            (self.memory_runs >= 1, "memory_runs", "an integer >= 1"),
        ]
        for ok, key, expected in checks:
            if not ok:
                flag = {"threads": "--threads", "warmup_runs": "--warmup", "min_runs": "--min-runs",
                        "min_seconds": "--min-seconds"}.get(key)
                raise ConfigError("invalid benchmark option", where=f"bench.{key}" + (f" ({flag})" if flag else ""),
                                  expected=expected, got=getattr(self, key))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "bench_options") -> BenchOptions:
        """Build from a JSON-like dict; unknown keys raise :class:`ConfigError` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("unknown benchmark option", where=f"{where}.{unknown[0]}",
                              expected="one of: " + ", ".join(sorted(known)), got=unknown[0])
        return cls(**dict(data))


class _Deferred:
    """The SIGINT handler of :func:`native_calls` with ``defer=True``: the first Ctrl-C is noted, a second one
    raises."""

    def __init__(self) -> None:
        self.pending = False

    def __call__(self, signum: int, frame: object) -> None:
        if self.pending:  # asked twice: stop now, whatever is running
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` if Ctrl-C was pressed (call it between two native calls)."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


def _no_check() -> None:
    return None


class _CtrlC:
    """Process-wide state of :func:`native_calls`: how deep the main thread is in native calls, and the watcher
    thread that takes SIGINT while the main thread blocks it."""

    depth = 0
    mask: ClassVar[set[int | signal.Signals]] = set()  # the main thread's signal mask before the outermost block
    watcher: threading.Thread | None = None
    signals: ClassVar[set[signal.Signals]] = {signal.SIGINT}  # what the watcher takes (fixed when it starts)
    stack: Any = None  # the alternate signal stack given to the main thread (kept alive: the kernel points at it)


#: Size of the alternate signal stack the main thread gets back after native calls (see :func:`native_calls`).
SIGNAL_STACK_BYTES = 1 << 18


def _watch_ctrl_c(signals: set[signal.Signals]) -> None:
    """Take ``signals`` (SIGINT, and SIGTERM where Python handles it) synchronously (``sigwait``: no handler runs, so
    no signal frame is built on any stack) and pass each on to the main thread's Python handler
    (``KeyboardInterrupt``, :class:`_Deferred`, or the command line's SIGTERM handler)."""
    import _thread

    while True:
        signum = signal.sigwait(signals)
        _thread.interrupt_main(signal.Signals(signum))


def _watched_signals() -> set[signal.Signals]:
    """SIGINT, plus SIGTERM when a Python handler takes it (the command line's: one line, exit 143). Without one,
    SIGTERM keeps its default action (blocking it would leave nobody to act on it)."""
    term = signal.getsignal(signal.SIGTERM)
    return {signal.SIGINT, signal.SIGTERM} if callable(term) else {signal.SIGINT}


def _roomy_signal_stack() -> None:
    """Give the calling thread an alternate signal stack of :data:`SIGNAL_STACK_BYTES` when it has a smaller one.

    OpenVINO's CPU plugin installs one of exactly the kernel's minimum frame size with AMX state (11568 bytes on an
    AMX machine) on the thread that creates it, and Python runs every signal handler there (``SA_ONSTACK``): once the
    thread has used AMX, the frame fills it and the handler's own calls overflow it. Linux only (``sigaltstack``
    through ctypes); anything unexpected leaves the stack as it is."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        class StackT(ctypes.Structure):
            _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

        libc = ctypes.CDLL(None, use_errno=True)
        current = StackT()
        if libc.sigaltstack(None, ctypes.byref(current)) != 0:
            return
        ss_onstack, ss_disable = 1, 2
        if current.ss_flags & (ss_onstack | ss_disable) or current.ss_size >= SIGNAL_STACK_BYTES:
            return  # none (handlers run on the thread's own stack), in use, or big enough
        if _CtrlC.stack is None:
            _CtrlC.stack = ctypes.create_string_buffer(SIGNAL_STACK_BYTES)
        roomy = StackT(ctypes.addressof(_CtrlC.stack), 0, SIGNAL_STACK_BYTES)
        libc.sigaltstack(ctypes.byref(roomy), None)
    except (OSError, AttributeError, TypeError, ValueError):
        return


@contextlib.contextmanager
def native_calls(*, defer: bool = False) -> Iterator[Callable[[], None]]:
    """Run a block of native runtime / converter calls in the main thread so that Ctrl-C cannot crash it.

    A SIGINT delivered to the main thread while, or after, OpenVINO ran there killed edgekit with SIGSEGV (8 of 8
    tries, in an ONNX Runtime benchmark with OpenVINO loaded): see :func:`_roomy_signal_stack`. So within the block
    SIGINT is blocked for the main thread (and for every thread a library starts in it); a watcher thread takes it
    with ``sigwait`` and hands it to the main thread's Python handler (``_thread.interrupt_main``), which raises
    :class:`KeyboardInterrupt` at the next Python line. With ``defer=True`` the Ctrl-C is only noted, and the
    yielded ``check()`` raises it when called, between two inferences (or the block's end does); a second Ctrl-C
    raises at once. On the way out the main thread gets a roomy alternate signal stack back before SIGINT is
    unblocked. Outside the main thread, or without ``pthread_sigmask``, only the deferral applies; under a
    caller's own SIGINT handler (ignored, or theirs), ``check`` does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield _no_check  # signals are the main thread's
        return
    if not hasattr(signal, "pthread_sigmask"):
        with _deferred(defer) as check:
            yield check
        return
    if _CtrlC.depth == 0:
        if _CtrlC.watcher is None:
            _CtrlC.signals = _watched_signals()
        _CtrlC.mask = signal.pthread_sigmask(signal.SIG_BLOCK, _CtrlC.signals)
        if _CtrlC.watcher is None:  # started with the signals blocked, which sigwait needs
            _CtrlC.watcher = threading.Thread(target=_watch_ctrl_c, args=(_CtrlC.signals,), name="edgekit-ctrl-c",
                                              daemon=True)
            _CtrlC.watcher.start()
    _CtrlC.depth += 1
    try:
        with _deferred(defer) as check:
            yield check
    finally:
        _CtrlC.depth -= 1
        if _CtrlC.depth == 0:
            _roomy_signal_stack()
            signal.pthread_sigmask(signal.SIG_SETMASK, _CtrlC.mask)  # as the caller had it (SIGINT unblocked)


@contextlib.contextmanager
def python_calls() -> Iterator[None]:
    """Inside :func:`native_calls`, run a block of plain Python (a user's metric function) with SIGINT let through
    again, so that Ctrl-C interrupts it at once (a ``time.sleep(60)`` in it held the interruption for a minute):
    the main thread gets a roomy alternate signal stack first, as on leaving a native block, and the mask back
    after. Outside a native block it changes nothing."""
    if _CtrlC.depth == 0 or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    _roomy_signal_stack()
    inside = signal.pthread_sigmask(signal.SIG_SETMASK, _CtrlC.mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, inside)


@contextlib.contextmanager
def _deferred(defer: bool) -> Iterator[Callable[[], None]]:
    previous = signal.getsignal(signal.SIGINT)
    if isinstance(previous, _Deferred):  # nested: the outer block owns the handler
        yield previous.check
        return
    if not defer or previous is not signal.default_int_handler:  # raise at once, or someone else's choice
        yield _no_check
        return
    handler = _Deferred()
    signal.signal(signal.SIGINT, handler)
    try:
        yield handler.check
    finally:
        signal.signal(signal.SIGINT, previous)
    handler.check()  # reached only when the block ended normally: the noted Ctrl-C now


def summarize(samples_ms: Sequence[float]) -> LatencyStats:
    """p50/p90/p99 (numpy linear percentiles), mean, sample stdev (0 for one sample), min, max, n."""
    if len(samples_ms) == 0:
        raise BenchmarkError("no latency samples to summarize", hint="run at least one timed inference")
    a = np.asarray(samples_ms, dtype=np.float64)
    p50, p90, p99 = (float(x) for x in np.percentile(a, [50, 90, 99]))
    stdev = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    return LatencyStats(n=int(a.size), p50_ms=p50, p90_ms=p90, p99_ms=p99, mean_ms=float(a.mean()),
                        stdev_ms=stdev, min_ms=float(a.min()), max_ms=float(a.max()))


class _Throttle:
    """Calls ``progress`` at most once per :data:`PROGRESS_INTERVAL_S` (plus a forced final call)."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._last = -math.inf

    def __call__(self, phase: str, done: int, total: int, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self._progress(phase, done, total)


def _check_feeds(session: Session, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    if len(feeds) == 0:
        raise BenchmarkError("no input feeds to benchmark with", where="feeds",
                             hint="pass at least one real input (e.g. items of the evaluation set)")
    wanted = set(session.input_names)
    for i, feed in enumerate(feeds):
        missing = sorted(wanted - set(feed))
        if missing:
            raise BenchmarkError("a feed lacks model inputs", where=f"feeds[{i}]",
                                 expected=", ".join(sorted(wanted)), got=sorted(feed),
                                 hint=f"add {', '.join(missing)}")


def _run_once(session: Session, feed: Mapping[str, np.ndarray], phase: str, index: int) -> int:
    """One inference; returns its duration in ns: the runtime's own call on inputs bound before the clock starts
    (:func:`~edgekit.runtimes.base.timed_call`). Any failure becomes a :class:`BenchmarkError`."""
    try:
        call = timed_call(session, feed)
        t0 = time.perf_counter_ns()
        call()
        return time.perf_counter_ns() - t0
    except Exception as exc:
        raise BenchmarkError(f"inference failed during {phase} run {index}: {exc}", where="session.run",
                             hint="check that the feeds match the model's inputs (names, shapes, dtypes)"
                             ) from exc


def _estimate_total(options: BenchOptions, n: int, spent_ns: int) -> int:
    if n == 0 or spent_ns <= 0:
        return options.min_runs
    per_run = spent_ns / n
    by_time = math.ceil(options.min_seconds * 1e9 / per_run)
    cap = min(options.max_runs, max(n, math.floor(options.max_seconds * 1e9 / per_run)))
    return int(min(cap, max(options.min_runs, by_time)))


def time_session(session: Session, feeds: Sequence[Mapping[str, np.ndarray]], options: BenchOptions,
                 progress: Progress | None = None) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """Time a loaded session: ``(first_inference_ms, warmup_ms, samples_ms)``.

    Feeds are used in turn (feed 0 for the first inference, then cycling). The garbage collector is
    off during warmup and the timed loop. ``progress(phase, done, total_estimate)`` is called for
    ``"warmup"`` and ``"timed"`` at most ~10 times a second.
    """
    _check_feeds(session, feeds)
    with native_calls(defer=True) as check:  # Ctrl-C stops the loop between two inferences, never inside one
        return _time_session(session, feeds, options, _Throttle(progress), check)


def _time_session(session: Session, feeds: Sequence[Mapping[str, np.ndarray]], options: BenchOptions,
                  tick: _Throttle, check: Callable[[], None]) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    n_feeds = len(feeds)
    first_ms = _run_once(session, feeds[0], "first", 0) / 1e6
    check()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        warmup: list[float] = []
        deadline = time.perf_counter_ns() + int(options.max_seconds * 1e9)
        tick("warmup", 0, options.warmup_runs, force=True)
        for i in range(options.warmup_runs):
            warmup.append(_run_once(session, feeds[(1 + i) % n_feeds], "warmup", i) / 1e6)
            check()
            tick("warmup", i + 1, options.warmup_runs)
            if time.perf_counter_ns() > deadline:
                break
        tick("warmup", len(warmup), len(warmup), force=True)

        samples_ns: list[int] = []
        spent = 0
        min_ns = int(options.min_seconds * 1e9)
        start = time.perf_counter_ns()
        deadline = start + int(options.max_seconds * 1e9)
        offset = 1 + len(warmup)
        tick("timed", 0, options.min_runs, force=True)
        while True:
            n = len(samples_ns)
            dt = _run_once(session, feeds[(offset + n) % n_feeds], "timed", n)
            check()
            samples_ns.append(dt)
            spent += dt
            n += 1
            if (n >= options.min_runs and spent >= min_ns) or n >= options.max_runs:
                break
            if time.perf_counter_ns() >= deadline:
                break
            tick("timed", n, _estimate_total(options, n, spent))
        tick("timed", len(samples_ns), len(samples_ns), force=True)
    finally:
        if gc_was_enabled:
            gc.enable()
    return first_ms, tuple(warmup), tuple(x / 1e6 for x in samples_ns)


def _effective_runtime_options(options: BenchOptions, runtime_options: RuntimeOptions) -> RuntimeOptions:
    if options.threads is None:
        return runtime_options
    if runtime_options.threads is not None and runtime_options.threads != options.threads:
        raise ConfigError("two different thread counts were asked for", where="threads",
                          expected=f"BenchOptions.threads ({options.threads}) == RuntimeOptions.threads",
                          got=runtime_options.threads,
                          hint="set one of them to None, or make them equal")
    return dataclasses.replace(runtime_options, threads=options.threads)


def benchmark(runtime_name: str, path: Path, feeds: Sequence[Mapping[str, np.ndarray]], options: BenchOptions,
              runtime_options: RuntimeOptions, progress: Progress | None = None) -> BenchResult:
    """Load ``path`` with the registered runtime (timed as ``load_ms``), time it, capture the
    environment and, if ``options.memory_pass``, measure peak RSS in a separate process.

    A failed memory pass is recorded as ``memory={"error": ...}``; the timing result is kept.
    """
    from edgekit.environment import environment
    from edgekit.registry import get_runtime

    if len(feeds) == 0:
        raise BenchmarkError("no input feeds to benchmark with", where="feeds",
                             hint="pass at least one real input (e.g. items of the evaluation set)")
    ropts = _effective_runtime_options(options, runtime_options)
    runtime = get_runtime(runtime_name)
    with native_calls():  # the runtime loads, runs and describes itself in this thread: see native_calls
        t0 = time.perf_counter_ns()
        try:
            session = runtime.load(Path(path), ropts)
        except EdgekitError:
            raise
        except Exception as exc:
            raise BenchmarkError(f"{runtime_name} could not load the artifact: {exc}", where=str(path),
                                 hint="check that the runtime supports this file's format") from exc
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        before = snapshot()
        first_ms, warmup_ms, samples_ms = time_session(session, feeds, options, progress)
        noise = noise_between(before, snapshot(), samples_ms)
        adapter_ms = adapter_overhead_ms(session, feeds)
        try:
            info = dict(session.info())
        except Exception as exc:  # info is descriptive; never lose a measurement over it
            info = {"error": f"{type(exc).__name__}: {exc}"}
        del session
    env = environment([runtime_name])
    env["bench_method"] = {"clock": "time.perf_counter_ns", "gc": "disabled during warmup and timed loop",
                           "options": dataclasses.asdict(options), "runtime_options": ropts.to_dict(),
                           "feeds": len(feeds), "timed": TIMED_CALL,
                           "adapter_overhead_ms": adapter_ms}
    peak: float | None = None
    memory: dict[str, Any] = {}
    if options.memory_pass:
        memory = memory_pass(runtime_name, Path(path), feeds, options, ropts, load_ms / 1e3)
        value = memory.get("peak_rss_mb")
        peak = float(value) if isinstance(value, (int, float)) else None
    return BenchResult(runtime=runtime_name, threads=ropts.threads, load_ms=load_ms,
                       first_inference_ms=first_ms, warmup_ms=warmup_ms, samples_ms=samples_ms,
                       stats=summarize(samples_ms), peak_rss_mb=peak, memory=memory, session_info=info,
                       environment=env, noise=noise)


def _package_root() -> str:
    """The folder holding the ``edgekit`` package, so a child ``python -m edgekit.agent`` finds it."""
    return str(Path(__file__).resolve().parent.parent)


def memory_pass(runtime_name: str, path: Path, feeds: Sequence[Mapping[str, np.ndarray]],
                options: BenchOptions, runtime_options: RuntimeOptions,
                load_s: float = 0.0) -> dict[str, Any]:
    """Run the agent in ``memory`` mode in a fresh process; return its report or ``{"error": ...}``.

    Never raises for a failure of the child process: memory is secondary to the timing result.
    """
    from edgekit.feeds import write_feeds_npz

    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-mem-") as tmp:
            inputs = Path(tmp) / "feeds.npz"
            write_feeds_npz(feeds[: options.memory_runs], inputs)
            job = {"mode": "memory", "runtime": runtime_name, "artifact": str(Path(path).resolve()),
                   "inputs": str(inputs), "runtime_options": runtime_options.to_dict(),
                   "bench_options": dataclasses.asdict(options)}
            job_path = Path(tmp) / "job.json"
            job_path.write_text(json.dumps(job))
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH")) if p)
            timeout = 120.0 + 10.0 * load_s
            proc = subprocess.run([sys.executable, "-m", "edgekit.agent", str(job_path)], capture_output=True,
                                  stdin=subprocess.DEVNULL,
                                  text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"memory pass timed out after {exc.timeout:.0f} s"}
    except Exception as exc:
        return {"error": f"memory pass could not start: {type(exc).__name__}: {exc}"}
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return {"error": f"memory pass exited {proc.returncode} without a result: {tail[0][:300]}"}
    if not isinstance(report, dict):
        return {"error": f"memory pass printed {type(report).__name__}, not an object"}
    if proc.returncode != 0 or "error" in report:
        err = report.get("error")
        message = err.get("message") if isinstance(err, dict) else err
        return {"error": f"memory pass failed (exit {proc.returncode}): {message}"}
    return report


def result_from_dict(data: Mapping[str, Any]) -> BenchResult:
    """Rebuild a :class:`BenchResult` from ``BenchResult.to_dict()`` output (e.g. an agent's JSON)."""
    try:
        fields = dict(data)
        fields["stats"] = LatencyStats(**fields["stats"])
        fields["warmup_ms"] = tuple(float(x) for x in fields["warmup_ms"])
        fields["samples_ms"] = tuple(float(x) for x in fields["samples_ms"])
        return BenchResult(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchmarkError("malformed benchmark result", expected="BenchResult.to_dict() output",
                             got=f"{type(exc).__name__}: {exc}") from exc
