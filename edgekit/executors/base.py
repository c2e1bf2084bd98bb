"""The executor protocol: where the benchmark jobs of a target run, chosen by the target's ``access``.

The pipeline plans one :class:`TargetJob` per artifact × runtime of a target (:func:`plan_jobs`: the
runtime, or estimator, takes the artifact's format and the target allows its precision), hands every job
of one access kind to the executor registered under that name (:func:`get_executor`), and gets back one
report :class:`~edgekit.results.Row` per job (per job and host, where a job runs on several machines).
An executor never raises for one job: a job that cannot run is a ``failed`` or ``not-available`` row
with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions
from edgekit.errors import MissingDependencyError
from edgekit.executors.hosts import HostSpec
from edgekit.registry import EXECUTORS, formats_of, instantiate, lookup
from edgekit.results import BenchResult, Metrics, Row
from edgekit.targets import RuntimeSpec, Target

Progress = Callable[[str], None]
Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BoardValidation:
    """Validation on a board's own kernels: the held-out ``feeds`` (batch 1, the source's layout) and ``judge``,
    which turns the board's outputs (per feed, in model order) into the run's metrics against the source's
    reference outputs, the same comparison a local validation makes."""

    feeds: Sequence[Feeds]
    judge: Callable[[Sequence[Sequence[np.ndarray]]], Metrics]


@dataclass(frozen=True)
class ExecutorOptions:
    """What every executor is told about a run.

    ``bench``: how to time an artifact; ``threads``: overrides the target's threads (None: the target's,
    else ``bench.threads``); ``hosts``: the machines of the run's remote targets (``--host`` /
    ``--inventory``); ``hosts_per_target``: use at most this many of a target's hosts (None: all);
    ``validation``: where given, remote executors run the held-out items on each board and the row's accuracy is
    the board's (:class:`BoardValidation`); ``calibration``: where given, a fresh iterator over the run's
    calibration items (batch 1, the source's layout) each call, for an emulated NPU whose own toolchain quantizes
    (the IMX500's MCT).
    """

    bench: BenchOptions = field(default_factory=BenchOptions)
    threads: int | None = None
    hosts: tuple[HostSpec, ...] = ()
    hosts_per_target: int | None = None
    validation: BoardValidation | None = None
    calibration: Callable[[], Iterable[Feeds]] | None = None

    def threads_for(self, spec: RuntimeSpec) -> int | None:
        """The thread count a job of ``spec`` runs with: the run's, else the target's, else the benchmark's."""
        return self.threads or spec.threads or self.bench.threads


@dataclass(frozen=True)
class TargetJob:
    """One artifact to benchmark (or estimate) with one runtime (or estimator) of one target, and its
    validation metrics (carried into the row)."""

    target: Target
    runtime: RuntimeSpec
    artifact: Artifact
    metrics: Metrics | None = None

    def row(self, status: str, *, bench: BenchResult | None = None, reason: str | None = None,
            host: str | None = None, kind: str = "measurement") -> Row:
        """The report row of this job: ``status``, the numbers (``bench``) if any, and ``reason`` / ``host``."""
        return Row(self.artifact, self.target.name, self.runtime.name, status, self.metrics, bench, reason=reason,
                   host=host, kind=kind)


@dataclass(frozen=True)
class ExecutorResult:
    """An executor's answer: the rows of its jobs (in job order) and notes for the report."""

    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()


@runtime_checkable
class Executor(Protocol):
    """Runs the jobs of the targets of one ``access`` kind (registered under that name in the registry)."""

    def run(self, jobs: Sequence[TargetJob], feeds: Sequence[Feeds], options: ExecutorOptions,
            progress: Progress) -> ExecutorResult:
        """A row for every job (one per host where a job runs on several), in job order; ``feeds`` are real
        held-out inputs in the source's layout. Never raises for one job's failure."""
        ...


def plan_jobs(target: Target, artifacts: Sequence[Artifact],
              metrics: Mapping[str, Metrics] | None = None) -> list[TargetJob]:
    """The jobs of ``target``: each of its runtimes × each artifact whose format that runtime (or estimator)
    takes and whose precision the target allows, runtimes in the target's order."""
    metrics = metrics or {}
    return [TargetJob(target, spec, art, metrics.get(art.name))
            for spec in target.runtimes for art in artifacts
            if art.format.value in formats_of(spec.name) and art.precision in spec.precisions]


def unplanned(target: Target, artifacts: Sequence[Artifact]) -> tuple[list[Row], list[str]]:
    """Why a target got no job: a ``not-available`` row for each runtime's artifact of the right format but a
    precision the target does not take (one per runtime, the first such artifact), else a note naming what
    the target needs. Never silence."""
    rows: list[Row] = []
    notes: list[str] = []
    kind = "estimate" if target.access == "estimate" else "measurement"
    for spec in target.runtimes:
        formats = sorted(formats_of(spec.name))
        wanted = ", ".join(p.value for p in spec.precisions)
        need = f"{target.name} ({spec.name}) takes {'/'.join(formats)} artifacts of precision {wanted}"
        hint = ("pass --precisions with one of these (int8 also needs --calibration) and --formats "
                + ",".join(formats))
        near = [a for a in artifacts if a.format.value in formats]
        if near:
            rows.append(Row(near[0], target.name, spec.name, "not-available", None, None,
                            reason=f"{need}; none was built; {hint}", kind=kind))
        else:
            notes.append(f"{need}; none was built; {hint}")
    return rows, notes


def get_executor(access: str) -> Executor:
    """The executor registered for ``access``; :class:`~edgekit.errors.MissingDependencyError` (with the pip
    line) when its packages are missing, :class:`~edgekit.errors.UnknownNameError` for an unknown access."""
    entry = lookup(EXECUTORS, "access kind", access, where="access")
    return instantiate(entry, "executor", Executor,  # type: ignore[type-abstract]  # a runtime-checkable protocol
                       "a run(jobs, feeds, options, progress) method")


def run_targets(targets: Sequence[Target], artifacts: Sequence[Artifact], metrics: Mapping[str, Metrics],
                feeds: Sequence[Feeds], options: ExecutorOptions, progress: Progress,
                select: Callable[[Target, Sequence[Artifact]], Sequence[Artifact]] | None = None) -> ExecutorResult:
    """Every target's rows, in target order: each target's jobs (:func:`plan_jobs`) go to the executor of its
    ``access`` (all jobs of one access at once, so an executor may run them in parallel). An executor whose
    packages are missing gives ``not-available`` rows that carry the pip line. ``select`` narrows the artifacts
    a target is given (the variants built for its own recipe, :func:`edgekit.variants.artifacts_for`)."""
    by_access: dict[str, list[TargetJob]] = {}
    rows: list[Row] = []
    notes: list[str] = []
    for target in targets:
        mine = select(target, artifacts) if select is not None else artifacts
        jobs = plan_jobs(target, mine, metrics)
        by_access.setdefault(target.access, []).extend(jobs)
        if not jobs:
            why_rows, why_notes = unplanned(target, mine)
            rows += why_rows
            notes += why_notes
    for access, jobs in by_access.items():
        if not jobs:
            continue
        try:
            executor = get_executor(access)
        except MissingDependencyError as exc:
            rows += [job.row("not-available", reason=str(exc)) for job in jobs]
            continue
        result = executor.run(jobs, feeds, options, progress)
        rows += result.rows
        notes += result.notes
    order = {t.name: i for i, t in enumerate(targets)}
    rows.sort(key=lambda r: order[r.target])  # stable: each executor's own order within a target
    return ExecutorResult(tuple(rows), tuple(notes))
