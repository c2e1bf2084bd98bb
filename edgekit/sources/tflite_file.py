"""An existing ``.tflite`` file as a source: the reference is the file itself under LiteRT (XNNPACK on).

A single float image input stored NHWC (``[1, H, W, 1|3]``, what TFLite models take) is described to edgekit as
NCHW, like every other image source: the data pipeline builds NCHW feeds and the reference transposes them for
the model (``details["input_layout"] = "NHWC"``; the TFLite artifacts record that layout, see
:mod:`edgekit.layout`). Such an input gets image preprocessing (``--mean``/``--std`` apply, on the 0..1 scale:
a model that takes [-1, 1] wants mean 0.5, std 0.5). Any other inputs are fed as tensors, as declared.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import sha256_file
from edgekit.data import ImagePreprocess, Preprocess
from edgekit.errors import EdgekitError, SourceError, first_line, not_found_hint, require
from edgekit.layout import to_layout
from edgekit.sources.base import ModelSource, apply_image_options
from edgekit.types import Dim, IOSpec, Task, TensorSpec

_CUSTOM = 32  # BuiltinOperator.CUSTOM


def custom_ops(path: Path) -> tuple[str, ...]:
    """The names of the custom (non-builtin) operators a ``.tflite`` file uses, sorted."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model(str(path))
    return tuple(sorted({(oc.customCode or b"?").decode(errors="replace") for oc in model.operatorCodes
                         if fu.get_builtin_code_from_operator_code(oc) == _CUSTOM}))


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise SourceError("model file not found", where=str(path), hint=not_found_hint(path))
    with open(path, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise SourceError("not a TFLite model", where=str(path), expected="a flatbuffer with identifier 'TFL3'",
                          got=f"{len(head)} bytes" if len(head) < 8 else head[4:8],
                          hint="the file is truncated or not a .tflite: re-download or re-convert it")


def _spec(d: Mapping[str, Any]) -> TensorSpec:
    sig = d.get("shape_signature")
    dims = list(sig) if sig is not None and len(sig) == len(d["shape"]) else list(d["shape"])
    shape: tuple[Dim, ...] = tuple(int(v) if int(v) > 0 else ("batch" if i == 0 else f"dim{i}")
                                   for i, v in enumerate(dims))
    return TensorSpec(str(d["name"]), shape, np.dtype(d["dtype"]).name)


def nhwc_image(io: IOSpec) -> bool:
    """Whether ``io`` has one float input ``[N, H, W, 1|3]`` with a fixed spatial size (an NHWC image)."""
    if len(io.inputs) != 1:
        return False
    t = io.inputs[0]
    s = t.shape
    return (t.dtype == "float32" and len(s) == 4 and s[3] in (1, 3) and isinstance(s[1], int)
            and isinstance(s[2], int) and s[1] > 3 and s[2] > 3)


def as_nchw(io: IOSpec) -> IOSpec:
    """``io`` with its NHWC image input described as NCHW (what edgekit's data pipeline feeds)."""
    n, h, w, c = io.inputs[0].shape
    return IOSpec((TensorSpec(io.inputs[0].name, (n, c, h, w), io.inputs[0].dtype),), io.outputs)


def load_tflite_file(path: Path, *, task: Task | str = Task.GENERIC,
                     preprocess: Preprocess | Mapping[str, Any] | None = None) -> ModelSource:
    """An existing ``.tflite`` file as a source (see the module docstring). A model LiteRT cannot run here (a
    custom op this LiteRT build lacks) is a :class:`SourceError` naming the op."""
    path = Path(path)
    _check_file(path)
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.litert import LiteRTRuntime

    require("ai_edge_litert", "tflite", "reading .tflite models")
    try:
        custom = custom_ops(path)
    except Exception as exc:  # a truncated flatbuffer: struct.error / IndexError from the reader
        raise SourceError(f"not a complete TFLite model ({type(exc).__name__}: {first_line(exc, 160)})",
                          where=str(path), hint="the file is truncated or corrupt: re-download or re-convert it"
                          ) from exc
    try:
        sess = LiteRTRuntime().load(path, RuntimeOptions(threads=None))
    except EdgekitError as exc:
        if custom:
            raise SourceError(f"LiteRT cannot run the model: it uses the custom op(s) {', '.join(custom)}, which "
                              "this LiteRT build does not implement", where=str(path),
                              got=first_line(exc.__cause__ or exc, 160),
                              hint="re-export the model with builtin ops only, or register the op in a LiteRT "
                                   "build of your own") from exc
        raise SourceError(f"LiteRT cannot load the model: {first_line(exc, 200)}", where=str(path),
                          hint="the file may be corrupt: re-download or re-convert it") from exc
    interp = sess._it
    io = IOSpec(tuple(_spec(d) for d in interp.get_input_details()),
                tuple(_spec(d) for d in interp.get_output_details()))
    layout = "NHWC" if nhwc_image(io) else "NCHW"
    given = preprocess if isinstance(preprocess, Mapping) else None
    pre: Preprocess = None if isinstance(preprocess, Mapping) else preprocess
    if layout == "NHWC":
        io = as_nchw(io)
        if pre is None:
            h, w = io.inputs[0].shape[2:]
            pre = ImagePreprocess(size=(int(h), int(w)))
    pre = apply_image_options(pre, given, what=f"{path.name} (inputs: "
                              f"{', '.join(f'{t.name} {t.dtype} {list(t.shape)}' for t in io.inputs)})")

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return sess.run(to_layout(feeds, layout))

    details: dict[str, Any] = {"input_layout": layout, "runtime": "litert"}
    if custom:
        details["custom_ops"] = list(custom)
    return ModelSource(kind="tflite", name=path.stem, io=io, task=Task.parse(task, where="--task"),
                       preprocess=pre, fingerprint=sha256_file(path), path=path, handle=path, reference=reference,
                       details=details)
