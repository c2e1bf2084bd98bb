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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions, result_from_dict
from edgekit.errors import EdgekitError
from edgekit.executors.base import ExecutorOptions, ExecutorResult, Feeds, Progress, TargetJob
from edgekit.executors.hosts import HostSpec
from edgekit.executors.ssh import RemoteError, RemoteJob, board_needs, connect, probe_board, run_remote_job
from edgekit.feeds import read_outputs_npz, write_feeds_npz
from edgekit.layout import to_layout
from edgekit.results import BenchResult, Metrics, Row
from edgekit.runtimes.base import RuntimeOptions


@dataclass(frozen=True)
class BenchJob:
    """One artifact to benchmark with one runtime of one target, with the settings a local run would use;
    ``eval_feeds``: the held-out items in the artifact's layout, where the run validates on the board
    (``judge`` turns the board's outputs into metrics)."""

    artifact: Artifact
    target: str
    runtime: str
    bench: BenchOptions
    runtime_options: RuntimeOptions
    feeds: Path
    metrics: Metrics | None = None
    eval_feeds: Path | None = None
    judge: Callable[[Sequence[Sequence[np.ndarray]]], Metrics] | None = None


def _row(job: BenchJob, spec: HostSpec, status: str, reason: str | None = None,
         result: BenchResult | None = None, metrics: Metrics | None = None, accuracy_from: str | None = None) -> Row:
    return Row(job.artifact, job.target, job.runtime, status, metrics or job.metrics, result, reason=reason,
               host=spec.label, accuracy_from=accuracy_from)


class _Board:
    """One host's connection and what its probe said (machine, runtimes' versions, emulated or not)."""

    def __init__(self, spec: HostSpec) -> None:
        self.spec = spec
        self.conn: Any = None
        self.probe: dict[str, Any] | None = None
        self.validated: dict[tuple[str, str], tuple[Metrics, str]] = {}

    async def ready(self, runtimes: Sequence[str]) -> Any:
        if self.conn is None:
            self.conn = await connect(self.spec)
        if self.probe is None:
            self.probe = await probe_board(self.conn, self.spec, [board_needs(r)[0] for r in runtimes])
        return self.conn

    def kernels(self, runtime: str) -> str:
        """Whose kernels: ``host (machine[, emulated on x86_64], runtime version)``."""
        p = self.probe or {}
        info = p.get("modules", {}).get(board_needs(runtime)[0], {})
        emulated = f", emulated on {p.get('shell_machine')}" if p.get("emulated") else ""
        return f"{self.spec.label} ({p.get('machine', '?')}{emulated}, {runtime} {info.get('version', '?')})"


async def _validate(board: _Board, job: BenchJob, tmp: Path, progress: Progress) -> tuple[Metrics, str]:
    """Run the held-out items on the board (agent ``outputs`` mode) and judge them: the board's metrics."""
    key = (job.artifact.name, job.runtime)
    if key not in board.validated:
        assert job.eval_feeds is not None and job.judge is not None
        progress(f"validate {job.artifact.name} on {job.target}/{job.runtime} at {board.spec.label} (its kernels)")
        out = tmp / f"outputs-{abs(hash((board.spec.label, *key)))}.npz"
        agent_job = {"mode": "outputs", "runtime": job.runtime, "runtime_options": job.runtime_options.to_dict()}
        await run_remote_job(board.conn, board.spec, RemoteJob(agent_job, job.artifact.path, job.eval_feeds,
                                                               fetch_outputs=out))
        board.validated[key] = (job.judge(read_outputs_npz(out)), board.kernels(job.runtime))
    return board.validated[key]


async def _host_rows(spec: HostSpec, jobs: Sequence[BenchJob], progress: Progress) -> list[Row]:
    rows: list[Row] = []
    board = _Board(spec)
    runtimes = sorted({j.runtime for j in jobs})
    try:
        with tempfile.TemporaryDirectory(prefix="edgekit-board-") as tmp:
            for job in jobs:
                metrics: Metrics | None = None
                accuracy_from: str | None = None
                try:
                    conn = await board.ready(runtimes)
                    if job.eval_feeds is not None:
                        metrics, accuracy_from = await _validate(board, job, Path(tmp), progress)
                    if (board.probe or {}).get("emulated"):
                        rows.append(_row(job, spec, "validated-remote", metrics=metrics, accuracy_from=accuracy_from,
                                         reason=f"emulated board ({board.kernels(job.runtime)}): accuracy on its "
                                                "kernels; its timings are not the board's speed, so none is reported"))
                        continue
                    progress(f"benchmark {job.artifact.name} on {job.target}/{job.runtime} at {spec.label}")
                    agent_job = {"mode": "bench", "runtime": job.runtime,
                                 "runtime_options": job.runtime_options.to_dict(),
                                 "bench_options": dataclasses.asdict(job.bench)}
                    data = await run_remote_job(conn, spec, RemoteJob(agent_job, job.artifact.path, job.feeds))
                    env = dict(data.get("environment") or {})
                    env["remote"] = {"host": spec.label, "host_key": spec.host_key_policy, "python": spec.python,
                                     "executor": "ssh"}
                    result = result_from_dict({**data, "environment": env})
                    rows.append(_row(job, spec, "measured-remote", result=result, metrics=metrics,
                                     accuracy_from=accuracy_from))
                except EdgekitError as exc:
                    kind = getattr(exc, "agent_error_type", "")
                    status = "not-available" if kind == "DeviceUnavailableError" else "failed"
                    rows.append(_row(job, spec, status, reason=str(exc) if spec.label in str(exc) else
                                     f"{spec.label}: {exc}", metrics=metrics, accuracy_from=accuracy_from))
                    progress(f"FAILED {job.artifact.name} at {spec.label}: {exc}")
                    if isinstance(exc, RemoteError) and board.conn is not None and _closed(board.conn):
                        board.conn = None  # reconnect (bounded retries) for the next job
    finally:
        if board.conn is not None:
            board.conn.close()
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


def _laid_out(folder: Path, kind: str, feeds: Sequence[Feeds], layout: str) -> Path:
    """``feeds`` in ``layout`` as one .npz in ``folder``, written once per kind and layout."""
    path = folder / f"{kind}-{layout or 'native'}.npz"
    if not path.exists():
        write_feeds_npz([to_layout(f, layout) for f in feeds], path)
    return path


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
                feeds_file = _laid_out(Path(tmp), "feeds", feeds, job.artifact.layout)
                eval_file = _laid_out(Path(tmp), "eval", options.validation.feeds, job.artifact.layout) \
                    if options.validation is not None else None
                bench_job = BenchJob(job.artifact, job.target.name, job.runtime.name,
                                     dataclasses.replace(options.bench, threads=threads),
                                     RuntimeOptions(threads=threads, providers=job.runtime.providers,
                                                    device=job.runtime.device), feeds_file, job.metrics,
                                     eval_file, options.validation.judge if options.validation else None)
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
