"""SIGTERM as an interruption: ``kill <pid>`` (a CI job's time-out, a service manager stopping edgekit) ends a run
the way Ctrl-C does: the exception unwinds every ``finally`` (remote agents killed, temp folders removed, the
``--out`` lock released), and the command line prints one line and exits 143 (128 + SIGTERM).

Only the command line installs the handler (:func:`terminate_as_interrupt`); a program that imports edgekit keeps
its own SIGTERM handling. :func:`edgekit.bench.native_calls` hands SIGTERM to the handler the same way as SIGINT.
"""

from __future__ import annotations

import signal
import threading
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
