"""Comparing two runs: ``edgekit compare RUN_A RUN_B`` and ``edgekit run --baseline RUN_A``.

Per artifact x target x runtime present in both reports: the latency ratio B/A of the p50 with a 95% bootstrap
interval over the raw samples both ``report.json`` files keep (each run resampled on its own: the runs were not
interleaved), and the accuracy deltas (task accuracy points, mean cosine, top-1 agreement, and every per-output
metric both have). Rows in only one run are listed as added / removed. Runs recorded on different machines (CPU
model or ISA flags differ) are compared with a loud warning, and the comparison says so. The gate
(:class:`~edgekit.comparison.FailOn`) marks breaching rows; the exit status is then 4.

The bootstrap treats the samples as independent draws; consecutive samples of one benchmark are somewhat
correlated, so the interval is, if anything, narrow. That is why the gate judges its lower bound, not the ratio.
The interval covers the sampling within each run, not the drift between two sessions (CPU frequency, other
processes' load): two runs of the same command on a shared 2-core VM gave ratios from 0.53x to 1.6x on a tiny
model (p50 0.015-0.2 ms) with intervals of a few percent. A latency gate belongs on a quiet, dedicated machine
(or a wider ``latency=+P%``); the accuracy gates do not depend on it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.comparison import Comparison, FailOn, LatencyRatio, MetricDelta, RowComparison
from edgekit.errors import ConfigError
from edgekit.report.model import JSON_NAME, load_report, to_json_dict
from edgekit.results import RunResult

RESAMPLES = 1000
_OUTPUT_METRICS = ("accuracy", "cosine_mean", "cosine_min", "top1_agreement", "top5_agreement", "flip_rate",
                   "iou", "relative_error", "recall", "precision", "match_iou", "sequence_agreement",
                   "char_error_rate", "max_abs", "mean_abs")

Run = str | os.PathLike[str] | RunResult | Mapping[str, Any]


def report_path(run: str | os.PathLike[str], where: str) -> Path:
    """The ``report.json`` of a run folder (or the file itself); a :class:`ConfigError` naming ``where`` if none."""
    p = Path(run)
    path = p / JSON_NAME if p.is_dir() else p
    if not path.is_file():
        raise ConfigError("no report.json there", where=where, got=str(run),
                          expected="a run folder (the --out of an edgekit run) or its report.json",
                          hint="run 'edgekit run ... --out FOLDER' first, then compare FOLDER")
    return path


def _document(run: Run, where: str) -> tuple[dict[str, Any], str]:
    """The report document of ``run`` and a label for it."""
    if isinstance(run, RunResult):
        return to_json_dict(run), "this run"
    if isinstance(run, Mapping):
        return dict(run), str(run.get("label", where))
    path = report_path(run, where)
    return load_report(path), str(run)


def _medians(x: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    out = np.empty(resamples)
    chunk = max(1, 4_000_000 // max(len(x), 1))
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        out[start:start + n] = np.median(x[rng.integers(0, len(x), size=(n, len(x)))], axis=1)
    return out


def bootstrap_ratio(a: Sequence[float], b: Sequence[float], *, resamples: int = RESAMPLES,
                    seed: int = 0) -> tuple[float, float, float]:
    """``(median(b) / median(a), low, high)``: the ratio of medians with a 95% percentile bootstrap interval,
    each sample set resampled with replacement on its own (seeded: the same samples give the same interval)."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size == 0 or xb.size == 0:
        raise ValueError("both sample sets must be non-empty")
    rng = np.random.default_rng(seed)
    ratios = _medians(xb, rng, resamples) / _medians(xa, rng, resamples)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(np.median(xb) / np.median(xa)), float(low), float(high)


def _latency(ra: Mapping[str, Any], rb: Mapping[str, Any]) -> LatencyRatio | None:
    ba, bb = ra.get("bench") or {}, rb.get("bench") or {}
    pa, pb = (ba.get("stats") or {}).get("p50_ms"), (bb.get("stats") or {}).get("p50_ms")
    if not isinstance(pa, (int, float)) or not isinstance(pb, (int, float)) or not pa > 0 or not pb > 0:
        return None
    sa, sb = _samples(ba.get("samples_ms")), _samples(bb.get("samples_ms"))
    low = high = None
    if len(sa) >= 2 and len(sb) >= 2:
        _, low, high = bootstrap_ratio(sa, sb)
    return LatencyRatio(a_p50_ms=float(pa), b_p50_ms=float(pb), ratio=float(pb) / float(pa), low=low, high=high,
                        a_samples=len(sa), b_samples=len(sb))


def _samples(raw: Any) -> list[float]:
    """The raw latency samples of a report row; anything but a list of finite numbers (a hand-edited report) is
    treated as no samples, so the row is judged on its p50 ratio alone."""
    if not isinstance(raw, list):
        return []
    values = [_finite(x) for x in raw]
    return [v for v in values if v is not None] if all(v is not None for v in values) else []


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _delta(ma: Mapping[str, Any], mb: Mapping[str, Any], key: str, scale: float = 1.0) -> float | None:
    a, b = _finite(ma.get(key)), _finite(mb.get(key))
    return None if a is None or b is None else scale * (b - a)


def _output_deltas(ma: Mapping[str, Any], mb: Mapping[str, Any]) -> tuple[MetricDelta, ...]:
    outs_b = {o.get("name"): o for o in mb.get("outputs") or ()}
    found: list[MetricDelta] = []
    for oa in ma.get("outputs") or ():
        ob = outs_b.get(oa.get("name"))
        if ob is None:
            continue
        for metric in _OUTPUT_METRICS:
            a, b = _finite(oa.get(metric)), _finite(ob.get(metric))
            if a is not None and b is not None:
                found.append(MetricDelta(output=str(oa.get("name")), metric=metric, a=a, b=b))
        names_b = dict(ob.get("user") or ())
        for name, value in oa.get("user") or ():
            a, b = _finite(value), _finite(names_b.get(name))
            if a is not None and b is not None:
                found.append(MetricDelta(output=str(oa.get("name")), metric=str(name), a=a, b=b))
    return tuple(found)


def _breaches(row: RowComparison, gate: FailOn | None) -> tuple[str, ...]:
    if gate is None:
        return ()
    out: list[str] = []
    lat = row.latency
    if gate.latency_pct is not None and lat is not None:
        limit = 1.0 + gate.latency_pct / 100.0
        judged = lat.low if lat.low is not None else lat.ratio
        if judged > limit:
            what = "its 95% interval's lower bound" if lat.low is not None else "its p50 ratio (no raw samples)"
            out.append(f"latency {lat.describe()}: {what} {judged:.3f} > {limit:g} (latency=+{gate.latency_pct:g}%)")
    for value, allowed, name, key, unit in (
            (row.accuracy_points, gate.accuracy_points, "accuracy", "accuracy", " pt"),
            (row.cosine, gate.cosine, "mean cosine", "cosine", ""),
            (row.top1_points, gate.top1_points, "top-1 agreement", "top1", " pt")):
        if allowed is not None and value is not None and value < -allowed:
            out.append(f"{name} {value:+.4g}{unit} < -{allowed:g}{unit} ({key}=-{allowed:g})")
    return tuple(out)


def machine_of(env: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The CPU model and sorted ISA flags a report's ``environment`` records (what tells two machines apart)."""
    return str(env.get("cpu_model") or "unknown CPU"), tuple(sorted(env.get("cpu_flags") or ()))


def _row_machine(row: Mapping[str, Any], doc: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    env = (row.get("bench") or {}).get("environment") or doc.get("environment") or {}
    return machine_of(env)


def _describe_machines(a: tuple[str, tuple[str, ...]], b: tuple[str, tuple[str, ...]]) -> str:
    only_a, only_b = sorted(set(a[1]) - set(b[1])), sorted(set(b[1]) - set(a[1]))
    flags = (f"; ISA flags only in A: {', '.join(only_a) or 'none'}, only in B: {', '.join(only_b) or 'none'}"
             if only_a or only_b else "")
    return f"A on {a[0]!r}, B on {b[0]!r}{flags}"


def _key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(row.get("artifact")), str(row.get("target")), str(row.get("runtime"))


def _notes(da: Mapping[str, Any], db: Mapping[str, Any]) -> list[str]:
    notes = []
    fa, fb = (da.get("model") or {}).get("fingerprint"), (db.get("model") or {}).get("fingerprint")
    if fa != fb:
        notes.append(f"different model weights (fingerprint {str(fa)[:12]} vs {str(fb)[:12]}): a new model against "
                     "the baseline")
    ia, ib = (da.get("dataset") or {}), (db.get("dataset") or {})
    if (ia.get("name"), ia.get("eval_items")) != (ib.get("name"), ib.get("eval_items")):
        notes.append(f"accuracy was measured on different held-out items ({ia.get('name')}, {ia.get('eval_items')} "
                     f"vs {ib.get('name')}, {ib.get('eval_items')}): its deltas mix model and data")
    return notes


def _recommendation_changes(da: Mapping[str, Any], db: Mapping[str, Any]) -> list[str]:
    recs_b = {(r.get("target"), r.get("runtime")): r.get("artifact") for r in db.get("recommendations") or ()}
    out = []
    for r in da.get("recommendations") or ():
        key = (r.get("target"), r.get("runtime"))
        if key in recs_b and recs_b[key] != r.get("artifact"):
            out.append(f"{key[0]}/{key[1]}: {r.get('artifact') or 'nothing'} -> {recs_b[key] or 'nothing'}")
    return out


def compare_reports(doc_a: Mapping[str, Any], doc_b: Mapping[str, Any], *, fail_on: FailOn | None = None,
                    labels: tuple[str, str] = ("A", "B")) -> Comparison:
    """Compare two report documents (``report.json`` as read by :func:`edgekit.report.load_report`)."""
    rows_a = {_key(r): r for r in doc_a.get("rows") or ()}
    rows_b = {_key(r): r for r in doc_b.get("rows") or ()}
    out: list[RowComparison] = []
    machines_differ = False
    for key, ra in rows_a.items():
        rb = rows_b.get(key)
        if rb is None:
            continue
        ma, mb = ra.get("metrics") or {}, rb.get("metrics") or {}
        differs = _row_machine(ra, doc_a) != _row_machine(rb, doc_b)
        machines_differ = machines_differ or differs
        row = RowComparison(artifact=key[0], target=key[1], runtime=key[2], latency=_latency(ra, rb),
                            accuracy_points=_delta(ma, mb, "accuracy", 100.0), cosine=_delta(ma, mb, "cosine_mean"),
                            top1_points=_delta(ma, mb, "top1_agreement", 100.0), outputs=_output_deltas(ma, mb),
                            machine_differs=differs)
        out.append(RowComparison(**{**row.__dict__, "breaches": _breaches(row, fail_on)}))
    top_a, top_b = machine_of(doc_a.get("environment") or {}), machine_of(doc_b.get("environment") or {})
    warnings = []
    if machines_differ or top_a != top_b:
        warnings.append("WARNING: the two runs were recorded on DIFFERENT MACHINES (" + _describe_machines(top_a, top_b)
                        + "): latency ratios compare the machines as much as the artifacts")
    return Comparison(
        a=labels[0], b=labels[1], rows=tuple(out),
        added=tuple(f"{k[0]} on {k[1]}/{k[2]}" for k in rows_b if k not in rows_a),
        removed=tuple(f"{k[0]} on {k[1]}/{k[2]}" for k in rows_a if k not in rows_b),
        same_machine=not warnings, warnings=tuple(warnings), notes=tuple(_notes(doc_a, doc_b)),
        recommendation_changes=tuple(_recommendation_changes(doc_a, doc_b)), fail_on=fail_on)


def _gate(fail_on: FailOn | str | None) -> FailOn | None:
    return FailOn.parse(fail_on) if isinstance(fail_on, str) else fail_on


def compare_runs(a: Run, b: Run, *, fail_on: FailOn | str | None = None) -> Comparison:
    """Run ``b`` against run ``a`` (each a run folder, its ``report.json``, or a :class:`RunResult`).

    ``fail_on`` is the gate (``"latency=+5%,accuracy=-0.5"`` or a :class:`FailOn`); without it nothing is
    judged. A missing or foreign report, or a malformed gate, raises :class:`~edgekit.errors.ConfigError`."""
    gate = _gate(fail_on)
    doc_a, label_a = _document(a, "RUN_A")
    doc_b, label_b = _document(b, "RUN_B")
    return compare_reports(doc_a, doc_b, fail_on=gate, labels=(label_a, label_b))


@dataclass(frozen=True)
class Baseline:
    """The baseline of a run (``--baseline``), read before any work, and its gate."""

    document: Mapping[str, Any]
    label: str
    fail_on: FailOn | None

    def compare(self, result: RunResult, label: str) -> Comparison:
        """``result`` (run B) against this baseline (run A)."""
        return compare_reports(self.document, to_json_dict(result), fail_on=self.fail_on, labels=(self.label, label))


def read_baseline(baseline: str | os.PathLike[str] | None, fail_on: FailOn | str | None) -> Baseline | None:
    """The run's baseline (None without one), read now: a missing report, or a gate without a baseline, is a
    :class:`ConfigError` before any work (the baseline may be the run's own ``--out``: its previous report)."""
    gate = _gate(fail_on) if fail_on is not None else None
    if baseline is None:
        if gate is not None:
            raise ConfigError("a gate needs a baseline to compare with", where="--fail-on",
                              expected="--baseline RUN_A with it", hint="or compare two runs: edgekit compare A B "
                              "--fail-on ...")
        return None
    path = report_path(baseline, "--baseline")
    return Baseline(document=load_report(path), label=str(baseline), fail_on=gate)
