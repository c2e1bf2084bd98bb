"""The human-readable report (``report.md``).

Every number shown comes from the :class:`~edgekit.results.RunResult`; a row that was not measured
shows its status and reason and a dash in every number cell, never a made-up value.

Every piece of text that comes from outside this module (model, file and host names, paths, notes, reasons,
a board's environment) goes through :func:`text` (or :func:`cell`, :func:`paragraph`): one line, no raw HTML,
no code span, no table-cell break, no block marker at a line start. So whatever those strings hold (newlines,
``|``, backticks, ``<script>``), the report keeps its structure: one table row stays one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgekit.outcome import exit_status, unmet_targets
from edgekit.report.fleet import fleet_summary
from edgekit.report.recommend import MEASURED, speedups
from edgekit.report.values import artifact_size, jsonable
from edgekit.results import Row, RunResult

DASH = "—"

_TABLE_HEAD = ("Artifact", "Format", "Precision", "Size (MiB)", "Target", "Runtime", "Accuracy (Δ pt)",
               "Top-1 agr.", "Cosine mean / min", "Max-abs", "p50 ms", "p90 ms", "vs fp32", "Peak MB",
               "Status")
_LATENCY_HEAD = ("Artifact", "Target", "Runtime", "Threads", "Ran on", "n", "Warmup", "Load ms",
                 "First ms", "p50 ms", "p90 ms", "p99 ms", "Mean ± sd ms", "Min ms")


#: Line breaks of any kind (what Markdown renderers or ``str.splitlines`` break on), other control characters
#: and the bidirectional-override characters that can make text read differently from what it is.
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
_INLINE = str.maketrans({"\\": "\\\\", "`": "\\`", "|": "\\|", "<": "&lt;", ">": "&gt;"})


def text(value: Any) -> str:
    """``value`` as inert inline Markdown: line breaks and control characters become one space; backslashes,
    backticks and ``|`` are escaped; ``<``/``>`` become entities (never raw HTML)."""
    return _BREAKS.sub(" ", str(value)).translate(_INLINE)


def cell(value: Any) -> str:
    """``value`` made safe for one Markdown table cell (:func:`text`)."""
    return text(value)


def paragraph(value: Any) -> str:
    """:func:`text` for what starts a line or a list item: also no leading spaces (a code block) nor a leading
    block marker (``#`` heading, ``-``/``+``/``*`` list item or rule, ``1.`` list, ``=`` underline, ``~~~``
    fence)."""
    line = text(value).lstrip()
    return re.sub(r"^(\d{1,9})([.)])(?=\s|$)", r"\1\\\2", re.sub(r"^([#+*=~_-])", r"\\\1", line))


def _table(head: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in body]
    return lines


def _pct(x: float | None) -> str:
    return DASH if x is None else f"{100.0 * x:.1f}%"


def _ms(x: float | None) -> str:
    return DASH if x is None else f"{x:.2f}"


def _value(v: Any) -> str:
    v = jsonable(v)
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) if v else DASH
    if isinstance(v, dict):
        return ", ".join(f"{k}={_value(x)}" for k, x in v.items()) if v else DASH
    if isinstance(v, float):
        return f"{v:g}"
    return DASH if v is None or v == "" else str(v)


def _bullets(d: Mapping[str, Any], skip: Iterable[str] = ()) -> list[str]:
    """One bullet per key; nested mappings become indented bullets."""
    lines: list[str] = []
    skipped = set(skip)
    for k, v in d.items():
        if k in skipped:
            continue
        if isinstance(v, Mapping) and v:
            lines.append(f"- {paragraph(k)}:")
            lines += ["  " + line for line in _bullets(v)]
        else:
            lines.append(f"- {paragraph(k)}: {text(_value(v))}")
    return lines


def _accuracy(row: Row) -> str:
    m = row.metrics
    if m is None or m.accuracy is None:
        return DASH
    drop = m.accuracy_drop_points
    return _pct(m.accuracy) + (f" ({0.0 - drop:+.1f})" if drop is not None else "")


def _size_mib(row: Row) -> str:
    size = artifact_size(row.artifact)
    if size is None:
        return DASH
    return f"{size / 2**20:.2f}" if size >= 0.01 * 2**20 else "<0.01"


def _status(row: Row) -> str:
    text = row.status + (f" on {row.host}" if row.host else "")
    text += f" (accuracy on {row.accuracy_from})" if row.accuracy_from else ""
    if row.bench is not None and row.bench.noisy:
        text += f" ⚠ timed under noise: {row.bench.noise.get('why')}"
    return text + (f": {row.reason}" if row.reason else "")


def _results_row(row: Row, speedup: float | None) -> list[str]:
    m, b = row.metrics, row.bench
    approx = "≈" if row.status == "estimated" else ""
    return [
        row.artifact.name, row.artifact.format.value, row.artifact.precision.value, _size_mib(row),
        row.target, row.runtime, _accuracy(row),
        _pct(m.top1_agreement) if m is not None else DASH,
        f"{m.cosine_mean:.4f} / {m.cosine_min:.4f}" if m is not None and m.cosine_mean is not None
        and m.cosine_min is not None else DASH,
        f"{m.max_abs:.3g}" if m is not None else DASH,
        approx + _ms(b.stats.p50_ms) if b is not None else DASH,
        approx + _ms(b.stats.p90_ms) if b is not None else DASH,
        f"{speedup:.2f}x" if speedup is not None else DASH,
        f"{b.peak_rss_mb:.0f}" if b is not None and b.peak_rss_mb is not None else DASH,
        _status(row),
    ]


def _ran_on(info: Mapping[str, Any]) -> str:
    for key in ("execution_devices", "providers", "device", "delegates"):
        if info.get(key):
            return _value(info[key])
    return DASH


def _latency_row(row: Row) -> list[str]:
    b = row.bench
    assert b is not None
    s = b.stats
    return [row.artifact.name, row.target, row.runtime, _value(b.threads), _ran_on(b.session_info),
            str(s.n), str(len(b.warmup_ms)), _ms(b.load_ms), _ms(b.first_inference_ms), _ms(s.p50_ms),
            _ms(s.p90_ms), _ms(s.p99_ms), f"{s.mean_ms:.2f} ± {s.stdev_ms:.2f}", _ms(s.min_ms)]


def _title(result: RunResult) -> list[str]:
    name = result.model.get("name") or "model"
    lines = [f"# edgekit report: {text(name)}", ""]
    if result.model.get("source"):
        lines += [f"Source: {text(result.model['source'])}", ""]
    return lines + _bullets(result.model, skip=("name", "source"))


def _dataset(result: RunResult) -> list[str]:
    d = result.dataset
    n_eval = d.get("eval_items")
    if n_eval is None:
        ns = {r.metrics.n for r in result.rows if r.metrics is not None}
        n_eval = ns.pop() if len(ns) == 1 else None
    lines = ["## Dataset", "", f"- name: {text(_value(d.get('name')))}",
             f"- evaluation items (held out): {text(_value(n_eval))}",
             f"- calibration items: {text(_value(d.get('calibration_items')))}"]
    return lines + _bullets(d, skip=("name", "eval_items", "calibration_items"))


def _budget(result: RunResult) -> list[str]:
    b = result.budget
    rule = {"both": f"its mean output cosine similarity with the source is at least {b.min_cosine:.10g} and, where "
                    f"labels exist, it loses at most {b.max_drop_points:g} accuracy points vs the source",
            "accuracy": f"it loses at most {b.max_drop_points:g} accuracy points vs the source where labels exist "
                        f"(elsewhere: its mean output cosine with the source is at least {b.min_cosine:.10g})",
            "cosine": f"its mean output cosine similarity with the source is at least {b.min_cosine:.10g} (accuracy "
                      "drops are shown, not judged)"}[b.governs]
    return ["## Accuracy budget", "",
            f"An artifact may be recommended when {rule} (`--budget-rule {b.governs}`). A quantized artifact "
            "slower than the fp32 artifact of the same format on the same target is never recommended. Static "
            "int8 searches aim inside this budget on the tuning items of the calibration split (see each "
            "artifact's notes for the split). Outputs a cosine does not fit are judged by their own metric "
            f"whatever the rule: a binary score may flip at most {100.0 * b.max_flip_rate:g}% of its decisions, a "
            f"regression output keep a relative error of at most {b.max_relative_error:g}, a dense map's "
            f"thresholded IoU must reach {b.min_iou:g}, a detection output find at least "
            f"{100.0 * b.min_detection_match:g}% of the source's detections (recall) with as many of its own "
            f"matching them (precision), and a sequence's decoded text keep a character error rate of at most "
            f"{100.0 * b.max_sequence_error:g}%."]


def _build_kernels(result: RunResult) -> str:
    """'this machine's kernels (CPU, machine)': whose kernels computed the accuracy of local and estimated rows."""
    env = result.environment or {}
    what = ", ".join(str(v) for v in (env.get("cpu_model"), env.get("machine")) if v)
    return "this machine's kernels" + (f" ({what})" if what else "")


def _results(result: RunResult) -> list[str]:
    speed = speedups(result.rows)
    lines = ["## Results", "",
             "One row per artifact × target × runtime. Accuracy is on the held-out items with the change "
             "vs the source in points; agreement, cosine and max-abs compare outputs with the source; "
             "`vs fp32` is the p50 speed-up over the fp32 artifact of the same format on the same target "
             "and runtime. Compiler estimates are listed apart, under Compiler estimates. "
             f"Accuracy comes from {_build_kernels(result)} unless a row's status says whose kernels "
             "computed it (a board's: \"accuracy on ...\").", ""]
    shown = [(i, r) for i, r in enumerate(result.rows) if not r.is_estimate]
    if not shown:
        return [*lines, "No artifact was validated or benchmarked."]
    return lines + _table(_TABLE_HEAD, (_results_row(r, speed[i]) for i, r in shown))


def _outputs(result: RunResult) -> list[str]:
    """Every output of every validated artifact, with its kind and the metrics that fit it."""
    seen: dict[str, Row] = {}
    for r in result.rows:
        if r.metrics is not None and r.metrics.outputs and r.artifact.name not in seen:
            seen[r.artifact.name] = r
    if not seen:
        return []
    lines = ["## Per-output agreement", "",
             "Every output of each artifact compared with the source's on the held-out items, with the metrics "
             "that fit its kind: classification (top-k agreement, accuracy with labels), embedding (cosine), "
             "binary score (decisions flipped at the threshold), dense map (IoU of the thresholded maps, "
             "per-element error), regression (relative error), detection (the source's boxes above its operating "
             "point matched by IoU >= 0.5: recall, precision, mean IoU of the matches), sequence (the argmax per "
             "step decoded, repeats and the blank dropped: identical sequences, character error rate), and the "
             "values of your own `--metric` functions. A metric that does not fit a kind (the cosine of one "
             "score, an argmax over a map) is not computed.", ""]
    body = [[name, o.name, o.kind, "×".join(map(str, o.shape)) or "scalar", o.summary()]
            for name, r in seen.items() if r.metrics is not None for o in r.metrics.outputs]
    body += [[name, f"{o.name} (sequence ends)", o.kind, "×".join(map(str, o.shape)) or "scalar", o.summary()]
             for name, r in seen.items() if r.metrics and r.metrics.sequence for o in r.metrics.sequence.end_states]
    stateful = [f"- {text(name)}: {text(r.metrics.sequence.summary())}" for name, r in seen.items()
                if r.metrics is not None and r.metrics.sequence is not None]
    if stateful:  # a streaming model: each artifact ran the held-out sequences in order, carrying its own state
        lines += ["Stateful model: every step of each held-out sequence compared, each artifact feeding back its "
                  "own state outputs:", "", *stateful, ""]
    return lines + _table(("Artifact", "Output", "Kind", "Item shape", "Metrics"), body)


_ESTIMATE_HEAD = ("Artifact", "Target", "Estimator", "Accuracy (Δ pt)", "≈ Latency ms", "≈ Inf/s", "Memory KiB",
                  "Ops accel. / CPU", "Fits", "Status")


def _estimate_row(row: Row) -> list[str]:
    """One estimate, from the keys every estimator's rows share (see :mod:`edgekit.estimators.base`)."""
    info = row.bench.session_info if row.bench is not None else {}

    def num(key: str, fmt: str) -> str:
        v = info.get(key)
        return DASH if v is None else format(v, fmt)

    memory = info.get("memory_kib") or {}
    mem = ", ".join(f"{name} {kib:.1f}" for name, kib in memory.items()) if memory else DASH
    budgets = info.get("budgets") or []
    fits = DASH if "fits" not in info else ("yes" if info["fits"] else "**NO**") + (
        f" ({', '.join(budgets)})" if budgets else "")
    ops = DASH if "cpu_ops" not in info else f"{info.get('accelerator_ops', 0)} / {info['cpu_ops']}" + (
        " **(CPU fallback)**" if info["cpu_ops"] else "")
    latency = num("latency_ms", ".2f") if "latency_ms" in info else (
        _ms(row.bench.stats.p50_ms) if row.bench is not None else DASH)
    return [row.artifact.name, row.target, row.runtime, _accuracy(row), latency,
            num("inferences_per_second", ".1f"), mem, ops, fits, _status(row)]


def _estimates(result: RunResult) -> list[str]:
    """Compiler estimates (e.g. Arm Ethos-U through Vela), kept apart from measured rows: every row of kind
    ``estimate``, also those that failed or were not available."""
    rows = [r for r in result.rows if r.is_estimate]
    if not rows:
        return []
    lines = ["## Compiler estimates (not measured)", "",
             "Nothing ran on these targets: the NPU compiler's performance model estimated latency and memory for "
             "the artifact (accuracy is that of the same artifact on the CPU). Any op the compiler placed on the "
             "CPU is flagged; Fits compares the memory use with the target's budgets. Every number the estimator "
             "gave (cycles ...) is in `report.json`.", ""]
    return lines + _table(_ESTIMATE_HEAD, (_estimate_row(r) for r in rows))


def _decisions(result: RunResult) -> list[str]:
    """One answer per target measured here, from its finalists re-measured interleaved (edgekit.finalists)."""
    if not result.decisions:
        return []
    lines = ["## Decision per target", "",
             "For each target measured on this machine, the candidates within the budget (the fastest few by their "
             "own rows) were loaded together and timed again in one process, in shuffled rounds on the same input "
             "(each candidate's turn: 3 calls, the last timed); "
             "ratios are per-round medians vs the pick with a bootstrap 95% interval (1.10 = 10% slower than the "
             "pick). A more accurate candidate whose interval reaches within 2% of 1.0 is no measurable difference "
             "in speed and is preferred.", ""]
    for d in result.decisions:
        pick = f"**{text(d.artifact)}** on {text(d.runtime)}" if d.artifact else "**nothing**"
        lines += [f"### {text(d.target)}: {pick}", "", paragraph(d.reason), ""]
        if d.finalists:
            lines += _table(["finalist", "runtime", f"median ms (n={d.rounds})", "vs pick [95%]"], (
                [text(f.artifact), text(f.runtime), f"{f.median_ms:.3f}",
                 "the pick" if f.ratio is None or f.interval is None
                 else f"{f.ratio:.3f} [{f.interval[0]:.3f}, {f.interval[1]:.3f}]"] for f in d.finalists))
            lines.append("")
    return lines


def _layers(result: RunResult) -> list[str]:
    """Where each int8 artifact's error enters: the layers with the largest cosine drop vs fp32
    (:mod:`edgekit.layer_views`)."""
    if not result.layers:
        return []
    lines = ["## Per-layer error (int8 vs fp32)", "",
             "Each int8 artifact's intermediate tensors compared with its fp32 sibling's on a few calibration items "
             "(cosine of each tensor; drop = the cosine of the layer's inputs minus its own: where the error "
             "enters). Every layer is in `report.json` (`layers`).", ""]
    for rep in result.layers:
        by_name = {la["tensor"]: la for la in rep.get("layers", [])}
        lines.append(f"### {text(rep['artifact'])}: {len(by_name)} layers on {rep.get('items', 0)} items")
        if rep.get("note"):
            lines += ["", paragraph(str(rep["note"]))]
        jumps = [by_name[t] for t in rep.get("jumps", []) if t in by_name]
        if jumps:
            lines += ["", *_table(["layer (tensor)", "op", "cosine", "drop", "max-abs", "kept float"], (
                [text(la["tensor"]), text(la["op_type"]), f"{la['cosine']:.5f}", f"{la['drop']:.5f}",
                 f"{la['max_abs']:.3g}", "yes" if la["kept_float"] else "no"] for la in jumps))]
        lines.append("")
    return lines


def _recommendations(result: RunResult) -> list[str]:
    lines = ["## Recommendation", ""]
    if not result.recommendations:
        lines += ["No target was measured, so nothing is recommended.", ""]
    for rec in result.recommendations:
        pick = f"**{text(rec.artifact)}**" if rec.artifact else "**nothing**"
        lines += [f"### {text(rec.target)} ({text(rec.runtime)}): {pick}", "", paragraph(rec.reason), ""]
        if rec.rejected:
            lines += ["Not chosen:", *(f"- {paragraph(r)}" for r in rec.rejected), ""]
    measured = {(r.target, r.runtime) for r in result.rows if r.status in MEASURED}
    unmeasured = sorted({(r.target, r.runtime) for r in result.rows} - measured)
    lines += [f"- {paragraph(t)} ({text(rt)}): nothing was measured there, so no recommendation."
              for t, rt in unmeasured]
    unmet = unmet_targets(result)  # edgekit.outcome: the rule behind exit status 3
    if unmet:
        lines += ["", f"**Targets without an artifact within the budget (exit status {exit_status(result)}):**",
                  *(f"- {paragraph(u)}" for u in unmet)]
    return lines


def _baseline(result: RunResult) -> list[str]:
    """This run (B) against ``--baseline`` (A): edgekit.compare's table, added / removed rows and the verdict."""
    c = result.baseline
    if c is None:
        return []
    head, body = c.table()
    return ["## Against baseline", "", f"A (baseline): {text(c.a)}; B: this run ({text(c.b)}). Latency: B/A of the "
            "p50 with a 95% bootstrap interval over the raw samples (it covers the sampling within each run, not the "
            "drift between the two sessions); accuracy deltas B - A.", "",
            *(f"**{paragraph(w)}**\n" for w in c.warnings), *_table(head, body), "",
            *(f"- {paragraph(x)}" for x in c.summary_lines())]


def _cross_runtime(result: RunResult) -> list[str]:
    """How far runtimes disagree on the same fp32 artifact (e.g. ONNX Runtime vs OpenVINO on one .onnx)."""
    if not result.cross_runtime:
        return []
    lines = ["## Cross-runtime agreement", "",
             "The same fp32 artifact run by two runtimes on the held-out items; the second runtime's outputs "
             "compared with the first's. Beyond the fp32 export tolerance is flagged.", ""]
    body = []
    for c in result.cross_runtime:
        m = c.metrics
        verdict = "within tolerance" if c.within_tolerance else "**DISAGREE beyond tolerance**"
        body.append([c.artifact, c.reference_runtime, c.other_runtime, str(m.n), f"{m.max_abs:.3g}",
                     f"{c.tolerance['max_abs']:.3g}", f"{m.cosine_min:.6f}" if m.cosine_min is not None else DASH,
                     _pct(m.top1_agreement), verdict])
    return lines + _table(["Artifact", "Reference", "Other", "n", "Max-abs", "Limit", "Min cosine",
                           "Top-1 agr.", "Verdict"], body)


def run_notes(result: RunResult) -> list[str]:
    """The report's notes as plain text (each report format escapes them its own way): the run's, each artifact's,
    and a line per benchmark that ran somewhere else than requested (a provider / device fallback)."""
    notes = list(result.notes)
    notes += [f"{a.name}: {n}" for a in result.artifacts for n in a.notes]
    for r in result.rows:
        info = r.bench.session_info if r.bench is not None else {}
        if info.get("fallback"):
            notes.append(f"{r.artifact.name} on {r.target}/{r.runtime}: requested {_value(info['fallback'])} "
                         f"but ran on {_ran_on(info)}")
    return notes


def _notes(result: RunResult) -> list[str]:
    notes = run_notes(result)
    if not notes:
        return []
    return ["## Notes", "", *(f"- {paragraph(n)}" for n in notes)]


def _environment(result: RunResult) -> list[str]:
    """The run's environment, then one per remote host (or per target when the run recorded none)."""
    lines = ["## Environment", ""]
    lines += _bullets(result.environment) if result.environment else ["Not recorded for the run."]
    shown: set[tuple[str, str | None]] = set()
    for r in result.rows:
        env = r.bench.environment if r.bench is not None else {}
        key = (r.target, r.host)
        if not env or key in shown or (r.host is None and result.environment):
            continue
        shown.add(key)
        where = r.target + (f" ({r.host})" if r.host else "")
        lines += ["", f"### Environment on {text(where)}", "", *_bullets(env)]
    return lines


def _latency(result: RunResult) -> list[str]:
    timed = [r for r in result.rows if r.bench is not None and r.status in MEASURED]
    lines = ["## How latency was measured", "",
             "Each artifact was loaded (Load), run once (First), run for the warmup iterations, then timed "
             "for n steady-state single inferences; p50/p90/p99 are percentiles of those n samples. The raw "
             "samples and warmups are kept in `report.json`.", ""]
    if not timed:
        return [*lines, "No artifact was benchmarked."]
    return lines + _table(_LATENCY_HEAD, (_latency_row(r) for r in timed))


def _fleets(result: RunResult) -> list[str]:
    """Per board target measured on several boards: each artifact's p50 across them (edgekit.report.fleet)."""
    fleets = fleet_summary(result.rows)
    if not fleets:
        return []
    return ["## Across boards", "", "A board target measured on several boards (a fleet): the median of the boards' "
            "p50s, the fastest and slowest board and the spread ((slowest - fastest) / median); every board's own row "
            "is in the results.", "", *_table(["Target", "Artifact", "Runtime", "Boards (measured)", "Median p50 ms",
                                               "Fastest", "Slowest", "Spread", "Failed"], (
                [text(f["target"]), text(f["artifact"]), text(f["runtime"]), f"{f['boards']} ({f['measured']})",
                 _ms(f["median_p50_ms"]), f"{text(f['fastest'][0])} {_ms(f['fastest'][1])}",
                 f"{text(f['slowest'][0])} {_ms(f['slowest'][1])}", _pct(f["spread"]),
                 text(", ".join(f["failed"])) or "-"] for f in fleets))]


def render_markdown(result: RunResult) -> str:
    """The whole Markdown report for ``result``."""
    sections = [_title(result), _dataset(result), _budget(result), _results(result), _outputs(result),
                _estimates(result), _fleets(result), _decisions(result), _recommendations(result), _baseline(result),
                _layers(result), _cross_runtime(result), _notes(result), _environment(result), _latency(result)]
    return "\n\n".join("\n".join(s).strip("\n") for s in sections if s) + "\n"
