"""Fit data to a model: check every mismatch up front, then turn batches of raw items into feeds.

:func:`plan` checks a data set's kind (image, text, tensor) and preprocessing against the model's inputs
and returns the converter that :class:`~edgekit.data.Dataset` applies to each batch of raw items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from edgekit.data.preprocess import ImagePreprocess, Preprocess, TextPreprocess, image_array, tokenizer
from edgekit.data.readers import Item, NpzTensors, Reader
from edgekit.errors import CalibrationError
from edgekit.types import IOSpec, TensorSpec

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
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
    return _tensor_plan(path, cast(NpzTensors, reader), io)


def _fixed(dim: Any) -> int | None:
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


def _single_input(path: Path, io: IOSpec, what: str) -> TensorSpec:
    if len(io.inputs) != 1:
        raise CalibrationError(f"{what} data can feed only a single-input model", where=str(path),
                               expected="a model with one input", got=f"inputs {list(io.input_names)}",
                               hint="images and .npz tensors feed one-input models; text sets feed token inputs")
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


def _tensor_plan(path: Path, reader: NpzTensors, io: IOSpec) -> Plan:
    spec = _single_input(path, io, "tensor")
    want = np.dtype(spec.dtype)
    for split, (shape, dtype) in reader.item_spec().items():
        where = f"{path}:{split}"
        if len(shape) + 1 != len(spec.shape) or any(
                _fixed(w) not in (None, h) for h, w in zip(shape, spec.shape[1:], strict=False)):
            raise CalibrationError("tensor shape does not match the model input", where=where,
                                   expected=f"(N, {', '.join(map(str, spec.shape[1:]))}) for {spec.name!r}",
                                   got=f"(N, {', '.join(map(str, shape))})",
                                   hint="store preprocessed inputs with the model's shape, item axis first")
        if not (dtype.kind == want.kind or (dtype.kind in "iu" and want.kind in "iu")):
            raise CalibrationError("tensor dtype does not suit the model input", where=where,
                                   expected=f"{want} (or another {'float' if want.kind == 'f' else 'integer'} type)",
                                   got=str(dtype), hint="store preprocessed inputs in the model's dtype, or put "
                                   "images in a folder so edgekit preprocesses them")
    name = spec.name

    def convert(items: list[Item]) -> Feeds:
        for where, arr in items:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise CalibrationError("tensor data contains NaN or inf", where=where,
                                       expected="finite values", hint="clean or drop the bad items")
        return {name: np.stack([arr for _, arr in items]).astype(want, copy=False)}

    return Plan(convert, _fixed(spec.shape[0]))
