"""Inline SVG for the HTML report: escaped text, scales with readable ticks, axes and a few shapes.

Every string that reaches the markup goes through :func:`esc` (attribute values and text alike): line breaks and
control characters become one space, ``& < > " '`` become entities. Numbers are written by this module only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

#: Line breaks of any kind, other control characters and the bidirectional overrides (as in report.md).
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
AXIS = "#444444"
GRID = "#e6e6e6"
FONT = 11


def esc(value: Any) -> str:
    """``value`` as one line of inert HTML/SVG text, safe in element content and in quoted attribute values."""
    return escape(_BREAKS.sub(" ", str(value)), quote=True)


def tick_label(v: float) -> str:
    return f"{v:.3g}"


@dataclass(frozen=True)
class Scale:
    """Data interval [lo, hi] mapped onto pixels [start, end] (end < start for a y axis), linear or log10."""

    lo: float
    hi: float
    start: float
    end: float
    log: bool = False

    @classmethod
    def fit(cls, values: Iterable[float], start: float, end: float, *, pad: float = 0.06,
            log_ratio: float = 8.0) -> Scale:
        """A scale over ``values`` with ``pad`` of the span on each side; log10 when they are positive and
        span more than ``log_ratio`` times (0.02 ms beside 0.2 ms stays readable)."""
        vals = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
        lo, hi = min(vals), max(vals)
        if lo > 0 and hi / lo > log_ratio:
            f = (hi / lo) ** pad
            return cls(lo / f, hi * f, start, end, log=True)
        span = hi - lo or abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad * span, hi + pad * span
        if min(vals) >= 0 > lo:  # no negative axis under non-negative data
            lo = 0.0
        return cls(lo, hi, start, end)

    def __call__(self, v: float) -> float:
        if self.log:
            t = (math.log10(max(v, 1e-300)) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            t = (v - self.lo) / (self.hi - self.lo)
        return self.start + t * (self.end - self.start)

    def ticks(self, n: int = 5) -> list[float]:
        """Round values inside [lo, hi]: 1-2-5 steps (linear), or 1, 2, 5 x 10^k (log)."""
        if self.log:
            out = [m * 10.0 ** k for k in range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
                   for m in (1, 2, 5)]
            return [v for v in out if self.lo <= v <= self.hi]
        raw = (self.hi - self.lo) / max(n, 1)
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step) * step
        return [round(first + i * step, 12) for i in range(int((self.hi - first) / step) + 1)]


def svg(cls: str, width: int, height: int, title: str, body: Sequence[str]) -> str:
    """One chart: an ``<svg class="chart {cls}">`` with an accessible title."""
    return (f'<svg class="chart {esc(cls)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}"><title>{esc(title)}</title>'
            + "".join(body) + "</svg>")


def text(x: float, y: float, s: Any, *, anchor: str = "start", size: int = FONT, fill: str = AXIS,
         extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
            f"{esc(s)}</text>")


def line(x1: float, y1: float, x2: float, y2: float, stroke: str = AXIS, width: float = 1.0, extra: str = "") -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
            f'stroke-width="{width:g}"{extra}/>')


def rect(x: float, y: float, w: float, h: float, fill: str, extra: str = "") -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{max(h, 0.0):.1f}" fill="{fill}"{extra}/>'


def circle(x: float, y: float, r: float, fill: str, extra: str = "") -> str:
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" fill="{fill}"{extra}/>'


def polyline(points: Sequence[tuple[float, float]], stroke: str, width: float = 2.0, extra: str = "") -> str:
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width:g}"{extra}/>'


def star(x: float, y: float, r: float, fill: str, extra: str = "") -> str:
    """A five-pointed star centred on (x, y): the recommended artifact's marker."""
    pts = [(x + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
            y - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5)) for i in range(10)]
    return (f'<polygon points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in pts)}" fill="{fill}" '
            f'stroke="{AXIS}" stroke-width="1"{extra}/>')


def x_axis(scale: Scale, y: float, top: float, label: str) -> list[str]:
    """The horizontal axis at pixel ``y`` with ticks, grid lines up to ``top`` and a label."""
    out = [line(scale.start, y, scale.end, y)]
    for v in scale.ticks():
        x = scale(v)
        out += [line(x, top, x, y, GRID), line(x, y, x, y + 4), text(x, y + 16, tick_label(v), anchor="middle")]
    return [*out, text((scale.start + scale.end) / 2, y + 32, label, anchor="middle", size=FONT + 1)]


def y_axis(scale: Scale, x: float, right: float, label: str) -> list[str]:
    """The vertical axis at pixel ``x`` with ticks, grid lines up to ``right`` and a rotated label."""
    out = [line(x, scale.start, x, scale.end)]
    for v in scale.ticks():
        y = scale(v)
        out += [line(x, y, right, y, GRID), line(x - 4, y, x, y), text(x - 6, y + 4, tick_label(v), anchor="end")]
    mid = (scale.start + scale.end) / 2
    return [*out, text(14, mid, label, anchor="middle", size=FONT + 1, extra=f' transform="rotate(-90 14 {mid:.1f})"')]


def place_labels(points: Sequence[tuple[float, float, str]], left: float, right: float, top: float, bottom: float,
                 char_px: float = 6.3) -> list[tuple[float, float, str, str]]:
    """Where and what to write as each point's label (x, y, anchor, text) so that labels stay inside the plot and
    do not overlap each other: right of the point (left of it when there is more room there), above or below it by
    growing steps; a label longer than the room is cut with an ellipsis."""
    placed: list[tuple[float, float, float, float]] = []
    out: list[tuple[float, float, str, str]] = []
    for px, py, label in points:
        room_right, room_left = right - px - 10, px - 10 - left
        flip = char_px * len(label) > room_right and room_left > room_right
        chars = max(int((room_left if flip else room_right) / char_px), 4)
        label = label if len(label) <= chars else label[:chars - 1] + "…"
        w = char_px * len(label)
        x = px - 10 if flip else px + 10
        x0, x1 = (x - w, x) if flip else (x, x + w)
        spot = (x, py + 4, "end" if flip else "start", label)
        for dy in (4, -9, 17, -22, 30, -35, 43, -48, 56):
            y = py + dy
            box = (x0, y - 10, x1, y + 2)
            if top <= y - 10 and y <= bottom and not any(
                    box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                spot = (x, y, "end" if flip else "start", label)
                break
        placed.append((x0, spot[1] - 10, x1, spot[1] + 2))
        out.append(spot)
    return out
