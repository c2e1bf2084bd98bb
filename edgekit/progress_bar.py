"""Counts and an ETA for the loops of a run whose length is known (validation items, calibration items, reference
outputs): :func:`counted` wraps the loop's iterable.

On a terminal, the default progress printer's stream (stderr) gets one line redrawn in place at most
:data:`REDRAW_S` apart (``validate model.int8.onnx  [#######.......] 120/597  12 s left``) and finished with a newline;
anywhere else (a log, CI, a caller's own ``progress`` callback) one line through ``progress`` every
:data:`LINE_EVERY_S` seconds, so logs stay short and no step is silent for long.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
#: Seconds between two redraws of the bar on a terminal.
REDRAW_S = 0.2
#: Seconds between two count lines where there is no terminal.
LINE_EVERY_S = 10.0
WIDTH = 24


def _eta(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or total <= done:
        return ""
    left = elapsed / done * (total - done)
    return f"{left:.0f} s left" if left < 120 else f"{left / 60:.1f} min left"


def bar(what: str, done: int, total: int, elapsed: float) -> str:
    """One bar line: ``what  [####....] done/total  ETA``."""
    filled = int(WIDTH * done / total) if total else WIDTH
    return f"{what}  [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total}  {_eta(done, total, elapsed)}".rstrip()


def stderr_progress(message: str) -> None:
    """Default progress printer: one timestamped line per step on stderr."""
    print(f"[edgekit {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def counted(items: Iterable[T], total: int, what: str, progress: Callable[[str], None],
            stream: TextIO | None = None) -> Iterator[T]:
    """Yield ``items`` unchanged, telling how far along ``what`` is (see the module docstring). ``stream``: the
    terminal to draw on (default: stderr when it is a terminal and ``progress`` is edgekit's own printer)."""
    tty = stream if stream is not None else (
        sys.stderr if progress is stderr_progress and sys.stderr.isatty() else None)
    t0 = last = time.monotonic()
    done = 0
    drawn = False
    try:
        for item in items:
            yield item
            done += 1
            now = time.monotonic()
            if tty is not None and now - last >= REDRAW_S:
                tty.write("\r" + bar(what, done, total, now - t0) + "\033[K")
                tty.flush()
                last, drawn = now, True
            elif tty is None and now - last >= LINE_EVERY_S:
                progress(f"  {what}: {done}/{total} {_eta(done, total, now - t0)}".rstrip())
                last = now
    finally:
        if drawn and tty is not None:
            tty.write("\r" + bar(what, done, total, time.monotonic() - t0) + "\033[K\n")
            tty.flush()
