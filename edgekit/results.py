"""Frozen result records handed from validation and benchmarking to the report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.errors import ConfigError

BUDGET_RULES = ("both", "accuracy", "cosine")


@dataclass(frozen=True)
class AccuracyBudget:
    """How much accuracy an artifact may lose and still be recommended (and what the int8 search aims for).

    ``max_drop_points``: task accuracy (percentage points) lost vs the source, where labels exist;
    ``min_cosine``: mean cosine similarity of outputs with the source. ``governs`` says which rule judges
    (CLI ``--budget-rule``): ``"both"`` (the default) applies the cosine rule always and the accuracy rule
    where labels exist; ``"accuracy"`` lets the task metric alone decide where labels exist (the cosine rule
    still judges unlabelled data: it is then the only measure); ``"cosine"`` applies the cosine rule only.
    """

    max_drop_points: float = 1.0
    min_cosine: float = 0.99
    governs: str = "both"

    def __post_init__(self) -> None:
        if self.governs not in BUDGET_RULES:
            raise ConfigError("unknown budget rule", where="budget.governs (--budget-rule)",
                              expected=" | ".join(BUDGET_RULES), got=self.governs)
        if not (isinstance(self.min_cosine, (int, float)) and -1.0 <= self.min_cosine <= 1.0):
            raise ConfigError("must be a number in [-1, 1]", where="budget.min_cosine (--min-cosine)",
                              got=self.min_cosine)
        if not (isinstance(self.max_drop_points, (int, float)) and self.max_drop_points >= 0):
            raise ConfigError("must be a number >= 0", where="budget.max_drop_points (--max-drop)",
                              got=self.max_drop_points)

    def rules(self, labelled: bool) -> tuple[str, ...]:
        """The rules that judge an artifact whose task accuracy is (``labelled``) or is not measurable."""
        if self.governs == "cosine" or not labelled:
            return ("cosine",)
        return ("accuracy",) if self.governs == "accuracy" else ("cosine", "accuracy")

    def failures(self, cosine: float, drop_points: float | None) -> list[str]:
        """Why (``cosine``, ``drop_points``) is outside the budget, each line naming the rule that refused it
        and, where the other rule would have passed it, saying so; empty when within the budget."""
        rules = self.rules(drop_points is not None)
        cos_ok = bool(cosine >= self.min_cosine)  # False for NaN
        acc_ok = drop_points is None or bool(drop_points <= self.max_drop_points)
        out: list[str] = []
        if "cosine" in rules and not cos_ok:
            line = f"over budget: cosine {cosine:.4f} < {self.min_cosine:g} (the cosine rule, --min-cosine)"
            if drop_points is not None and acc_ok:
                line += (f"; its accuracy drop {drop_points:.1f} pt is within --max-drop {self.max_drop_points:g}"
                         " pt, so the cosine rule alone refused it (--budget-rule accuracy lets the task metric"
                         " govern where labels exist)")
            out.append(line)
        if "accuracy" in rules and not acc_ok:
            line = (f"over budget: accuracy drop {drop_points:.1f} pt > {self.max_drop_points:g} pt "
                    "(the accuracy rule, --max-drop)")
            if cos_ok:
                line += f"; its cosine {cosine:.4f} is within --min-cosine {self.min_cosine:g}"
            out.append(line)
        return out

    def waived(self, cosine: float, drop_points: float | None) -> list[str]:
        """Misses of a rule that the chosen ``governs`` does not apply here (said, never silently dropped)."""
        rules = self.rules(drop_points is not None)
        out: list[str] = []
        if "cosine" not in rules and not cosine >= self.min_cosine:
            out.append(f"cosine {cosine:.4f} < --min-cosine {self.min_cosine:g}, not applied: "
                       f"--budget-rule {self.governs}")
        if "accuracy" not in rules and drop_points is not None and not drop_points <= self.max_drop_points:
            out.append(f"accuracy drop {drop_points:.1f} pt > --max-drop {self.max_drop_points:g} pt, not applied: "
                       f"--budget-rule {self.governs}")
        return out

    def describe(self) -> str:
        """The budget in one line, with the rule that governs."""
        rule = {"both": "the cosine rule always, the accuracy rule where labels exist",
                "accuracy": "the accuracy rule where labels exist, else the cosine rule",
                "cosine": "the cosine rule only"}[self.governs]
        return (f"mean cosine >= {self.min_cosine:g}, accuracy drop <= {self.max_drop_points:g} pt; "
                f"--budget-rule {self.governs}: {rule}")


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
ROW_KINDS = ("measurement", "estimate")


@dataclass(frozen=True)
class Row:
    """One artifact × target × runtime line of the report.

    ``status`` is one of :data:`ROW_STATUSES`; ``reason`` says why a row has no numbers. ``kind`` (one of
    :data:`ROW_KINDS`) says what the row was meant to be: a measurement (by a runtime, here or on a board)
    or an estimate (by a compiler's performance model), also when it failed or was not available;
    ``runtime`` then names the runtime or the estimator.
    """

    artifact: Artifact
    target: str
    runtime: str
    status: str
    metrics: Metrics | None = None
    bench: BenchResult | None = None
    reason: str | None = None
    host: str | None = None
    kind: str = "measurement"

    @property
    def is_estimate(self) -> bool:
        """Whether the row belongs with the compiler estimates (its kind, or an ``estimated`` status)."""
        return self.kind == "estimate" or self.status == "estimated"


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
