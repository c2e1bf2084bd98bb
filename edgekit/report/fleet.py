"""A fleet's summary: per board target measured on several boards, each artifact x runtime's p50 across the boards.

Rows stay per board (``host``); this adds, where a target has measured rows from two boards or more, the median of
the boards' p50s, the fastest and slowest board and the spread ((slowest - fastest) / median), plus the boards whose
rows failed. In ``report.json`` as ``fleets`` and in ``report.md`` under "Across boards".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgekit.results import Row


def fleet_summary(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """One entry per (target, artifact, runtime) measured on two boards or more (see the module docstring)."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        if r.host is not None:
            groups.setdefault((r.target, r.artifact.name, r.runtime), []).append(r)
    out: list[dict[str, Any]] = []
    for (target, artifact, runtime), members in groups.items():
        timed = {r.host: r.bench.stats.p50_ms for r in members if r.status == "measured-remote" and r.bench}
        if len({r.host for r in members}) < 2 or not timed:
            continue
        p50s = np.asarray(list(timed.values()), dtype=np.float64)
        median = float(np.median(p50s))
        fastest, slowest = min(timed, key=lambda h: timed[h]), max(timed, key=lambda h: timed[h])
        out.append({"target": target, "artifact": artifact, "runtime": runtime, "boards": len(members),
                    "measured": len(timed), "median_p50_ms": median, "fastest": [fastest, timed[fastest]],
                    "slowest": [slowest, timed[slowest]],
                    "spread": float((p50s.max() - p50s.min()) / median) if median > 0 else None,
                    "failed": sorted(str(r.host) for r in members if r.status == "failed")})
    return out
