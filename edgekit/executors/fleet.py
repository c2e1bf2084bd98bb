"""Fan benchmark jobs out over boards: in parallel over hosts, one job at a time per host.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions, result_from_dict
from edgekit.errors import EdgekitError
from edgekit.executors.ssh import HostSpec, RemoteError, RemoteJob, connect, run_remote_job
from edgekit.results import Metrics, Row
from edgekit.runtimes.base import RuntimeOptions

Progress = Callable[[str], None]
Feeds = Mapping[str, np.ndarray]


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


def _row(job: BenchJob, spec: HostSpec, status: str, reason: str | None = None, result: Any = None) -> Row:
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


def fleet_rows(targets: Sequence[Any], artifacts: Sequence[Artifact], metrics: Mapping[str, Metrics],
               bench_feeds: Sequence[Feeds], options: Any,
               progress: Progress) -> tuple[dict[str, list[Row]], list[str]]:
    """Rows for every ``access = "ssh"`` target of a run (``options`` is the pipeline's ``RunOptions``):
    benchmarked on its hosts when ``options.hosts`` has some, else ``not-available`` ("no --host given").
    Returns rows per target name and report notes (e.g. host keys not verified)."""
    from edgekit.agent import write_feeds_npz
    from edgekit.layout import to_layout
    from edgekit.registry import runtimes_for_format

    hosts: Sequence[HostSpec] = getattr(options, "hosts", ())
    out: dict[str, list[Row]] = {}
    notes: list[str] = []
    per_host: dict[HostSpec, list[BenchJob]] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-fleet-") as tmp:
        for target in targets:
            out[target.name] = []
            chosen = hosts_for(target.name, hosts)
            for spec in target.runtimes:
                for art in artifacts:
                    if spec.name not in runtimes_for_format(art.format.value) or art.precision not in spec.precisions:
                        continue
                    m = metrics.get(art.name)
                    if not chosen:
                        out[target.name].append(Row(art, target.name, spec.name, "not-available", m,
                                                    reason="no --host given (or inventory entry) for this ssh target"))
                        continue
                    threads = options.threads or spec.threads or options.bench.threads
                    feeds_file = Path(tmp) / f"feeds-{art.layout or 'native'}.npz"
                    if not feeds_file.exists():
                        write_feeds_npz([to_layout(f, art.layout) for f in bench_feeds], feeds_file)
                    job = BenchJob(art, target.name, spec.name, dataclasses.replace(options.bench, threads=threads),
                                   RuntimeOptions(threads=threads, providers=spec.providers, device=spec.device),
                                   feeds_file, m)
                    for host in chosen:
                        per_host.setdefault(host, []).append(job)
        for host in per_host:
            if not host.verify_host_key:
                notes.append(f"host key of {host.label} was NOT verified (--insecure-no-host-key-check)")
        assignments = list(per_host.items())
        results = run_fleet(assignments, progress) if assignments else []
    for rows in results:
        for row in rows:
            out[row.target].append(row)
    return out, notes
