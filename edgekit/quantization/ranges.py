"""Per-tensor choice of activation ranges by the quantization error each one causes.

Min-max calibration spreads 256 levels over everything a tensor ever reached; one rare outlier on a calibration
item coarsens the step for every other value. For each calibrated tensor this module builds a histogram of its
values on a few ranges items (inside the min-max range, so one pass) and prices each candidate range
``[lo, hi]`` (min-max, and every pair of clipped ends on a grid, which covers the percentile and MSE choices) by
the expected squared error it causes on those values: the clipped mass's distance to the nearest end plus the
rounding noise ``step**2 / 12`` of the values inside (exact zeros, e.g. after a ReLU, are exact in asymmetric
quantization and cost nothing), averaged over the items with the worst tenth left out (a corrupted frame's
outliers would otherwise win every time: squared error weighs one value at 60 like 100,000 at 0.2). A tensor
takes the cheapest range only where it cuts the error by :data:`MIN_ERROR_CUT`; the others keep min-max.

Opt-in (``StaticInt8Options.range_choice=True``): it helps where a few calibration items carry outliers that
blow a tensor's min-max range up (tests/quantization/test_ranges.py: one saturated frame in 100, held-out relative
error 0.017 -> 0.002), but on photos from other sources than the calibration set it lost on all three ImageNet
convnets (ONNX Runtime, 120 held-out crops, top-1 agreement / mean cosine with fp32, bias correction after it;
machine A): EfficientNet-Lite0 0.950 / 0.9970 -> 0.925 / 0.9967, Lite1 0.917 / 0.9970 -> 0.883 / 0.9950,
MobileNetV2 0.875 / 0.9996 -> 0.850 / 0.9997. It clips about half the tensors (median error cut 44-48% on the
calibration photos); other photos' activations reach further, and the tuning items (same photos) cannot see that.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.quantization.calibration import Feeds
from edgekit.quantization.checks import Judge, fmt_cosine

BINS = 2048  # histogram bins over each tensor's min-max range (8x finer than the 8-bit step)
GRID = 48  # candidate positions of each clipped end, geometric from the min-max end towards zero
SHRINK = 0.02  # the smallest end tried, as a fraction of the min-max end
MIN_ERROR_CUT = 0.25  # a tensor changes range only where its expected squared error falls by at least this
LEVELS = 256  # 8-bit activations
MAX_ITEMS = 16  # ranges items the histograms are built on
TRIM = 0.1  # the share of items (worst errors) a candidate range's error leaves out


@dataclass(frozen=True)
class TensorChoice:
    """One tensor's min-max range, the range chosen, and the expected squared error per value of each."""

    name: str
    minmax: tuple[float, float]
    chosen: tuple[float, float]
    error_minmax: float
    error_chosen: float

    @property
    def changed(self) -> bool:
        return self.chosen != self.minmax

    @property
    def clipped(self) -> float:
        """How much of the min-max span the chosen range drops (0 = unchanged)."""
        span = self.minmax[1] - self.minmax[0]
        return 1.0 - (self.chosen[1] - self.chosen[0]) / span if span > 0 else 0.0


@dataclass(frozen=True)
class RangeChoice:
    """The ranges with every tensor's choice applied (an ORT ``TensorsData``) and the choices."""

    ranges: Any
    choices: tuple[TensorChoice, ...]

    @property
    def changed(self) -> list[TensorChoice]:
        return [c for c in self.choices if c.changed]

    def describe(self) -> str:
        moved = self.changed
        if not moved:
            return f"min-max kept for all {len(self.choices)} tensors (no clipped range cut the error by " \
                   f"{MIN_ERROR_CUT:.0%})"
        worst = max(moved, key=lambda c: c.clipped)
        cut = np.median([1 - c.error_chosen / c.error_minmax for c in moved if c.error_minmax > 0])
        return (f"{len(moved)} of {len(self.choices)} tensors take a clipped range (median error cut {cut:.0%}; "
                f"most clipped: {worst.name} [{worst.minmax[0]:.3g}, {worst.minmax[1]:.3g}] -> "
                f"[{worst.chosen[0]:.3g}, {worst.chosen[1]:.3g}])")

    def record(self) -> dict[str, Any]:
        return {"tensors": len(self.choices), "clipped": len(self.changed),
                "ranges": {c.name: [c.chosen[0], c.chosen[1]] for c in self.changed}}


def _bounds(data: Any) -> tuple[float, float]:
    lo, hi = data.range_value
    return float(np.min(np.asarray(lo))), float(np.max(np.asarray(hi)))


def histograms(probe: Any, names: Sequence[str], bounds: Mapping[str, tuple[float, float]],
               items: Sequence[Feeds]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each tensor's histograms, one row per item (:data:`BINS` bins over its min-max range widened to hold 0), and
    each item's count of exact zeros, from running ``probe`` (an ORT session with ``names`` as outputs) on
    ``items``."""
    hists = {n: np.zeros((len(items), BINS), np.int32) for n in names}
    zeros = {n: np.zeros(len(items), np.int64) for n in names}
    for i, feed in enumerate(items):
        for name, value in zip(names, probe.run(list(names), dict(feed)), strict=True):
            x = np.asarray(value, dtype=np.float64).ravel()
            lo, hi = bounds[name]
            hists[name][i] = np.histogram(x, BINS, range=(min(lo, 0.0), max(hi, 0.0)))[0]
            zeros[name][i] = np.count_nonzero(x == 0)
    return {n: (hists[n], zeros[n]) for n in names}


def _ends(edges: np.ndarray, end: float) -> np.ndarray:
    """Edge indices of the candidate positions of one end (``end``: min-max's, first), geometric towards zero."""
    if end == 0:
        return np.array([int(np.argmin(np.abs(edges)))])
    want = end * np.geomspace(1.0, SHRINK, GRID)
    idx = np.unique(np.abs(edges[None, :] - want[:, None]).argmin(axis=1))
    return idx if end < 0 else idx[::-1]


def best_range(hist: np.ndarray, zeros: np.ndarray | int, lo: float, hi: float,
               levels: int = LEVELS) -> tuple[tuple[float, float], float, float]:
    """The range with the least expected squared error per value over the histograms ``hist`` (one row per item,
    bins over ``[min(lo, 0), max(hi, 0)]``), among min-max and a grid of clipped ends; returns (range, its error,
    min-max's). The error is a trimmed mean over items (the worst :data:`TRIM` of them left out), so one
    corrupted calibration item does not hold every item's resolution hostage."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    h = np.atleast_2d(hist).astype(np.float64)
    z = np.atleast_1d(np.asarray(zeros, dtype=np.float64))
    total = h.sum(axis=1)
    if total.sum() == 0 or hi <= lo:
        return (lo, hi), 0.0, 0.0
    edges = np.linspace(lo, hi, BINS + 1)
    centre = (edges[:-1] + edges[1:]) / 2
    zero = np.zeros((h.shape[0], 1))
    p0, p1, p2 = (np.concatenate([zero, np.cumsum(h * centre ** k, axis=1)], axis=1) for k in range(3))
    a, b = _ends(edges, lo), _ends(edges, hi)  # the bins left of edge a are clipped to it; from edge b on, too
    ea, eb = edges[a], edges[b]
    low = p2[:, a] - 2 * ea * p1[:, a] + ea ** 2 * p0[:, a]  # sum of count * (centre - end)**2 below the end
    high = (p2[:, -1:] - p2[:, b]) - 2 * eb * (p1[:, -1:] - p1[:, b]) + eb ** 2 * (p0[:, -1:] - p0[:, b])
    inside = (total - z)[:, None, None] - p0[:, a][:, :, None] - (p0[:, -1:] - p0[:, b])[:, None, :]
    step = (eb[None, :] - ea[:, None]) / (levels - 1)
    err = (low[:, :, None] + high[:, None, :] + np.maximum(inside, 0) * step ** 2 / 12) / np.maximum(total, 1)[
        :, None, None]
    keep = max(1, h.shape[0] - int(np.ceil(TRIM * h.shape[0])))
    score = np.sort(err, axis=0)[:keep].mean(axis=0)
    i, j = np.unravel_index(int(np.argmin(score)), score.shape)
    return (float(ea[i]), float(eb[j])), float(score[i, j]), float(score[0, 0])


def choose_ranges(float_model: Any, ranges: Any, items: Sequence[Feeds], skip: Sequence[str] = ()) -> RangeChoice:
    """Every calibrated tensor of ``ranges`` (min-max, ORT ``TensorsData``) but ``skip`` priced on ``items`` (ranges
    items of the calibration split) and given the cheapest range where that cuts its error by
    :data:`MIN_ERROR_CUT`; ``ranges`` itself is not changed."""
    from edgekit.quantization.onnx_ort import probe_session

    produced = {o for n in float_model.graph.node for o in n.output} | {i.name for i in float_model.graph.input}
    names = [n for n in ranges.data if n in produced and n not in set(skip)]
    bounds = {n: _bounds(ranges.data[n]) for n in names}
    names = [n for n in names if np.isfinite(bounds[n]).all()]
    hists = histograms(probe_session(float_model, names), names, bounds, items) if names else {}
    chosen = copy.deepcopy(ranges)
    choices = []
    for name in names:
        lo, hi = bounds[name]
        (c_lo, c_hi), err, err_mm = best_range(*hists[name], lo, hi)
        keep_minmax = err_mm <= 0 or err > (1 - MIN_ERROR_CUT) * err_mm
        if not keep_minmax:
            data = chosen.data[name]
            chosen.data[name] = type(data)(lowest=np.array(c_lo, dtype=np.float32),
                                           highest=np.array(c_hi, dtype=np.float32))
        choices.append(TensorChoice(name, (lo, hi), (lo, hi) if keep_minmax else (c_lo, c_hi), err_mm,
                                    err_mm if keep_minmax else err))
    return RangeChoice(chosen, tuple(choices))


def with_minmax(chosen: Any, minmax: Any, names: Sequence[str]) -> Any:
    """``chosen`` ranges with the tensors ``names`` (16-bit islands: their levels make clipping pointless) back at
    min-max."""
    if not names:
        return chosen
    out = copy.deepcopy(chosen)
    for n in names:
        if n in minmax.data:
            out.data[n] = minmax.data[n]
    return out


def range_choice_step(qmodel: Any, float_model: Any, minmax: Any, items: Sequence[Feeds], judge: Judge | None,
                      settings: dict[str, Any], notes: list[str], rebuild: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Choose each tensor's range (:func:`choose_ranges` on ``items``, ranges items) and build the model from the
    choice (``rebuild``: the quantized model from given ranges); the tuning check of ``qmodel`` (the min-max build)
    and of the new model goes to the notes when there are tuning items (``judge``). Returns (ranges, model)."""
    t0 = time.perf_counter()
    choice = choose_ranges(float_model, minmax, items)
    what = (f"per-tensor range choice (range_choice=True) on {len(items)} ranges items "
            f"({time.perf_counter() - t0:.1f} s): {choice.describe()}")
    settings["range_choice"] = {"applied": bool(choice.changed), **choice.record()}
    if not choice.changed:
        notes.append(what)
        return minmax, qmodel
    model = rebuild(choice.ranges)
    if judge is not None:
        before, after = judge.check(qmodel), judge.check(model)
        what += (f"; tuning cosine {fmt_cosine(before.cosine)} -> {fmt_cosine(after.cosine)} on {after.items} tuning "
                 "items before bias correction")
    notes.append(what)
    return choice.ranges, model
