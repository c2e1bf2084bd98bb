"""An existing OpenVINO IR (``.xml`` graph + ``.bin`` weights) as a source: the reference is the IR itself under
the OpenVINO runtime, in f32 (:class:`edgekit.runtimes.openvino.OpenVinoRuntime`'s default precision hint).

A single float image input ``[N, 1|3, H, W]`` gets image preprocessing, as for an ``.onnx`` file; one stored
NHWC (``[N, H, W, 1|3]``, e.g. an IR converted from TFLite) is described as NCHW and transposed for the model
(``details["input_layout"] = "NHWC"``), as for a ``.tflite`` source."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import sha256_file
from edgekit.data import ImagePreprocess, Preprocess
from edgekit.errors import EdgekitError, SourceError, not_found_hint, require
from edgekit.layout import to_layout
from edgekit.sources.base import ModelSource, apply_image_options
from edgekit.sources.tflite_file import as_nchw, nhwc_image
from edgekit.types import Dim, IOSpec, Task, TensorSpec


def _spec(port: Any, name: str) -> TensorSpec:
    shape: list[Dim] = []
    for i, d in enumerate(port.get_partial_shape()):
        shape.append(d.get_length() if d.is_static else ("batch" if i == 0 else f"dim{i}"))
    return TensorSpec(name, tuple(shape), np.dtype(port.get_element_type().to_dtype()).name)


def ir_fingerprint(xml: Path) -> str:
    """SHA-256 over the IR's two files (graph and weights)."""
    return hashlib.sha256(f"{sha256_file(xml)}:{sha256_file(xml.with_suffix('.bin'))}".encode()).hexdigest()


def load_openvino_ir(path: Path, *, task: Task | str = Task.GENERIC,
                     input_shapes: Mapping[str, tuple[int, ...]] | None = None,
                     preprocess: Preprocess | Mapping[str, Any] | None = None) -> ModelSource:
    """An OpenVINO IR as a source (see the module docstring). A missing ``.bin`` is one :class:`SourceError`."""
    path = Path(path)
    if not path.is_file():
        raise SourceError("model file not found", where=str(path), hint=not_found_hint(path))
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise SourceError("the OpenVINO IR's weights file is missing", where=str(weights),
                          expected=f"{weights.name} beside {path.name}",
                          hint="an IR is two files (.xml graph + .bin weights): copy both")
    ov = require("openvino", "openvino", "reading OpenVINO IR")
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.openvino import OpenVinoRuntime, port_name, read_model

    try:
        model = read_model(ov.Core(), path)
    except EdgekitError as exc:
        raise SourceError(exc.message, where=str(path), hint=exc.hint) from exc
    io = IOSpec(tuple(_spec(p, port_name(p)) for p in model.inputs),
                tuple(_spec(p, p.get_any_name()) for p in model.outputs))
    from edgekit.sources.files import _check_given_shape

    shapes = dict(input_shapes or {})
    unknown = set(shapes) - set(io.input_names)
    if unknown:
        raise SourceError("--input-shape names an input the model does not have", where=str(path),
                          expected=", ".join(io.input_names), got=sorted(unknown))
    for t in io.inputs:
        if t.name in shapes:
            _check_given_shape(path, t, shapes[t.name])
    io = IOSpec(tuple(TensorSpec(t.name, (t.shape[0], *shapes[t.name][1:]), t.dtype) if t.name in shapes else t
                      for t in io.inputs), io.outputs)
    layout = "NHWC" if nhwc_image(io) and io.inputs[0].shape[1] not in (1, 3) else "NCHW"
    if layout == "NHWC":
        io = as_nchw(io)
    given = preprocess if isinstance(preprocess, Mapping) else None
    pre: Preprocess = None if isinstance(preprocess, Mapping) else preprocess
    s = io.inputs[0].shape if len(io.inputs) == 1 else ()
    if pre is None and len(s) == 4 and io.inputs[0].dtype == "float32" and s[1] in (1, 3) \
            and isinstance(s[2], int) and isinstance(s[3], int):
        pre = ImagePreprocess(size=(s[2], s[3]))
    pre = apply_image_options(pre, given, what=f"{path.name} (inputs: "
                              f"{', '.join(f'{t.name} {t.dtype} {list(t.shape)}' for t in io.inputs)})")
    state: dict[str, Any] = {}

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if "sess" not in state:
            state["sess"] = OpenVinoRuntime().load(path, RuntimeOptions(threads=None))
        out: list[np.ndarray] = state["sess"].run(to_layout(feeds, layout))
        return out

    return ModelSource(kind="openvino", name=path.stem, io=io, task=Task.parse(task, where="--task"),
                       preprocess=pre, fingerprint=ir_fingerprint(path), path=path, handle=path,
                       reference=reference, details={"input_layout": layout, "runtime": "openvino",
                                                     "ops": len(model.get_ordered_ops())})
