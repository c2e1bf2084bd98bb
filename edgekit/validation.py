"""Validation: the source's reference outputs on the held-out split (cached, hashed), each artifact run on the
same items and compared output by output (:mod:`edgekit.metrics`), the fp32 artifacts across runtimes, and the
data checks done before any work."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit import preflight
from edgekit.artifacts import Artifact, content_sha256, read_hashed_array, recipe_key, write_hashed_array
from edgekit.data import Dataset, check_compatible, check_label_names, check_label_range
from edgekit.errors import EdgekitError, RuntimeAdapterError
from edgekit.executors.base import BoardValidation
from edgekit.formats.base import TOLERANCES
from edgekit.layout import to_layout
from edgekit.metrics import Outputs, collect, compare, cross_runtime_agreement, pack_outputs, unpack_outputs
from edgekit.metrics_user import UserMetric, check_outputs
from edgekit.progress_bar import counted
from edgekit.progress_bar import stderr_progress as stderr_progress
from edgekit.registry import get_runtime, reference_runtime, runtimes_for_format
from edgekit.results import CrossRuntime, Metrics
from edgekit.runtimes.base import RuntimeOptions
from edgekit.sequences import SequenceDataset, validate_sequences
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

Progress = Callable[[str], None]


class ValidationOptions(Protocol):
    """What validation reads of a run's options (:class:`edgekit.pipeline.RunOptions` has them all)."""

    @property
    def calibration_limit(self) -> int | None: ...
    @property
    def eval_limit(self) -> int | None: ...
    @property
    def threads(self) -> int | None: ...
    @property
    def output_kinds(self) -> Mapping[str, str] | None: ...



def dataset_identity(ds: Dataset) -> dict[str, Any]:
    """What identifies a data set in cache keys: its description without the absolute path (moving the
    repository must not invalidate cached artifacts) and the content hash of its files (a changed item,
    label or manifest invalidates them; each file is streamed once per process, see
    :func:`edgekit.artifacts.content_sha256`)."""
    d = {k: v for k, v in ds.describe().items() if k != "path"}
    d["folder"] = Path(ds.path).name
    d["content_sha256"] = content_sha256(ds.path)
    return d



def reference_outputs(source: ModelSource, ds: Dataset, out_dir: Path, limit: int | None,
                      progress: Progress = stderr_progress) -> Outputs:
    """The source's outputs (every one, by name: :func:`edgekit.metrics.collect`) on the held-out split, cached
    in ``out_dir`` by content key, with their SHA-256 recorded beside them: a cache that was altered, truncated
    or has no hash is recomputed."""
    key = recipe_key({"source": source.fingerprint, "dataset": dataset_identity(ds), "limit": limit,
                      "preprocess": source.preprocess.to_dict() if source.preprocess is not None else None})
    cache = Path(out_dir) / f"reference-{key}.npy"
    found, why = read_hashed_array(cache)
    if found is not None and found.dtype.names:
        return unpack_outputs(found)
    if cache.exists():  # altered values would be compared with every artifact as if the source gave them
        progress(f"cached reference outputs {cache.name}: {why}; recomputing them")
    progress(f"reference outputs of the source on {min(ds.count('eval'), limit or 10**9)} held-out items")
    fixed = ds.fixed_batch(source.io, source.preprocess)
    batch = fixed or 32  # sources run fastest batched
    feeds = ds.batches("eval", source.io, source.preprocess, batch_size=batch, limit=limit)  # type: ignore[arg-type]
    n = min(ds.count("eval"), limit or 10**9)
    feeds = counted(feeds, -(-n // batch), f"reference outputs (batches of {batch})", progress)
    ref = collect(((f, source.run_reference(f)) for f in feeds), source.task, source.io.output_names)
    write_hashed_array(cache, pack_outputs(ref))
    return ref


def eval_labels(ds: Dataset, limit: int | None) -> np.ndarray | None:
    """The held-out split's labels (None without labels), cut to the ``limit`` items a run validates on."""
    labels = ds.labels("eval")
    return labels[:limit] if labels is not None and limit is not None else labels


def validate_artifact(source: ModelSource, artifact: Artifact, ds: Dataset, *, reference: Mapping[str, np.ndarray],
                      limit: int | None = None, threads: int | None = None,
                      output_kinds: Mapping[str, str] | None = None,
                      user_metrics: Sequence[UserMetric] = (), progress: Progress | None = None) -> Metrics:
    """Run ``artifact`` (with its format's local runtime) on the held-out split and compare every output with the
    source's (:func:`reference_outputs`), each with the metrics that fit its kind (``output_kinds`` names the
    kind of outputs where :func:`edgekit.metrics.infer_kind` would be wrong). Labels of the split give accuracy
    on the output they are about; ``user_metrics`` (``--metric``) add the user's own. Sequences of a stateful
    model (a :class:`~edgekit.sequences.SequenceDataset`) are run in order, the artifact feeding its own state
    back (:func:`edgekit.sequences.validate_sequences`)."""
    if isinstance(ds, SequenceDataset):
        return validate_sequences(source, artifact, ds, reference=reference, limit=limit, threads=threads,
                                  output_kinds=output_kinds)
    sess = get_runtime(reference_runtime(artifact.format.value)).load(artifact.path,
                                                                      RuntimeOptions(threads=threads))
    feeds = ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=limit)  # type: ignore[arg-type]
    if progress is not None:  # counts and an ETA (a bar on a terminal)
        feeds = counted(feeds, min(ds.count("eval"), limit or 10**9), f"validate {artifact.name}", progress)
    got = collect(((f, sess.run(to_layout(f, artifact.layout))) for f in feeds), source.task, source.io.output_names)
    labels = eval_labels(ds, limit)
    return compare(reference, got, task=source.task, labels=labels, kinds=output_kinds, user_metrics=user_metrics)


def board_validation(source: ModelSource, ds: Dataset, *, reference: Mapping[str, np.ndarray],
                     limit: int | None = None, output_kinds: Mapping[str, str] | None = None,
                     user_metrics: Sequence[UserMetric] = ()) -> BoardValidation | None:
    """What a remote executor needs to validate an artifact on a board's own kernels: the held-out items (batch 1,
    the source's layout) and a judge that compares the board's outputs with the source's exactly as
    :func:`validate_artifact` does. None for the sequences of a stateful model (run in order with their state on
    the build machine only, for now)."""
    if isinstance(ds, SequenceDataset):
        return None
    feeds = list(ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=limit))  # type: ignore[arg-type]
    labels = eval_labels(ds, limit)

    def judge(outputs: Sequence[Sequence[np.ndarray]]) -> Metrics:
        if len(outputs) != len(feeds):
            raise RuntimeAdapterError("the board answered for another number of items", where="outputs",
                                      expected=str(len(feeds)), got=len(outputs))
        got = collect(zip(feeds, outputs, strict=True), source.task, source.io.output_names)
        return compare(reference, got, task=source.task, labels=labels, kinds=output_kinds,
                       user_metrics=user_metrics)

    return BoardValidation(feeds, judge)


def narrow_inputs(source: ModelSource, canonical: Artifact, notes: list[str]) -> ModelSource:
    """Exporters may prune inputs the graph does not use (optimum drops BERT's token_type_ids when the
    config lets it): feed what the exported model declares from then on, and say so. Only an ONNX file is read
    for its inputs (the exporters that prune are ONNX exporters; the other formats convert from that file)."""
    if canonical.format is not Format.ONNX:
        return source
    from edgekit.sources.files import check_onnx_file, onnx_io

    names = set(onnx_io(check_onnx_file(canonical.path)).input_names)
    dropped = [n for n in source.io.input_names if n not in names]
    if not dropped:
        return source
    notes.append(f"the exported model has no input(s) {', '.join(dropped)}: they are not fed")
    return replace(source, io=replace(source.io, inputs=tuple(t for t in source.io.inputs if t.name in names)))


def cross_runtime(source: ModelSource, artifacts: Sequence[Artifact], ds: Dataset, options: ValidationOptions,
                  progress: Progress = stderr_progress) -> list[CrossRuntime]:
    """For each fp32 artifact, run it under every other installed runtime that loads its format and computes fp32 in
    fp32 (not an NPU's) on the held-out items and compare with its reference runtime's outputs (the same model, two
    runtimes)."""
    out: list[CrossRuntime] = []
    for art in artifacts:
        if art.precision is not Precision.FP32:
            continue
        ref_name = reference_runtime(art.format.value)
        others = [r for r in runtimes_for_format(art.format.value, fp32_exact=True) if r != ref_name]
        outputs: dict[str, Outputs] = {}
        for name in [ref_name, *others]:
            feeds = ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=options.eval_limit)  # type: ignore[arg-type]
            try:  # descriptive only: a runtime that cannot load or run it here is left out, never fatal
                sess = get_runtime(name).load(art.path, RuntimeOptions(threads=options.threads))
                outputs[name] = collect(((f, sess.run(to_layout(f, art.layout))) for f in feeds), source.task,
                                        source.io.output_names)
            except EdgekitError as exc:
                progress(f"cross-runtime agreement of {art.name}: {name} left out ({exc})")
        tol = TOLERANCES[Precision.FP32]
        for name in others:
            if name in outputs and ref_name in outputs:
                progress(f"cross-runtime agreement of {art.name}: {ref_name} vs {name}")
                out.append(cross_runtime_agreement(
                    art.name, ref_name, name, outputs[ref_name], outputs[name],
                    task=source.task, kinds=options.output_kinds, atol=tol.atol, rtol=tol.rtol,
                    min_cosine=tol.min_cosine))
    return out


def check_output_kind_names(kinds: Mapping[str, str], outputs: Sequence[str]) -> None:
    """Refuse, before any work, an ``--output-kind`` about an output the model does not have (or whose detection
    pair is no output): it was found only after the export and the reference outputs."""
    from edgekit.errors import ConfigError

    for name, spec in kinds.items():
        pair = spec.split("@", 1)[0].partition(":")[2]
        for wanted in (name, pair) if pair else (name,):
            if wanted not in outputs:
                raise ConfigError("no output of that name", where=f"--output-kind {name}={spec}",
                                  expected=", ".join(outputs), got=wanted,
                                  hint="name one of the model's outputs (edgekit export shows them in the sidecar)")


def check_data(ds: Dataset, source: ModelSource, options: ValidationOptions) -> None:
    """Fail before any work on unusable data: shape/dtype/kind up front, labels outside the model's classes,
    then one streaming pass over the items a run will use (NaN/inf, undecodable files), holding one item at a
    time. A ``--metric`` or ``--output-kind`` about an output the model does not have is refused here too."""
    check_compatible(ds, source.io, source.preprocess)
    if source.io.output_names:
        check_outputs(getattr(options, "user_metrics", ()), source.io.output_names)
        check_output_kind_names(options.output_kinds or {}, source.io.output_names)
    classes = preflight.class_count(source)
    if classes is not None:
        check_label_range(ds, classes, f"output {source.io.outputs[0].name!r} of {source.name}")
    check_label_names(ds, source.class_names, f"{source.name} (id2label in its config.json)")
    for split, limit in (("calibration", options.calibration_limit), ("eval", options.eval_limit)):
        for _ in ds.batches(split, source.io, source.preprocess, batch_size=1, limit=limit):  # type: ignore[arg-type]
            pass
