"""The versioned JSON report (``report.json``) and writing the report folder.

``report.json`` holds everything needed to redraw the report without re-running anything: the raw
latency samples and warmups of every benchmark (pyperf-style), every artifact's recipe and hash, the
environment, and the recommendations. Its top level is::

    {"schema": "edgekit.report", "version": 1, "created": "<ISO-8601 UTC>",
     "model": {...}, "dataset": {...}, "budget": {...}, "environment": {...},
     "artifacts": [...], "rows": [...], "recommendations": [...], "notes": [...],
     "outcome": {"exit_status", "unmet_targets"}, "provenance": {...}, "baseline": {...} or null}

``outcome`` is the exit status ``edgekit run`` returned (:mod:`edgekit.exit_codes`) and the targets left without
an artifact within the budget; ``provenance`` how the run was made (:mod:`edgekit.provenance`: command line,
edgekit version and git state, every library version, hashes of model, calibration data and artifacts);
``baseline`` the comparison with ``--baseline`` (:class:`edgekit.comparison.Comparison`).

``RunResult.model`` is expected to hold ``name`` and ``source`` (and may hold ``task``);
``RunResult.dataset`` ``name``, ``eval_items`` and ``calibration_items``. Other keys are kept as given.
Non-finite floats (a NaN cosine from a broken artifact) are written as JSON ``NaN``, which Python reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact, atomic_write_json, atomic_write_text
from edgekit.errors import ConfigError
from edgekit.outcome import exit_status, unmet_targets
from edgekit.preflight import REPORT_MARKER
from edgekit.report.fleet import fleet_summary
from edgekit.report.recommend import speedups
from edgekit.report.values import artifact_size, jsonable
from edgekit.results import Decision, Recommendation, Row, RunResult

SCHEMA_NAME = "edgekit.report"
SCHEMA_VERSION = 1
JSON_NAME = "report.json"
MARKDOWN_NAME = "report.md"


def artifact_dict(artifact: Artifact) -> dict[str, Any]:
    """``Artifact.to_dict()`` plus its ``name``; ``size_bytes`` is None when the file is gone."""
    try:
        d = artifact.to_dict()
    except OSError:
        d = {
            "path": str(artifact.path),
            "format": artifact.format.value,
            "precision": artifact.precision.value,
            "io": artifact.io.to_dict(),
            "sha256": artifact.sha256,
            "recipe": dict(artifact.recipe),
            "recipe_key": artifact.key,
            "notes": list(artifact.notes),
            "layout": artifact.layout,
            "size_bytes": None,
        }
    return {"name": artifact.name, **jsonable(d)}


def row_dict(row: Row, speedup: float | None) -> dict[str, Any]:
    """One report row: artifact identity, where it ran, its metrics and its full benchmark (raw samples)."""
    return {
        "artifact": row.artifact.name,
        "artifact_sha256": row.artifact.sha256,
        "format": row.artifact.format.value,
        "precision": row.artifact.precision.value,
        "size_bytes": artifact_size(row.artifact),
        "target": row.target,
        "runtime": row.runtime,
        "status": row.status,
        "kind": row.kind,
        "reason": row.reason,
        "host": row.host,
        "accuracy_from": row.accuracy_from or "build machine",
        "metrics": jsonable(row.metrics.to_dict()) if row.metrics is not None else None,
        "bench": jsonable(row.bench.to_dict()) if row.bench is not None else None,
        "speedup_vs_fp32": speedup,
    }


def recommendation_dict(rec: Recommendation) -> dict[str, Any]:
    return {"target": rec.target, "runtime": rec.runtime, "artifact": rec.artifact, "reason": rec.reason,
            "rejected": list(rec.rejected)}


def decision_dict(d: Decision) -> dict[str, Any]:
    """One target's answer and its interleaved finalists (raw samples kept)."""
    return {"target": d.target, "artifact": d.artifact, "runtime": d.runtime, "reason": d.reason, "rounds": d.rounds,
            "noise": d.noise,
            "finalists": [{"artifact": f.artifact, "runtime": f.runtime, "median_ms": f.median_ms,
                           "ratio_vs_pick": f.ratio, "interval_95": list(f.interval) if f.interval else None,
                           "samples_ms": list(f.samples_ms)} for f in d.finalists]}


def to_json_dict(result: RunResult, *, created: datetime | None = None) -> dict[str, Any]:
    """The versioned report document for ``result`` (plain JSON types only)."""
    when = (created or datetime.now(UTC)).astimezone(UTC)
    speed = speedups(result.rows)
    return {
        "schema": SCHEMA_NAME,
        "version": SCHEMA_VERSION,
        "created": when.isoformat(timespec="seconds"),
        "model": jsonable(result.model),
        "dataset": jsonable(result.dataset),
        "budget": jsonable(result.budget),
        "environment": jsonable(result.environment),
        "artifacts": [artifact_dict(a) for a in result.artifacts],
        "rows": [row_dict(r, speed[i]) for i, r in enumerate(result.rows)],
        "recommendations": [recommendation_dict(r) for r in result.recommendations],
        "decisions": [decision_dict(d) for d in result.decisions],
        "fleets": fleet_summary(result.rows),
        "layers": list(result.layers),
        "notes": list(result.notes),
        "cross_runtime": [jsonable({**dataclasses.asdict(c), "metrics": c.metrics.to_dict()})
                          for c in result.cross_runtime],
        "outcome": {"exit_status": exit_status(result), "unmet_targets": list(unmet_targets(result))},
        "provenance": jsonable(result.provenance),
        "baseline": jsonable(result.baseline.to_dict()) if result.baseline is not None else None,
    }


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``report.json`` and check its schema and version; anything else raises :class:`ConfigError`."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("cannot read the report", where=where, got=exc.strerror or str(exc),
                          hint="pass the report.json an edgekit run wrote") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError("the report is not valid JSON", where=where, got=str(exc),
                          hint="the file is damaged or not an edgekit report; re-run to write it again",
                          ) from exc
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_NAME:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError("not an edgekit report", where=f"{where}:schema", expected=repr(SCHEMA_NAME),
                          got=got)
    version = data.get("version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ConfigError("unknown report version", where=f"{where}:version", expected=str(SCHEMA_VERSION),
                          got=version, hint="it was written by another edgekit version; read it with that "
                          "version, or re-run to write a current report")
    return data


def write_report(result: RunResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json``, ``report.md`` and ``report.html`` (:mod:`edgekit.report.html`) into ``out_dir``
    (created if needed), each atomically.

    Returns the paths of the JSON and the Markdown (the HTML is ``report.html`` beside them).
    """
    from edgekit.report.html import HTML_NAME, render_html
    from edgekit.report.markdown import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = to_json_dict(result)
    # all rendered before any is written; the first line marks the file as edgekit's (a report.md without it
    # is the user's, and a run refuses to overwrite it: edgekit.preflight.check_report_owner)
    marker = f"{REPORT_MARKER}: written by edgekit; the next run in this folder updates it -->\n"
    text = marker + render_markdown(result)
    page = render_html(result, marker)
    json_path, md_path = out / JSON_NAME, out / MARKDOWN_NAME
    atomic_write_json(json_path, doc)
    atomic_write_text(md_path, text)
    atomic_write_text(out / HTML_NAME, page)
    return json_path, md_path
