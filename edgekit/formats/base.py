"""The format adapter protocol, the typed options every format declares, and the numeric check shared by
every exporter.

A format adapter turns the source (or the canonical fp32 ONNX artifact) into one artifact per
precision. The pipeline owns caching (recipes + sidecars); an adapter only writes ``out_path``, and says
what of its options goes into an artifact's identity (:meth:`FormatAdapter.recipe`).

Options: each format has one frozen options class (``OnnxOptions``, ``OpenVinoOptions``, ``TfliteOptions``, or
a plugin's own); a run carries them in one :class:`FormatOptions` (``RunOptions.format_options``), keyed by
class, and each adapter takes its own (:meth:`FormatAdapter.options_from`). The pipeline never looks inside.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from edgekit.artifacts import Artifact
from edgekit.errors import ConfigError, NumericMismatchError
from edgekit.metrics import cosine as cosine  # re-exported: the one implementation lives in metrics
from edgekit.quantization.calibration import CalibrationSplit
from edgekit.quantization.checks import DecisionBudget
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

Feeds = dict[str, np.ndarray]
OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class Tolerance:
    """Numeric agreement an export must reach: ``max_abs <= atol + rtol * max|reference|`` and cosine."""

    atol: float
    rtol: float
    min_cosine: float


TOLERANCES: dict[Precision, Tolerance] = {
    Precision.FP32: Tolerance(atol=1e-3, rtol=1e-3, min_cosine=0.9999),
    Precision.FP16: Tolerance(atol=1e-2, rtol=2e-2, min_cosine=0.999),
    Precision.BF16: Tolerance(atol=5e-2, rtol=5e-2, min_cosine=0.995),  # 8 mantissa bits (fp16: 11)
}


@dataclass(frozen=True, init=False)
class FormatOptions:
    """The options of the run's formats: at most one typed options object per class, e.g.
    ``FormatOptions(OnnxOptions(opset=13), TfliteOptions(nhwc=False))``. Each adapter takes the object of its
    own class (:meth:`FormatAdapter.options_from`); a format whose options are not given builds with its
    defaults. Two objects of one class are a :class:`ConfigError` (which one would be meant?)."""

    items: tuple[object, ...]

    def __init__(self, *items: object) -> None:
        seen: dict[type, object] = {}
        for item in items:
            if type(item) in seen:
                raise ConfigError("format options given twice", where="format_options",
                                  expected=f"one {type(item).__name__}", got=[seen[type(item)], item])
            seen[type(item)] = item
        object.__setattr__(self, "items", tuple(items))

    def get(self, cls: type[OptionsT]) -> OptionsT | None:
        """The options object of class ``cls``, or None when the run gives none (its format's defaults)."""
        for item in self.items:
            if isinstance(item, cls) and type(item) is cls:
                return item
        return None

    def with_options(self, *items: object) -> FormatOptions:
        """These options with ``items`` put in place of the objects of their classes."""
        classes = {type(i) for i in items}
        return FormatOptions(*(i for i in self.items if type(i) not in classes), *items)


def own_options(adapter: object, options: object, cls: type[OptionsT]) -> OptionsT:
    """``options`` as the adapter's options class ``cls``; a :class:`ConfigError` naming the adapter when it was
    handed an object of another class (another format's options)."""
    if not isinstance(options, cls):
        raise ConfigError("format adapter got options that are not its own", where=type(adapter).__name__,
                          expected=cls.__name__, got=type(options).__name__)
    return options


def merge_recipe(generic: dict[str, Any], own: dict[str, object], adapter: object) -> dict[str, Any]:
    """An artifact's recipe: the pipeline's ``generic`` part with the adapter's ``own`` entries added. An entry
    that would replace a generic one, or that JSON cannot hold (it would not reach the sidecar as it is), is a
    :class:`ConfigError` naming the adapter."""
    clash = sorted(set(own) & set(generic))
    if clash:
        raise ConfigError("a format's recipe reuses generic recipe keys", where=type(adapter).__name__, got=clash,
                          expected="keys of its own (e.g. its format name)")
    try:
        json.dumps(own, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a format's recipe is not JSON: {exc}", where=type(adapter).__name__,
                          hint="return plain values (dataclasses.asdict of its options)") from exc
    return {**generic, **own}


@dataclass(frozen=True)
class BuildContext:
    """Everything an adapter may need to build one artifact.

    ``calibration`` returns a fresh streaming iterator over calibration-split feeds; ``check_feeds``
    are a few calibration-split items for the numeric checks of conversions (held-out items are never used
    here). ``options`` is the adapter's own typed options object (what its :meth:`FormatAdapter.options_from`
    returned; the adapter narrows it with :func:`own_options`). Static int8 builds also get ``split``: the
    calibration split divided into the items that set the ranges and the disjoint tuning items every quantizer
    decision is taken on, and ``budget``: the run's accuracy budget with the tuning margin, which those
    decisions aim for. ``earlier``: the artifacts this run built (or reused) before this one, e.g. the ONNX
    int8 that OpenVINO's int8 reads instead of quantizing again.
    """

    source: ModelSource
    canonical: Artifact | None
    calibration: Callable[[], Iterator[Feeds]]
    check_feeds: Sequence[Feeds]
    isa_preset: str
    options: object
    split: CalibrationSplit | None = None
    budget: DecisionBudget = field(default_factory=DecisionBudget)
    earlier: tuple[Artifact, ...] = ()


@dataclass(frozen=True)
class BuildOutput:
    """What an adapter made: where the file is, notes and the settings it actually used."""

    path: Path
    notes: tuple[str, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    layout: str = "NCHW"


class FormatAdapter(Protocol):
    """One format: which precisions it can make, its typed options, what of them makes an artifact's identity,
    and how it builds.

    ``libraries``: the distributions whose code shapes this format's artifacts (converters, quantizers); the
    pipeline records their versions in every recipe, so an upgrade rebuilds. Which of the registered formats is
    canonical (built first, the others convert from its fp32 artifact) is the registry entry's ``canonical``.
    """

    format: Format
    precisions: tuple[Precision, ...]
    libraries: tuple[str, ...]

    def options_from(self, options: FormatOptions) -> object:
        """This format's typed options among the run's ``options`` (its defaults when the run gives none)."""
        ...

    def recipe(self, precision: Precision, options: object) -> dict[str, object]:
        """What of ``options`` (as :meth:`options_from` returned them) shapes the artifact of ``precision``:
        JSON-able, merged into its recipe beside the generic parts (source, data set, budget, libraries, parent),
        so changing any of it rebuilds the artifact. Must not reuse a generic key."""
        ...

    def precision_hint(self, precision: Precision) -> str | None:
        """For a precision this format does not make: what it has instead (None when nothing useful to say)."""
        ...

    def file_name(self, precision: Precision) -> str:
        """The artifact's file name in the run folder."""
        ...

    def build(self, precision: Precision, ctx: BuildContext, out_path: Path) -> BuildOutput:
        """Write the artifact for ``precision`` to ``out_path`` (atomically)."""
        ...


def cannot_build(adapter: object, source: ModelSource) -> str | None:
    """Why ``adapter``'s format cannot be built from ``source`` at all (no converter from its kind), or None. An
    adapter says so with an optional ``cannot_build(source) -> str | None`` method; one without it takes every
    source (its :meth:`FormatAdapter.build` raises if it cannot)."""
    ask = getattr(adapter, "cannot_build", None)
    return ask(source) if callable(ask) else None


def formats_for_source(formats: Sequence[Format], source: ModelSource, *,
                       explicit: bool) -> tuple[tuple[Format, ...], list[str]]:
    """The ``formats`` that can be built from ``source``, and one note for each left out (``"onnx: no converter
    from .tflite; ..."``). A format the user named (``explicit``) that cannot be is a :class:`ConfigError`
    before any work: the run never quietly builds less than was asked."""
    from edgekit.registry import get_format

    keep: list[Format] = []
    notes: list[str] = []
    for fmt in formats:
        why = cannot_build(get_format(fmt.value), source)
        if why is None:
            keep.append(fmt)
        elif explicit:
            others = [f.value for f in formats if f is not fmt]
            raise ConfigError(f"{fmt.value} cannot be built from this source: {why}", where=f"--formats {fmt.value}",
                              got=f"a {source.kind} source ({source.name})",
                              hint="drop it from --formats" + (f" (keep {', '.join(others)})" if others else
                                                               "; omit --formats for every format this source gives"))
        else:
            notes.append(f"{fmt.value}: {why}")
    return tuple(keep), notes


@dataclass(frozen=True)
class Agreement:
    """How a candidate's outputs compare with the source's on a few real inputs.

    ``broken`` lists structural faults (missing outputs, wrong shapes): never acceptable. ``misses``
    lists values beyond the tolerance (max-abs, cosine, non-finite)."""

    max_abs: float
    min_cosine: float
    items: int
    broken: tuple[str, ...]
    misses: tuple[str, ...]

    def as_dict(self) -> dict[str, float]:
        """The numbers a sidecar records (``beyond_tolerance``: how many item/output checks missed)."""
        return {"max_abs": self.max_abs, "min_cosine": self.min_cosine, "items": float(self.items),
                "beyond_tolerance": float(len(self.misses))}


def compare_outputs(
    reference: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    feeds: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
    output_names: Sequence[str],
) -> Agreement:
    """Compare ``candidate`` with ``reference`` on real ``feeds``; collect every fault, raise nothing."""
    broken: list[str] = []
    misses: list[str] = []
    worst_abs, worst_cos = 0.0, 1.0
    for i, feed in enumerate(feeds):
        ref, got = reference(feed), candidate(feed)
        if len(got) < len(ref):
            broken.append(f"item {i}: {len(got)} outputs, expected at least {len(ref)}")
            continue
        for name, r, g in zip(output_names, ref, got, strict=False):
            if r.shape != g.shape:
                broken.append(f"item {i} output {name!r}: shape {g.shape}, expected {r.shape}")
                continue
            if not np.all(np.isfinite(g)):
                misses.append(f"item {i} output {name!r}: non-finite values")
                worst_abs, worst_cos = float("inf"), float("nan")
                continue
            diff = float(np.max(np.abs(r.astype(np.float64) - g.astype(np.float64)))) if r.size else 0.0
            cos = cosine(r, g)
            worst_abs, worst_cos = max(worst_abs, diff), min(worst_cos, cos)
            limit = tolerance.atol + tolerance.rtol * float(np.max(np.abs(r))) if r.size else tolerance.atol
            if diff > limit:
                misses.append(f"item {i} output {name!r}: max-abs {diff:.3g} > {limit:.3g}")
            if cos < tolerance.min_cosine:
                misses.append(f"item {i} output {name!r}: cosine {cos:.6f} < {tolerance.min_cosine}")
    return Agreement(worst_abs, worst_cos, len(feeds), tuple(broken), tuple(misses))


def check_numerics(
    what: str,
    reference: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    feeds: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
    output_names: Sequence[str],
) -> dict[str, float]:
    """The fp32 export check (same math as the source, so a tight tolerance): compare ``candidate`` with
    ``reference`` on real ``feeds``; collect every failure, then raise one :class:`NumericMismatchError`.
    Returns the worst max-abs and cosine seen."""
    a = compare_outputs(reference, candidate, feeds, tolerance, output_names)
    failures = [*a.broken, *a.misses]
    if failures:
        raise NumericMismatchError(f"{what} disagrees with the source", failures=failures[:20],
                                   hint="see the listed outputs; a different opset or exporter may help")
    return a.as_dict()


def check_precision_change(
    what: str,
    reference: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    feeds: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
    output_names: Sequence[str],
) -> tuple[dict[str, float], str]:
    """The check of an artifact whose precision was lowered on purpose (fp16): only a structural fault
    (missing outputs, wrong shapes) raises; values beyond ``tolerance`` are recorded, not refused, because
    such an artifact is judged like int8, by the accuracy budget on held-out items. Returns the numbers and
    a note saying what was seen."""
    a = compare_outputs(reference, candidate, feeds, tolerance, output_names)
    if a.broken:
        raise NumericMismatchError(f"{what} is structurally different from the source",
                                   failures=list(a.broken[:20]),
                                   hint="the converter changed the model's outputs; report it with the model")
    note = (f"numeric check vs the source on {a.items} calibration-split items: max-abs {a.max_abs:.3g}, "
            f"min cosine {a.min_cosine:.6f}")
    if a.misses:
        note += (f"; {len(a.misses)} item/output value(s) beyond the fp32-export-style tolerance (first: "
                 f"{a.misses[0]}); a lowered precision is judged by the accuracy budget on held-out items, "
                 "not by that tolerance")
    return a.as_dict(), note


def verify(
    what: str,
    precision: Precision,
    reference: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    candidate: Callable[[Mapping[str, np.ndarray]], list[np.ndarray]],
    feeds: Sequence[Mapping[str, np.ndarray]],
    output_names: Sequence[str],
) -> tuple[dict[str, float], str]:
    """The check an adapter runs on what it built: the strict export check for fp32 (raises on any miss),
    :func:`check_precision_change` for a lowered precision. Returns the numbers and a one-line note."""
    if precision is Precision.FP32:
        d = check_numerics(what, reference, candidate, feeds, TOLERANCES[precision], output_names)
        return d, (f"numeric check on {int(d['items'])} items: max-abs {d['max_abs']:.2g}, "
                   f"cosine {d['min_cosine']:.6f}")
    return check_precision_change(what, reference, candidate, feeds, TOLERANCES[precision], output_names)
