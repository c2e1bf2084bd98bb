"""The format adapter protocol and the numeric check shared by every exporter.

A format adapter turns the source (or the canonical fp32 ONNX artifact) into one artifact per
precision. The pipeline owns caching (recipes + sidecars); an adapter only writes ``out_path``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit.artifacts import Artifact
from edgekit.errors import NumericMismatchError
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Tolerance:
    """Numeric agreement an export must reach: ``max_abs <= atol + rtol * max|reference|`` and cosine."""

    atol: float
    rtol: float
    min_cosine: float


TOLERANCES: dict[Precision, Tolerance] = {
    Precision.FP32: Tolerance(atol=1e-3, rtol=1e-3, min_cosine=0.9999),
    Precision.FP16: Tolerance(atol=1e-2, rtol=2e-2, min_cosine=0.999),
}


@dataclass(frozen=True)
class BuildContext:
    """Everything an adapter may need to build one artifact.

    ``calibration`` returns a fresh streaming iterator over calibration-split feeds; ``check_feeds``
    are a few calibration-split items for numeric checks (held-out items are never used here).
    """

    source: ModelSource
    canonical: Artifact | None
    calibration: Callable[[], Iterator[Feeds]]
    check_feeds: Sequence[Feeds]
    isa_preset: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildOutput:
    """What an adapter made: where the file is, notes and the settings it actually used."""

    path: Path
    notes: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "NCHW"


class FormatAdapter(Protocol):
    """One format: which precisions it can make, and how."""

    format: Format
    precisions: tuple[Precision, ...]

    def file_name(self, precision: Precision) -> str:
        """The artifact's file name in the run folder."""
        ...

    def build(self, precision: Precision, ctx: BuildContext, out_path: Path) -> BuildOutput:
        """Write the artifact for ``precision`` to ``out_path`` (atomically)."""
        ...


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays flattened (1.0 for two zero arrays)."""
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 and ny == 0.0:
        return 1.0
    if nx == 0.0 or ny == 0.0:
        return 0.0
    return float(np.dot(x, y) / (nx * ny))


def check_numerics(
    what: str,
    reference: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    feeds: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
    output_names: Sequence[str],
) -> dict[str, float]:
    """Compare ``candidate`` with ``reference`` on real ``feeds``; collect every failure, then raise one
    :class:`NumericMismatchError`. Returns the worst max-abs and cosine seen."""
    failures: list[str] = []
    worst_abs, worst_cos = 0.0, 1.0
    for i, feed in enumerate(feeds):
        ref, got = reference(feed), candidate(feed)
        if len(got) < len(ref):
            failures.append(f"item {i}: {len(got)} outputs, expected at least {len(ref)}")
            continue
        for name, r, g in zip(output_names, ref, got, strict=False):
            if r.shape != g.shape:
                failures.append(f"item {i} output {name!r}: shape {g.shape}, expected {r.shape}")
                continue
            if not np.all(np.isfinite(g)):
                failures.append(f"item {i} output {name!r}: non-finite values")
                continue
            diff = float(np.max(np.abs(r.astype(np.float64) - g.astype(np.float64)))) if r.size else 0.0
            cos = cosine(r, g)
            worst_abs, worst_cos = max(worst_abs, diff), min(worst_cos, cos)
            limit = tolerance.atol + tolerance.rtol * float(np.max(np.abs(r))) if r.size else tolerance.atol
            if diff > limit:
                failures.append(f"item {i} output {name!r}: max-abs {diff:.3g} > {limit:.3g}")
            if cos < tolerance.min_cosine:
                failures.append(f"item {i} output {name!r}: cosine {cos:.6f} < {tolerance.min_cosine}")
    if failures:
        raise NumericMismatchError(f"{what} disagrees with the source", failures=failures[:20],
                                   hint="see the listed outputs; a different opset or exporter may help")
    return {"max_abs": worst_abs, "min_cosine": worst_cos, "items": float(len(feeds))}
