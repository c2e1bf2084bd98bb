"""The HTML report (``report.html``): the Markdown report's answers as pictures, in one self-contained file.

Per target: a latency-vs-accuracy Pareto chart (each artifact x runtime a point; the Pareto front drawn; the
recommended artifact starred; points over the accuracy budget grey), the latency distributions of the raw samples
(box plot and strip per artifact x runtime), and size and peak-memory bars. Then the results, per-output agreement,
the per-layer error view (where measured), notes and environment. Inline CSS and inline SVG only: no script, no
network, no external font (a Content-Security-Policy says so to the browser too).

Every string from outside this module (model, file, host names, notes, reasons) goes through
:func:`~edgekit.report.svg.esc`, so whatever it holds (``<script>``, quotes, newlines) stays text and the document
keeps its structure.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

import edgekit.report.svg as svg
from edgekit.report.markdown import run_notes
from edgekit.report.recommend import MEASURED, budget_failures, speedups
from edgekit.report.svg import esc
from edgekit.report.values import artifact_size, jsonable
from edgekit.results import AccuracyBudget, Metrics, Row, RunResult

HTML_NAME = "report.html"

#: Fill colours (also what the browser test looks for in the screenshot).
PRECISION_COLOURS = {"fp32": "#1f77b4", "fp16": "#ff7f0e", "int8": "#2ca02c", "int8-dynamic": "#9467bd",
                     "int8-weights": "#8c564b", "bf16": "#e377c2"}
OTHER_COLOUR = "#e377c2"
OVER_BUDGET = "#b4b4b4"
FRONT = "#d62728"
PICK = "#f0b400"
SIZE_BAR = "#17becf"
MEMORY_BAR = "#bcbd22"
STRIP = "#333333"
DASH = "—"
WIDTH = 760

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd}h3{margin-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:12px 0 20px}figcaption{font-size:13px;color:#555;max-width:760px}
.pick{font-weight:600}.muted{color:#666}.notmeasured{border:1px dashed #999;padding:8px 12px;background:#fafafa}
pre{background:#f6f6f6;padding:8px;overflow:auto;font-size:12px;max-height:400px}
svg.chart{display:block;background:#fff}
"""


def _colour(row: Row) -> str:
    return PRECISION_COLOURS.get(row.artifact.precision.value, OTHER_COLOUR)


def _p50(row: Row) -> float | None:
    return row.bench.stats.p50_ms if row.bench is not None else None


@dataclass(frozen=True)
class _Metric:
    """What a Pareto chart's y axis shows (higher is better) and where the budget puts its floor."""

    label: str
    value: Callable[[Metrics], float | None]
    floor: Callable[[AccuracyBudget, Metrics], float | None]


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


_ACCURACY = _Metric("accuracy on held-out items (%)", lambda m: _pct(m.accuracy), lambda b, m: None
                    if m.source_accuracy is None else max(0.0, 100.0 * m.source_accuracy - b.max_drop_points))
_COSINE = _Metric("mean cosine with the source", lambda m: m.cosine_mean, lambda b, m: b.min_cosine)
_OTHERS = (
    _Metric("decisions agreeing with the source (%)", lambda m: None if m.flip_rate is None else
            100.0 * (1.0 - m.flip_rate), lambda b, m: 100.0 * (1.0 - b.max_flip_rate)),
    _Metric("detections matched (%)", lambda m: _pct(m.detection_match), lambda b, m: 100.0 * b.min_detection_match),
    _Metric("dense-map IoU", lambda m: m.iou, lambda b, m: b.min_iou),
    _Metric("1 - relative error", lambda m: None if m.relative_error is None else 1.0 - m.relative_error,
            lambda b, m: 1.0 - b.max_relative_error),
    _Metric("sequence characters right (%)", lambda m: None if m.sequence_error is None else
            100.0 * (1.0 - m.sequence_error), lambda b, m: 100.0 * (1.0 - b.max_sequence_error)),
)


def _metric(rows: Sequence[Row], budget: AccuracyBudget) -> _Metric | None:
    """The task metric where labels exist (the cosine first under ``--budget-rule cosine``), else the first metric
    that most rows have."""
    order = (_COSINE, _ACCURACY) if budget.governs == "cosine" else (_ACCURACY, _COSINE)
    have = [(sum(r.metrics is not None and m.value(r.metrics) is not None for r in rows), m)
            for m in (*order, *_OTHERS)]
    best = max(n for n, _ in have) if have else 0
    return next((m for n, m in have if n == best), None) if best else None


def _pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both latency (lower) and metric (higher), by latency."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def _label(row: Row, runtimes: int) -> str:
    return row.artifact.name + (f" · {row.runtime}" if runtimes > 1 else "")


def _pareto(result: RunResult, target: str, rows: Sequence[Row]) -> str:
    """Latency (p50) against the task metric, one point per artifact x runtime."""
    metric = _metric(rows, result.budget)
    runtimes = len({r.runtime for r in rows})
    picks = {(rec.runtime, rec.artifact) for rec in result.recommendations if rec.target == target}
    plotted = [(r, x, y) for r in rows if r.metrics is not None and metric is not None and (x := _p50(r)) is not None
               and (y := metric.value(r.metrics)) is not None and math.isfinite(x) and math.isfinite(y)]
    left, right, top, bottom, height = 70, WIDTH - 20, 16, 300, 350
    if not plotted or metric is None or plotted[0][0].metrics is None:
        return svg.svg("pareto", WIDTH, 60, f"{target}: latency vs accuracy", [
            svg.text(10, 30, "no artifact here has both a latency and an accuracy metric to plot")])
    floor = metric.floor(result.budget, plotted[0][0].metrics)
    ys = [y for _, _, y in plotted] + ([floor] if floor is not None else [])
    xs = svg.Scale.fit([x for _, x, _ in plotted], left, right, pad=0.1)
    ys_scale = svg.Scale.fit(ys, bottom, top, pad=0.12, log_ratio=float("inf"))
    body = [*svg.x_axis(xs, bottom, top, "p50 latency (ms" + (", log scale)" if xs.log else ")")),
            *svg.y_axis(ys_scale, left, right, metric.label)]
    if floor is not None:
        fy = ys_scale(floor)
        body += [svg.line(left, fy, right, fy, OVER_BUDGET, 1.5, ' stroke-dasharray="6 4" class="budget"'),
                 svg.text(right - 4, fy - 4, "budget", anchor="end", fill="#777")]
    front = _pareto_front([(x, y) for _, x, y in plotted])
    stairs = [(xs(front[0][0]), ys_scale(front[0][1]))]
    for (_, y0), (x1, y1) in itertools.pairwise(front):
        stairs += [(xs(x1), ys_scale(y0)), (xs(x1), ys_scale(y1))]
    body.append(svg.polyline(stairs, FRONT, 2.0, ' class="front"'))
    body += [svg.circle(xs(x), ys_scale(y), 9, "none", f' stroke="{FRONT}" stroke-width="2"') for x, y in front]
    ordered = sorted(plotted, key=lambda p: (p[1], -p[2]))
    labels = [_label(r, runtimes) + (" (recommended)" if (r.runtime, r.artifact.name) in picks else "")
              for r, _, _ in ordered]
    spots = svg.place_labels([(xs(x), ys_scale(y), label) for (_, x, y), label in zip(ordered, labels, strict=True)],
                             left, right, top, bottom)
    for (r, x, y), (tx, ty, anchor, label) in zip(ordered, spots, strict=True):
        over = budget_failures(r, result.budget)
        picked = (r.runtime, r.artifact.name) in picks
        px, py = xs(x), ys_scale(y)
        cls = "point" + (" over" if over else "") + (" recommended" if picked else "")
        tip = f"{_label(r, 2)}: p50 {x:.4g} ms, {metric.label} {y:.5g}" + "".join(f"; {o}" for o in over)
        body += [f'<g class="{cls}" data-artifact="{esc(r.artifact.name)}" data-runtime="{esc(r.runtime)}">'
                 f"<title>{esc(tip)}</title>",
                 svg.circle(px, py, 6, OVER_BUDGET if over else _colour(r), ' stroke="#fff" stroke-width="1.5"'),
                 svg.star(px, py - 14, 8, PICK) if picked else "",
                 svg.text(tx, ty, label, anchor=anchor, fill="#999" if over else svg.AXIS,
                          extra=' paint-order="stroke" stroke="#fff" stroke-width="3"'), "</g>"]
    shown = dict.fromkeys(r.artifact.precision.value for r, _, _ in plotted)
    legend = [(FRONT, "Pareto front"), (PICK, "recommended"), (OVER_BUDGET, "over budget"),
              *((PRECISION_COLOURS.get(p, OTHER_COLOUR), p) for p in shown)]
    for j, (colour, what) in enumerate(legend):
        body += [svg.rect(left + 10 + 110 * j, height - 14, 12, 10, colour),
                 svg.text(left + 26 + 110 * j, height - 5, what)]
    return svg.svg("pareto", WIDTH, height, f"{target}: p50 latency vs {metric.label}", body)


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = q * (len(ordered) - 1)
    i = int(pos)
    return ordered[i] if i + 1 >= len(ordered) else ordered[i] + (pos - i) * (ordered[i + 1] - ordered[i])


def _latency(target: str, rows: Sequence[Row]) -> str:
    """A box plot (quartiles, median, whiskers to 1.5 IQR) under a strip of the raw samples, per row."""
    timed = [r for r in rows if r.bench is not None and r.bench.samples_ms and r.status in MEASURED]
    if not timed:
        return svg.svg("latency", WIDTH, 40, f"{target}: latency distributions",
                       [svg.text(10, 24, "no raw latency samples on this target")])
    left, right, top, band = 240, WIDTH - 20, 12, 38
    bottom = top + band * len(timed)
    xs = svg.Scale.fit([s for r in timed for s in r.bench.samples_ms], left, right)  # type: ignore[union-attr]
    body = svg.x_axis(xs, bottom, top, "latency per inference (ms" + (", log scale)" if xs.log else ")"))
    for i, r in enumerate(timed):
        samples = sorted(r.bench.samples_ms)  # type: ignore[union-attr]
        q1, q2, q3 = (_quantile(samples, q) for q in (0.25, 0.5, 0.75))
        lo = next(s for s in samples if s >= q1 - 1.5 * (q3 - q1))
        hi = next(s for s in reversed(samples) if s <= q3 + 1.5 * (q3 - q1))
        y = top + band * i
        name = _label(r, 2)
        short = name if len(name) <= 38 else name[:37] + "…"
        body.append(f'<g class="dist" data-artifact="{esc(r.artifact.name)}"><title>{esc(name)}: n {len(samples)}, '
                    f"median {q2:.4g} ms, IQR {q1:.4g}–{q3:.4g} ms</title>")
        body.append(svg.text(left - 8, y + band / 2 + 4, short, anchor="end"))
        n_dots = min(len(samples), 120)  # evenly spaced quantiles stand for thousands of samples
        for k in range(n_dots):
            s = _quantile(samples, k / max(n_dots - 1, 1))
            body.append(svg.circle(xs(s), y + 7 + (k * 7) % 9, 1.6, STRIP, ' fill-opacity="0.45"'))
        yb = y + 18
        body += [svg.line(xs(lo), yb + 6, xs(hi), yb + 6), svg.line(xs(lo), yb + 2, xs(lo), yb + 10),
                 svg.line(xs(hi), yb + 2, xs(hi), yb + 10),
                 svg.rect(xs(q1), yb, max(xs(q3) - xs(q1), 2.0), 12, _colour(r), f' stroke="{svg.AXIS}"'),
                 svg.line(xs(q2), yb, xs(q2), yb + 12, "#ffffff", 2.5), "</g>"]
    return svg.svg("latency", WIDTH, bottom + 40, f"{target}: latency distributions of the raw samples", body)


def _bars(title: str, items: Sequence[tuple[str, float | None]], colour: str, unit: str, y0: float) -> list[str]:
    """Horizontal bars with their values; an item without a value says it was not measured."""
    left, right, band = 240, WIDTH - 90, 20
    body = [svg.text(10, y0 + 12, title, size=svg.FONT + 1, extra=' font-weight="600"')]
    values = [v for _, v in items if v is not None]
    if not values:
        return [*body, svg.text(left, y0 + 34, "not measured in this run", fill="#777")]
    top = max(values) or 1.0
    for i, (name, v) in enumerate(items):
        y = y0 + 22 + band * i
        short = name if len(name) <= 38 else name[:37] + "…"
        body.append(svg.text(left - 8, y + 12, short, anchor="end"))
        if v is None:
            body.append(svg.text(left, y + 12, "not measured", fill="#777"))
            continue
        w = (right - left) * v / top
        body += [f'<g class="bar"><title>{esc(name)}: {v:.4g} {unit}</title>', svg.rect(left, y + 2, max(w, 1.0), 13,
                 colour), "</g>", svg.text(left + w + 6, y + 12, f"{v:.3g} {unit}")]
    return body


def _size_memory(target: str, rows: Sequence[Row]) -> str:
    arts = {r.artifact.name: r.artifact for r in rows}
    sizes = [(name, (s / 2**20 if (s := artifact_size(a)) is not None else None)) for name, a in arts.items()]
    timed = [r for r in rows if r.bench is not None]
    peaks = [(_label(r, 2), r.bench.peak_rss_mb if r.bench is not None else None) for r in timed]
    y_mem = 40 + 20 * len(sizes)
    body = _bars("Size on disk (MiB, with side files)", sizes, SIZE_BAR, "MiB", 0)
    body += _bars("Peak memory (RSS, MB, separate pass)", peaks, MEMORY_BAR, "MB", y_mem)
    return svg.svg("size-memory", WIDTH, y_mem + 40 + 20 * max(len(peaks), 1), f"{target}: size and peak memory",
                   body)


def _target(result: RunResult, target: str, index: int) -> list[str]:
    rows = [r for r in result.rows if r.target == target and r.bench is not None
            and (r.status in MEASURED or r.is_estimate)]
    recs = [rec for rec in result.recommendations if rec.target == target]
    out = [f'<section class="target" id="target-{index}"><h2>Target: {esc(target)}</h2>']
    if any(r.is_estimate for r in rows):
        out.append('<p class="muted">Latencies here are compiler estimates, not measurements.</p>')
    for rec in recs:
        pick = f'<span class="pick">{esc(rec.artifact)}</span>' if rec.artifact else "nothing qualifies"
        out.append(f"<p>Recommended on {esc(rec.runtime)}: {pick}: {esc(rec.reason)}</p>")
    if not rows:
        return [*out, "<p>Nothing was measured on this target, so there is nothing to plot.</p></section>"]
    missing = [_label(r, 2) for r in rows if r.metrics is None]
    out += ["<figure>", _pareto(result, target, rows),
            "<figcaption>Each artifact × runtime is a point at its p50 latency and its accuracy; the red staircase "
            "is the Pareto front (nothing is both faster and more accurate than a point on it); the star marks the "
            "recommendation; grey points are over the accuracy budget (dashed line)."
            + (f" Not validated, so not plotted: {esc(', '.join(missing))}." if missing else "")
            + "</figcaption></figure>",
            "<figure>", _latency(target, rows), "<figcaption>Every steady-state sample: dots above (up to 120 "
            "evenly spaced quantiles), box from the first to the third quartile with the median in white, whiskers "
            "to the furthest sample within 1.5 IQR.</figcaption></figure>",
            "<figure>", _size_memory(target, rows), "</figure></section>"]
    return out


def _table(head: Sequence[str], body: Sequence[Sequence[str]], numeric: frozenset[int] = frozenset()) -> str:
    cells = ["<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    cells += ["<tr>" + "".join(f'<td class="n">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
                               for i, c in enumerate(r)) + "</tr>" for r in body]
    return "".join(cells) + "</tbody></table>"


def _num(x: float | None, fmt: str) -> str:
    return DASH if x is None else format(x, fmt)


def _results(result: RunResult) -> str:
    speed = speedups(result.rows)
    body = []
    for i, r in enumerate(result.rows):
        m, b = r.metrics, r.bench
        drop = m.accuracy_drop_points if m is not None else None
        acc = DASH if m is None or m.accuracy is None else f"{100.0 * m.accuracy:.1f}%" + (
            f" ({0.0 - drop:+.1f})" if drop is not None else "")
        cos = DASH if m is None or m.cosine_mean is None else f"{m.cosine_mean:.4f} / {m.cosine_min or 0.0:.4f}"
        size = artifact_size(r.artifact)
        status = (r.status + (f" on {r.host}" if r.host else "")
                  + (f" (accuracy on {r.accuracy_from})" if r.accuracy_from else "")
                  + (f": {r.reason}" if r.reason else ""))
        body.append([r.artifact.name, r.artifact.precision.value, _num(None if size is None else size / 2**20, ".3f"),
                     r.target, r.runtime, acc, cos, _num(_p50(r), ".3f"), _num(b.stats.p90_ms if b else None, ".3f"),
                     _num(speed[i], ".2f"), _num(b.peak_rss_mb if b else None, ".0f"), status])
    head = ("Artifact", "Precision", "Size MiB", "Target", "Runtime", "Accuracy (Δ pt)", "Cosine mean / min",
            "p50 ms", "p90 ms", "vs fp32 (x)", "Peak MB", "Status")
    return '<section id="results"><h2>Results</h2>' + _table(head, body, frozenset({2, 7, 8, 9, 10})) + "</section>"


def _outputs(result: RunResult) -> str:
    seen: dict[str, Metrics] = {}
    for r in result.rows:
        if r.metrics is not None and r.metrics.outputs:
            seen.setdefault(r.artifact.name, r.metrics)
    if not seen:
        return ""
    body = [[name, o.name, o.kind, "×".join(map(str, o.shape)) or "scalar", o.summary()]
            for name, m in seen.items() for o in (*m.outputs, *(m.sequence.end_states if m.sequence else ()))]
    return ('<section id="outputs"><h2>Per-output agreement</h2><p>Every output of each artifact compared with the '
            "source's on the held-out items, with the metrics that fit its kind.</p>"
            + _table(("Artifact", "Output", "Kind", "Item shape", "Metrics"), body) + "</section>")


def _layers(result: RunResult) -> str:
    """The per-layer error view: for each int8 artifact, one bar per layer (its cosine vs fp32, graph order), the
    layers where the error jumps listed below with whether the quantizer kept them in float."""
    if not result.layers:
        return ('<section id="layers"><h2>Per-layer error</h2><p class="notmeasured">Per-layer error: no int8 '
                "artifact in this run.</p></section>")
    parts = ['<section id="layers"><h2>Per-layer error (int8 vs fp32)</h2>']
    for rep in result.layers:
        layers = rep.get("layers", [])
        parts.append(f"<h3>{esc(rep['artifact'])}</h3>")
        if rep.get("note"):
            parts.append(f'<p class="notmeasured">{esc(str(rep["note"]))}</p>')
        if layers:
            worst = min(float(la["cosine"]) for la in layers)
            floor = min(0.9, worst)
            w, h = 720, 120
            step = w / len(layers)
            tall = [h * (float(la["cosine"]) - floor) / (1 - floor + 1e-12) for la in layers]
            bars = "".join(
                f'<rect x="{i * step:.1f}" y="{h - tall[i]:.1f}" width="{max(step - 1, 1):.1f}" height="{tall[i]:.1f}" '
                f'fill="{"#999" if la["kept_float"] else "#1f77b4"}"><title>{esc(la["tensor"])}: cosine '
                f'{float(la["cosine"]):.5f}</title></rect>' for i, la in enumerate(layers))
            parts.append(f'<svg class="layers" width="{w}" height="{h}" role="img" aria-label="per-layer cosine">'
                         f"{bars}</svg><p>cosine per layer from {floor:.3f} (bottom) to 1.0; grey: kept in float</p>")
        by_name = {la["tensor"]: la for la in layers}
        rows = [(la["tensor"], la["op_type"], f"{la['cosine']:.5f}", f"{la['drop']:.5f}",
                 "yes" if la["kept_float"] else "no") for t in rep.get("jumps", []) if (la := by_name.get(t))]
        if rows:
            parts.append(_table(("Error jumps at", "Op", "Cosine", "Drop", "Kept float"), rows))
    return "".join(parts) + "</section>"


def _notes(result: RunResult) -> str:
    notes = run_notes(result)  # the same lines as report.md's
    if not notes:
        return ""
    return '<section id="notes"><h2>Notes</h2><ul>' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul></section>"


def _head(result: RunResult) -> list[str]:
    name = result.model.get("name") or "model"
    d = result.dataset
    return [f"<h1>edgekit report: {esc(name)}</h1>",
            f'<p class="muted">Source: {esc(result.model.get("source", DASH))} · '
            f'task {esc(result.model.get("task", DASH))}'
            f" · data {esc(d.get('name', DASH))}: {esc(d.get('eval_items', DASH))} held-out items, "
            f"{esc(d.get('calibration_items', DASH))} calibration items</p>",
            f"<p>Accuracy budget: {esc(result.budget.describe())}.</p>"]


def _recommendations(result: RunResult) -> str:
    items = [f'<li><b>{esc(rec.target)}</b> ({esc(rec.runtime)}): '
             + (f'<span class="pick">{esc(rec.artifact)}</span>' if rec.artifact else "<b>nothing</b>")
             + f" — {esc(rec.reason)}"
             + ("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in rec.rejected) + "</ul>" if rec.rejected else "")
             + "</li>" for rec in result.recommendations]
    return ('<section id="recommendations"><h2>Recommendation</h2>'
            + ("<ul>" + "".join(items) + "</ul>" if items else "<p>No target was measured.</p>") + "</section>")


def render_html(result: RunResult, marker: str = "") -> str:
    """The whole HTML report for ``result``; ``marker`` (an HTML comment line) goes first."""
    targets = list(dict.fromkeys(r.target for r in result.rows))
    env = escape(json.dumps(jsonable(result.environment), indent=1, default=str))
    parts = [marker + "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>edgekit report: {esc(result.model.get('name') or 'model')}</title>",
             f"<style>{CSS}</style></head><body>", *_head(result), _recommendations(result)]
    for i, target in enumerate(targets):
        parts += _target(result, target, i)
    parts += [_results(result), _outputs(result), _layers(result), _notes(result),
              f'<section id="environment"><h2>Environment</h2><details><summary>environment of the run</summary>'
              f"<pre>{env}</pre></details></section>", "</body></html>"]
    return "\n".join(p for p in parts if p) + "\n"
