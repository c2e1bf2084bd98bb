"""Frozen result records handed from validation and benchmarking to the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.artifacts import Artifact


@dataclass(frozen=True)
class AccuracyBudget:
    """How much accuracy an artifact may lose and still be recommended.

    ``max_drop_points``: task accuracy (percentage points) lost vs the source, where labels exist;
    ``min_cosine``: mean cosine similarity of outputs with the source, always checked.
    """

    max_drop_points: float = 1.0
    min_cosine: float = 0.99


@dataclass(frozen=True)
class Metrics:
    """Agreement of one artifact's outputs with the source's, on ``n`` held-out items.

    Accuracy values are fractions in [0, 1]; ``None`` where they do not apply (no labels, not a
    classifier).
    """

    n: int
    cosine_mean: float
    cosine_min: float
    max_abs: float
    mean_abs: float
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    accuracy: float | None = None
    source_accuracy: float | None = None

    @property
    def accuracy_drop_points(self) -> float | None:
        if self.accuracy is None or self.source_accuracy is None:
            return None
        return 100.0 * (self.source_accuracy - self.accuracy)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracy_drop_points"] = self.accuracy_drop_points
        return d


@dataclass(frozen=True)
class LatencyStats:
    """Summary of steady-state latency samples in milliseconds."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    stdev_ms: float
    min_ms: float
    max_ms: float


@dataclass(frozen=True)
class BenchResult:
    """One benchmark of one artifact on one runtime: phases timed apart, raw samples kept."""

    runtime: str
    threads: int | None
    load_ms: float
    first_inference_ms: float
    warmup_ms: tuple[float, ...]
    samples_ms: tuple[float, ...]
    stats: LatencyStats
    peak_rss_mb: float | None = None
    memory: dict[str, Any] = field(default_factory=dict)
    session_info: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ROW_STATUSES = ("measured", "measured-remote", "estimated", "not-available", "failed")


@dataclass(frozen=True)
class Row:
    """One artifact × target × runtime line of the report.

    ``status`` is one of :data:`ROW_STATUSES`; ``reason`` says why a row has no numbers.
    """

    artifact: Artifact
    target: str
    runtime: str
    status: str
    metrics: Metrics | None = None
    bench: BenchResult | None = None
    reason: str | None = None
    host: str | None = None


@dataclass(frozen=True)
class Recommendation:
    """What to ship to one target, and why (``artifact`` is None when nothing qualifies)."""

    target: str
    runtime: str
    artifact: str | None
    reason: str
    rejected: tuple[str, ...] = ()


@dataclass(frozen=True)
class CrossRuntime:
    """How far two runtimes disagree on the same artifact and held-out items (outputs of one vs the other).

    ``within_tolerance`` is False when max-abs or cosine miss the fp32 export tolerance.
    """

    artifact: str
    reference_runtime: str
    other_runtime: str
    metrics: Metrics
    tolerance: dict[str, float]
    within_tolerance: bool


@dataclass(frozen=True)
class RunResult:
    """Everything one ``edgekit run`` produced, ready to be written as a report."""

    model: dict[str, Any]
    dataset: dict[str, Any]
    budget: AccuracyBudget
    artifacts: tuple[Artifact, ...]
    rows: tuple[Row, ...]
    recommendations: tuple[Recommendation, ...]
    environment: dict[str, Any]
    notes: tuple[str, ...] = ()
    cross_runtime: tuple[CrossRuntime, ...] = ()
