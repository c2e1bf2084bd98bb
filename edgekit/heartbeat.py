"""Long steps speak: a step that may run for minutes (a converter, NNCF, a calibration) says what it is doing and
for how long, every :data:`EVERY_S` seconds, instead of going silent (NNCF ran 32-64 minutes on two OCR models with
no output at all), and a step whose cost can be estimated says so before it starts (:func:`estimate_line`).

The lines come from a daemon thread through the run's ``progress`` callback (the default one prints to stderr, which
is safe from any thread); the step itself runs untouched in the calling thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

#: Seconds between two "still running" lines of one step.
EVERY_S = 30.0


@contextlib.contextmanager
def heartbeat(progress: Callable[[str], None], what: str, *, every: float = EVERY_S,
              note: str | None = None) -> Iterator[None]:
    """Run the block; while it runs, call ``progress("... <what>: 1m30s so far")`` every ``every`` seconds (with
    ``note`` in brackets after it, e.g. the estimate said before). Nothing is printed for a block shorter than
    ``every``."""
    done = threading.Event()
    t0 = time.monotonic()

    def beat() -> None:
        while not done.wait(every):
            progress(f"  ... {what}: {_duration(time.monotonic() - t0)} so far" + (f" ({note})" if note else ""))

    thread = threading.Thread(target=beat, name="edgekit-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=1.0)


def estimate_line(what: str, items: int, per_item_s: float, passes: float) -> tuple[str, float]:
    """A one-line cost estimate of a step that runs ``passes`` inferences of ``per_item_s`` seconds over ``items``
    items (measured on this machine), and the estimate in seconds."""
    total = items * per_item_s * passes
    return (f"{what}: about {_duration(total)} expected ({items} items x {per_item_s * 1e3:.1f} ms per inference of "
            f"the fp32 model here x ~{passes:g} passes)", total)


def time_one(fn: Callable[[], object], repeats: int = 2) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn`` (the first may include one-off set-up)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def duration(seconds: float) -> str:
    """``42s``, ``1m30s``, ``2h05m``."""
    return _duration(seconds)
