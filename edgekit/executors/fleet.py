"""The SSH executor (``access = "ssh"``): fan benchmark jobs out over boards, in parallel over hosts, one job
at a time per host.

Each host gets its own connection and runs its jobs one after the other, so no two benchmarks share a
board. Whatever goes wrong on one host (cannot connect, connection lost mid-run, the agent fails)
becomes a ``failed`` (or ``not-available``) :class:`~edgekit.results.Row` with the reason; the other
hosts' rows are kept. A successful job is a ``measured-remote`` row, tagged with the host, with the
same :class:`~edgekit.results.BenchResult` shape as a local run (the agent runs the same code).
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions, result_from_dict
from edgekit.errors import EdgekitError
from edgekit.executors.base import ExecutorOptions, ExecutorResult, Feeds, Progress, TargetJob
from edgekit.executors.hosts import HostSpec
from edgekit.executors.ssh import RemoteError, RemoteJob, connect, run_remote_job
from edgekit.feeds import write_feeds_npz
from edgekit.layout import to_layout
from edgekit.results import BenchResult, Metrics, Row
from edgekit.runtimes.base import RuntimeOptions


@dataclass(frozen=True)
class BenchJob:
    """One artifact to benchmark with one runtime of one target, with the settings a local run would use."""

    artifact: Artifact
    target: str
    runtime: str
    bench: BenchOptions
    runtime_options: RuntimeOptions
    feeds: Path
    metrics: Metrics | None = None


def _row(job: BenchJob, spec: HostSpec, status: str, reason: str | None = None,
         result: BenchResult | None = None) -> Row:
    return Row(job.artifact, job.target, job.runtime, status, job.metrics, result, reason=reason, host=spec.label)


async def _host_rows(spec: HostSpec, jobs: Sequence[BenchJob], progress: Progress) -> list[Row]:
    rows: list[Row] = []
    conn: Any = None
    try:
        for job in jobs:
            try:
                if conn is None:
                    conn = await connect(spec)
                progress(f"benchmark {job.artifact.name} on {job.target}/{job.runtime} at {spec.label}")
                agent_job = {"mode": "bench", "runtime": job.runtime,
                             "runtime_options": job.runtime_options.to_dict(),
                             "bench_options": dataclasses.asdict(job.bench)}
                data = await run_remote_job(conn, spec, RemoteJob(agent_job, job.artifact.path, job.feeds))
                env = dict(data.get("environment") or {})
                env["remote"] = {"host": spec.label, "host_key": spec.host_key_policy, "python": spec.python,
                                 "executor": "ssh"}
                rows.append(_row(job, spec, "measured-remote", result=result_from_dict({**data, "environment": env})))
            except EdgekitError as exc:
                kind = getattr(exc, "agent_error_type", "")
                status = "not-available" if kind == "DeviceUnavailableError" else "failed"
                rows.append(_row(job, spec, status, reason=str(exc) if spec.label in str(exc) else
                                 f"{spec.label}: {exc}"))
                progress(f"FAILED {job.artifact.name} at {spec.label}: {exc}")
                if isinstance(exc, RemoteError) and conn is not None and _closed(conn):
                    conn = None  # reconnect (bounded retries) for the next job
    finally:
        if conn is not None:
            conn.close()
    return rows


def _closed(conn: Any) -> bool:
    try:
        return conn.is_closed()  # type: ignore[no-any-return]
    except Exception:
        return True


async def _fan_out(assignments: Sequence[tuple[HostSpec, Sequence[BenchJob]]], progress: Progress) -> list[list[Row]]:
    async def guarded(spec: HostSpec, jobs: Sequence[BenchJob]) -> list[Row]:
        try:
            return await _host_rows(spec, jobs, progress)
        except Exception as exc:  # never lose the other hosts' results
            return [_row(j, spec, "failed", reason=f"{spec.label}: {type(exc).__name__}: {exc}") for j in jobs]

    return list(await asyncio.gather(*(guarded(s, j) for s, j in assignments)))


def run_fleet(assignments: Sequence[tuple[HostSpec, Sequence[BenchJob]]],
              progress: Progress = lambda _m: None) -> list[list[Row]]:
    """Run every host's jobs (hosts in parallel, jobs of a host in order); rows per assignment, in order."""
    return asyncio.run(_fan_out(assignments, progress))


def hosts_for(target: str, hosts: Sequence[HostSpec]) -> list[HostSpec]:
    """The hosts that run ``target``: those naming it, else (CLI ``--host``) those naming no target."""
    named = [h for h in hosts if h.target == target]
    return named or [h for h in hosts if h.target is None]


class SshExecutor:
    """Runs each job on its target's boards from ``options.hosts`` (:func:`hosts_for`): ``measured-remote`` rows
    tagged with the host; ``not-available`` when a target has no host. Notes say which host keys were not
    verified."""

    def run(self, jobs: Sequence[TargetJob], feeds: Sequence[Feeds], options: ExecutorOptions,
            progress: Progress) -> ExecutorResult:
        """One row per job and host, in job order (see :class:`~edgekit.executors.base.Executor`)."""
        rows: dict[int, list[Row]] = {}
        per_host: dict[HostSpec, list[BenchJob]] = {}
        index: dict[tuple[HostSpec, int], int] = {}  # (host, position in its job list) -> job index
        with tempfile.TemporaryDirectory(prefix="edgekit-fleet-") as tmp:
            for i, job in enumerate(jobs):
                chosen = hosts_for(job.target.name, options.hosts)[:options.hosts_per_target]
                if not chosen:
                    rows[i] = [job.row("not-available",
                                       reason="no --host given (or inventory entry) for this ssh target")]
                    continue
                threads = options.threads_for(job.runtime)
                feeds_file = Path(tmp) / f"feeds-{job.artifact.layout or 'native'}.npz"
                if not feeds_file.exists():
                    write_feeds_npz([to_layout(f, job.artifact.layout) for f in feeds], feeds_file)
                bench_job = BenchJob(job.artifact, job.target.name, job.runtime.name,
                                     dataclasses.replace(options.bench, threads=threads),
                                     RuntimeOptions(threads=threads, providers=job.runtime.providers,
                                                    device=job.runtime.device), feeds_file, job.metrics)
                for host in chosen:
                    index[(host, len(per_host.setdefault(host, [])))] = i
                    per_host[host].append(bench_job)
            assignments = list(per_host.items())
            results = run_fleet(assignments, progress) if assignments else []
        for (host, _), host_rows in zip(assignments, results, strict=True):
            for k, row in enumerate(host_rows):
                rows.setdefault(index[(host, k)], []).append(row)
        notes = tuple(f"host key of {h.label} was NOT verified (--insecure-no-host-key-check)"
                      for h in per_host if not h.verify_host_key)
        return ExecutorResult(tuple(r for i in sorted(rows) for r in rows[i]), notes)
