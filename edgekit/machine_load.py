"""How busy the machine was while a benchmark ran: other processes' CPU time, load average and CPU frequency before
and after, the spread of the samples (standard library only: the agent runs it on boards too).

:func:`snapshot` before the timed loop and after it; :func:`noise_between` turns the two and the samples into the
row's ``noise`` record. A row is *noisy* when other processes used at least :data:`BUSY_CORES` cores on average
while it was timed (a direct reading from ``/proc``, not a guess from the samples), or the CPU frequency moved by
more than :data:`FREQ_CHANGE` between start and end. The spread of the samples is recorded beside (on a shared VM
it is wide even when nothing else runs, so it does not flag on its own).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Other processes' average CPU use (in cores) while a row was timed from which the row is flagged noisy.
BUSY_CORES = 0.5
#: Relative change of the mean CPU frequency between start and end from which the row is flagged noisy.
FREQ_CHANGE = 0.10
_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    """The machine at one moment: wall clock, load average, mean CPU frequency, every process's CPU ticks."""

    t: float
    loadavg: float | None
    freq_khz: float | None
    ticks: dict[int, tuple[str, int]] = field(default_factory=dict)  # pid -> (name, utime + stime)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _freq_khz() -> float | None:
    values = []
    for f in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        try:
            values.append(int(f.read_text().strip()))
        except (OSError, ValueError):
            continue
    return sum(values) / len(values) if values else None


def _process_ticks() -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for name in entries:
        if not name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        fields = rest.split()
        if len(fields) > 12:  # fields after the name: state ppid ... utime(12th) stime(13th)
            out[int(name)] = (head.partition("(")[2], int(fields[11]) + int(fields[12]))
    return out


def snapshot() -> Snapshot:
    """The machine now (cheap: one pass over /proc)."""
    return Snapshot(time.monotonic(), _loadavg(), _freq_khz(), _process_ticks())


def noise_between(before: Snapshot, after: Snapshot, samples_ms: tuple[float, ...] | list[float],
                  own_pid: int | None = None) -> dict[str, Any]:
    """The ``noise`` record of a row timed between ``before`` and ``after``: other processes' CPU use (cores, and
    the three busiest), load average and frequency at both ends, the samples' spread, and ``noisy`` with why."""
    own = os.getpid() if own_pid is None else own_pid
    wall = max(after.t - before.t, 1e-6)
    used: dict[str, float] = {}
    for pid, (name, ticks) in after.ticks.items():
        if pid == own or pid not in before.ticks or before.ticks[pid][0] != name:
            continue
        seconds = (ticks - before.ticks[pid][1]) / _HZ
        if seconds > 0:
            used[f"{name} ({pid})"] = seconds / wall
    busy = sum(used.values())
    xs = sorted(samples_ms)
    p50 = xs[len(xs) // 2] if xs else 0.0
    p90 = xs[min(len(xs) - 1, int(0.9 * len(xs)))] if xs else 0.0
    record: dict[str, Any] = {
        "other_busy_cores": round(busy, 3),
        "busiest": [f"{k}: {v:.2f} cores" for k, v in sorted(used.items(), key=lambda kv: -kv[1])[:3]],
        "loadavg_before": before.loadavg, "loadavg_after": after.loadavg,
        "freq_khz_before": before.freq_khz, "freq_khz_after": after.freq_khz,
        "cv": round(statistics.pstdev(xs) / statistics.fmean(xs), 4) if len(xs) > 1 and statistics.fmean(xs) else None,
        "spread_p90_p50": round(p90 / p50 - 1.0, 4) if p50 else None,
        "window_s": round(wall, 3),
    }
    why: list[str] = []
    if busy >= BUSY_CORES:
        why.append(f"other processes used {busy:.2f} cores while it was timed ({', '.join(record['busiest'])})")
    if before.freq_khz and after.freq_khz and abs(after.freq_khz / before.freq_khz - 1.0) > FREQ_CHANGE:
        why.append(f"the CPU frequency moved from {before.freq_khz / 1e3:.0f} to {after.freq_khz / 1e3:.0f} MHz")
    record["noisy"] = bool(why)
    record["why"] = "; ".join(why)
    return record
