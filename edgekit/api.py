"""The public Python API: one call per CLI command (the CLI is a thin layer over these)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.data import Dataset, Preprocess, load_dataset
from edgekit.errors import BenchmarkError, ConfigError, DeviceUnavailableError, RuntimeAdapterError, SourceError
from edgekit.executors.base import TargetJob, get_executor, plan_jobs
from edgekit.pipeline import (
    Progress,
    RunOptions,
    build_artifact,
    executor_options,
    reference_outputs,
    stderr_progress,
    validate_artifact,
)
from edgekit.pipeline import run as _run
from edgekit.registry import reference_runtime
from edgekit.results import BenchResult, Metrics, RunResult
from edgekit.sequences import StateLink, with_state
from edgekit.sources.base import ModelSource, check_task_fits, image_options
from edgekit.targets import RuntimeSpec, Target, load_target
from edgekit.types import Format, Precision, Task


def load_source(
    model: object,
    *,
    checkpoint: str | Path | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    task: Task | str | None = None,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
    max_length: int = 64,
    trust_remote_code: bool = False,
) -> ModelSource:
    """Load a model source offline.

    ``model`` is a ``torch.nn.Module``, ``"path/file.py:factory"`` (+ ``checkpoint``), a Hugging Face
    directory, an ``.onnx`` or ``.tflite`` file, or an OpenVINO IR ``.xml`` (its ``.bin`` beside it). Input
    shapes come from the source where it knows them, else from
    ``input_shapes``; a missing one is a :class:`~edgekit.errors.SourceError`. A Hugging Face directory whose
    config or tokenizer needs the folder's own Python code is refused unless ``trust_remote_code=True``
    (``--trust-remote-code``; recorded in the report); for any other source that option is an error.
    """
    if isinstance(model, ModelSource):
        return model
    if trust_remote_code and not (isinstance(model, (str, Path)) and Path(str(model)).is_dir()):
        raise ConfigError("--trust-remote-code applies only to a Hugging Face model folder",
                          where="--trust-remote-code",
                          got=str(model) if isinstance(model, (str, Path)) else type(model).__name__,
                          hint="drop it: this source's code is already yours to run (file.py:factory) or has none")
    ckpt = Path(checkpoint) if checkpoint else None
    if not isinstance(model, (str, Path)) or ".py:" in str(model):
        from edgekit.sources.torch import load_torch_factory, torch_input_shape, torch_source

        shape = torch_input_shape(input_shapes)  # the one input, 'input': another name is refused
        if not isinstance(model, (str, Path)):
            return torch_source(model, input_shape=shape, task=task or Task.GENERIC, preprocess=preprocess,
                                checkpoint=ckpt)
        return load_torch_factory(str(model), ckpt, input_shape=shape, task=task,
                                  preprocess=image_options(preprocess))
    text = str(model)
    path = Path(text)
    if path.is_dir():
        from edgekit.sources.huggingface import load_hf_dir

        return load_hf_dir(path, task=task, max_length=max_length, preprocess=image_options(preprocess),
                           trust_remote_code=trust_remote_code, input_shapes=input_shapes)
    return _checked_task(_load_file(path, input_shapes, task, preprocess), task)


def _checked_task(source: ModelSource, task: Task | str | None) -> ModelSource:
    """``source`` once its inputs fit the task given for it (:func:`~edgekit.sources.base.check_task_fits`)."""
    if task:
        check_task_fits(source.task, source.io, where="--task", model=source.name)
    return source


def _load_file(path: Path, input_shapes: Mapping[str, tuple[int, ...]] | None, task: Task | str | None,
               preprocess: Preprocess | Mapping[str, Any] | None) -> ModelSource:
    """A model file (``.onnx``, ``.tflite``, OpenVINO IR ``.xml``) as a source; anything else is a SourceError."""
    text = str(path)
    if path.suffix == ".onnx":
        from edgekit.sources.files import load_onnx_file

        return load_onnx_file(path, input_shapes=input_shapes, task=task or Task.GENERIC, preprocess=preprocess)
    if path.suffix == ".tflite":
        from edgekit.sources.tflite_file import load_tflite_file

        if input_shapes:
            raise ConfigError("--input-shape does not apply to a .tflite source", where="--input-shape",
                              got=dict(input_shapes), hint="a .tflite model has fixed input shapes: drop it")
        return load_tflite_file(path, task=task or Task.GENERIC, preprocess=preprocess)
    if path.suffix == ".xml":
        from edgekit.sources.openvino_ir import load_openvino_ir

        return load_openvino_ir(path, task=task or Task.GENERIC, input_shapes=input_shapes, preprocess=preprocess)
    kinds = "a file.py:factory, a Hugging Face directory, an .onnx or .tflite file or an OpenVINO IR (.xml + .bin)"
    if not path.exists():
        raise SourceError("model not found", where=text, expected=kinds)
    raise SourceError("unknown model source", where=text, expected=kinds, got=path.suffix or "(no suffix)")


def _ds(calibration: str | Path | Dataset | None) -> Dataset | None:
    if calibration is None or isinstance(calibration, Dataset):
        return calibration
    return load_dataset(calibration)


def export(source: ModelSource, out_dir: str | Path, *, fmt: Format | str = Format.ONNX,
           calibration: str | Path | Dataset | None = None, options: RunOptions = RunOptions(),
           progress: Progress = stderr_progress, canonical: Artifact | None = None) -> Artifact:
    """Export ``source`` to the fp32 artifact of ``fmt`` in ``out_dir``, checked numerically against the
    source on real inputs (calibration items if given, else zeros are not accepted: pass calibration).
    ``canonical``: the fp32 ONNX artifact a converted format (OpenVINO, TFLite) starts from, if any."""
    ds = _ds(calibration)
    if ds is None:
        raise ConfigError("export needs real inputs for its numeric check", where="--calibration",
                          hint="pass --calibration with a few items the model accepts")
    ds = with_state(ds, source, options.state, calibration_limit=options.calibration_limit, eval_limit=1,
                    progress=progress)
    return build_artifact(source, Format.parse(fmt, where="--format"), Precision.FP32, Path(out_dir), dataset=ds,
                          options=options, progress=progress, canonical=canonical)


def quantize(source: ModelSource, fp32: Artifact, precision: Precision | str, *,
             calibration: str | Path | Dataset | None, out_dir: str | Path, target: str | Target = "local-cpu",
             options: RunOptions = RunOptions(), progress: Progress = stderr_progress) -> Artifact:
    """Derive the ``precision`` variant of the fp32 artifact (int8 presets follow ``target``'s ISA)."""
    tgt = target if isinstance(target, Target) else load_target(target)
    ds = _ds(calibration)
    if ds is not None:  # int8 calibration sees the states the source carries (edgekit.sequences)
        ds = with_state(ds, source, options.state, calibration_limit=options.calibration_limit, eval_limit=1,
                        progress=progress)
    return build_artifact(source, fp32.format, Precision.parse(precision, where="--precision"), Path(out_dir),
                          dataset=ds, canonical=fp32, options=options,
                          isa_preset=tgt.int8_preset, progress=progress)


def validate(source: ModelSource, artifact: Artifact, *, calibration: str | Path | Dataset,
             limit: int | None = None, cache_dir: str | Path | None = None,
             output_kinds: Mapping[str, str] | None = None, state: Sequence[StateLink | str] = ()) -> Metrics:
    """Compare every output of ``artifact`` with ``source``'s on the held-out split of ``calibration``, each with
    the metrics that fit its kind (``output_kinds``: ``{output name: kind}`` where the inferred one is wrong).
    ``state``: links of a stateful model (``"stateN->state"``): its held-out sequences are run in order, the
    artifact feeding back its own state (:mod:`edgekit.sequences`)."""
    ds = _ds(calibration)
    assert ds is not None
    ds = with_state(ds, source, state, calibration_limit=1, eval_limit=limit)
    ref = reference_outputs(source, ds, Path(cache_dir or artifact.path.parent), limit)
    try:
        return validate_artifact(source, artifact, ds, reference=ref, limit=limit, output_kinds=output_kinds)
    except RuntimeAdapterError as exc:  # e.g. another model's artifact: its inputs are not this source's
        if exc.where is None:
            exc.where = f"{artifact.path} (validated against {source.name})"
        raise


def benchmark(artifact: Artifact, *, target: str | Target = "local-cpu", runtime: str | None = None,
              source: ModelSource, calibration: str | Path | Dataset, options: RunOptions = RunOptions(),
              progress: Progress = stderr_progress) -> BenchResult:
    """Benchmark ``artifact`` on a target with real held-out inputs, through the executor of the target's
    access: here (``local``), on the first of its boards (``ssh``: ``options.hosts``), or a compiler
    estimate (``estimate``). ``runtime``: default the format's reference runtime where the target has it,
    else the target's first runtime that takes the artifact. A job that gives no numbers raises
    :class:`~edgekit.errors.DeviceUnavailableError` (not available there) or
    :class:`~edgekit.errors.BenchmarkError`, with the reason."""
    tgt = target if isinstance(target, Target) else load_target(target)
    ds = _ds(calibration)
    assert ds is not None
    feeds = list(ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=8))
    planned = [job.runtime.name for job in plan_jobs(tgt, [artifact])]
    if not planned and runtime is None:  # no runtime of the target takes it: say what the target takes
        from edgekit.registry import formats_of

        takes = "; ".join(f"{r.name}: {'/'.join(formats_of(r.name)) or '?'} {'/'.join(p.value for p in r.precisions)}"
                          for r in tgt.runtimes)
        raise ConfigError(f"no runtime of target {tgt.name} takes a {artifact.format.value} "
                          f"{artifact.precision.value} artifact", where=str(artifact.path), expected=takes,
                          got=f"{artifact.format.value} {artifact.precision.value}",
                          hint="build the format and precision the target takes (edgekit quantize), or choose "
                               "another --target")
    reference = reference_runtime(artifact.format.value)
    name = runtime or (reference if reference in planned or not planned else planned[0])
    job = TargetJob(tgt, tgt.runtime(name) or RuntimeSpec(name), artifact)
    opts = replace(executor_options(options), hosts_per_target=1)
    (row, *_) = get_executor(tgt.access).run([job], feeds, opts, progress).rows
    if row.bench is None:
        error = DeviceUnavailableError if row.status == "not-available" else BenchmarkError
        raise error(f"no measurement of {artifact.name} on {tgt.name}/{name}: {row.reason or row.status}",
                    where=tgt.name)
    return row.bench


def run(source: object, *, calibration: str | Path | Dataset, out_dir: str | Path,
        options: RunOptions = RunOptions(), progress: Progress = stderr_progress) -> RunResult:
    """The whole pipeline on ``source`` (a :class:`ModelSource`, or anything :func:`load_source` takes); see
    :func:`edgekit.pipeline.run`."""
    return _run(load_source(source), calibration, out_dir, options, progress)
