"""The :class:`ModelSource` record every source loader returns."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import ImagePreprocess, Preprocess
from edgekit.errors import EdgekitError, SourceRunError, as_disk_full, first_line
from edgekit.types import IOSpec, Task

ReferenceFn = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class ModelSource:
    """A loaded model, ready to export and to produce reference outputs.

    ``kind`` is ``torch``, ``huggingface`` or ``onnx``; ``fingerprint`` is a content hash of the
    weights (artifact recipes include it, so a changed checkpoint invalidates cached artifacts);
    ``handle`` is the live object the exporter needs (a ``torch.nn.Module``, an HF model directory,
    or an ``.onnx`` path); ``reference`` runs the source itself on named numpy inputs. ``class_names`` are the
    names of a classifier's classes in output order where the model states them (a Hugging Face ``id2label``).
    """

    kind: str
    name: str
    io: IOSpec
    task: Task
    preprocess: Preprocess
    fingerprint: str
    path: Path | None = None
    handle: Any = field(default=None, compare=False, repr=False)
    reference: ReferenceFn | None = field(default=None, compare=False, repr=False)
    details: Mapping[str, Any] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()

    def run_reference(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs of the source model on ``feeds`` (float32 numpy arrays, in output order)."""
        assert self.reference is not None, "source has no reference function"
        try:
            return self.reference(feeds)
        except (EdgekitError, MemoryError, RecursionError):
            raise
        except Exception as exc:  # the runtime refused the user's data: one line, not its traceback
            if as_disk_full(exc) is not None:
                raise
            inputs = ", ".join(f"{k} {np.asarray(v).dtype}{list(np.shape(v))}" for k, v in feeds.items())
            raise SourceRunError("the source model failed on the data", where=f"{self.name} (inputs {inputs})",
                                 got=first_line(exc, 300),
                                 hint="check the data's values and shapes against the model's inputs (token ids "
                                      "within the vocabulary, sizes the model accepts)") from exc

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "path": str(self.path) if self.path else None,
            "task": self.task.value, "io": self.io.to_dict(), "fingerprint": self.fingerprint,
            "preprocess": self.preprocess.to_dict() if self.preprocess is not None else None,
            **dict(self.details),
        }


IMAGE_OPTIONS = ("size", "mean", "std", "layout", "resize")
"""The image preprocessing options a user may set (``--mean``/``--std`` on the command line)."""


def apply_image_options(pre: Preprocess, given: Mapping[str, Any] | None, *, what: str) -> Preprocess:
    """``pre`` with the user's image options (``given``: ``mean``, ``std``, ``size``, ``layout``, ``resize``)
    set over the source's own values. Options that cannot apply are refused, never ignored: an unknown one,
    or any of them when the source has no image preprocessing (a text model, a non-image input); the error
    names the option. ``what`` says what the source is, for that error."""
    from edgekit.errors import ConfigError

    if not given:
        return pre
    unknown = [k for k in given if k not in IMAGE_OPTIONS]
    if unknown:
        raise ConfigError("unknown preprocessing option", where=f"preprocess[{unknown[0]!r}]",
                          expected=", ".join(IMAGE_OPTIONS), got=unknown[0])
    if not isinstance(pre, ImagePreprocess):
        options = ", ".join(f"--{k}" for k in given)
        raise ConfigError(f"{options} does not apply: {what} has no image preprocessing", where=options,
                          got={k: given[k] for k in given},
                          hint="--mean/--std normalise image inputs; drop them for this model")
    values: dict[str, Any] = {k: tuple(v) if k in ("size", "mean", "std") else v for k, v in given.items()}
    return replace(pre, **values)


def image_options(preprocess: Preprocess | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """User preprocessing as a mapping of image options for :func:`apply_image_options`: an
    :class:`ImagePreprocess` gives all of its values; a text one cannot be set from outside (a Hugging Face
    source uses its own tokenizer) and is an error."""
    from edgekit.errors import ConfigError

    if preprocess is None or isinstance(preprocess, Mapping):
        return dict(preprocess) if preprocess else None
    if isinstance(preprocess, ImagePreprocess):
        return {k: v for k, v in preprocess.to_dict().items() if k != "kind"}
    raise ConfigError("text preprocessing cannot be given for this source", where="preprocess",
                      got=type(preprocess).__name__, hint="a Hugging Face source uses its own tokenizer; set "
                                                          "max_length instead")


def parse_shape(text: str, *, where: str) -> tuple[int, ...]:
    """Parse ``1,3,224,224`` (or ``1x3x224x224``) into a tuple of positive ints, refusing a shape whose float32
    tensor would be over :data:`MAX_INPUT_BYTES` (:func:`check_input_size`)."""
    from edgekit.errors import ConfigError

    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError("bad input shape", where=where, expected="comma-separated positive ints like 1,3,224,224",
                          got=text)
    check_input_size(dims, 4, where=where)
    return dims


#: The largest example input edgekit allocates (bytes of one item's tensor): 2 GiB. A 1x3x30000x30000 float32
#: input (10.8 GB) tried to allocate it, and died in the allocator, or the machine swapped.
MAX_INPUT_BYTES = 1 << 31


def check_input_size(shape: Sequence[int], itemsize: int, *, where: str) -> None:
    """Refuse, from its byte size and before anything is allocated, an input tensor over :data:`MAX_INPUT_BYTES`."""
    from edgekit.errors import ConfigError

    nbytes = itemsize
    for d in shape:
        nbytes *= int(d)
    if nbytes > MAX_INPUT_BYTES:
        raise ConfigError(f"the input would take {nbytes / 1e9:.1f} GB per item ({itemsize}-byte values)",
                          where=where, expected=f"at most {MAX_INPUT_BYTES >> 30} GiB, e.g. 1,3,224,224",
                          got=",".join(str(d) for d in shape),
                          hint="the dimensions are N,C,H,W (or N,H,W,C): check for an extra digit")


def check_shape_value(value: Any, *, where: str) -> tuple[int, ...]:
    """A shape given in a file (``INPUT_SHAPE = (1, 3, 224, 224)``) as a tuple of positive ints; anything else (a
    string, one number, floats, bools, zero or negative sizes) is a :class:`ConfigError` naming ``where``."""
    from edgekit.errors import ConfigError

    ok = isinstance(value, (tuple, list)) and len(value) > 0 and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and int(d) > 0 for d in value)
    if not ok:
        raise ConfigError("not an input shape", where=where, expected="a tuple of positive ints, e.g. (1, 3, 224, 224)",
                          got=value, hint="or pass --input-shape 1,3,H,W")
    shape = tuple(int(d) for d in value)
    check_input_size(shape, 4, where=where)
    return shape


def check_task_fits(task: Task, io: IOSpec, *, where: str, model: str) -> None:
    """Refuse a task that contradicts the model's inputs (``--task text-classification`` on an image model ran, and
    the report said text-classification): a text task needs an integer (token id) input, an image task a float
    input of rank 3 or 4. ``where`` names the option or file key that set the task, ``model`` the model."""
    from edgekit.errors import ConfigError

    kinds = [np.dtype(t.dtype).kind for t in io.inputs]
    if task is Task.TEXT_CLASSIFICATION:
        fits, wanted = any(k in "iu" for k in kinds), "an integer token-id input such as input_ids int64[batch, seq]"
    elif task is Task.IMAGE_CLASSIFICATION:
        fits = any(k == "f" and len(t.shape) in (3, 4) for k, t in zip(kinds, io.inputs, strict=True))
        wanted = "a float image input such as [N, 3, H, W]"
    else:
        return
    if not fits:
        inputs = ", ".join(f"{t.name} {t.dtype}{list(t.shape)}" for t in io.inputs)
        raise ConfigError(f"{task.value} does not fit the model's inputs", where=f"{where} {task.value}",
                          expected=f"{wanted} for {task.value}", got=f"{model} inputs {inputs}",
                          hint="pass the task the model does (" + ", ".join(t.value for t in Task) + ")")


def as_numpy_list(outputs: Sequence[Any]) -> list[np.ndarray]:
    """Convert model outputs (tensors / arrays) to float32 numpy arrays."""
    out = []
    for o in outputs:
        arr = o.detach().cpu().numpy() if hasattr(o, "detach") else np.asarray(o)
        out.append(arr.astype(np.float32) if arr.dtype.kind == "f" else arr)
    return out
