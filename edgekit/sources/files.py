"""Existing model files: ``.onnx`` (the reference is the file itself under ONNX Runtime, fp32)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import sha256_file
from edgekit.data import ImagePreprocess, Preprocess
from edgekit.errors import SourceError, first_line, not_found_hint, require
from edgekit.sources.base import ModelSource, apply_image_options
from edgekit.types import IOSpec, Task, TensorSpec

_ONNX_DTYPES = {1: "float32", 10: "float16", 6: "int32", 7: "int64", 2: "uint8", 3: "int8", 9: "bool"}


def onnx_io(model: Any) -> IOSpec:
    """IOSpec of an ``onnx.ModelProto`` (initializers excluded from the inputs)."""
    inits = {i.name for i in model.graph.initializer}

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        dims: list[int | str] = []
        for i, d in enumerate(t.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or ("batch" if i == 0 else f"dim{i}"))
        return TensorSpec(v.name, tuple(dims), _ONNX_DTYPES.get(t.elem_type, "float32"))

    return IOSpec(tuple(spec(v) for v in model.graph.input if v.name not in inits),
                  tuple(spec(v) for v in model.graph.output))


def check_onnx_file(path: Path) -> Any:
    """Load and check an ONNX file; missing, truncated or corrupt files raise :class:`SourceError`."""
    onnx = require("onnx", None, "reading ONNX files")
    if not path.is_file():
        raise SourceError("model file not found", where=str(path), hint=not_found_hint(path))
    if path.stat().st_size == 0:
        raise SourceError("model file is empty", where=str(path), hint="re-export or re-download the model")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        first = first_line(exc)
        raise SourceError(f"not a valid ONNX model ({type(exc).__name__}: {first[:160]})", where=str(path),
                          hint="the file may be truncated or corrupt: re-export it") from exc
    if not model.graph.output:
        raise SourceError("ONNX model has no outputs", where=str(path))
    return model


def check_finite_initializers(model: Any, *, where: str) -> None:
    """Refuse an ONNX model whose float initializers (its weights) hold NaN or inf, naming the first such tensor;
    its outputs would be non-finite, and the comparison with its artifacts blamed the exporter."""
    numpy_helper = require("onnx.numpy_helper", None, "reading ONNX files")
    for init in model.graph.initializer:
        if init.data_type not in (1, 10, 11, 16):  # float, float16, double, bfloat16
            continue
        try:
            values = numpy_helper.to_array(init)
        except Exception:  # an unreadable initializer is the checker's business, not this check's
            continue
        bad = values.size - int(np.isfinite(values.astype(np.float32, copy=False)).sum())
        if bad:
            kinds = " and ".join(k for k, f in (("NaN", np.isnan), ("inf", np.isinf)) if bool(f(values).any()))
            raise SourceError(f"the model's weights hold {kinds}: initializer {init.name!r} has {bad} non-finite "
                              f"value(s) of {values.size}", where=where, expected="finite weights",
                              hint="the model file (or the training that made it) is broken; exporting it would "
                                   "only give non-finite outputs")


def _check_given_shape(path: Path, spec: TensorSpec, dims: tuple[int, ...]) -> None:
    """``--input-shape`` must have the input's rank and keep every fixed dim of the model (a fixed batch of 1
    given as 2 was an onnxruntime traceback on the first batch)."""
    flag = f"--input-shape {spec.name}={','.join(map(str, dims))}"
    if len(dims) != len(spec.shape):
        raise SourceError("the rank does not match the model input", where=flag,
                          expected=f"{len(spec.shape)} dims, like {spec.name} {list(spec.shape)} in {path.name}",
                          got=f"{len(dims)} dims", hint="give one size per dim of the input, the batch first")
    for i, (want, got) in enumerate(zip(spec.shape, dims, strict=True)):
        if isinstance(want, int) and want != got:
            raise SourceError(f"dim {i} is fixed in the model", where=flag,
                              expected=f"{want} at dim {i} ({spec.name} {list(spec.shape)} in {path.name})", got=got,
                              hint="the model only accepts that size there; re-export it with a dynamic dim to "
                                   "change it")


def load_onnx_file(
    path: Path,
    *,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    task: Task | str = Task.GENERIC,
    preprocess: Preprocess | Mapping[str, Any] | None = None,
) -> ModelSource:
    """An existing ``.onnx`` file as a source. Symbolic dims other than the batch need ``input_shapes``.

    A single float32 ``[N, 1|3, H, W]`` input gets image preprocessing (ImageNet mean/std unless ``preprocess``
    says otherwise: a :class:`Preprocess`, or a mapping of options such as ``mean``/``std`` set over the
    defaults); options given for a model without an image input are an error naming them."""
    path = Path(path)
    model = check_onnx_file(path)
    check_finite_initializers(model, where=str(path))
    io = onnx_io(model)
    shapes = dict(input_shapes or {})
    unknown = set(shapes) - set(io.input_names)
    if unknown:
        raise SourceError("--input-shape names an input the model does not have", where=str(path),
                          expected=", ".join(io.input_names), got=sorted(unknown))
    inputs = []
    for t in io.inputs:
        if t.name in shapes:
            dims = shapes[t.name]
            _check_given_shape(path, t, dims)
            inputs.append(TensorSpec(t.name, (t.shape[0] if isinstance(t.shape[0], int) else "batch", *dims[1:]),
                                     t.dtype))
        else:
            inputs.append(t)
    io = IOSpec(tuple(inputs), io.outputs)
    given = preprocess if isinstance(preprocess, Mapping) else None
    if isinstance(preprocess, Mapping):
        preprocess = None
    if preprocess is None and len(io.inputs) == 1 and len(io.inputs[0].shape) == 4 and io.inputs[0].dtype == "float32":
        s = io.inputs[0].shape
        if isinstance(s[2], int) and isinstance(s[3], int) and s[1] in (1, 3):
            preprocess = ImagePreprocess(size=(s[2], s[3]))
    preprocess = apply_image_options(preprocess, given, what=f"{path.name} (inputs: "
                                     f"{', '.join(f'{t.name} {t.dtype} {list(t.shape)}' for t in io.inputs)})")
    from edgekit.runtimes.ort import import_ort

    ort = import_ort()
    state: dict[str, Any] = {}

    def reference(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if "sess" not in state:
            so = ort.SessionOptions()
            so.log_severity_level = 3
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            state["sess"] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return [np.asarray(o) for o in state["sess"].run(None, dict(feeds))]

    return ModelSource(kind="onnx", name=path.stem, io=io, task=Task.parse(task, where="--task"),
                       preprocess=preprocess, fingerprint=sha256_file(path), path=path, handle=path,
                       reference=reference, details={"opset": [o.version for o in model.opset_import]})
