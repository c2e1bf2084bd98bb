"""Which artifact to ship to each target, and why.

The rule, per (target, runtime) pair that has measured rows: among the measured artifacts whose
accuracy is within the :class:`~edgekit.results.AccuracyBudget` (under the rule its ``governs`` chooses:
each refusal names the rule that refused; a rule not applied is said in the reason), pick the lowest
p50 latency. A
non-fp32 artifact that runs slower than the fp32 artifact of the same format on the same target and
runtime is never recommended (it buys nothing but lost accuracy), and the rejection says so.
Estimated, failed and not-available rows are never recommended.
"""

from __future__ import annotations

from collections.abc import Sequence

from edgekit.results import AccuracyBudget, Recommendation, Row
from edgekit.types import Precision

MEASURED = frozenset({"measured", "measured-remote"})
"""Row statuses whose numbers come from running the artifact."""


def _kind(status: str) -> str:
    """Rows are only compared with rows of the same kind (measured vs estimated)."""
    return "measured" if status in MEASURED else status


def _p50(row: Row) -> float | None:
    if row.bench is None:
        return None
    return row.bench.stats.p50_ms


def speedups(rows: Sequence[Row]) -> dict[int, float | None]:
    """Row index -> p50 speed-up vs the fp32 artifact of the same format on the same target and runtime.

    The speed-up is ``fp32 p50 / this p50`` (> 1 means faster than fp32; the fp32 row itself gets 1.0).
    ``None`` where the row has no latency or no such fp32 baseline was timed the same way (measured
    rows are only compared with measured rows, estimated with estimated).
    """
    baselines: dict[tuple[str, str, str, str], float] = {}
    for row in rows:
        p50 = _p50(row)
        if row.artifact.precision is not Precision.FP32 or p50 is None or not p50 > 0:
            continue
        key = (row.target, row.runtime, row.artifact.format.value, _kind(row.status))
        baselines.setdefault(key, p50)
    out: dict[int, float | None] = {}
    for i, row in enumerate(rows):
        p50 = _p50(row)
        base = baselines.get((row.target, row.runtime, row.artifact.format.value, _kind(row.status)))
        out[i] = base / p50 if base is not None and p50 is not None and p50 > 0 else None
    return out


def budget_failures(row: Row, budget: AccuracyBudget) -> list[str]:
    """Why ``row``'s metrics are outside ``budget`` (empty when within it, or a note when unvalidated)."""
    return budget.metrics_failures(row.metrics)


def describe(row: Row, speedup: float | None) -> str:
    """The numbers behind a choice: p50, speed-up vs fp32, accuracy (change in points), cosine, and the flip rate
    / relative error of binary-score / regression outputs."""
    parts: list[str] = []
    p50 = _p50(row)
    if p50 is not None:
        if row.artifact.precision is Precision.FP32:
            vs = " (the fp32 baseline)"
        else:
            vs = f" ({speedup:.2f}x vs fp32)" if speedup is not None else " (no fp32 baseline here)"
        parts.append(f"p50 {p50:.2f} ms{vs}")
    m = row.metrics
    if m is not None:
        if m.accuracy is not None:
            acc = f"accuracy {100.0 * m.accuracy:.1f}%"
            drop = m.accuracy_drop_points
            parts.append(acc + (f" ({0.0 - drop:+.1f} pt)" if drop is not None else ""))
        if m.cosine_mean is not None:
            parts.append(f"cosine {m.cosine_mean:.4f}")
        if m.flip_rate is not None:
            parts.append(f"flips {100.0 * m.flip_rate:.1f}%")
        if m.relative_error is not None:
            parts.append(f"relative error {m.relative_error:.3g}")
        if m.iou is not None:
            parts.append(f"map IoU {m.iou:.3f}")
        if m.detection_match is not None:
            parts.append(f"detections matched {100.0 * m.detection_match:.1f}%")
        if m.sequence_error is not None:
            parts.append(f"char. error {100.0 * m.sequence_error:.2f}%")
    return ", ".join(parts)


def refusals(rows: Sequence[Row], idx: Sequence[int], budget: AccuracyBudget,
             speed: dict[int, float | None], strict_timing: bool = False) -> dict[int, list[str]]:
    """For each row index of ``idx``: why it cannot be recommended (empty: it can): not measured, no latency,
    outside the budget (each rule named), a lowered precision slower than fp32 (``speed``: :func:`speedups`), or,
    with ``strict_timing``, timed while the machine was busy with other work."""
    out: dict[int, list[str]] = {}
    for i in idx:
        row = rows[i]
        why: list[str] = []
        if row.status not in MEASURED:
            why.append(row.status + (f" ({row.reason})" if row.reason else "") + ": not measured here")
        elif row.bench is None:
            why.append("no latency measured")
        else:
            why.extend(budget_failures(row, budget))
            s = speed[i]
            if row.artifact.precision is not Precision.FP32 and s is not None and s < 1.0:
                why.append(f"{row.artifact.precision.value} is slower than fp32 here ({s:.2f}x): not recommended")
            if strict_timing and row.bench.noisy:
                why.append(f"timed under noise ({row.bench.noise.get('why')}) and --strict-timing is set")
        out[i] = why
    return out


def _group(rows: Sequence[Row]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault((row.target, row.runtime), []).append(i)
    return groups


def recommend(rows: Sequence[Row], budget: AccuracyBudget, strict_timing: bool = False) -> tuple[Recommendation, ...]:
    """One :class:`Recommendation` per (target, runtime) pair with measured rows, in first-seen order.

    ``rejected`` holds one line per artifact not chosen in that pair, saying why (over budget, slower
    than fp32, not measured, or simply slower than the pick). ``artifact`` is None when nothing qualifies.
    """
    speed = speedups(rows)
    recs: list[Recommendation] = []
    for (target, runtime), idx in _group(rows).items():
        if not any(rows[i].status in MEASURED for i in idx):
            fails = {i: budget_failures(rows[i], budget) for i in idx if rows[i].status == "validated-remote"}
            if fails:  # an emulated board or NPU: accuracy on its kernels, no speed to choose by
                ok = [rows[i].artifact.name for i, why in fails.items() if not why]
                recs.append(Recommendation(
                    target=target, runtime=runtime, artifact=None,
                    reason="no speed measured (emulated): within budget on its kernels: "
                           + (", ".join(ok) if ok else "none"),
                    rejected=tuple(f"{rows[i].artifact.name}: " + "; ".join(why) for i, why in fails.items() if why)))
            continue
        why_not = refusals(rows, idx, budget, speed, strict_timing)
        eligible = [i for i in idx if not why_not[i]]
        excluded = {i: why for i, why in why_not.items() if why}
        rejected: list[str] = []
        if eligible:
            best = min(eligible, key=lambda i: (_p50(rows[i]) or 0.0, i))
            best_p50 = _p50(rows[best]) or 0.0
            reason = "fastest within budget: " + describe(rows[best], speed[best])
            m = rows[best].metrics
            if m is not None:  # a rule the chosen --budget-rule does not apply is said, not dropped
                reason += "".join(f"; {w}" for w in budget.waived(m.cosine_mean, m.accuracy_drop_points))
            artifact: str | None = rows[best].artifact.name
        else:
            best, best_p50, artifact = -1, 0.0, None
            reason = (f"nothing qualifies on {target}/{runtime}: no measured artifact is within the budget "
                      f"({budget.describe()}) and no slower than fp32")
        for i in idx:
            if i == best:
                continue
            if i in excluded:
                rejected.append(f"{rows[i].artifact.name}: " + "; ".join(excluded[i]))
            else:
                rejected.append(f"{rows[i].artifact.name}: within budget but slower "
                                f"(p50 {_p50(rows[i]) or 0.0:.2f} ms vs {best_p50:.2f} ms)")
        recs.append(Recommendation(target=target, runtime=runtime, artifact=artifact, reason=reason,
                                   rejected=tuple(rejected)))
    return tuple(recs)

