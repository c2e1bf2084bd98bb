"""The stages as plain functions, and :func:`run` composing them: export → quantize → validate →
benchmark → report. Artifacts are cached by recipe (see :mod:`edgekit.artifacts`), so re-running an
interrupted run reuses every complete artifact."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit import __version__, preflight
from edgekit.artifacts import (
    Artifact,
    check_reuse,
    file_hashes,
    finish_artifact,
    locked_out_dir,
    recipe_key,
    size_estimate,
)
from edgekit.bench import BenchOptions, native_calls
from edgekit.calibration_check import calibration_notes
from edgekit.comparison import FailOn
from edgekit.data import Dataset, check_label_range, load_dataset
from edgekit.errors import (
    CalibrationError,
    ConfigError,
    DiskFullError,
    EdgekitError,
    MissingDependencyError,
    RuntimeAdapterError,
    as_disk_full,
)
from edgekit.executors.base import ExecutorOptions, run_targets
from edgekit.executors.hosts import HostSpec
from edgekit.farm import FarmOptions, check_farm, leased
from edgekit.finalists import decide, decide_boards
from edgekit.formats.base import (
    BuildContext,
    Feeds,
    FormatAdapter,
    FormatOptions,
    formats_for_source,
    merge_recipe,
)
from edgekit.heartbeat import duration, estimate_line, heartbeat, time_one
from edgekit.layer_views import ITEMS as LAYER_ITEMS
from edgekit.layer_views import layer_reports
from edgekit.metrics import n_items
from edgekit.metrics_user import UserMetric
from edgekit.progress_bar import counted
from edgekit.quantization.calibration import CalibrationSplit, TuningOptions, split_calibration
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.presets import PRESETS
from edgekit.registry import (
    FORMATS,
    format_missing,
    get_format,
    is_canonical_format,
    runs_here,
)
from edgekit.report.merge import earlier_targets, merge_earlier, read_earlier
from edgekit.results import AccuracyBudget, Metrics, RunResult
from edgekit.sequences import StateLink, with_state
from edgekit.sources.base import ModelSource
from edgekit.targets import load_target
from edgekit.types import Format, Precision, Task
from edgekit.validation import (
    Progress as Progress,
)
from edgekit.validation import (
    board_validation,
    check_data,
    cross_runtime,
    dataset_identity,
    narrow_inputs,
)
from edgekit.validation import (
    reference_outputs as reference_outputs,
)
from edgekit.validation import (
    stderr_progress as stderr_progress,
)
from edgekit.validation import (
    validate_artifact as validate_artifact,
)
from edgekit.variants import RECIPE_KEY, Variant, artifacts_for, plan_variants, recipe_family, recipe_notes
from edgekit.variants import without_unavailable_bf16 as bf16_if_available


def default_precisions(task: Task) -> tuple[Precision, ...]:
    """Precisions built when the user names none: dynamic-range and weight-only int8 only where they suit
    (transformers); each format builds those of them it has (:func:`run`)."""
    if task in (Task.TEXT_CLASSIFICATION, Task.FEATURE_EXTRACTION):
        return (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8_WEIGHTS, Precision.INT8,
                Precision.BF16)
    return (Precision.FP32, Precision.FP16, Precision.INT8, Precision.BF16)


def canonical_first(formats: Iterable[Format]) -> tuple[Format, ...]:
    """``formats`` with the canonical one (the registry's ``canonical`` format, ONNX) first: the converted formats
    start from its fp32 artifact. The order of the others is kept."""
    return tuple(sorted(formats, key=lambda f: not is_canonical_format(f.value)))


def available_formats() -> tuple[tuple[Format, ...], dict[str, str]]:
    """Every registered format whose packages import here (the canonical one first: the others convert from it),
    and ``{format: why}`` for those skipped."""
    usable: list[Format] = []
    skipped: dict[str, str] = {}
    for name in FORMATS:
        why = format_missing(name)
        if why is None:
            usable.append(Format.parse(name))
        else:
            skipped[name] = f"{why}; {FORMATS[name].install_hint()}"
    return canonical_first(usable), skipped


@dataclass(frozen=True)
class RunOptions:
    """Options of a whole run. ``precisions=None`` means :func:`default_precisions` for the task;
    ``formats=None`` means every registered format whose packages are installed
    (:func:`available_formats`; the report notes the skipped ones and why). ``format_options`` holds the typed
    options of the formats, one object per format (``OnnxOptions``: opset, batch, int8 recipes;
    ``OpenVinoOptions``; ``TfliteOptions``; a plugin format's own); each format not in it uses its defaults."""

    formats: tuple[Format, ...] | None = None
    precisions: tuple[Precision, ...] | None = None
    targets: tuple[str, ...] = ("local-cpu",)
    strict_timing: bool = False  # --strict-timing: never recommend from a row timed under noise
    budget: AccuracyBudget = field(default_factory=AccuracyBudget)
    bench: BenchOptions = field(default_factory=BenchOptions)
    threads: int | None = None
    calibration_limit: int | None = None
    eval_limit: int | None = None
    tuning: TuningOptions = field(default_factory=TuningOptions)  # int8: ranges / tuning split and margin
    check_items: int = 16
    format_options: FormatOptions = field(default_factory=FormatOptions)
    hosts: tuple[HostSpec, ...] = ()  # boards for access = "ssh" targets (--host / --inventory)
    # what each output means, where the inferred kind is wrong (--output-kind NAME=KIND; edgekit.metrics.infer_kind)
    output_kinds: Mapping[str, str] = field(default_factory=dict)
    user_metrics: tuple[UserMetric, ...] = ()  # the user's own metric functions per output (--metric)
    # outputs fed back as inputs at the next step (--state OUT->IN): data and validation are sequences in order
    state: tuple[StateLink, ...] = ()
    # a previous run (folder or report.json) to compare this one with, and the gate (edgekit.compare; --baseline,
    # --fail-on "latency=+5%,accuracy=-0.5"); the command line recorded in the report (None: sys.argv)
    baseline: str | Path | None = None
    fail_on: FailOn | str | None = None
    command: tuple[str, ...] | None = None
    farm: FarmOptions | None = None  # --farm: boards for the ssh targets reserved from labgrid (edgekit.farm)
    merge_report: bool = True  # add to the report of an earlier run in --out (edgekit.report.merge); False replaces it


def _adapter(fmt: Format) -> FormatAdapter:
    adapter: FormatAdapter = get_format(fmt.value)
    return adapter


# The distributions whose code shapes an artifact's bytes, recorded in its recipe (an upgrade rebuilds it):
# those of the format (its adapter's ``libraries``: converters, quantizers) for every precision, and for fp32
# also those that export the source (a lower precision derives from the fp32 artifact, whose hash its recipe
# already holds).
SOURCE_LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch", "onnxscript"),
    "huggingface": ("torch", "transformers", "optimum", "optimum-onnx"),
}


@functools.cache
def _dist_version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions(fmt: Format, precision: Precision, source_kind: str) -> dict[str, str]:
    """``{distribution: version}`` of the libraries that build ``fmt``/``precision`` from a ``source_kind`` source."""
    names = _adapter(fmt).libraries
    if precision is Precision.FP32:
        names = (*names, *SOURCE_LIBRARIES.get(source_kind, ()))
    return {n: _dist_version(n) for n in sorted(set(names))}


def _dataset(calibration: str | Path | Dataset) -> Dataset:
    return calibration if isinstance(calibration, Dataset) else load_dataset(calibration)


def _stream(ds: Dataset, source: ModelSource, split: str, limit: int | None,
            progress: Progress | None = None, what: str = "") -> Callable[[], Iterator[Feeds]]:
    """A fresh iterator over ``split`` each call; counted (:func:`edgekit.progress_bar.counted`) when ``progress``
    is given."""
    total = min(ds.count(split), limit or 10**9)  # type: ignore[arg-type]

    def make() -> Iterator[Feeds]:
        items = ds.batches(split, source.io, source.preprocess, batch_size=1, limit=limit)  # type: ignore[arg-type]
        return counted(items, total, what or f"{split} items", progress) if progress is not None else items
    return make


def _check_feeds(ds: Dataset, source: ModelSource, n: int) -> list[Feeds]:
    feeds = list(ds.batches("calibration", source.io, source.preprocess, batch_size=1, limit=n))
    if not feeds:
        raise CalibrationError("calibration split is empty", where=str(ds.path), hint="add calibration items")
    return feeds


def _calibration_split(ds: Dataset, source: ModelSource, options: RunOptions) -> CalibrationSplit:
    """The calibration split (up to ``calibration_limit`` items) divided into ranges and tuning items."""
    total = min(ds.count("calibration"), options.calibration_limit or 10**9)
    labels = ds.labels("calibration")
    return split_calibration(_stream(ds, source, "calibration", options.calibration_limit), options.tuning,
                             total=total, labels=labels[:total] if labels is not None else None)


def build_artifact(
    source: ModelSource,
    fmt: Format,
    precision: Precision,
    out_dir: Path,
    *,
    dataset: Dataset | None = None,
    canonical: Artifact | None = None,
    options: RunOptions = RunOptions(),
    isa_preset: str = "generic",
    named: bool = False,
    progress: Progress = stderr_progress,
    earlier: Sequence[Artifact] = (),
) -> Artifact:
    """Build (or reuse, when a complete one with the same recipe exists) one artifact.

    Its recipe (identity) is the generic part, the same for every format (edgekit version, source fingerprint,
    library versions, parent hash, and for a calibrated precision the data set, budget and tuning split),
    merged with what the format's adapter says of its own options (:meth:`FormatAdapter.recipe`). A build that
    depends on the target's ISA family ``isa_preset`` records the recipe it used (:mod:`edgekit.variants`);
    ``named``: its file name carries that recipe (the run builds several variants of this format+precision);
    ``earlier``: the run's artifacts built before it (:attr:`~edgekit.formats.base.BuildContext.earlier`)."""
    adapter = _adapter(fmt)
    if precision not in adapter.precisions:
        raise ConfigError("precision not supported by this format", where=f"{fmt.value}",
                          expected=", ".join(p.value for p in adapter.precisions), got=precision.value,
                          hint=adapter.precision_hint(precision))
    own_options = adapter.options_from(options.format_options)
    family = recipe_family(adapter, precision, own_options, isa_preset)
    out_path = Path(out_dir) / Variant(fmt, precision, family, isa_preset, (), named).file_name(
        adapter.file_name(precision))
    recipe: dict[str, Any] = {"edgekit": __version__, "format": fmt.value, "precision": precision.value,
                              "source": source.fingerprint,
                              "libraries": library_versions(fmt, precision, source.kind)}
    if precision is not Precision.FP32:
        if canonical is None:
            raise ConfigError("an fp32 artifact is needed first", where=str(out_path))
        if family is not None:  # a build that does not depend on the ISA is shared by every target
            recipe[RECIPE_KEY] = family
    if canonical is not None:  # fp32 of a converted format names the canonical artifact it came from
        recipe["parent"] = canonical.sha256
    if precision is Precision.INT8:
        if dataset is None:
            raise CalibrationError("static int8 needs calibration data", where=str(out_path),
                                   hint="pass --calibration (a bundled set name, a folder, .npz or .txt)")
        recipe["calibration"] = {"dataset": dataset_identity(dataset), "limit": options.calibration_limit}
        # the search aims for the run's budget on the tuning items: both shape the artifact
        recipe["budget"] = asdict(options.budget)
        recipe["tuning"] = asdict(options.tuning)
    recipe = merge_recipe(recipe, adapter.recipe(precision, own_options), adapter)
    cached, why = check_reuse(out_path, recipe, source.io)
    if cached is not None:
        progress(f"reuse {out_path.name} (complete, same recipe {recipe_key(recipe)})")
        return cached
    if why:
        progress(f"rebuild {out_path.name}: {why}")
    preflight.check_artifact_owner(out_path)  # a file of the user's with an artifact's name is never overwritten
    progress(f"build {fmt.value} {precision.value} -> {out_path}")
    t0 = time.perf_counter()
    check = _check_feeds(dataset, source, options.check_items) if dataset is not None else []
    split = _calibration_split(dataset, source, options) if dataset is not None and precision is Precision.INT8 \
        else None
    ctx = BuildContext(
        source=source, canonical=canonical,
        calibration=_stream(dataset, source, "calibration", options.calibration_limit, progress,
                            f"{fmt.value} {precision.value}: calibration items") if dataset else (
            lambda: iter(())),
        check_feeds=check, isa_preset=isa_preset, options=own_options, split=split,
        budget=DecisionBudget(options.budget, options.tuning.margin), earlier=tuple(earlier),
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    estimate: str | None = None
    if split is not None and check:  # the inference part of calibration is known: say it before it starts
        line, seconds = estimate_line(f"calibration of {fmt.value} int8", split.total,
                                      time_one(lambda: source.run_reference(check[0])), 1.0)
        progress(line + "; the quantizer's own work comes on top")
        estimate = f"calibration inference alone: about {duration(seconds)}"
    # marked as ours until its sidecar is written; a "so far" line every 30 s while it builds
    with preflight.building(out_path), heartbeat(progress, f"build {fmt.value} {precision.value}",
                                                 note=estimate):
        built = adapter.build(precision, ctx, out_path)
        files = file_hashes(out_path)
        art = finish_artifact(Artifact(path=out_path, format=fmt, precision=precision, io=source.io,
                                       sha256=files[out_path.name], recipe=recipe, notes=built.notes,
                                       layout=built.layout, settings=dict(built.settings), files=files))
    progress(f"built {out_path.name} in {time.perf_counter() - t0:.1f}s ({art.size_bytes / 2**20:.2f} MiB)")
    return art


def executor_options(options: RunOptions) -> ExecutorOptions:
    """What the run tells every executor (benchmark settings, threads, the boards of ``--host``/``--inventory``)."""
    return ExecutorOptions(bench=options.bench, threads=options.threads, hosts=options.hosts)


def run(
    source: ModelSource,
    calibration: str | Path | Dataset,
    out_dir: str | Path,
    options: RunOptions = RunOptions(),
    progress: Progress = stderr_progress,
) -> RunResult:
    """Export, quantize, validate and benchmark ``source`` on every target; write the report.

    Returns the :class:`RunResult`; ``out_dir`` gets ``artifacts/``, ``report.json``, ``report.md`` and ``report.html``.
    ``out_dir`` is locked for the run (a second run on it is refused, naming the process that holds it) and the
    leftovers of interrupted writes in it are removed first (:func:`edgekit.artifacts.locked_out_dir`); a
    ``report.md`` / ``report.json`` edgekit did not write, or artifacts of another model, are refused before
    any work. A full disk is a :class:`~edgekit.errors.DiskFullError`, whichever library hit it; the complete
    artifacts stay, and a re-run reuses them.
    """
    out = Path(out_dir)
    with locked_out_dir(out, where="out_dir", progress=progress):
        preflight.check_report_owner(out)
        try:
            return _run(source, calibration, out, options, progress)
        except Exception as exc:
            full = as_disk_full(exc, str(out))
            if full is None or full is exc:
                raise
            raise full from exc


def _run(source: ModelSource, calibration: str | Path | Dataset, out: Path, options: RunOptions,
         progress: Progress) -> RunResult:
    from edgekit.compare import read_baseline
    from edgekit.environment import environment, machine_notes
    from edgekit.provenance import provenance
    from edgekit.report import recommend, write_report

    if options.baseline is not None and Path(options.baseline).resolve() in (out.resolve(),
                                                                              (out / "report.json").resolve()):
        raise ConfigError("--baseline is this run's own --out: its report.json would be replaced by the run it is "
                          "compared with", where=f"--baseline {options.baseline}",
                          hint="copy the baseline run elsewhere first, or write this run to another --out")
    baseline = read_baseline(options.baseline, options.fail_on)  # a bad --baseline / --fail-on before any work
    art_dir = out / "artifacts"
    ds = _dataset(calibration)
    targets = [load_target(t) for t in options.targets]
    preflight.check_unique_targets(options.targets, targets)
    preflight.check_hosts(targets, options.hosts, farm=options.farm is not None)
    check_farm(options.farm, [t.name for t in targets if preflight.uses_hosts(t)])  # reachable, places exist
    earlier = read_earlier(out, [t.name for t in targets], options.merge_report)  # a report this run adds to
    also = earlier_targets(earlier)
    ds = with_state(ds, source, options.state, calibration_limit=options.calibration_limit,
                    eval_limit=options.eval_limit, progress=progress)  # edgekit.sequences
    check_data(ds, source, options)
    preflight.check_same_model(art_dir, source, out, progress)
    precisions = options.precisions or default_precisions(source.task)
    notes: list[str] = []
    if options.precisions is None:  # bf16 only where some target computes it
        precisions = bf16_if_available(precisions, targets, notes)
    local = next((t for t in targets if runs_here(t.access)), None)  # the first target on this machine
    isa_preset = local.int8_preset if local else targets[0].int8_preset if targets else "generic"
    variants: list[Variant] = []  # every build that depends on a target's ISA: one per distinct recipe
    assigned: dict[str, tuple[str, ...]] = {}  # named variant -> the targets it is for
    if Precision.INT8 in precisions:  # is the calibration set big and varied enough (edgekit.calibration_check)
        notes += calibration_notes(ds)
    formats = options.formats
    skipped: dict[str, str] = {}
    if formats is None:
        formats, skipped = available_formats()
        notes += [f"format {name} skipped: {why}" for name, why in skipped.items()]
    else:  # the canonical format (ONNX) first: the converted formats start from its fp32 artifact
        formats = canonical_first(formats)
    formats, unbuildable = formats_for_source(formats, source, explicit=options.formats is not None)
    notes += unbuildable  # e.g. no ONNX from a .tflite source: said once, the other formats go on
    preflight.check_targets_have_work(targets, formats, precisions, tuple(skipped))
    preflight.check_options_apply(preflight.nodes_to_exclude(options.format_options), formats, precisions)
    preflight.check_artifact_paths(art_dir, formats, precisions)
    artifacts: list[Artifact] = []
    onnx_fp32: Artifact | None = None  # the canonical fp32 artifact, once built
    for fmt in formats:
        try:
            with native_calls():  # Ctrl-C while a converter runs: see edgekit.bench.native_calls
                canonical = build_artifact(source, fmt, Precision.FP32, art_dir, dataset=ds, options=options,
                                           canonical=onnx_fp32, isa_preset=isa_preset, progress=progress)
        except (MissingDependencyError, CalibrationError, DiskFullError):
            raise
        except EdgekitError as exc:  # a converted format that cannot take this model: say so, keep the others
            if is_canonical_format(fmt.value):
                raise
            if full := as_disk_full(exc, str(art_dir), size_estimate(onnx_fp32, Precision.FP32)):
                raise full from exc
            notes.append(f"{fmt.value} fp32 could not be built, so no {fmt.value} artifacts: {exc}")
            progress(f"FAILED {fmt.value} fp32: {exc}")
            continue
        artifacts.append(canonical)
        if is_canonical_format(fmt.value):
            onnx_fp32 = canonical
            preflight.check_excluded_nodes(canonical, preflight.nodes_to_exclude(options.format_options))
        source = narrow_inputs(source, canonical, notes)
        for prec in precisions:
            if prec is Precision.FP32 or (options.precisions is None and prec not in _adapter(fmt).precisions):
                continue  # a default precision this format does not have: nothing to say
            planned = plan_variants(fmt, prec, targets, _adapter(fmt), _adapter(fmt).options_from(
                options.format_options), isa_preset, also) if prec in _adapter(fmt).precisions else [
                Variant(fmt, prec, None, isa_preset, ())]
            variants += planned
            for variant in planned:
                try:
                    with native_calls():
                        art = build_artifact(source, fmt, prec, art_dir, dataset=ds, canonical=canonical,
                                             options=options, isa_preset=variant.isa_preset, named=variant.named,
                                             progress=progress, earlier=artifacts)
                    artifacts.append(art)
                    if variant.named:
                        assigned[art.name] = variant.targets
                except MissingDependencyError:
                    raise
                except EdgekitError as exc:
                    if isinstance(exc, CalibrationError):
                        raise
                    if full := as_disk_full(exc, str(art_dir), size_estimate(canonical, prec)):
                        raise full from exc
                    what = f"{fmt.value} {prec.value}" + (f" ({variant.family})" if variant.named else "")
                    notes.append(f"{what} could not be built: {exc}")
                    progress(f"FAILED {what}: {exc}")
    notes[:0] = recipe_notes(variants, targets, {name: p.why for name, p in PRESETS.items()})
    metrics: dict[str, Metrics] = {}
    with native_calls():  # the source and the runtimes run in this thread: see edgekit.bench.native_calls
        reference = reference_outputs(source, ds, out, options.eval_limit, progress)
        first = next(iter(reference.values()), None)
        if preflight.class_count(source) is None and source.task.is_classification and first is not None \
                and first.ndim == 2:
            check_label_range(ds, int(first.shape[1]), "the source's outputs")
        for art in artifacts:
            progress(f"validate {art.name} on {n_items(reference)} held-out items")
            try:
                metrics[art.name] = validate_artifact(source, art, ds, reference=reference, limit=options.eval_limit,
                                                      threads=options.threads, output_kinds=options.output_kinds,
                                                      user_metrics=options.user_metrics, progress=progress)
            except RuntimeAdapterError as exc:  # one artifact that cannot run or answers in other shapes
                notes.append(f"{art.name} could not be validated: {exc}")
                progress(f"FAILED validating {art.name}: {exc}")
        cross = cross_runtime(source, artifacts, ds, options, progress)
        layers = layer_reports(artifacts, _check_feeds(ds, source, LAYER_ITEMS), progress) \
            if any(a.precision is Precision.INT8 for a in artifacts) else []
    notes += [f"{c.other_runtime} disagrees with {c.reference_runtime} on {c.artifact} beyond the fp32 tolerance: "
              f"max-abs {c.metrics.max_abs:.3g} (limit {c.tolerance['max_abs']:.3g})"
              + (f", min cosine {c.metrics.cosine_min:.6f}" if c.metrics.cosine_min is not None else "")
              for c in cross if not c.within_tolerance]
    bench_feeds = list(ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=8))  # type: ignore[arg-type]
    # each target's jobs go to the executor registered for its access (local, ssh boards in parallel, estimate)
    on_boards = board_validation(source, ds, reference=reference, limit=options.eval_limit,
                                 output_kinds=options.output_kinds, user_metrics=options.user_metrics)
    if on_boards is None and not all(runs_here(t.access) for t in targets):
        notes.append("every row's accuracy comes from this machine's kernels: a stateful model's sequences are "
                     "validated here only, not on boards")
    with leased(options.farm, [t.name for t in targets if preflight.uses_hosts(t)], progress) as lease:  # farm
        executed = run_targets(targets, artifacts, metrics, bench_feeds, replace(
            executor_options(options), hosts=options.hosts + lease.hosts, validation=on_boards,
            calibration=_stream(ds, source, "calibration", options.calibration_limit)), progress,
            select=lambda t, arts: artifacts_for(t, arts, assigned))
    notes += executed.notes
    rows = list(executed.rows)
    with native_calls():  # one answer per target measured here: its finalists re-measured interleaved
        decisions = decide(rows, options.budget, [t for t in targets if runs_here(t.access)], bench_feeds,
                           executor_options(options), progress, strict_timing=options.strict_timing) + decide_boards(
            rows, options.budget, [t for t in targets if not runs_here(t.access)], strict_timing=options.strict_timing)
    result = RunResult(
        model=source.describe(),
        dataset={**ds.describe(), "eval_items": n_items(reference),
                 "calibration_items": min(ds.count("calibration"), options.calibration_limit or 10**9)},
        budget=options.budget, artifacts=tuple(artifacts), rows=tuple(rows),
        recommendations=recommend(rows, options.budget, strict_timing=options.strict_timing),
        environment=(env := environment(sorted({r.name for t in targets for r in t.runtimes}))),
        notes=tuple(notes + machine_notes(env)), cross_runtime=tuple(cross),
        provenance={**provenance(options.command, source, ds, artifacts), **({"farm": lease.record} if lease.record
                                                                             else {})},
        decisions=decisions, layers=tuple(layers),
    )
    result = merge_earlier(result, earlier)
    if baseline is not None:
        result = replace(result, baseline=baseline.compare(result, str(out)))
    json_path, md_path = write_report(result, out)
    progress(f"report: {md_path}, {md_path.with_name('report.html')} and {json_path}")
    return result
