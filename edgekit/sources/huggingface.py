"""Hugging Face model directories (as ``save_pretrained`` / ``Trainer.save_model`` leave them).

Loaded strictly offline (``local_files_only``, ``HF_HUB_OFFLINE=1``); the task comes from the
config's architecture; export goes through optimum-onnx (see :mod:`edgekit.formats.onnx`).
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
from edgekit.errors import SourceError, first_line, require
from edgekit.sources.base import ModelSource, apply_image_options, as_numpy_list
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


def _weights_fingerprint(directory: Path) -> str:
    files = sorted(list(directory.glob("*.safetensors")) + list(directory.glob("*.bin")))
    if not files:
        raise SourceError("no weights in model directory", where=str(directory),
                          expected="model.safetensors (or pytorch_model.bin)")
    return "+".join(sha256_file(f)[:16] for f in files)


def load_hf_dir(directory: Path, *, task: Task | str | None = None, max_length: int = 64,
                preprocess: Mapping[str, Any] | None = None) -> ModelSource:
    """Load an HF directory: config, tokenizer/image processor, and the PyTorch model for reference.

    ``preprocess`` options (``mean``, ``std``, ...) are set over the image processor's values of an image
    model; for a text model they are an error naming them."""
    go_offline()
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise SourceError("not a Hugging Face model directory (no config.json)", where=str(directory),
                          hint="pass the folder that save_pretrained wrote")
    try:
        config = json.loads(cfg_path.read_text())
    except ValueError as exc:
        raise SourceError(f"config.json is not valid JSON: {exc}", where=str(cfg_path)) from exc
    the_task = Task.parse(task, where="--task") if task else task_from_config(config, str(cfg_path))
    what = f"{directory.name} (a {the_task.value} model)"
    if the_task is not Task.IMAGE_CLASSIFICATION:  # refuse image options before the slow model load
        apply_image_options(None, preprocess, what=what)
    fingerprint = _weights_fingerprint(directory)
    transformers = require("transformers", "hf", "a Hugging Face source")
    torch = require("torch", "hf", "a Hugging Face source")
    auto = {Task.TEXT_CLASSIFICATION: transformers.AutoModelForSequenceClassification,
            Task.IMAGE_CLASSIFICATION: transformers.AutoModelForImageClassification}.get(the_task,
                                                                                       transformers.AutoModel)
    try:
        model = auto.from_pretrained(str(directory), local_files_only=True)
    except Exception as exc:
        first = first_line(exc)
        raise SourceError(f"cannot load the model ({type(exc).__name__}: {first[:200]})", where=str(directory),
                          hint="are the weight files complete? re-save with save_pretrained") from exc
    model.eval()
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
            tok = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except Exception as exc:
            raise SourceError("cannot load the tokenizer", where=str(directory),
                              hint="save the tokenizer beside the model (tokenizer.save_pretrained)") from exc
        pre = TextPreprocess(tokenizer_dir=directory, max_length=max_length)
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
        details={"architecture": (config.get("architectures") or ["?"])[0],
                 "optimum_task": OPTIMUM_TASK.get(the_task, "auto"),
                 "transformers": str(transformers.__version__)},
    )
