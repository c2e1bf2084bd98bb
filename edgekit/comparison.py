"""The records of a comparison of two runs (:func:`edgekit.compare_runs`, ``edgekit compare``, ``edgekit run
--baseline``) and the regression gate (``--fail-on``). Computed by :mod:`edgekit.compare`; kept apart from it so
that :class:`~edgekit.results.RunResult` can hold one without importing the comparison's machinery."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from edgekit.errors import ConfigError
from edgekit.exit_codes import EXIT_OK, EXIT_REGRESSION

FAIL_ON_KEYS = ("latency", "accuracy", "cosine", "top1")
FAIL_ON_EXAMPLE = "latency=+5%,accuracy=-0.5"
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_FORMS = {"latency": re.compile(rf"\+?({_NUMBER})%?"), "accuracy": re.compile(rf"-?({_NUMBER})"),
          "cosine": re.compile(rf"-?({_NUMBER})"), "top1": re.compile(rf"-?({_NUMBER})")}
_MEANING = {"latency": "+P% (a slowdown: the ratio's lower 95% bound above 1 + P/100)",
            "accuracy": "-D (task accuracy lost, in points)", "cosine": "-D (mean cosine lost, e.g. -0.001)",
            "top1": "-D (top-1 agreement lost, in points)"}


@dataclass(frozen=True)
class FailOn:
    """The regression gate (``--fail-on latency=+5%,accuracy=-0.5``); a None field is not gated.

    A row breaches when its latency ratio B/A has its 95% interval's lower bound above ``1 + latency_pct/100``
    (the p50 ratio itself where no raw samples were kept), or when B lost more than ``accuracy_points`` of task
    accuracy, ``cosine`` of mean cosine, or ``top1_points`` of top-1 agreement with the source, against A."""

    latency_pct: float | None = None
    accuracy_points: float | None = None
    cosine: float | None = None
    top1_points: float | None = None

    @classmethod
    def parse(cls, text: str, where: str = "--fail-on") -> FailOn:
        """``latency=+5%,accuracy=-0.5`` (keys: :data:`FAIL_ON_KEYS`); anything else is a :class:`ConfigError`."""
        expected = f"comma-separated KEY=VALUE, e.g. {FAIL_ON_EXAMPLE}; keys: " + "; ".join(
            f"{k}={_MEANING[k]}" for k in FAIL_ON_KEYS)
        values: dict[str, float] = {}
        parts = [p.strip() for p in str(text).split(",")]
        if not text or not str(text).strip() or any(not p for p in parts):
            raise ConfigError("empty gate", where=where, expected=expected, got=text)
        for part in parts:
            key, sep, raw = (s.strip() for s in part.partition("="))
            if not sep or key not in _FORMS:
                raise ConfigError(f"unknown gate {key!r}" if sep else f"{part!r} has no '='", where=where,
                                  expected=expected, got=text)
            if key in values:
                raise ConfigError(f"{key} given twice", where=where, expected=expected, got=text)
            m = _FORMS[key].fullmatch(raw)
            if m is None:
                raise ConfigError(f"{key}={raw} is not {_MEANING[key]}", where=where, expected=expected, got=text)
            values[key] = float(m.group(1))
            top = {"accuracy": 100.0, "top1": 100.0, "cosine": 2.0}.get(key)
            if top is not None and not values[key] <= top:  # a limit that can never trigger gates nothing
                raise ConfigError(f"{key}={raw} can never trigger (a drop is at most {top:g})", where=where,
                                  got=text, expected=expected)
        return cls(latency_pct=values.get("latency"), accuracy_points=values.get("accuracy"),
                   cosine=values.get("cosine"), top1_points=values.get("top1"))

    def describe(self) -> str:
        parts = [f"latency=+{self.latency_pct:g}%" if self.latency_pct is not None else "",
                 f"accuracy=-{self.accuracy_points:g}" if self.accuracy_points is not None else "",
                 f"cosine=-{self.cosine:g}" if self.cosine is not None else "",
                 f"top1=-{self.top1_points:g}" if self.top1_points is not None else ""]
        return ",".join(p for p in parts if p) or "nothing gated"


@dataclass(frozen=True)
class LatencyRatio:
    """B's p50 over A's, with a 95% bootstrap interval over the raw samples (None where either run kept none)."""

    a_p50_ms: float
    b_p50_ms: float
    ratio: float
    low: float | None
    high: float | None
    a_samples: int
    b_samples: int

    def describe(self) -> str:
        ci = f" [{self.low:.3f}, {self.high:.3f}]" if self.low is not None and self.high is not None else \
            " (no raw samples: no interval)"
        return f"{self.ratio:.3f}x{ci}"


@dataclass(frozen=True)
class MetricDelta:
    """One metric of one output in A and in B (``output`` is ``""`` for the artifact's headline metrics)."""

    output: str
    metric: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass(frozen=True)
class RowComparison:
    """One artifact x target x runtime present in both runs. Deltas are B - A: ``accuracy_points`` (task
    accuracy, points), ``cosine`` (mean cosine with the source), ``top1_points`` (top-1 agreement with the source,
    points); None where either run lacks the metric. ``outputs``: every per-output metric both runs have.
    ``breaches``: why the gate refused the row (empty when it passed or nothing was gated)."""

    artifact: str
    target: str
    runtime: str
    latency: LatencyRatio | None
    accuracy_points: float | None
    cosine: float | None
    top1_points: float | None
    outputs: tuple[MetricDelta, ...] = ()
    machine_differs: bool = False
    breaches: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.artifact} on {self.target}/{self.runtime}"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


@dataclass(frozen=True)
class Comparison:
    """Run B against run A (:func:`edgekit.compare_runs`): one :class:`RowComparison` per artifact x target x
    runtime in both, the rows only in A (``removed``) or only in B (``added``), whether both were recorded on the
    same machine (CPU model and ISA flags; ``warnings`` says loudly when not), other ``notes`` (a different
    model, other held-out items), the targets whose recommendation changed, and the gate applied."""

    a: str
    b: str
    rows: tuple[RowComparison, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    same_machine: bool = True
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    recommendation_changes: tuple[str, ...] = ()
    fail_on: FailOn | None = None

    @property
    def regressed(self) -> bool:
        """Whether any row breached the gate."""
        return any(r.breaches for r in self.rows)

    def breaches(self) -> list[str]:
        return [f"{r.where}: {b}" for r in self.rows for b in r.breaches]

    def exit_status(self) -> int:
        """4 when a row breached the gate, else 0 (see :mod:`edgekit.exit_codes`)."""
        return EXIT_REGRESSION if self.regressed else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(regressed=self.regressed, exit_status=self.exit_status(), breaches=self.breaches(),
                 fail_on_text=self.fail_on.describe() if self.fail_on is not None else None)
        return d

    def table(self) -> tuple[tuple[str, ...], list[list[str]]]:
        """The rows as plain strings under a header (the CLI aligns them, the Markdown report escapes them)."""
        head = ("Artifact", "Target/runtime", "p50 A ms", "p50 B ms", "B/A [95% CI]", "Δ accuracy pt",
                "Δ cosine", "Δ top-1 pt", "Verdict")
        body = []
        for r in self.rows:
            lat = r.latency
            verdict = "REGRESSION: " + "; ".join(r.breaches) if r.breaches else (
                "ok" if self.fail_on is not None else "-")
            body.append([r.artifact, f"{r.target}/{r.runtime}" + (" (other machine)" if r.machine_differs else ""),
                         _num(lat.a_p50_ms if lat else None, ".3f"), _num(lat.b_p50_ms if lat else None, ".3f"),
                         lat.describe() if lat else "—", _num(r.accuracy_points, "+.2f"), _num(r.cosine, "+.2e"),
                         _num(r.top1_points, "+.2f"), verdict])
        return head, body

    def summary_lines(self) -> list[str]:
        """Rows added / removed, changed recommendations, notes, and the gate's verdict."""
        lines = [f"only in B (added): {x}" for x in self.added] + [f"only in A (removed): {x}" for x in self.removed]
        lines += [f"recommendation changed: {x}" for x in self.recommendation_changes]
        lines += [f"note: {x}" for x in self.notes]
        for r in self.rows:
            changed = [d for d in r.outputs if d.output and d.delta != 0.0]
            if changed:
                lines.append(f"per output, {r.where}: " + ", ".join(
                    f"{d.output} {d.metric} {d.a:.4g} -> {d.b:.4g}" for d in changed))
        if self.fail_on is None:
            lines.append("no gate (--fail-on): not judged")
        elif self.regressed:
            lines.append(f"REGRESSION against --fail-on {self.fail_on.describe()}: {len(self.breaches())} "
                         f"breach(es) in {sum(1 for r in self.rows if r.breaches)} of {len(self.rows)} rows "
                         f"(exit {EXIT_REGRESSION})")
        else:
            lines.append(f"gate --fail-on {self.fail_on.describe()}: passed on all {len(self.rows)} rows")
        return lines
