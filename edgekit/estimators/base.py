"""The estimator protocol: a hardware-free estimate (an NPU compiler's performance model) of one artifact on
one target, registered by the ``[[runtime]]`` name that ``access = "estimate"`` targets give it.

An estimator returns an :class:`Estimate`; the ``estimate`` executor (:mod:`edgekit.executors.estimate`)
turns it into an ``estimated`` report row through :func:`estimate_bench`, so every estimator's rows have
the same shape and the report renders them by their kind, never by the estimator's name:

- ``bench.stats``: n=1, every percentile the estimated latency; no samples (nothing was measured);
- ``bench.memory``: ``{"<memory>_kib": KiB}`` for each memory the estimator reports (``sram_kib`` ...);
- ``bench.session_info``: ``kind``, ``estimator``, ``accelerator``, ``latency_ms``,
  ``inferences_per_second``, ``memory_kib`` (display name -> KiB), ``accelerator_ops`` / ``cpu_ops`` (where
  the ops were placed),
  ``cpu_op_messages``, ``fits`` / ``fit_problems`` / ``budgets`` (the target's memory budgets),
  ``delegates``, and the estimator's own ``details``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from edgekit.artifacts import Artifact
from edgekit.registry import ESTIMATORS, instantiate, lookup
from edgekit.results import BenchResult, LatencyStats
from edgekit.targets import Target

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Estimate:
    """One estimate of one artifact on one target: latency, memory use against the target's budgets, and
    where the ops were placed (``cpu_ops`` > 0 is a CPU fallback)."""

    estimator: str
    accelerator: str
    latency_ms: float
    inferences_per_second: float
    memory_kib: Mapping[str, float]
    accelerator_ops: int
    cpu_ops: int
    cpu_op_messages: tuple[str, ...] = ()
    fit_problems: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> tuple[str, ...]:
        """What the report row says about this estimate: ops placed on the CPU, budgets not met."""
        out = []
        if self.cpu_ops:
            out.append(f"{self.cpu_ops} op(s) placed on the CPU")
        if self.fit_problems:
            out.append("does not fit: " + "; ".join(self.fit_problems))
        return tuple(out)


@runtime_checkable
class Estimator(Protocol):
    """Estimates an artifact for a target without running it."""

    def estimate(self, artifact: Artifact, target: Target, progress: Progress) -> Estimate:
        """Estimate ``artifact`` on ``target`` (settings from its ``[estimate]`` table); an
        :class:`~edgekit.errors.EdgekitError` when it cannot (a time-out included)."""
        ...


def estimate_bench(est: Estimate) -> BenchResult:
    """The estimate in the report's latency record (see the module docstring for its keys)."""
    ms = est.latency_ms
    stats = LatencyStats(n=1, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, stdev_ms=0.0, min_ms=ms, max_ms=ms)
    info: dict[str, Any] = {
        "kind": f"compiler estimate ({est.estimator})", "estimator": est.estimator, "accelerator": est.accelerator,
        "latency_ms": ms, "inferences_per_second": est.inferences_per_second,
        "accelerator_ops": est.accelerator_ops, "cpu_ops": est.cpu_ops, "ops_on_cpu": est.cpu_ops,
        "memory_kib": dict(est.memory_kib), "cpu_op_messages": list(est.cpu_op_messages), "fits": not est.fit_problems,
        "fit_problems": list(est.fit_problems), "budgets": list(est.budgets),
        "delegates": [f"NPU {est.accelerator}"] + (["CPU"] if est.cpu_ops else []), "details": dict(est.details)}
    return BenchResult(runtime=est.estimator, threads=None, load_ms=0.0, first_inference_ms=ms, warmup_ms=(),
                       samples_ms=(), stats=stats,
                       memory={f"{name.lower()}_kib": kib for name, kib in est.memory_kib.items()},
                       session_info=info)


def memory_budgets(target: Target) -> tuple[str, ...]:
    """The target's declared memory budgets, as the report shows them (``SRAM 512 KiB`` ...)."""
    out = []
    if target.sram_kb is not None:
        out.append(f"SRAM {target.sram_kb} KiB")
    if target.flash_kb is not None:
        out.append(f"flash {target.flash_kb} KiB")
    if target.memory_mb is not None:
        out.append(f"DRAM {target.memory_mb} MB")
    return tuple(out)


def get_estimator(name: str) -> Estimator:
    """The estimator registered as ``name``; :class:`~edgekit.errors.MissingDependencyError` (with the pip
    line) when its packages are missing, :class:`~edgekit.errors.UnknownNameError` for an unknown name."""
    entry = lookup(ESTIMATORS, "estimator", name, where="[[runtime]].name")
    return instantiate(entry, "estimator", Estimator,  # type: ignore[type-abstract]  # a runtime-checkable protocol
                       "an estimate(artifact, target, progress) method")
