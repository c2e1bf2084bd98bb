"""The estimate executor (``access = "estimate"``): nothing runs; each job's ``[[runtime]]`` names a registered
estimator (:mod:`edgekit.estimators`) whose :class:`~edgekit.estimators.base.Estimate` becomes an
``estimated`` row. A missing estimator package is a ``not-available`` row (with the pip line), any other
failure (a compile error, a time-out) a ``failed`` row: never a crashed run."""

from __future__ import annotations

from collections.abc import Sequence

from edgekit.errors import EdgekitError, MissingDependencyError
from edgekit.estimators.base import estimate_bench, get_estimator
from edgekit.executors.base import ExecutorOptions, ExecutorResult, Feeds, Progress, TargetJob
from edgekit.results import Row


class EstimateExecutor:
    """Asks each job's estimator for an estimate; rows of kind ``estimate``."""

    def run(self, jobs: Sequence[TargetJob], feeds: Sequence[Feeds], options: ExecutorOptions,
            progress: Progress) -> ExecutorResult:
        """One row per job, in order (see :class:`~edgekit.executors.base.Executor`); feeds are not used."""
        rows: list[Row] = []
        for job in jobs:
            try:
                estimator = get_estimator(job.runtime.name)
                progress(f"estimate {job.artifact.name} on {job.target.name} ({job.runtime.name})")
                est = estimator.estimate(job.artifact, job.target, progress)
            except MissingDependencyError as exc:
                rows.append(job.row("not-available", reason=str(exc), kind="estimate"))
                continue
            except EdgekitError as exc:
                rows.append(job.row("failed", reason=str(exc), kind="estimate"))
                continue
            rows.append(job.row("estimated", bench=estimate_bench(est), reason="; ".join(est.problems) or None,
                                kind="estimate"))
        return ExecutorResult(tuple(rows))
