"""The public Python API: one call per CLI command (the CLI is a thin layer over these)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.calibration import Dataset, Preprocess, load_dataset
from edgekit.errors import ConfigError, SourceError
from edgekit.pipeline import (
    Progress,
    RunOptions,
    build_artifact,
    reference_outputs,
    stderr_progress,
    validate_artifact,
)
from edgekit.pipeline import benchmark_artifact as _bench
from edgekit.pipeline import run as _run
from edgekit.registry import reference_runtime
from edgekit.results import BenchResult, Metrics, RunResult
from edgekit.sources.base import ModelSource
from edgekit.targets import Target, load_target
from edgekit.types import Format, Precision, Task


def load_source(
    model: Any,
    *,
    checkpoint: str | Path | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    task: Task | str | None = None,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
    max_length: int = 64,
) -> ModelSource:
    """Load a model source offline.

    ``model`` is a ``torch.nn.Module``, ``"path/file.py:factory"`` (+ ``checkpoint``), a Hugging Face
    directory, or an ``.onnx`` file. Input shapes come from the source where it knows them, else from
    ``input_shapes``; a missing one is a :class:`~edgekit.errors.SourceError`.
    """
    if isinstance(model, ModelSource):
        return model
    ckpt = Path(checkpoint) if checkpoint else None
    first_shape = next(iter(input_shapes.values())) if input_shapes else None
    if not isinstance(model, (str, Path)):
        from edgekit.sources.torch import torch_source

        return torch_source(model, input_shape=first_shape, task=task or Task.GENERIC, preprocess=preprocess,
                            checkpoint=ckpt)
    text = str(model)
    if ".py:" in text:
        from edgekit.sources.torch import load_torch_factory

        return load_torch_factory(text, ckpt, input_shape=first_shape, task=task,
                                  preprocess=preprocess if isinstance(preprocess, Mapping) else None)
    path = Path(text)
    if path.is_dir():
        from edgekit.sources.huggingface import load_hf_dir

        return load_hf_dir(path, task=task, max_length=max_length)
    if path.suffix == ".onnx":
        from edgekit.sources.files import load_onnx_file

        return load_onnx_file(path, input_shapes=input_shapes, task=task or Task.GENERIC,
                              preprocess=preprocess if not isinstance(preprocess, Mapping) else None)
    if not path.exists():
        raise SourceError("model not found", where=text,
                          expected="a file.py:factory, a Hugging Face directory or an .onnx file")
    raise SourceError("unknown model source", where=text,
                      expected="a file.py:factory, a Hugging Face directory or an .onnx file",
                      got=path.suffix or "(no suffix)", hint="TFLite/OpenVINO inputs are not supported yet")


def _ds(calibration: str | Path | Dataset | None) -> Dataset | None:
    if calibration is None or isinstance(calibration, Dataset):
        return calibration
    return load_dataset(calibration)


def export(source: ModelSource, out_dir: str | Path, *, fmt: Format | str = Format.ONNX,
           calibration: str | Path | Dataset | None = None, options: RunOptions = RunOptions(),
           progress: Progress = stderr_progress) -> Artifact:
    """Export ``source`` to the fp32 artifact of ``fmt`` in ``out_dir``, checked numerically against the
    source on real inputs (calibration items if given, else zeros are not accepted: pass calibration)."""
    ds = _ds(calibration)
    if ds is None:
        raise ConfigError("export needs real inputs for its numeric check", where="--calibration",
                          hint="pass --calibration with a few items the model accepts")
    return build_artifact(source, Format.parse(fmt, where="--format"), Precision.FP32, Path(out_dir), dataset=ds,
                          options=options, progress=progress)


def quantize(source: ModelSource, fp32: Artifact, precision: Precision | str, *,
             calibration: str | Path | Dataset | None, out_dir: str | Path, target: str | Target = "local-cpu",
             options: RunOptions = RunOptions(), progress: Progress = stderr_progress) -> Artifact:
    """Derive the ``precision`` variant of the fp32 artifact (int8 presets follow ``target``'s ISA)."""
    tgt = target if isinstance(target, Target) else load_target(target)
    return build_artifact(source, fp32.format, Precision.parse(precision, where="--precision"), Path(out_dir),
                          dataset=_ds(calibration), canonical=fp32, options=options,
                          isa_preset=tgt.int8_preset, progress=progress)


def validate(source: ModelSource, artifact: Artifact, *, calibration: str | Path | Dataset,
             limit: int | None = None, cache_dir: str | Path | None = None) -> Metrics:
    """Compare ``artifact`` with ``source`` on the held-out split of ``calibration``."""
    ds = _ds(calibration)
    assert ds is not None
    ref = reference_outputs(source, ds, Path(cache_dir or artifact.path.parent), limit)
    return validate_artifact(source, artifact, ds, reference=ref, limit=limit)


def benchmark(artifact: Artifact, *, target: str | Target = "local-cpu", runtime: str | None = None,
              source: ModelSource, calibration: str | Path | Dataset, options: RunOptions = RunOptions(),
              progress: Progress = stderr_progress) -> BenchResult:
    """Benchmark ``artifact`` on a target (locally, or on a board for ``access = "ssh"`` targets: ``options.hosts``)
    with real held-out inputs."""
    tgt = target if isinstance(target, Target) else load_target(target)
    ds = _ds(calibration)
    assert ds is not None
    feeds = list(ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=8))
    name = runtime or reference_runtime(artifact.format.value)
    if tgt.access == "ssh":  # on the board: options.hosts (--host / --inventory), first matching host
        from dataclasses import replace

        from edgekit.errors import BenchmarkError
        from edgekit.executors.fleet import fleet_rows, hosts_for

        hosts = hosts_for(tgt.name, options.hosts)[:1]
        rows, _ = fleet_rows([tgt], [artifact], {}, feeds, replace(options, hosts=tuple(hosts)), progress)
        row = next((r for r in rows[tgt.name] if r.runtime == name), None)
        if row is None or row.bench is None:
            raise BenchmarkError(f"no measurement on {tgt.name}: {row.reason if row else 'runtime not on target'}",
                                 where=tgt.name, hint="pass --host USER@HOST:PORT or --inventory")
        return row.bench
    return _bench(artifact, tgt, name, feeds, options, progress)


def run(source: ModelSource | Any, *, calibration: str | Path | Dataset, out_dir: str | Path,
        options: RunOptions = RunOptions(), progress: Progress = stderr_progress) -> RunResult:
    """The whole pipeline; see :func:`edgekit.pipeline.run`."""
    return _run(load_source(source), calibration, out_dir, options, progress)
