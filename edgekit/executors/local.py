"""The local executor (``access = "local"``): benchmark each job in this process, one after the other, with
the target's runtime settings (:func:`edgekit.bench.benchmark`; its memory pass runs the agent in a child
process)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from edgekit.bench import benchmark
from edgekit.errors import DeviceUnavailableError, EdgekitError, MissingDependencyError
from edgekit.executors.base import ExecutorOptions, ExecutorResult, Feeds, Progress, TargetJob
from edgekit.layout import to_layout
from edgekit.results import BenchResult, Row
from edgekit.runtimes.base import RuntimeOptions


def benchmark_job(job: TargetJob, feeds: Sequence[Feeds], options: ExecutorOptions,
                  progress: Progress) -> BenchResult:
    """Benchmark one job here with its target's runtime settings (threads, providers, device); errors raise."""
    spec = job.runtime
    threads = options.threads_for(spec)
    ropts = RuntimeOptions(threads=threads, providers=spec.providers, device=spec.device)
    last = [0.0]

    def tick(phase: str, i: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 2.0:
            last[0] = now
            progress(f"  bench {job.artifact.name} [{phase}] {i}/{total}")

    laid_out = [to_layout(f, job.artifact.layout) for f in feeds]  # e.g. NCHW data for an NHWC .tflite
    return benchmark(spec.name, job.artifact.path, laid_out, replace(options.bench, threads=threads), ropts,
                     progress=tick)


class LocalExecutor:
    """Measures on this machine: ``measured`` rows, ``not-available`` where the device, provider or runtime
    package is not here (with the pip line), ``failed`` with the reason for any other error."""

    def run(self, jobs: Sequence[TargetJob], feeds: Sequence[Feeds], options: ExecutorOptions,
            progress: Progress) -> ExecutorResult:
        """One row per job, in order (see :class:`~edgekit.executors.base.Executor`)."""
        rows: list[Row] = []
        for job in jobs:
            try:
                progress(f"benchmark {job.artifact.name} on {job.target.name}/{job.runtime.name}")
                rows.append(job.row("measured", bench=benchmark_job(job, feeds, options, progress)))
            except (DeviceUnavailableError, MissingDependencyError) as exc:  # no device, or runtime not installed
                rows.append(job.row("not-available", reason=f"not available here: {exc}"))
            except EdgekitError as exc:
                rows.append(job.row("failed", reason=str(exc)))
        return ExecutorResult(tuple(rows))
