"""What every toolchain worker shares (``<name>_worker.py``, run as a script by a toolchain virtualenv's Python, which
puts this folder first on ``sys.path``; standard library only, so it imports in any toolchain's virtualenv): the
worker's own error, the step file a crash leaves behind, silencing vendor output at the file-descriptor level, and
the request -> answer loop (:func:`serve`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class Failed(Exception):
    """A failure the worker explains itself: its message and a hint go into the answer as they are."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


STEP_FILE: list[str] = []  # where the current step is written (a crash in C++ leaves it: edgekit names it)


def step(name: str) -> None:
    """Record the step now running (read back by edgekit when the worker dies without an answer)."""
    if STEP_FILE:
        with open(STEP_FILE[0], "w") as f:
            f.write(name)


def current_step() -> str:
    """The step last recorded, or ``"?"``."""
    if STEP_FILE and os.path.exists(STEP_FILE[0]):
        with open(STEP_FILE[0]) as f:
            return f.read()
    return "?"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Vendor libraries print from C++ (and progress bars) to the process's stdout / stderr: the descriptors point
    at /dev/null for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (devnull, *saved):
            os.close(fd)


def last_line(exc: BaseException) -> str:
    """The last line of an exception's message (vendor tools put their reason there), at most 400 characters."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:400]


def serve(name: str, ops: Mapping[str, Handler], on_error: Callable[[Exception], tuple[str, str]]) -> int:
    """Read the request file named on the command line, run its ``op`` and write the answer atomically to the path
    the request names (``answer``): the handler's result, or ``{"error", "where", "hint"}`` (``on_error`` gives the
    message and hint of an unexpected exception)."""
    with open(sys.argv[1]) as f:
        req = json.load(f)
    answer_path = req["answer"]
    STEP_FILE.append(answer_path + ".step")
    try:
        if req.get("op") not in ops:
            raise Failed(f"unknown op {req.get('op')!r}", hint=f"edgekit and its {name} worker differ: reinstall")
        answer = ops[req["op"]](req)
    except Failed as exc:
        answer = {"error": str(exc), "where": req.get("model"), "hint": exc.hint}
    except Exception as exc:
        message, hint = on_error(exc)
        answer = {"error": message, "where": req.get("model"), "hint": hint}
    tmp = answer_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(answer, f)
    os.replace(tmp, answer_path)
    return 0
