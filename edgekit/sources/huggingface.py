"""Hugging Face model directories (as ``save_pretrained`` / ``Trainer.save_model`` leave them).

Loaded strictly offline (``local_files_only``, ``HF_HUB_OFFLINE=1``); the task comes from the
config's architecture; export goes through optimum-onnx (see :mod:`edgekit.formats.onnx`).

A folder can ask transformers to import its own Python files (``auto_map`` in ``config.json`` or
``tokenizer_config.json``, a ``*.py`` they name): that code runs with the user's rights, and transformers
would even ask "run the custom code? [y/N]" on stdin, which a ``yes |`` pipe answers. So such a folder is
refused (:func:`check_remote_code`) before transformers is imported, unless the user opts in with
``trust_remote_code=True`` (``--trust-remote-code``); every loader (config, tokenizer, model, optimum's
exporter) is passed that value explicitly, never left to prompt, and the report's model description records it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import sha256_file
from edgekit.data import ImagePreprocess, Preprocess, TextPreprocess
from edgekit.errors import ConfigError, SourceError, first_line, require
from edgekit.sources.base import ModelSource, apply_image_options, as_numpy_list
from edgekit.sources.torch import check_finite_weights
from edgekit.types import IOSpec, Task, TensorSpec

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "USE_TF": "0", "USE_TORCH": "1"}


def go_offline() -> None:
    """Make sure nothing in the Hugging Face stack tries the network (set before importing it)."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


_TASKS = (("ForSequenceClassification", Task.TEXT_CLASSIFICATION),
          ("ForImageClassification", Task.IMAGE_CLASSIFICATION))
OPTIMUM_TASK = {Task.TEXT_CLASSIFICATION: "text-classification", Task.IMAGE_CLASSIFICATION: "image-classification",
                Task.FEATURE_EXTRACTION: "feature-extraction"}


def task_from_config(config: Mapping[str, Any], where: str) -> Task:
    """The task a config's ``architectures`` implies; a bare encoder is feature extraction."""
    archs = config.get("architectures") or []
    if not archs:
        raise SourceError("config.json has no 'architectures'", where=where,
                          hint="pass --task (text-classification, feature-extraction, image-classification)")
    arch = str(archs[0])
    for suffix, task in _TASKS:
        if arch.endswith(suffix):
            return task
    if arch.endswith("Model"):
        return Task.FEATURE_EXTRACTION
    raise SourceError("unsupported architecture", where=f"{where}:architectures", got=arch,
                      expected="*ForSequenceClassification, *ForImageClassification or a bare *Model")


#: The files of a model folder whose settings can make transformers import the folder's own Python code.
REMOTE_CODE_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


def _code_refs(value: Any, key: str) -> list[tuple[str, str]]:
    """(key path, text) of every string under ``value`` that names Python code: the whole of an ``auto_map`` /
    ``custom_pipelines`` entry, or any string ending in ``.py``."""
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            if k in ("auto_map", "custom_pipelines") and v:
                out.append((sub, json.dumps(v)[:120]))
            else:
                out += _code_refs(v, sub)
        return out
    if isinstance(value, list):
        return [ref for i, v in enumerate(value) for ref in _code_refs(v, f"{key}[{i}]")]
    if isinstance(value, str) and value.strip().lower().endswith(".py"):
        return [(key, value[:120])]
    return []


def remote_code_refs(directory: Path) -> list[tuple[Path, str, str]]:
    """(file, key, value) for each setting in the folder's :data:`REMOTE_CODE_FILES` that makes transformers
    run Python code from the folder (or fetch it); empty when the folder needs only transformers' own code."""
    out: list[tuple[Path, str, str]] = []
    for name in REMOTE_CODE_FILES:
        path = directory / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent, or broken: its loader reports that
            continue
        out += [(path, key, text) for key, text in _code_refs(data, "")]
    return out


def check_remote_code(directory: Path, trust_remote_code: bool) -> list[tuple[Path, str, str]]:
    """Refuse (:class:`SourceError`, one line naming the file and key, and the option to opt in) a folder whose
    config or tokenizer needs its own Python code, unless ``trust_remote_code``; return what needs code."""
    refs = remote_code_refs(directory)
    if refs and not trust_remote_code:
        path, key, text = refs[0]
        raise SourceError(f"{path.name} asks to run Python code from the model folder ({key}: {text}); "
                          "edgekit does not run a model's own code unless told to", where=f"{path}:{key}",
                          expected="a model transformers loads with its own code",
                          hint=f"only if you trust the code in {directory}: pass --trust-remote-code "
                               "(load_source(..., trust_remote_code=True)); it runs with your rights")
    return refs


def _code_fingerprint(directory: Path) -> str:
    """A hash of the folder's ``*.py`` files (a trusted model's code is part of what it computes)."""
    files = sorted(directory.glob("*.py"))
    return "+code:" + "+".join(sha256_file(f)[:16] for f in files) if files else ""


def _weights_fingerprint(directory: Path) -> str:
    files = sorted(list(directory.glob("*.safetensors")) + list(directory.glob("*.bin")))
    if not files:
        raise SourceError("no weights in model directory", where=str(directory),
                          expected="model.safetensors (or pytorch_model.bin)")
    return "+".join(sha256_file(f)[:16] for f in files)


def _check_task(task: Task, config: Mapping[str, Any], cfg_path: Path) -> None:
    """Refuse a ``--task`` that contradicts ``config.json``: another modality (an image task for a text model gave
    transformers' "Unrecognized configuration class"), or a classification head the model does not have (it would
    be initialised at random). Feature extraction (or generic) from a text classifier, its encoder, is allowed."""
    try:
        said: Task | None = task_from_config(config, str(cfg_path))
    except SourceError:
        said = None
    if said is not None:
        ok = task is said or (said is not Task.IMAGE_CLASSIFICATION and task in (Task.FEATURE_EXTRACTION, Task.GENERIC))
        what, kind = f"architectures {config['architectures'][0]!r}", f"a {said.value} model"
    else:
        modality = "text" if "vocab_size" in config else "image" if {"image_size", "num_channels"} & set(config) else ""
        ok = not modality or (task is Task.IMAGE_CLASSIFICATION) == (modality == "image")
        what, kind = f"model_type {config.get('model_type')!r}", f"a {modality} model"
    if not ok:
        raise ConfigError(f"contradicts the model's config.json ({what}: {kind})", where=f"--task {task.value}",
                          expected=f"--task {said.value} or no --task" if said else f"a task for {kind}",
                          got=f"{cfg_path}: {what}",
                          hint="drop --task: edgekit reads the task from config.json" if said else
                               "pass the task this model does")


def _refuse_input_shapes(shapes: Mapping[str, tuple[int, ...]], task: Task, max_length: int, directory: Path) -> None:
    """``--input-shape`` does not size a Hugging Face model's inputs (it was silently ignored): refuse it, saying
    what does (``--max-length`` for the token inputs; the image processor for pixel_values)."""
    name, dims = next(iter(shapes.items()))
    flag = f"--input-shape {name}={','.join(map(str, dims))}"
    if task is Task.IMAGE_CLASSIFICATION:
        raise ConfigError("does not apply to a Hugging Face image model", where=flag,
                          expected=f"no --input-shape: the size is the image processor's "
                                   f"({directory / 'preprocessor_config.json'})", got=name,
                          hint="drop --input-shape (--mean/--std adjust the normalisation)")
    raise ConfigError("does not apply to a Hugging Face text model: its inputs are sized by --max-length",
                      where=flag, expected="--max-length N for the sequence length (batch, N)", got=name,
                      hint=f"drop --input-shape and pass --max-length {dims[-1]} (now {max_length})")


def class_names(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The class names of ``config.json``'s ``id2label`` in output order; empty when it has none, or only
    transformers' defaults (``LABEL_0``, ``LABEL_1``, ...), which name no class."""
    labels = config.get("id2label")
    if not isinstance(labels, Mapping) or not labels:
        return ()
    try:
        ordered = [str(labels[k]) for k in sorted(labels, key=lambda k: int(k))]
    except (TypeError, ValueError):
        return ()
    if all(n == f"LABEL_{i}" for i, n in enumerate(ordered)):
        return ()
    return tuple(ordered)


def load_hf_dir(directory: Path, *, task: Task | str | None = None, max_length: int = 64,
                preprocess: Mapping[str, Any] | None = None, trust_remote_code: bool = False,
                input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> ModelSource:
    """Load an HF directory: config, tokenizer/image processor, and the PyTorch model for reference.

    ``preprocess`` options (``mean``, ``std``, ...) are set over the image processor's values of an image
    model; for a text model they are an error naming them. A folder that needs its own Python code is refused
    unless ``trust_remote_code`` (:func:`check_remote_code`); the value is recorded in ``details``. A ``task``
    that contradicts ``config.json`` and any ``input_shapes`` are refused before the model loads."""
    go_offline()
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise SourceError("not a Hugging Face model directory (no config.json)", where=str(directory),
                          hint="pass the folder that save_pretrained wrote")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except ValueError as exc:  # UnicodeDecodeError included
        raise SourceError(f"config.json is not valid JSON: {exc}", where=str(cfg_path)) from exc
    if not isinstance(config, dict):
        raise SourceError("config.json is not a JSON object", where=str(cfg_path),
                          expected='{"architectures": [...], "model_type": ..., ...} as save_pretrained writes it',
                          got=f"a JSON {type(config).__name__}")
    trust_remote_code = trust_remote_code is True  # only an explicit True opts in
    needs_code = check_remote_code(directory, trust_remote_code)  # before transformers is even imported
    the_task = Task.parse(task, where="--task") if task else task_from_config(config, str(cfg_path))
    if task:
        _check_task(the_task, config, cfg_path)
    if input_shapes:
        _refuse_input_shapes(input_shapes, the_task, max_length, directory)
    what = f"{directory.name} (a {the_task.value} model)"
    if the_task is not Task.IMAGE_CLASSIFICATION:  # refuse image options before the slow model load
        apply_image_options(None, preprocess, what=what)
        positions = config.get("max_position_embeddings")
        if isinstance(positions, int) and not isinstance(positions, bool) and max_length > positions:
            raise ConfigError("longer than the model's positions", where="--max-length (max_length)",
                              expected=f"1..{positions} (max_position_embeddings in {cfg_path})", got=max_length)
    fingerprint = _weights_fingerprint(directory) + (_code_fingerprint(directory) if needs_code else "")
    transformers = require("transformers", "hf", "a Hugging Face source")
    torch = require("torch", "hf", "a Hugging Face source")
    auto = {Task.TEXT_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
            Task.IMAGE_CLASSIFICATION: transformers.AutoModelForImageClassification}.get(the_task,
                                                                                       transformers.AutoModel)
    try:
        model = auto.from_pretrained(str(directory), local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:
        first = first_line(exc)
        if "Unrecognized configuration class" in first:  # the task's AutoModel does not take this config
            raise ConfigError(f"a {the_task.value} model cannot be loaded from this config.json", where="--task "
                              f"{the_task.value}", expected=f"a task of model_type {config.get('model_type')!r}",
                              got=f"{cfg_path}: model_type {config.get('model_type')!r}",
                              hint="pass the task this model does (text-classification, feature-extraction, "
                                   "image-classification), or drop --task") from exc
        raise SourceError(f"cannot load the model ({type(exc).__name__}: {first[:200]})", where=str(directory),
                          hint="are the weight files complete? re-save with save_pretrained") from exc
    model.eval()
    check_finite_weights(model.state_dict().items(), where=str(directory))
    pre: Preprocess
    if the_task is Task.IMAGE_CLASSIFICATION:
        proc = json.loads((directory / "preprocessor_config.json").read_text()) \
            if (directory / "preprocessor_config.json").is_file() else {}
        size = proc.get("size", {"height": 224, "width": 224})
        hw = (int(size.get("height", 224)), int(size.get("width", 224))) if isinstance(size, dict) else (224, 224)
        pre = ImagePreprocess(size=hw, mean=tuple(proc.get("image_mean", (0.5, 0.5, 0.5))),  # type: ignore[arg-type]
                              std=tuple(proc.get("image_std", (0.5, 0.5, 0.5))))  # type: ignore[arg-type]
        inputs: tuple[TensorSpec, ...] = (TensorSpec("pixel_values", ("batch", 3, *hw), "float32"),)
    else:
        try:
            tok = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True,
                                                             trust_remote_code=trust_remote_code)
        except Exception as exc:
            raise SourceError("cannot load the tokenizer", where=str(directory),
                              hint="save the tokenizer beside the model (tokenizer.save_pretrained)") from exc
        pre = TextPreprocess(tokenizer_dir=directory, max_length=max_length, trust_remote_code=trust_remote_code)
        inputs = tuple(TensorSpec(n, ("batch", "sequence"), "int64") for n in tok.model_input_names)
    if the_task is Task.FEATURE_EXTRACTION:
        outputs = (TensorSpec("last_hidden_state", ("batch", "sequence", int(config.get("hidden_size", 0))),
                              "float32"),)
    else:
        outputs = (TensorSpec("logits", ("batch", len(config.get("id2label", {})) or "labels"), "float32"),)
    io = IOSpec(inputs, outputs)
    pre = apply_image_options(pre, preprocess, what=what)

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            result = model(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()})
        first = result.logits if the_task.is_classification else result.last_hidden_state
        return as_numpy_list([first])

    return ModelSource(
        kind="huggingface", name=directory.name, io=io, task=the_task, preprocess=pre,
        fingerprint=fingerprint, path=directory, handle=directory, reference=reference,
        class_names=class_names(config) if the_task.is_classification else (),
        details={"architecture": (config.get("architectures") or ["?"])[0],
                 "optimum_task": OPTIMUM_TASK.get(the_task, "auto"),
                 "transformers": str(transformers.__version__), "trust_remote_code": trust_remote_code},
    )
