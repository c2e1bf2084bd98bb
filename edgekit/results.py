"""Frozen result records handed from validation and benchmarking to the report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.comparison import Comparison
from edgekit.errors import ConfigError

BUDGET_RULES = ("both", "accuracy", "cosine")


@dataclass(frozen=True)
class AccuracyBudget:
    """How much accuracy an artifact may lose and still be recommended (and what the int8 search aims for).

    ``max_drop_points``: task accuracy (percentage points) lost vs the source, where labels exist;
    ``min_cosine``: mean cosine similarity of outputs with the source (the worst of the outputs a cosine applies
    to: classification logits, embeddings, dense maps). ``governs`` says which rule judges (CLI ``--budget-rule``):
    ``"both"`` (the default) applies the cosine rule always and the accuracy rule where labels exist;
    ``"accuracy"`` lets the task metric alone decide where labels exist (the cosine rule still judges unlabelled
    data: it is then the only measure); ``"cosine"`` applies the cosine rule only.

    Outputs a cosine does not fit have their own rule, applied whatever ``governs`` says (it is their only
    measure): ``max_flip_rate`` for binary scores (the fraction of items whose decision at the threshold differs
    from the source's; default 1%), ``max_relative_error`` for regression outputs (``||candidate - source|| /
    ||source||`` over the held-out items; default 5%), ``min_iou`` for dense maps (IoU of the thresholded maps;
    default 0.9), ``min_detection_match`` for detections (recall and precision of the candidate's boxes against the
    source's at its operating point; default 0.9), ``max_sequence_error`` for sequences (character error rate of
    the decoded sequences; default 2%). See :class:`OutputMetrics`.
    """

    max_drop_points: float = 1.0
    min_cosine: float = 0.99
    governs: str = "both"
    max_flip_rate: float = 0.01
    max_relative_error: float = 0.05
    min_iou: float = 0.9
    min_detection_match: float = 0.9
    max_sequence_error: float = 0.02

    def __post_init__(self) -> None:
        if self.governs not in BUDGET_RULES:
            raise ConfigError("unknown budget rule", where="budget.governs (--budget-rule)",
                              expected=" | ".join(BUDGET_RULES), got=self.governs)
        if not (isinstance(self.min_cosine, (int, float)) and -1.0 <= self.min_cosine <= 1.0):
            raise ConfigError("must be a number in [-1, 1]", where="budget.min_cosine (--min-cosine)",
                              got=self.min_cosine)
        if not (isinstance(self.max_drop_points, (int, float)) and 0 <= self.max_drop_points <= 100):
            raise ConfigError("must be a number of accuracy points in [0, 100]",
                              where="budget.max_drop_points (--max-drop)", got=self.max_drop_points,
                              hint="points of accuracy, e.g. 1.0 (100 would accept any loss)")
        for name, top in (("max_flip_rate", 1.0), ("max_relative_error", 1e6), ("min_iou", 1.0),
                          ("min_detection_match", 1.0), ("max_sequence_error", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and 0.0 <= value <= top):
                expected = "a fraction in [0, 1] (0.01 = 1%)" if top == 1.0 else "a finite number >= 0 (0.05 = 5%)"
                raise ConfigError(f"must be {expected}", where=f"budget.{name} (--{name.replace('_', '-')})",
                                  got=value)

    def rules(self, labelled: bool) -> tuple[str, ...]:
        """The rules that judge an artifact whose task accuracy is (``labelled``) or is not measurable."""
        if self.governs == "cosine" or not labelled:
            return ("cosine",)
        return ("accuracy",) if self.governs == "accuracy" else ("cosine", "accuracy")

    def failures(self, cosine: float | None, drop_points: float | None) -> list[str]:
        """Why (``cosine``, ``drop_points``) is outside the budget, each line naming the rule that refused it
        and, where the other rule would have passed it, saying so; empty when within the budget. ``cosine`` is
        None where no output has a cosine (binary scores, regression): the cosine rule then has nothing to
        judge, and :meth:`output_failures` judges those outputs."""
        rules = self.rules(drop_points is not None)
        cos_ok = cosine is None or bool(cosine >= self.min_cosine)  # False for NaN
        acc_ok = drop_points is None or bool(drop_points <= self.max_drop_points)
        out: list[str] = []
        if "cosine" in rules and not cos_ok:
            line = f"over budget: cosine {cosine or 0.0:.4f} < {self.min_cosine:.10g} (the cosine rule, --min-cosine)"
            if drop_points is not None and acc_ok:
                line += (f"; its accuracy drop {drop_points:.1f} pt is within --max-drop {self.max_drop_points:g}"
                         " pt, so the cosine rule alone refused it (--budget-rule accuracy lets the task metric"
                         " govern where labels exist)")
            out.append(line)
        if "accuracy" in rules and not acc_ok:
            line = (f"over budget: accuracy drop {drop_points:.1f} pt > {self.max_drop_points:g} pt "
                    "(the accuracy rule, --max-drop)")
            if cos_ok and cosine is not None:
                line += f"; its cosine {cosine:.4f} is within --min-cosine {self.min_cosine:.10g}"
            out.append(line)
        return out

    def metrics_failures(self, metrics: Metrics | None) -> list[str]:
        """Why ``metrics`` are outside this budget (empty when within it; one line when there are none)."""
        if metrics is None:
            return ["not validated: no accuracy metrics to check against the budget"]
        # one rule set (governs) shared with the int8 search: each line names the rule that refused; outputs a
        # cosine does not fit (binary scores, regressions) are judged by their own metric, each line naming it
        return self.failures(metrics.cosine_mean, metrics.accuracy_drop_points) + self.output_failures(metrics)

    def output_failures(self, metrics: Metrics) -> list[str]:
        """Why outputs that a cosine does not fit are outside the budget: a binary score whose decisions flip
        on more than ``max_flip_rate`` of the items, a regression output whose relative error exceeds
        ``max_relative_error``; each line names the output. Applied whatever ``governs`` says."""
        return self.outputs_failures(metrics.outputs)

    def outputs_failures(self, outputs: Sequence[OutputMetrics]) -> list[str]:
        """:meth:`output_failures` of these ``outputs`` (the quantizers' tuning check judges them so too)."""
        out: list[str] = []
        for o in outputs:
            if o.flip_rate is not None and not o.flip_rate <= self.max_flip_rate:
                out.append(f"over budget: output {o.name!r} ({o.kind}) flips {100.0 * o.flip_rate:.1f}% of "
                           f"decisions at {o.threshold:g} > {100.0 * self.max_flip_rate:g}% (the flip-rate rule, "
                           "max_flip_rate)")
            if o.relative_error is not None and not o.relative_error <= self.max_relative_error:
                out.append(f"over budget: output {o.name!r} ({o.kind}) relative error {o.relative_error:.3g} > "
                           f"{self.max_relative_error:g} (the relative-error rule, max_relative_error)")
            if o.kind == "dense" and o.iou is not None and not o.iou >= self.min_iou:
                out.append(f"over budget: output {o.name!r} (dense) IoU {o.iou:.4f} at {o.threshold:g} < "
                           f"{self.min_iou:g} (the IoU rule, --min-iou)")
            for what, value in (("recall", o.recall), ("precision", o.precision)):
                if value is not None and not value >= self.min_detection_match:
                    out.append(f"over budget: output {o.name!r} (detection) {what} {100.0 * value:.1f}% of the "
                               f"source's detections < {100.0 * self.min_detection_match:g}% (the detection rule, "
                               "--min-detection-match)")
            if o.char_error_rate is not None and not o.char_error_rate <= self.max_sequence_error:
                out.append(f"over budget: output {o.name!r} (sequence) character error rate "
                           f"{100.0 * o.char_error_rate:.2f}% > {100.0 * self.max_sequence_error:g}% (the sequence "
                           "rule, --max-sequence-error)")
        return out

    def waived(self, cosine: float | None, drop_points: float | None) -> list[str]:
        """Misses of a rule that the chosen ``governs`` does not apply here (said, never silently dropped)."""
        rules = self.rules(drop_points is not None)
        out: list[str] = []
        if "cosine" not in rules and cosine is not None and not cosine >= self.min_cosine:
            out.append(f"cosine {cosine:.4f} < --min-cosine {self.min_cosine:.10g}, not applied: "
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
        return (f"mean cosine >= {self.min_cosine:.10g}, accuracy drop <= {self.max_drop_points:g} pt; "
                f"--budget-rule {self.governs}: {rule}; binary scores flip <= {100.0 * self.max_flip_rate:g}%, "
                f"regression relative error <= {self.max_relative_error:g}, dense-map IoU >= {self.min_iou:g}, "
                f"detection recall/precision >= {self.min_detection_match:g}, sequence character error rate <= "
                f"{self.max_sequence_error:g}")


OUTPUT_KINDS = ("classification", "embedding", "binary", "dense", "regression", "detection", "sequence")
"""What an output means, which decides the metrics that fit it (see :class:`OutputMetrics`)."""


@dataclass(frozen=True)
class OutputMetrics:
    """Agreement of one output with the source's, with the metrics that fit its ``kind`` (others are None).

    Every kind: ``max_abs`` / ``mean_abs`` (absolute difference per element). ``classification`` (a class vector
    per item, ``[N, C]``): ``cosine_*`` of the logits, ``top1_agreement``, ``top5_agreement`` (only where C > 5),
    ``accuracy`` / ``source_accuracy`` with labels. ``embedding``: ``cosine_*``. ``binary`` (one score per
    item, ``[N]`` or ``[N, 1]``): ``flip_rate``, the fraction of decisions at ``threshold`` (0.5 for
    probabilities in [0, 1], else 0) that differ from the source's, and accuracy with 0/1 labels; never a
    cosine. ``dense`` (a map per item): ``cosine_*`` per item, ``iou`` of the maps thresholded at ``threshold``
    (mean over channels); never an argmax over the flattened map. ``regression``: ``relative_error``
    (``||candidate - source|| / ||source||`` over all items); never a cosine (it ignores scale).
    ``detection`` (decoded boxes ``[N, K, 4]`` x1,y1,x2,y2 with a scores output, or ``[N, K, 5+]`` with the score
    in column 4): the source's boxes scoring above ``threshold`` (its operating point) matched greedily, by IoU >=
    0.5, with the candidate's above it; ``recall`` / ``precision`` of the candidate against them, ``match_iou`` the
    mean IoU of the matches, ``detections`` the source's detections per item. ``sequence`` (per-step class
    scores ``[N, T, C]``, e.g. CTC): the argmax per step decoded (repeats collapsed, the blank class dropped);
    ``sequence_agreement`` the share of items decoded identically, ``char_error_rate`` the edit distance over the
    source's decoded length. ``user``: the ``(name, value)`` pairs of the user's metric functions (``--metric``).
    ``shape`` is one item's shape.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    max_abs: float
    mean_abs: float
    cosine_mean: float | None = None
    cosine_min: float | None = None
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    accuracy: float | None = None
    source_accuracy: float | None = None
    threshold: float | None = None
    flip_rate: float | None = None
    iou: float | None = None
    relative_error: float | None = None
    recall: float | None = None
    precision: float | None = None
    match_iou: float | None = None
    detections: float | None = None
    sequence_agreement: float | None = None
    char_error_rate: float | None = None
    user: tuple[tuple[str, float], ...] = ()

    def summary(self) -> str:
        """The metrics that apply, in one line (``flip 1.2% at 0.5, max-abs 0.031``)."""
        parts: list[str] = []
        if self.accuracy is not None and self.source_accuracy is not None:
            parts.append(f"accuracy {100.0 * self.accuracy:.1f}% "
                         f"({100.0 * (self.accuracy - self.source_accuracy):+.1f} pt)")
        if self.top1_agreement is not None:
            parts.append(f"top-1 agr. {100.0 * self.top1_agreement:.1f}%")
        if self.top5_agreement is not None:
            parts.append(f"top-5 agr. {100.0 * self.top5_agreement:.1f}%")
        if self.flip_rate is not None:
            parts.append(f"flips {100.0 * self.flip_rate:.1f}% at {self.threshold:g}")
        if self.iou is not None:
            parts.append(f"IoU {self.iou:.4f} at {self.threshold:g}")
        if self.relative_error is not None:
            parts.append(f"relative error {self.relative_error:.3g}")
        if self.recall is not None and self.precision is not None:
            parts.append(f"recall {100.0 * self.recall:.1f}%, precision {100.0 * self.precision:.1f}% of "
                         f"{self.detections or 0.0:.1f} detections/item at {self.threshold:g}"
                         + (f", match IoU {self.match_iou:.3f}" if self.match_iou is not None else ""))
        if self.sequence_agreement is not None and self.char_error_rate is not None:
            parts.append(f"sequences agree {100.0 * self.sequence_agreement:.1f}%, "
                         f"char. error {100.0 * self.char_error_rate:.2f}%")
        parts += [f"{name} {value:.4g}" for name, value in self.user]
        if self.cosine_mean is not None and self.cosine_min is not None:
            parts.append(f"cosine {self.cosine_mean:.4f} (min {self.cosine_min:.4f})")
        parts.append(f"max-abs {self.max_abs:.3g}, mean-abs {self.mean_abs:.3g}")
        return ", ".join(parts)


@dataclass(frozen=True)
class SequenceMetrics:
    """How a stateful (streaming) artifact was validated (:mod:`edgekit.sequences`): over ``sequences`` sequences of
    the held-out split (``steps`` steps in all, the longest ``longest``), each run step by step with the artifact
    feeding its own state outputs back (``links``: ``output->input``), as the source ran them; every step's
    outputs are compared. ``end_states``: each linked state output against the source's at the last step of
    every sequence, where the drift has accumulated."""

    links: tuple[str, ...]
    sequences: int
    steps: int
    longest: int
    end_states: tuple[OutputMetrics, ...] = ()

    def summary(self) -> str:
        """One line: what was compared and the state drift at the sequence ends."""
        drift = "; ".join(f"{o.name} at the sequence ends: {o.summary()}" for o in self.end_states)
        return (f"{self.sequences} sequences, {self.steps} steps (longest {self.longest}) run in order with state "
                f"carried ({', '.join(self.links)})" + (f"; {drift}" if drift else ""))


@dataclass(frozen=True)
class Metrics:
    """Agreement of one artifact's outputs with the source's, on ``n`` held-out items.

    ``outputs`` holds one :class:`OutputMetrics` per model output (its kind and the metrics that fit it). The
    headline fields summarise them: ``cosine_mean`` / ``cosine_min`` are the worst over the outputs a cosine
    fits (None when none does: a model whose outputs are binary scores or regressions); ``max_abs`` /
    ``mean_abs`` the largest over all outputs; top-1 / top-5 agreement come from the first classification
    output; ``accuracy`` / ``source_accuracy`` from the output the labels apply to. Accuracy values are fractions
    in [0, 1]; ``None`` where they do not apply.
    """

    n: int
    cosine_mean: float | None
    cosine_min: float | None
    max_abs: float
    mean_abs: float
    top1_agreement: float | None = None
    top5_agreement: float | None = None
    accuracy: float | None = None
    source_accuracy: float | None = None
    outputs: tuple[OutputMetrics, ...] = ()
    sequence: SequenceMetrics | None = None  # stateful models: validated over sequences with state carried

    @property
    def accuracy_drop_points(self) -> float | None:
        if self.accuracy is None or self.source_accuracy is None:
            return None
        # rounded to 1e-9 pt: 100 * (1.0 - 0.99) is 1.0000000000000009, which a 1-pt budget refused
        return round(100.0 * (self.source_accuracy - self.accuracy), 9)

    @property
    def flip_rate(self) -> float | None:
        """The largest flip rate of the binary-score outputs (None without one)."""
        rates = [o.flip_rate for o in self.outputs if o.flip_rate is not None]
        return max(rates) if rates else None

    @property
    def relative_error(self) -> float | None:
        """The largest relative error of the regression outputs (None without one)."""
        errors = [o.relative_error for o in self.outputs if o.relative_error is not None]
        return max(errors) if errors else None

    @property
    def sequence_error(self) -> float | None:
        """The largest character error rate of the sequence outputs (None without one)."""
        rates = [o.char_error_rate for o in self.outputs if o.char_error_rate is not None]
        return max(rates) if rates else None

    @property
    def detection_match(self) -> float | None:
        """The lowest recall or precision of the detection outputs (None without one)."""
        rates = [v for o in self.outputs for v in (o.recall, o.precision) if v is not None]
        return min(rates) if rates else None

    @property
    def iou(self) -> float | None:
        """The lowest IoU of the dense-map outputs (None without one)."""
        ious = [o.iou for o in self.outputs if o.kind == "dense" and o.iou is not None]
        return min(ious) if ious else None

    def output(self, name: str) -> OutputMetrics:
        """The metrics of the output called ``name`` (KeyError naming the outputs when there is none)."""
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(f"no output {name!r}; outputs: {', '.join(o.name for o in self.outputs)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracy_drop_points"] = self.accuracy_drop_points
        d["flip_rate"] = self.flip_rate
        d["relative_error"] = self.relative_error
        d.update(sequence_error=self.sequence_error, detection_match=self.detection_match, iou=self.iou)
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
    noise: dict[str, Any] = field(default_factory=dict)  # how busy the machine was meanwhile (machine_load)

    @property
    def noisy(self) -> bool:
        """Whether the machine was measurably busy with other work while this was timed."""
        return bool(self.noise.get("noisy"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ROW_STATUSES = ("measured", "measured-remote", "validated-remote", "estimated", "not-available", "failed")
ROW_KINDS = ("measurement", "estimate")


@dataclass(frozen=True)
class Row:
    """One artifact × target × runtime line of the report.

    ``status`` is one of :data:`ROW_STATUSES`; ``reason`` says why a row has no numbers. ``kind`` (one of
    :data:`ROW_KINDS`) says what the row was meant to be: a measurement (by a runtime, here or on a board)
    or an estimate (by a compiler's performance model), also when it failed or was not available;
    ``runtime`` then names the runtime or the estimator. ``accuracy_from`` says whose kernels computed the
    metrics when not the build machine's (a board's: host, machine, runtime); ``validated-remote`` rows ran
    on a board for accuracy only (an emulated board: its timings are not speed).
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
    accuracy_from: str | None = None

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
class Finalist:
    """One candidate of a target's interleaved re-measurement: its row (index into ``RunResult.rows``), the
    samples it got in the shared shuffled rounds, and its speed against the pick: the median of the per-round
    ratios ``this / pick`` with a bootstrap 95% interval (None for the pick itself)."""

    row: int
    artifact: str
    runtime: str
    median_ms: float
    samples_ms: tuple[float, ...]
    ratio: float | None = None
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class Decision:
    """One answer per target: what to ship (``artifact`` on ``runtime``), why, and the finalists it was chosen
    from (re-measured interleaved in one process, ``rounds`` shuffled rounds)."""

    target: str
    artifact: str | None
    runtime: str | None
    reason: str
    finalists: tuple[Finalist, ...] = ()
    rounds: int = 0
    noise: dict[str, Any] = field(default_factory=dict)  # how busy the machine was during the rounds


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
    # how the run was made: command line, edgekit version and git state, libraries, hashes (edgekit.provenance)
    provenance: dict[str, Any] = field(default_factory=dict)
    baseline: Comparison | None = None  # this run against --baseline (edgekit.compare)
    decisions: tuple[Decision, ...] = ()  # one per target measured here (edgekit.finalists)
    layers: tuple[dict[str, Any], ...] = ()  # per-layer error of each int8 artifact (edgekit.layer_views)
