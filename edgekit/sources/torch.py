"""PyTorch sources: an ``nn.Module`` (Python API) or ``file.py:factory`` + a checkpoint (CLI).

Checkpoints are never unpickled unsafely: ``.safetensors`` is preferred and ``.pt``/``.pth`` are
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import sha256_file
from edgekit.data import ImagePreprocess, Preprocess
from edgekit.errors import ConfigError, SourceError, first_line, require
from edgekit.sources.base import (
    ModelSource,
    apply_image_options,
    as_numpy_list,
    check_shape_value,
    check_task_fits,
)
from edgekit.types import IOSpec, Task, TensorSpec


def _torch() -> Any:
    return require("torch", "torch", "a PyTorch source")


def load_factory(spec: str) -> tuple[Any, Any]:
    """Import ``path/to/file.py:factory`` and return (factory callable, its module)."""
    file_part, sep, func = spec.rpartition(":")
    if not sep or not file_part.endswith(".py") or not func:
        raise ConfigError("bad model factory", where="--model", expected="path/to/file.py:factory", got=spec)
    path = Path(file_part)
    if not path.is_file():
        raise SourceError("model factory file not found", where=str(path), hint="check the path before ':'")
    mod_name = f"edgekit_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as exc:  # the file's own main() ran: importing it must not end edgekit
        raise SourceError(f"importing the factory file called sys.exit({exc.code!r})", where=str(path),
                          hint="guard the script part with: if __name__ == '__main__':") from exc
    except Exception as exc:
        raise SourceError(f"importing the factory file failed: {type(exc).__name__}: {exc}", where=str(path)) from exc
    factory = getattr(module, func, None)
    if not callable(factory):
        raise SourceError("factory not found in file", where=f"{path}:{func}",
                          expected="a function returning a torch.nn.Module")
    return factory, module


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a state_dict from ``.safetensors`` or ``.pt``/``.pth`` (``weights_only=True``)."""
    torch = _torch()
    if path.is_dir():
        inside = sorted((f.name for f in path.iterdir() if f.suffix.lower() in (".safetensors", ".pt", ".pth")),
                        key=lambda n: (not n.endswith(".safetensors"), n))[:3]
        raise SourceError("--checkpoint is a directory, not a checkpoint file", where=str(path),
                          expected="a .safetensors, .pt or .pth file holding the model's state_dict",
                          got="a directory" + (f" holding {', '.join(inside)}" if inside else ""),
                          hint=f"pass the file itself, e.g. --checkpoint {path / inside[0]}" if inside else
                          "pass the weights file; a Hugging Face folder is passed as --model DIR, without --checkpoint")
    if not path.is_file():
        raise SourceError("checkpoint not found", where=str(path))
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            st = require("safetensors.torch", "torch", "reading .safetensors checkpoints")
            state: Any = st.load_file(str(path), device="cpu")
        elif suffix in (".pt", ".pth", ".bin"):
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise SourceError("unknown checkpoint type", where=str(path),
                              expected=".safetensors, .pt or .pth", got=suffix or "(no suffix)")
    except SourceError:
        raise
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, Exception) as exc:
        msg = first_line(exc)
        hint = ("the file is truncated or corrupt: re-save it" if "weights_only" not in msg
                else "the checkpoint holds pickled objects; save model.state_dict() or use safetensors")
        raise SourceError(f"cannot read checkpoint ({type(exc).__name__}: {msg[:160]})", where=str(path),
                          hint=hint) from exc
    if isinstance(state, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(hasattr(v, "shape") for v in state.values()):
        raise SourceError("checkpoint is not a state_dict", where=str(path), expected="a mapping of name -> tensor",
                          got=type(state).__name__)
    return dict(state)


def check_finite_weights(tensors: Iterable[tuple[str, Any]], *, where: str) -> None:
    """Refuse weights holding NaN or inf, naming the first such tensor: the export of such a model "disagrees with
    the source" on every item, and the error blamed the exporter."""
    torch = _torch()
    for name, tensor in tensors:
        if not (hasattr(tensor, "is_floating_point") and tensor.is_floating_point()):
            continue
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            kinds = " and ".join(k for k, has in (("NaN", bool(torch.isnan(tensor).any())),
                                                  ("inf", bool(torch.isinf(tensor).any()))) if has)
            raise SourceError(f"the model's weights hold {kinds}: tensor {name!r} has {bad} non-finite value(s) "
                              f"of {tensor.numel()}", where=where, expected="finite weights",
                              hint="the checkpoint (or the training that wrote it) is broken; exporting it would "
                                   "only give non-finite outputs")


def check_checkpoint_dtypes(state: Mapping[str, Any], params: Mapping[str, Any], *, where: str) -> None:
    """Refuse a checkpoint tensor of integer or bool dtype for a float parameter (``load_state_dict`` casts it
    silently: ``_fc.weight`` saved as int32 became whole-number weights). Another float dtype (fp16/bf16 into
    fp32) is a plain cast and stays accepted; names the model does not have are ``load_state_dict``'s to report."""
    for name, tensor in state.items():
        param = params.get(name)
        if param is None or not hasattr(tensor, "is_floating_point") or not param.is_floating_point():
            continue
        if not (tensor.is_floating_point() or tensor.is_complex()):
            dtype, want = str(tensor.dtype).removeprefix("torch."), str(param.dtype).removeprefix("torch.")
            raise SourceError(f"checkpoint tensor {name!r} is {dtype}, but the model's parameter is {want}",
                              where=f"{where}:{name}", expected=f"a float tensor for {name!r} ({want}, fp16 or bf16)",
                              got=dtype, hint="integer weights would be cast to whole numbers: is this the right "
                                              "checkpoint? save model.state_dict() of the float model")


def torch_input_shape(input_shapes: Mapping[str, tuple[int, ...]] | None) -> tuple[int, ...] | None:
    """The shape of a PyTorch source's one input (named ``input``) from ``--input-shape``; a name the source does not
    have is an error, never ignored."""
    if not input_shapes:
        return None
    unknown = [name for name in input_shapes if name != "input"]
    if unknown:
        dims = ",".join(map(str, input_shapes[unknown[0]]))
        raise SourceError("--input-shape names an input the model does not have", where=f"--input-shape "
                          f"{unknown[0]}={dims}", expected="the one input of a PyTorch source, 'input' (or no name)",
                          got=unknown[0], hint=f"write --input-shape {dims} (a PyTorch module's input is named "
                                               "'input' in the export)")
    return input_shapes["input"]


def _fingerprint_module(module: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _image_preprocess(shape: tuple[int, ...], given: Mapping[str, Any] | None, what: str) -> Preprocess:
    """Image preprocessing for a rank-4 input (ImageNet mean/std unless ``given`` says otherwise); image
    options given for another input are an error naming them."""
    default: Preprocess = None
    if len(shape) == 4:
        layout = "NCHW" if shape[1] in (1, 3) else "NHWC"
        size = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
        default = ImagePreprocess(size=size, layout=layout)
    return apply_image_options(default, given, what=f"{what} (input shape {list(shape)})")


def torch_source(
    module: Any,
    *,
    input_shape: tuple[int, ...] | None = None,
    input_name: str = "input",
    output_names: tuple[str, ...] = ("logits",),
    task: Task | str = Task.GENERIC,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
    name: str | None = None,
    checkpoint: Path | None = None,
    where: str | None = None,
    task_where: str = "--task",
) -> ModelSource:
    """Wrap a ``torch.nn.Module`` (put in eval mode) as a source with one float32 image/tensor input.

    ``input_shape`` is required (or a module constant ``INPUT_SHAPE`` via :func:`load_torch_factory`);
    a missing shape is an error, never a guess, and so is one whose input would be over
    :data:`~edgekit.sources.base.MAX_INPUT_BYTES`. NaN/inf weights are refused naming the tensor
    (:func:`check_finite_weights`; ``where`` names the checkpoint or factory in that error). A task the input
    contradicts is refused naming ``task_where`` (:func:`~edgekit.sources.base.check_task_fits`).
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise SourceError("the model factory did not return a torch.nn.Module", where=name or "model",
                          got=type(module).__name__)
    if input_shape is None:
        raise SourceError("input shape unknown", where=name or "model",
                          hint="pass --input-shape 1,3,H,W (or define INPUT_SHAPE in the factory file)")
    shape = check_shape_value(tuple(input_shape), where=f"input shape of {name or 'model'}")
    check_finite_weights(module.state_dict().items(), where=where or name or "model")
    module.eval()
    with torch.no_grad():
        try:
            out = module(torch.zeros(shape))
        except Exception as exc:
            raise SourceError(f"the model does not run on input shape {shape}: {exc}".splitlines()[0],
                              where=name or "model", hint="check --input-shape") from exc
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if len(output_names) != len(outs):
        output_names = tuple(f"output_{i}" for i in range(len(outs)))
    io = IOSpec(
        (TensorSpec(input_name, ("batch", *shape[1:]), "float32"),),
        tuple(TensorSpec(n, ("batch", *tuple(o.shape[1:])), "float32") for n, o in zip(output_names, outs,
                                                                                     strict=True)),
    )
    the_task = Task.parse(task, where=task_where)
    check_task_fits(the_task, io, where=task_where, model=name or type(module).__name__)
    prep = preprocess if (preprocess is None or not isinstance(preprocess, Mapping)) else None
    if prep is None:
        prep = _image_preprocess(shape, preprocess if isinstance(preprocess, Mapping) else None, name or "model")

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            result = module(torch.from_numpy(np.ascontiguousarray(feeds[input_name])))
        return as_numpy_list(result if isinstance(result, (tuple, list)) else (result,))

    fingerprint = sha256_file(checkpoint) if checkpoint else _fingerprint_module(module)
    return ModelSource(
        kind="torch", name=name or type(module).__name__, io=io, task=the_task,
        preprocess=prep, fingerprint=fingerprint, path=checkpoint, handle=module, reference=reference,
        details={"example_shape": list(shape), "torch": str(torch.__version__)},
    )


def load_torch_factory(
    spec: str,
    checkpoint: Path | None,
    *,
    input_shape: tuple[int, ...] | None = None,
    task: Task | str | None = None,
    preprocess: Mapping[str, Any] | None = None,
) -> ModelSource:
    """Build a module from ``file.py:factory`` and load ``checkpoint`` into it (strictly).

    The factory file may define ``INPUT_SHAPE``, ``PREPROCESS`` (dict) and ``TASK``; command-line
    values win over them, key by key (``--mean`` keeps the file's ``std``).
    """
    factory, mod = load_factory(spec)
    try:
        module = factory()
    except SystemExit as exc:
        raise SourceError(f"the factory called sys.exit({exc.code!r}) instead of returning a model", where=spec,
                          expected="a function returning a torch.nn.Module") from exc
    except Exception as exc:
        raise SourceError(f"the factory raised {type(exc).__name__}: {exc}", where=spec) from exc
    if checkpoint is not None:
        state = load_state_dict(checkpoint)
        check_checkpoint_dtypes(state, module.state_dict(), where=str(checkpoint))
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise SourceError("checkpoint does not match the model: " + " ".join(first[:2])[:300],
                              where=str(checkpoint), hint="is this the checkpoint of this factory's model?") from exc
    file = spec.rpartition(":")[0]
    shape = input_shape
    if shape is None and getattr(mod, "INPUT_SHAPE", None) is not None:
        shape = check_shape_value(mod.INPUT_SHAPE, where=f"{file}:INPUT_SHAPE")
    file_pre = getattr(mod, "PREPROCESS", None)
    if file_pre is not None and not isinstance(file_pre, Mapping):
        raise ConfigError("not a dict of preprocessing options", where=f"{file}:PREPROCESS",
                          expected='a dict, e.g. {"size": (224, 224), "mean": (...), "std": (...)}',
                          got=type(file_pre).__name__)
    file_task = getattr(mod, "TASK", Task.GENERIC.value)
    if not isinstance(file_task, (str, Task)):
        raise ConfigError("not a task name", where=f"{file}:TASK", expected="a string such as 'image-classification'",
                          got=type(file_task).__name__)
    return torch_source(
        module, input_shape=shape, task=task or str(file_task),
        preprocess={**dict(file_pre or {}), **dict(preprocess or {})} or None,
        name=Path(file).stem, checkpoint=checkpoint, where=str(checkpoint) if checkpoint else spec,
        task_where="--task" if task else f"{file}:TASK",
    )
