"""``edgekit calibration check``: is a calibration set large and varied enough, before a run spends time on it.

Checks, each a finding with what was measured and what to do:

* **size**: how the calibration split divides (items that set the ranges / tuning items, as
  :func:`~edgekit.quantization.calibration.split_calibration` will divide it); fewer than
  :data:`MIN_RANGES_ITEMS` ranges items or :data:`MIN_TUNING_ITEMS` tuning items is a warning;
* **duplicates and leaks**: identical items inside the calibration split, and items of the calibration split that
  are also in the eval split (held-out numbers would then not be held out);
* **labels**: classes of the eval split that the calibration split never shows;
* **range stability** (with ``model``, an ONNX file): every float activation's min/max over two random halves of
  the calibration items; a tensor whose range moves by more than :data:`RANGE_TOLERANCE` between the halves
  would get a different int8 scale from a different sample of the same data, so the set is too small or too
  uniform for it.

The set is "ready" when nothing is a warning. Read-only: nothing is written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import Dataset, load_dataset
from edgekit.quantization.calibration import TuningOptions

MIN_RANGES_ITEMS = 64
MIN_TUNING_ITEMS = 16
RANGE_TOLERANCE = 0.2  # relative change of a tensor's (max - min) between the two halves
MAX_UNSTABLE_SHARE = 0.05


@dataclass(frozen=True)
class Finding:
    """One check: ``level`` "ok" / "warning", what was measured, and what to do about it."""

    check: str
    level: str
    text: str


@dataclass(frozen=True)
class CalibrationCheck:
    """The findings for one data set (and model, if given)."""

    dataset: str
    findings: tuple[Finding, ...]
    ranges: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(f.level == "ok" for f in self.findings)

    def text(self) -> str:
        lines = [f"calibration check of {self.dataset}:"]
        lines += [f"  [{f.level}] {f.check}: {f.text}" for f in self.findings]
        lines.append("ready" if self.ready else "not ready: see the warnings above")
        return "\n".join(lines)


def _digest(item: Any) -> str:
    """A content hash of a raw item: a file's bytes, a sentence, an array, or a dict of them."""
    h = hashlib.sha256()
    if isinstance(item, dict):
        for key in sorted(item):
            h.update(str(key).encode() + b"\0" + _digest(item[key]).encode())
    elif isinstance(item, (str, Path)) and Path(str(item)).is_file():
        h.update(Path(str(item)).read_bytes())
    elif isinstance(item, str):
        h.update(item.encode())
    else:
        a = np.ascontiguousarray(np.asarray(item))
        h.update(str((a.dtype, a.shape)).encode() + a.tobytes())
    return h.hexdigest()


def _size(ds: Dataset, options: TuningOptions) -> Finding:
    n = ds.count("calibration")
    tuning = min(options.max_items, int(options.share * n))
    tuning = tuning if tuning >= options.min_items else 0
    ranges = n - tuning
    text = (f"{n} calibration items: {ranges} will set the ranges, {tuning} will judge the quantizer's decisions "
            f"(tuning items)")
    if ranges < MIN_RANGES_ITEMS or tuning < MIN_TUNING_ITEMS:
        want = MIN_RANGES_ITEMS + MIN_TUNING_ITEMS
        return Finding("size", "warning", f"{text}; want at least {MIN_RANGES_ITEMS} + {MIN_TUNING_ITEMS}: add "
                       f"items ({want} or more in all) of the kind the model will see")
    return Finding("size", "ok", text)


def _duplicates(ds: Dataset) -> list[Finding]:
    cal: dict[str, str] = {}
    repeated = []
    for where, item in ds.raw_items("calibration"):
        d = _digest(item)
        if d in cal:
            repeated.append((where, cal[d]))
        cal.setdefault(d, str(where))
    leaks = [(str(w), cal[d]) for w, item in ds.raw_items("eval") if (d := _digest(item)) in cal] \
        if ds.count("eval") else []
    out = []
    if repeated:
        out.append(Finding("duplicates", "warning", f"{len(repeated)} calibration items repeat another, e.g. "
                           f"{repeated[0][0]} = {repeated[0][1]}: they add no range information; remove them"))
    else:
        out.append(Finding("duplicates", "ok", "no calibration item repeats another"))
    if leaks:
        out.append(Finding("leaks", "warning", f"{len(leaks)} eval items are also calibration items, e.g. "
                           f"{leaks[0][0]} = {leaks[0][1]}: held-out numbers would not be held out; split by source"))
    elif ds.count("eval"):
        out.append(Finding("leaks", "ok", "no eval item is a calibration item"))
    return out


def _labels(ds: Dataset) -> list[Finding]:
    cal, ev = ds.labels("calibration"), ds.labels("eval")
    if cal is None or ev is None:
        return []
    missing = sorted(set(np.unique(ev).tolist()) - set(np.unique(cal).tolist()))
    if missing:
        return [Finding("labels", "warning", f"eval classes never seen in calibration: {missing[:10]}"
                        f"{' ...' if len(missing) > 10 else ''}; add calibration items of those classes")]
    return [Finding("labels", "ok", f"the calibration split shows every one of the {len(np.unique(ev))} eval classes")]


def _tensor_ranges(model: Path, feeds: Iterator[dict[str, np.ndarray]], n: int, seed: int) -> dict[str, Any]:
    """Per float activation of the ONNX ``model``: (min, max) over each of two seeded random halves of the feeds."""
    import onnx

    from edgekit.quantization.onnx_ort import probe_session

    m = onnx.load(str(model))
    inits = {i.name for i in m.graph.initializer}
    sess = probe_session(m, [o for node in m.graph.node for o in node.output if o and o not in inits])
    outputs = [o.name for o in sess.get_outputs()]
    half = np.zeros(n, bool)
    half[np.random.default_rng(seed).choice(n, n // 2, replace=False)] = True
    lo = np.full((2, len(outputs)), np.inf)
    hi = np.full((2, len(outputs)), -np.inf)
    for i, f in enumerate(feeds):
        if i >= n:
            break
        for k, x in enumerate(sess.run(outputs, f)):
            x = np.asarray(x)
            if x.size and np.issubdtype(x.dtype, np.floating):
                h = int(half[i])
                lo[h, k] = min(lo[h, k], float(np.min(x)))
                hi[h, k] = max(hi[h, k], float(np.max(x)))
    return {name: (lo[:, k].tolist(), hi[:, k].tolist()) for k, name in enumerate(outputs)
            if np.all(np.isfinite(lo[:, k])) and np.all(np.isfinite(hi[:, k]))}


def _stability(ranges: dict[str, Any]) -> Finding:
    moved = []
    for name, (lo, hi) in ranges.items():
        spans = [hi[0] - lo[0], hi[1] - lo[1]]
        top = max(spans)
        if top > 0 and abs(spans[0] - spans[1]) / top > RANGE_TOLERANCE:
            moved.append((abs(spans[0] - spans[1]) / top, name))
    if not ranges:
        return Finding("range stability", "ok", "no float activation to measure")
    share = len(moved) / len(ranges)
    text = (f"{len(moved)} of {len(ranges)} activations ({share:.0%}) change their min-max span by more than "
            f"{RANGE_TOLERANCE:.0%} between two random halves of the calibration items")
    if share > MAX_UNSTABLE_SHARE:
        worst = max(moved)
        return Finding("range stability", "warning", f"{text} (worst: {worst[1]}, {worst[0]:.0%}): int8 scales "
                       "depend on which items were picked; add more, and more varied, calibration items")
    return Finding("range stability", "ok", text)


def check_calibration(data: str | Path | Dataset, model: str | Path | None = None, *,
                      source_options: dict[str, Any] | None = None,
                      options: TuningOptions = TuningOptions()) -> CalibrationCheck:
    """The findings for the data set ``data`` (a bundled name or folder); with ``model`` (an ONNX file, loaded by
    :func:`edgekit.sources.files.load_onnx_file` with ``source_options`` such as ``input_shapes`` / ``preprocess``)
    also the range stability of its activations over the calibration split."""
    from edgekit.errors import ConfigError

    ds = data if isinstance(data, Dataset) else load_dataset(data)
    if model is not None and Path(model).suffix.lower() != ".onnx":
        raise ConfigError("the range check runs an ONNX model", where="--model", expected="an .onnx file",
                          got=str(model), hint="export it first: edgekit export --model ... --formats onnx")
    findings = [_size(ds, options), *_duplicates(ds), *_labels(ds)]
    ranges: dict[str, Any] = {}
    if model is not None:
        from edgekit.sources.files import load_onnx_file

        src = load_onnx_file(Path(model), **(source_options or {}))
        n = ds.count("calibration")
        ranges = _tensor_ranges(Path(model), ds.batches("calibration", src.io, src.preprocess), n, options.seed)
        findings.append(_stability(ranges))
    return CalibrationCheck(ds.name, tuple(findings), ranges)


def calibration_notes(ds: Dataset) -> list[str]:
    """The report's lines about the calibration set (no model run): one summary line, plus each warning."""
    result = check_calibration(ds)
    size = next(f.text for f in result.findings if f.check == "size")
    head = f"calibration check: {size}; " + ("ready" if result.ready else "NOT ready")
    return [head] + [f"calibration check ({f.check}): {f.text}" for f in result.findings if f.level != "ok"]
