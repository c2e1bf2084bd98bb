"""Fit data to a model: check every mismatch up front, then turn batches of raw items into feeds.

:func:`plan` checks a data set's kind (image, text, tensor) and preprocessing against the model's inputs
and returns the converter that :class:`~edgekit.data.Dataset` applies to each batch of raw items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np

from edgekit.data.preprocess import ImagePreprocess, Preprocess, TextPreprocess, image_array, tokenizer
from edgekit.data.readers import Item, Reader
from edgekit.data.readers.tensors import UNNAMED, ItemSpec
from edgekit.data.splits import Split
from edgekit.errors import CalibrationError
from edgekit.types import IOSpec, TensorSpec

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
NUMPY_DEFAULT = "arr_0"
"""The name ``np.savez(path, array)`` gives an array passed without a name: it feeds a one-input model."""
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class Plan:
    """``convert`` turns a list of raw items into one batch of feeds; ``fixed_batch`` is the model's fixed
    batch size, ``None`` if it takes any."""

    convert: Callable[[list[Item]], Feeds]
    fixed_batch: int | None


def plan(kind: str, path: Path, reader: Reader, io: IOSpec, preprocess: Preprocess) -> Plan:
    """The plan for feeding ``kind`` data at ``path`` to ``io``; a :class:`CalibrationError` for any mismatch."""
    if not io.inputs:
        raise CalibrationError("the model has no inputs to feed", where=str(path))
    text_model = "input_ids" in io.input_names or isinstance(preprocess, TextPreprocess)
    shapes = ", ".join(f"{t.name} {t.dtype}{list(t.shape)}" for t in io.inputs)
    if kind == "text":
        if not text_model or isinstance(preprocess, ImagePreprocess):
            raise CalibrationError("text data given for a model that does not take token ids", where=str(path),
                                   expected="an image set, a folder of images or a .npz of tensors",
                                   got=f"text for inputs {shapes}", hint="pass data that matches the model")
        return _text_plan(path, io, preprocess)
    if kind == "image":
        if text_model:
            raise CalibrationError("image data given for a text model", where=str(path),
                                   expected="sentences: a .txt file or a text set such as 'sentences'",
                                   got=f"images for inputs {shapes}", hint="pass data that matches the model")
        return _image_plan(path, io, preprocess)
    return _tensor_plan(path, cast(TensorReader, reader), io)


def _fixed(dim: Any) -> int | None:
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


def _single_input(path: Path, io: IOSpec, what: str) -> TensorSpec:
    if len(io.inputs) != 1:
        raise CalibrationError(f"{what} data can feed only a single-input model", where=str(path),
                               expected="a model with one input", got=f"inputs {list(io.input_names)}",
                               hint="for several inputs give a .npz with one array per input (item axis first) "
                                    "or a folder of .npz files (one item each), arrays named after the inputs")
    return io.inputs[0]


def _image_plan(path: Path, io: IOSpec, preprocess: Preprocess) -> Plan:
    spec = _single_input(path, io, "image")
    if not isinstance(preprocess, ImagePreprocess):
        raise CalibrationError("image data needs image preprocessing", where=str(path),
                               expected="an ImagePreprocess (size, mean, std, layout)", got=preprocess,
                               hint="give the model's preprocessing, or pass a .npz of ready tensors")
    dtype = np.dtype(spec.dtype)
    if dtype.kind != "f" or len(spec.shape) != 4:
        raise CalibrationError("image data needs a float input of rank 4", where=str(path),
                               expected=f"{spec.name} float32 [N, C, H, W] or [N, H, W, C]",
                               got=f"{spec.name} {spec.dtype}{list(spec.shape)}")
    c_axis, hw_axes = (1, (2, 3)) if preprocess.layout == "NCHW" else (3, (1, 2))
    channels = _fixed(spec.shape[c_axis])
    if channels not in (1, 3):
        raise CalibrationError(f"the model input does not have 1 or 3 channels in {preprocess.layout} layout",
                               where=str(path), expected="1 or 3 channels",
                               got=f"{spec.name}{list(spec.shape)}", hint="check the preprocessing layout")
    for axis, want in zip(hw_axes, preprocess.size, strict=True):
        if _fixed(spec.shape[axis]) not in (None, want):
            raise CalibrationError("the preprocessing size does not match the model input", where=str(path),
                                   expected=f"size {tuple(spec.shape[a] for a in hw_axes)}",
                                   got=f"size {preprocess.size}", hint="set ImagePreprocess(size=...) to match")
    name, pp, c = spec.name, preprocess, channels

    def convert(items: list[Item]) -> Feeds:
        return {name: np.stack([image_array(raw, where, pp, c) for where, raw in items]).astype(dtype, copy=False)}

    return Plan(convert, _fixed(spec.shape[0]))


def _text_plan(path: Path, io: IOSpec, preprocess: Preprocess) -> Plan:
    if not isinstance(preprocess, TextPreprocess):
        raise CalibrationError("text data needs a tokenizer", where=str(path),
                               expected="a TextPreprocess(tokenizer_dir, max_length)", got=preprocess,
                               hint="load the model from a Hugging Face folder that holds its tokenizer")
    length = preprocess.max_length
    for spec in io.inputs:
        if spec.name not in TEXT_INPUTS:
            raise CalibrationError(f"model input {spec.name!r} cannot be made from text", where=str(path),
                                   expected="inputs among " + ", ".join(TEXT_INPUTS), got=list(io.input_names))
        if len(spec.shape) != 2 or np.dtype(spec.dtype).kind not in "iu":
            raise CalibrationError("token inputs must be integer [batch, sequence]", where=str(path),
                                   got=f"{spec.name} {spec.dtype}{list(spec.shape)}")
        if _fixed(spec.shape[1]) not in (None, length):
            raise CalibrationError("the model's sequence length differs from max_length", where=str(path),
                                   expected=f"max_length={spec.shape[1]}", got=f"max_length={length}",
                                   hint=f"use TextPreprocess(max_length={spec.shape[1]})")
    tok = tokenizer(str(preprocess.tokenizer_dir), preprocess.trust_remote_code)
    specs = io.inputs

    def convert(items: list[Item]) -> Feeds:
        enc = tok([text for _, text in items], padding="max_length", truncation=True, max_length=length,
                  return_tensors="np")
        ids = np.asarray(enc["input_ids"])
        made = {"input_ids": ids, "attention_mask": enc.get("attention_mask", np.ones_like(ids)),
                "token_type_ids": enc.get("token_type_ids", np.zeros_like(ids)),
                "position_ids": np.broadcast_to(np.arange(ids.shape[1]), ids.shape)}
        return {s.name: np.ascontiguousarray(made[s.name], dtype=np.dtype(s.dtype)) for s in specs}

    return Plan(convert, _fixed(specs[0].shape[0]))


class TensorReader(Protocol):
    """A reader of tensors fed as-is: it knows each split's arrays before reading any item."""

    def item_spec(self) -> Mapping[Split, ItemSpec]: ...


@dataclass(frozen=True)
class _Binding:
    """How one array of the data feeds one model input: ``whole`` items are a whole feed (one call each, e.g. a
    scalar or a recurrent state), the others are stacked on the input's first (batch) axis."""

    array: str
    spec: TensorSpec
    whole: bool


def _fits(shape: tuple[int, ...], dims: tuple[Any, ...]) -> bool:
    return len(shape) == len(dims) and all(_fixed(w) in (None, h) for h, w in zip(shape, dims, strict=True))


def _bind(path: Path, split: str, arrays: ItemSpec, io: IOSpec) -> list[_Binding]:
    """Bind the data's arrays to the model's inputs by name (an unnamed array, :data:`NUMPY_DEFAULT` included,
    feeds a one-input model; an array named after no input is refused, never fed as another) and check each one's
    item shape and dtype; errors name the input that does not fit."""
    where = f"{path}:{split}" if UNNAMED in arrays else str(path)
    names = list(arrays)
    if UNNAMED in arrays and len(io.inputs) != 1:
        raise CalibrationError("calibration / eval arrays can feed only a single-input model", where=where,
                               expected="one array per model input, named after it: " + ", ".join(io.input_names),
                               got=f"inputs {list(io.input_names)}", hint="np.savez(path, " + ", ".join(
                                   f"{t.name}=..." for t in io.inputs) + ", split=...)  # item axis first")
    if len(names) == 1 and len(io.inputs) == 1 and names[0] in (UNNAMED, NUMPY_DEFAULT, io.inputs[0].name):
        pairs = [(names[0], io.inputs[0])]
    else:
        if len(names) == 1 and len(io.inputs) == 1:  # one array, named after no input: never fed under another name
            raise CalibrationError(f"array {names[0]!r} is not a model input", where=f"{where}:{names[0]}",
                                   expected=f"an array named after the model's input: {io.inputs[0].name}",
                                   got=f"arrays {names}", hint=f"name it {io.inputs[0].name!r} (np.savez(path, "
                                   f"{io.inputs[0].name}=...)), or use the split form: arrays 'calibration' and "
                                   "'eval'")
        missing = [t.name for t in io.inputs if t.name not in arrays]
        if missing:
            raise CalibrationError(f"model input {missing[0]!r} has no array in the data", where=where,
                                   expected="one array per model input, named after it: " +
                                            ", ".join(f"{t.name} {t.dtype}{list(t.shape)}" for t in io.inputs),
                                   got=f"arrays {names}", hint="np.savez(path, " +
                                   ", ".join(f"{t.name}=..." for t in io.inputs) + ", labels=...)  # item axis first")
        extra = [n for n in names if n not in io.input_names]
        if extra:
            raise CalibrationError(f"array {extra[0]!r} matches no model input", where=where,
                                   expected="arrays named after the inputs: " + ", ".join(io.input_names),
                                   got=f"arrays {names}", hint="rename it, or drop it (labels go in 'labels')")
        pairs = [(t.name, t) for t in io.inputs]
    out = []
    for name, spec in pairs:
        shape, dtype = arrays[name]
        what = f"model input {spec.name!r}"
        if spec.shape and _fits(shape, spec.shape[1:]):
            whole = False
        elif _fits(shape, spec.shape):
            whole = True
        else:
            raise CalibrationError(f"tensor shape does not fit {what}", where=f"{where}:{name}" if name else where,
                                   expected=f"(N, {', '.join(map(str, spec.shape[1:]))}) for {spec.name!r} (items "
                                            f"stacked on its batch axis), or (N, {', '.join(map(str, spec.shape))}) "
                                            "(each item one whole call)",
                                   got=f"(N, {', '.join(map(str, shape))})",
                                   hint="store the inputs with the model's shape, item axis first")
        want = np.dtype(spec.dtype)
        if not (dtype.kind == want.kind or (dtype.kind in "iu" and want.kind in "iu")):
            raise CalibrationError(f"tensor dtype does not suit {what}", where=f"{where}:{name}" if name else where,
                                   expected=f"{want} (or another {_family(want)} type)", got=str(dtype),
                                   hint="store preprocessed inputs in the model's dtype, or put images in a "
                                        "folder so edgekit preprocesses them")
        out.append(_Binding(name, spec, whole))
    return out


def _family(dtype: np.dtype[Any]) -> str:
    return {"f": "float", "b": "bool"}.get(dtype.kind, "integer")


def _batch_of(path: Path, bindings: list[_Binding]) -> int | None:
    """The batch size the bindings allow: 1 when an input is fed whole, a stacked input's fixed first dim, else
    any (``None``); an error when they disagree."""
    need = {b.spec.name: 1 if b.whole else _fixed(b.spec.shape[0]) for b in bindings}
    fixed = {k: v for k, v in need.items() if v is not None}
    if len(set(fixed.values())) > 1:
        raise CalibrationError("the model's inputs need different batch sizes", where=str(path),
                               got=", ".join(f"{k}: {v}" for k, v in fixed.items()),
                               hint="an input fed whole (its item has the model's full shape) takes one item "
                                    "per call")
    return next(iter(fixed.values()), None)


def _tensor_plan(path: Path, reader: TensorReader, io: IOSpec) -> Plan:
    plans = {split: _bind(path, split, arrays, io) for split, arrays in reader.item_spec().items()}
    bindings = next(iter(plans.values()), [])
    fixed = _batch_of(path, bindings)
    for split, b in plans.items():
        if [(x.array, x.whole) for x in b] != [(x.array, x.whole) for x in bindings]:
            raise CalibrationError("the splits hold differently shaped arrays", where=f"{path}:{split}",
                                   hint="store every split's items with the same shapes")

    def convert(items: list[Item]) -> Feeds:
        feeds: Feeds = {}
        for b in bindings:
            want = np.dtype(b.spec.dtype)
            values = []
            for where, raw in items:
                arr = raw.get(b.array) if isinstance(raw, Mapping) else None
                if arr is None:
                    raise CalibrationError(f"the item has no array {b.array!r}", where=where,
                                           expected=f"arrays {[x.array for x in bindings]}",
                                           got=sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__)
                arr = np.asarray(arr)
                dims = b.spec.shape if b.whole else b.spec.shape[1:]
                if not _fits(arr.shape, dims):
                    raise CalibrationError(f"tensor shape does not fit model input {b.spec.name!r}", where=where,
                                           expected=f"({', '.join(map(str, dims))})",
                                           got=f"({', '.join(map(str, arr.shape))})")
                if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                    raise CalibrationError(f"tensor data for {b.spec.name!r} contains NaN or inf", where=where,
                                           expected="finite values", hint="clean or drop the bad items")
                values.append(arr)
            if b.whole and len(values) != 1:
                raise CalibrationError(f"model input {b.spec.name!r} is fed whole: one item per call", where=str(path),
                                       got=f"batch_size={len(values)}", hint="use batch_size=1")
            stacked = values[0] if b.whole else np.stack(values)
            feeds[b.spec.name] = np.require(stacked.astype(want, copy=False), requirements="C")  # keeps 0-d
        return feeds

    return Plan(convert, fixed)
