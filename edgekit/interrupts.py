"""SIGTERM as an interruption: ``kill <pid>`` (a CI job's time-out, a service manager stopping edgekit) ends a run
the way Ctrl-C does: the exception unwinds every ``finally`` (remote agents killed, temp folders removed, the
``--out`` lock released), and the command line prints one line and exits 143 (128 + SIGTERM).

Only the command line installs the handler (:func:`terminate_as_interrupt`); a program that imports edgekit keeps
its own SIGTERM handling. :func:`edgekit.bench.native_calls` hands SIGTERM to the handler the same way as SIGINT.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM (under :func:`terminate_as_interrupt`)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def terminate_as_interrupt() -> Any:
    """Make SIGTERM raise :class:`Terminated` in the main thread; returns the previous handler (for
    :func:`restore_terminate`), or None outside the main thread, where nothing is changed."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def restore_terminate(previous: Any) -> None:
    """Put back the SIGTERM handler :func:`terminate_as_interrupt` replaced."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def ignore_further() -> Any:
    """Ignore SIGINT and SIGTERM from now on (main thread only): the run is already ending after one of them, and a
    second Ctrl-C pressed while it prints its line or unwinds killed the process by the signal (status -2, no
    clean exit). Called first thing by the command line's handler of the interruption; returns the previous
    handlers (for :func:`restore_handlers`, when the command line runs inside another program), or None."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return (signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN))


def restore_handlers(previous: Any) -> None:
    """Put back the handlers :func:`ignore_further` replaced."""
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (main thread) and deliver them when it ends (each at most once).

    For imports of native extensions (TensorFlow, jax, torch): a Ctrl-C inside their initialisation made the import
    fail with "ImportError: initialization failed" (read as "not installed"), was swallowed, or left the process to
    abort at exit (status -6, seen in CI); held back, it raises :class:`KeyboardInterrupt` right after the import.
    The Python handlers are registered again on the way out, since an extension may replace the C-level one."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    handlers = {sig: signal.getsignal(sig) for sig in held}
    caught: list[int] = []
    # Blocked in this thread, so the kernel never interrupts the import's own system calls; but a signal sent to
    # the process reaches any other thread that has it unblocked (thread pools of ORT, OpenVINO, torch), and Python
    # then runs the handler in this thread at the next bytecode: a handler that only records it covers that case.
    for sig in held:
        if callable(handlers[sig]):
            signal.signal(sig, lambda signum, _frame: caught.append(signum))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        try:
            for sig in held:  # registered again even if unchanged: an extension may replace the C-level handler
                if handlers[sig] is not None:
                    signal.signal(sig, handlers[sig])  # may itself raise KeyboardInterrupt: a signal just arrived
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a signal still pending in this thread arrives here
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)
