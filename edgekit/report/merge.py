"""A second run into the same ``--out`` adds to its report instead of replacing it.

``edgekit run --target raspberry-pi-5 --out runs/x`` after ``edgekit run --target local-cpu --out runs/x`` gives
one report with both targets: the rows, recommendations, interleaved decisions and per-layer views of the
targets this run did not measure are carried over from the folder's ``report.json`` (rebuilt as the typed
results they were written from); the targets this run measured replace their earlier rows. Carried over only
when both runs judged the same thing: the same model (source fingerprint), calibration data (hash), held-out
items and accuracy budget; otherwise the earlier report is replaced and the report says why. A carried row
whose artifact file is gone or was rebuilt since (its hash differs) is dropped, with a note; the run names its
per-recipe variants with the earlier targets in view (:func:`edgekit.variants.plan_variants`'s ``also``), so an
earlier target's artifacts are not overwritten by this run's recipe. Rows measured on another machine (CPU
model or ISA flags differ) are kept with a loud note. ``RunOptions.merge_report=False`` (``--replace-report``)
replaces the report as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from edgekit.artifacts import Artifact, content_sha256
from edgekit.bench import result_from_dict
from edgekit.compare import machine_of
from edgekit.errors import EdgekitError
from edgekit.report.model import JSON_NAME, load_report
from edgekit.report.values import jsonable
from edgekit.results import Decision, Finalist, Metrics, OutputMetrics, Recommendation, Row, RunResult, SequenceMetrics
from edgekit.targets import Target, load_target

T = TypeVar("T")


@dataclass(frozen=True)
class Earlier:
    """The folder's report from an earlier run, and the targets in it that this run does not measure."""

    doc: Mapping[str, Any]
    targets: tuple[str, ...]
    folder: Path  # the run folder: its artifacts/ holds the files the carried rows name


def read_earlier(out: Path, this_run: Sequence[str], wanted: bool = True) -> Earlier | None:
    """The earlier report in ``out`` when it has targets this run (target names ``this_run``) does not measure;
    None when there is none, it cannot be read (it is then replaced), or merging is not ``wanted``."""
    path = out / JSON_NAME
    if not wanted or not path.is_file():
        return None
    try:
        doc = load_report(path)
    except EdgekitError:
        return None
    seen = [str(r.get("target")) for r in doc.get("rows", []) if isinstance(r, Mapping)]
    others = tuple(dict.fromkeys(t for t in seen if t not in set(this_run)))
    return Earlier(doc, others, out) if others else None


def earlier_targets(earlier: Earlier | None) -> list[Target]:
    """The earlier report's other targets as definitions (for naming this run's variants); one that no longer
    loads (a target file since moved) is left out."""
    found: list[Target] = []
    for name in earlier.targets if earlier is not None else ():
        try:
            found.append(load_target(name))
        except EdgekitError:
            continue
    return found


def _build(cls: type[T], data: Mapping[str, Any], **overrides: Any) -> T:
    """``cls`` from the JSON of its ``asdict``: known fields only (derived keys dropped), lists back to tuples."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**{**fields, **overrides})


def _output(data: Mapping[str, Any]) -> OutputMetrics:
    return _build(OutputMetrics, data, user=tuple(tuple(u) for u in data.get("user") or ()))


def metrics_from_dict(data: Mapping[str, Any]) -> Metrics:
    """A :class:`Metrics` from its ``to_dict()`` (as ``report.json`` keeps it)."""
    seq = data.get("sequence")
    sequence = None if not seq else _build(SequenceMetrics, seq, end_states=tuple(
        _output(o) for o in seq.get("end_states") or ()))
    return _build(Metrics, data, outputs=tuple(_output(o) for o in data.get("outputs") or ()), sequence=sequence)


def _mismatch(doc: Mapping[str, Any], result: RunResult) -> str | None:
    """Why the earlier report judged something else than this run (None: the same model, data and budget)."""
    was, now = doc.get("provenance") or {}, result.provenance
    checks = (("the model", (was.get("hashes") or {}).get("model"), (now.get("hashes") or {}).get("model")),
              ("the calibration data", (was.get("hashes") or {}).get("calibration"),
               (now.get("hashes") or {}).get("calibration")),
              ("the data set / held-out items", doc.get("dataset"), jsonable(result.dataset)),
              ("the accuracy budget", doc.get("budget"), jsonable(result.budget)))
    differ = [what for what, a, b in checks if a != b]
    return ", ".join(differ) if differ else None


def _current_sha(path: Path) -> str | None:
    try:
        return content_sha256(path)
    except OSError:
        return None


def merge_earlier(result: RunResult, earlier: Earlier | None) -> RunResult:
    """``result`` with the earlier report's targets this run did not measure carried over (see the module
    docstring); ``result`` unchanged, with a note when the earlier report judged something else."""
    if earlier is None:
        return result
    doc, kept = earlier.doc, earlier.targets
    created = doc.get("created", "an unknown time")
    why = _mismatch(doc, result)
    if why is not None:
        return replace(result, notes=(f"the earlier report in this folder ({created}; targets {', '.join(kept)}) was "
                                      f"replaced, not added to: {why} differ from this run's", *result.notes))
    by_name = {str(a.get("name")): a for a in doc.get("artifacts", []) if isinstance(a, Mapping)}
    current = {a.name for a in result.artifacts}
    carried: dict[str, Artifact] = {}
    notes: list[str] = []
    rows: list[Row] = list(result.rows)
    for r in doc.get("rows", []):
        if r.get("target") not in kept:
            continue
        name = str(r.get("artifact"))
        spec = by_name.get(name)
        if spec is None:
            continue
        if name not in carried:
            art = Artifact.from_dict({**spec, "path": str(earlier.folder / "artifacts" / Path(str(spec["path"])).name)})
            if _current_sha(art.path) != art.sha256:
                notes.append(f"rows of {r.get('target')} for {name} from the earlier run dropped: the file is gone or "
                             "was rebuilt since (its hash differs); run those targets again")
                by_name.pop(name)
                continue
            carried[name] = art
        rows.append(Row(carried[name], str(r["target"]), str(r["runtime"]), str(r["status"]),
                        metrics_from_dict(r["metrics"]) if r.get("metrics") else None,
                        result_from_dict(r["bench"]) if r.get("bench") else None, r.get("reason"), r.get("host"),
                        str(r.get("kind", "measurement")),
                        None if r.get("accuracy_from") in (None, "build machine") else r.get("accuracy_from")))
    index = {(row.target, row.artifact.name, row.runtime): i for i, row in enumerate(rows)}
    decisions = [Decision(d["target"], d.get("artifact"), d.get("runtime"), d["reason"], tuple(
        Finalist(index.get((d["target"], f["artifact"], f["runtime"]), -1), f["artifact"], f["runtime"],
                 f["median_ms"], tuple(f["samples_ms"]), f.get("ratio_vs_pick"),
                 tuple(f["interval_95"]) if f.get("interval_95") else None) for f in d.get("finalists", [])),
        int(d.get("rounds", 0)), dict(d.get("noise") or {})) for d in doc.get("decisions", []) if d["target"] in kept]
    recommendations = [Recommendation(r["target"], r["runtime"], r.get("artifact"), r["reason"],
                                      tuple(r.get("rejected") or ())) for r in doc.get("recommendations", [])
                       if r["target"] in kept]
    layers = [layer for layer in doc.get("layers", []) if layer.get("artifact") in carried
              and layer.get("artifact") not in current]
    then, now = machine_of(doc.get("environment") or {}), machine_of(result.environment)
    if then != now:
        notes.append(f"WARNING: the rows of {', '.join(kept)} were measured on another machine ({then[0]}) than this "
                     f"run's ({now[0]}): their speeds are not comparable with this run's")
    earlier_notes = [n for n in doc.get("notes", []) if any(t in n for t in kept) and n not in result.notes]
    head = (f"this report adds {', '.join(sorted({r.target for r in result.rows}))} to the earlier run in this folder "
            f"({created}, command: {' '.join(map(str, (doc.get('provenance') or {}).get('command') or ['?']))}): "
            f"the rows and answers of {', '.join(kept)} come from that run")
    history = [*((doc.get("provenance") or {}).get("earlier_runs") or []),
               {"created": created, "command": (doc.get("provenance") or {}).get("command"), "targets": list(kept)}]
    return replace(
        result, rows=tuple(rows), artifacts=result.artifacts + tuple(a for n, a in carried.items() if n not in current),
        recommendations=result.recommendations + tuple(recommendations),
        decisions=result.decisions + tuple(decisions), layers=result.layers + tuple(layers),
        notes=(head, *notes, *(f"(earlier run) {n}" for n in earlier_notes), *result.notes),
        provenance={**result.provenance, "earlier_runs": history})


__all__ = ["Earlier", "earlier_targets", "merge_earlier", "metrics_from_dict", "read_earlier"]
