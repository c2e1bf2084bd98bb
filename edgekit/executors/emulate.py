"""The emulate executor (``access = "emulate"``): an NPU whose vendor runtime emulates it on this machine (the
Qualcomm HTP through ``onnxruntime-qnn`` on x86_64). Each job's artifact is loaded by the target's runtime, which
runs it on the NPU's numerics; the held-out items are run through it and judged like a board's
(:class:`~edgekit.executors.base.BoardValidation`), so the row's accuracy is the NPU's, not this CPU's.
A runtime whose emulator takes all items at once (:class:`BatchEmulator`: it builds for the device in the same
call, as QNN's context binary and rknn-toolkit2's simulator, which runs only what it built in the same session)
gets them in one call, and the file it wrote for the device (written beside the artifact) is named in the row;
other runtimes are loaded once and run item by item. A batch emulator that quantizes with the NPU's own toolchain
(:class:`CalibratedEmulator`: the IMX500's MCT) also gets the run's calibration items.

Rows are ``validated-remote`` (accuracy only, ``accuracy_from`` says whose numerics): an emulator's timings are
not the NPU's speed, so none is reported. A missing package is a ``not-available`` row with the pip line; an
artifact the NPU cannot take (an op without CPU fallback) a ``failed`` row naming why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edgekit.errors import EdgekitError, MissingDependencyError
from edgekit.executors.base import ExecutorOptions, ExecutorResult, Feeds, Progress, TargetJob
from edgekit.layout import to_layout
from edgekit.registry import get_runtime
from edgekit.results import Row
from edgekit.runtimes.base import RuntimeOptions, Session


@runtime_checkable
class BatchEmulator(Protocol):
    """A runtime whose emulator takes all items at once (it builds the model for the device in the same call)."""

    def emulate(self, path: Path, options: RuntimeOptions, feeds: Sequence[Mapping[str, np.ndarray]],
                progress: Callable[[str], None]) -> tuple[list[list[np.ndarray]], str]:
        """The outputs for each of ``feeds``, and one line saying what was written for the device."""
        ...


@runtime_checkable
class CalibratedEmulator(Protocol):
    """A batch emulator that quantizes with the NPU's own toolchain, so it also takes the run's calibration items."""

    needs_calibration: bool

    def emulate(self, path: Path, options: RuntimeOptions, feeds: Sequence[Mapping[str, np.ndarray]],
                progress: Callable[[str], None],
                calibration: Sequence[Mapping[str, np.ndarray]] = ()) -> tuple[list[list[np.ndarray]], str]:
        """:meth:`BatchEmulator.emulate`, quantizing on ``calibration`` (never the held-out ``feeds``)."""
        ...


@runtime_checkable
class EmulatedRuntime(Protocol):
    """A runtime that says whose numerics its sessions compute (the emulated NPU's)."""

    def numerics(self, options: RuntimeOptions, precision: str) -> str:
        """E.g. ``"Hexagon HTP v75 emulator (x86_64) for SM8650; fp32 run in fp16"``."""
        ...


class EmulateExecutor:
    """Validates each job on the emulated NPU; ``validated-remote`` rows (no speed)."""

    def run(self, jobs: Sequence[TargetJob], feeds: Sequence[Feeds], options: ExecutorOptions,
            progress: Progress) -> ExecutorResult:
        """One row per job, in order (see :class:`~edgekit.executors.base.Executor`); ``feeds`` are not used:
        the held-out items of ``options.validation`` are."""
        return ExecutorResult(tuple(_job_row(job, options, progress) for job in jobs))


def _job_row(job: TargetJob, options: ExecutorOptions, progress: Progress) -> Row:
    spec = job.runtime
    ropts = RuntimeOptions(providers=spec.providers, device=spec.device)
    where = f"{job.target.name}/{spec.name}"
    try:
        runtime = get_runtime(spec.name)
        compiled = ""
        if options.validation is None:
            return job.row("failed", reason="this model's items cannot be validated one by one on the emulator "
                                            "(a stateful model): no accuracy on the NPU's numerics")
        feeds = [to_layout(f, job.artifact.layout) for f in options.validation.feeds]
        if isinstance(runtime, CalibratedEmulator):
            progress(f"validate {job.artifact.name} on {where} (emulated, {len(feeds)} items)")
            calibration = [to_layout(f, job.artifact.layout) for f in options.calibration()] \
                if options.calibration is not None else []
            outputs, compiled = runtime.emulate(job.artifact.path, ropts, feeds, progress, calibration=calibration)
        elif isinstance(runtime, BatchEmulator):
            progress(f"validate {job.artifact.name} on {where} (emulated, {len(feeds)} items)")
            outputs, compiled = runtime.emulate(job.artifact.path, ropts, feeds, progress)
        else:
            outputs = _one_by_one(runtime.load(job.artifact.path, ropts), feeds, f"{job.artifact.name} on {where}",
                                  progress)
        metrics = options.validation.judge(outputs)
    except MissingDependencyError as exc:
        return job.row("not-available", reason=f"not available here: {exc}")
    except EdgekitError as exc:
        return job.row("failed", reason=str(exc))
    numerics = runtime.numerics(ropts, job.artifact.precision.value) if isinstance(runtime, EmulatedRuntime) \
        else f"{spec.name} (emulated)"
    reason = "NPU emulated on this machine: accuracy on its numerics, no speed (needs the device)" \
             + (f"; {compiled}" if compiled else "")
    return Row(job.artifact, job.target.name, spec.name, "validated-remote", metrics, None, reason=reason,
               accuracy_from=numerics)


def _one_by_one(session: Session, feeds: Sequence[Feeds], what: str, progress: Progress) -> list[list[np.ndarray]]:
    outputs = []
    last = time.monotonic()
    for i, feed in enumerate(feeds):
        if time.monotonic() - last > 2.0 or i == 0:
            last = time.monotonic()
            progress(f"  validate {what} (emulated) {i}/{len(feeds)}")
        outputs.append(session.run(feed))
    return outputs
