"""The runtime protocol. A runtime loads an artifact into a :class:`Session` that maps named numpy
inputs to a list of numpy outputs. Runtimes must need nothing but numpy and their own package, so
the on-device agent can use them on a board."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load an artifact: thread count (None = runtime default), providers / device."""

    threads: int | None = None
    providers: tuple[str, ...] = ()
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "providers": list(self.providers), "device": self.device}


@runtime_checkable
class Session(Protocol):
    """A loaded model."""

    input_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference; outputs in the model's output order."""
        ...

    def info(self) -> dict[str, Any]:
        """Where the model actually runs (providers / execution devices) and load-time facts."""
        ...


def timed_call(session: Session, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
    """The call a benchmark times for ``feeds``: the runtime's own inference on inputs already bound to it.

    A session may offer ``bind(feeds) -> call``: check and copy ``feeds`` into its input buffers once (layout,
    dtype and quantization conversions included) and return the bare native call, whose outputs stay in the
    runtime's buffers: what a deployed loop runs per frame once its input buffer is filled, and what
    ``benchmark_app`` / ``benchmark_model`` time. The call is valid until the next ``bind``. A session without
    ``bind`` is timed through ``run`` (adapter work included)."""
    bind = getattr(session, "bind", None)
    if bind is not None:
        call: Callable[[], object] = bind(feeds)
        return call
    return lambda: session.run(feeds)


class Runtime(Protocol):
    """A runtime adapter: which formats it loads, its versions, and ``load``."""

    name: str
    formats: frozenset[str]

    def versions(self) -> dict[str, str]:
        """Package versions that matter for results."""
        ...

    def load(self, path: Path, options: RuntimeOptions) -> Session:
        """Load the artifact at ``path``; raise :class:`~edgekit.errors.RuntimeAdapterError` on failure."""
        ...


TIMED_CALL = ("the runtime's own inference call on inputs bound before the clock starts (ONNX Runtime "
              "InferenceSession.run, OpenVINO start_async + wait, LiteRT invoke); edgekit's per-call adapter work "
              "(input checks, casts, copies in and out) is outside it and timed apart as adapter_overhead_ms")
ADAPTER_PAIRS = 15


def adapter_overhead_ms(session: Session, feeds: Sequence[Mapping[str, np.ndarray]],
                        pairs: int = ADAPTER_PAIRS) -> float | None:
    """What edgekit's ``session.run`` adds per call to the timed call (input checks, casts, copies in and out): the
    median over ``pairs`` alternating pairs of the difference; None for a session without ``bind`` (timed
    through ``run``: nothing apart) or when a call fails."""
    if getattr(session, "bind", None) is None:
        return None
    diffs: list[int] = []
    try:
        for i in range(pairs):
            feed = feeds[i % len(feeds)]
            call = timed_call(session, feed)
            t0 = time.perf_counter_ns()
            call()
            t1 = time.perf_counter_ns()
            session.run(feed)
            diffs.append(time.perf_counter_ns() - t1 - (t1 - t0))
    except Exception:  # descriptive only: the measurement itself stands
        return None
    return round(float(np.median(diffs)) / 1e6, 4)


def save_items(path: Path, items: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]) -> None:
    """Write ``items`` (feeds) to the ``.npz`` ``path`` as ``<item>/<input>`` arrays, for a toolchain worker."""
    np.savez(path, **{f"{i}/{n}": np.asarray(f[n]) for i, f in enumerate(items)  # type: ignore[arg-type]
                      for n in names})  # numpy stubs type the keywords as allow_pickle


def load_outputs(path: Path, n_items: int) -> list[list[np.ndarray]]:
    """A toolchain worker's outputs (``<item>/<output index>`` arrays in the ``.npz`` ``path``), per item in order."""
    got = np.load(path)
    n_out = 1 + max(int(k.split("/")[1]) for k in got.files)
    return [[got[f"{i}/{j}"] for j in range(n_out)] for i in range(n_items)]
