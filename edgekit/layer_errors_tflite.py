"""Per-layer errors of a full-integer ``.tflite`` (ai-edge-quantizer) against its fp32 ``.tflite``:
:func:`tflite_layer_errors`.

Tensors are matched by name (ai-edge-quantizer keeps them), int8 ones dequantized with their scale and zero point.
Both models run in LiteRT with ``experimental_preserve_all_tensors`` and the builtin kernels: the XNNPACK delegate
computes its ops inside and leaves their tensors unreadable, so these are the reference int8 kernels, not the
XNNPACK ones a benchmark uses.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import RuntimeAdapterError, first_line
from edgekit.layer_errors import Feeds, LayerReport, Stats, check_feeds, finish_report


def _tfl_interpreter(path: Path) -> Any:
    """A LiteRT interpreter that keeps every tensor (``experimental_preserve_all_tensors``), builtin kernels only:
    the XNNPACK delegate computes its ops inside and leaves their tensors unreadable."""
    from edgekit.runtimes.litert import _interpreter_module, check_tflite_file

    check_tflite_file(path)
    interpreter, _ = _interpreter_module()
    kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": 1, "experimental_preserve_all_tensors": True}
    resolver = getattr(interpreter, "OpResolverType", None)
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with warnings.catch_warnings():  # "intended for debugging purposes only": that is what this is
            warnings.simplefilter("ignore", UserWarning)
            it = interpreter.Interpreter(**kwargs)
        it.allocate_tensors()
        return it
    except Exception as exc:
        raise RuntimeAdapterError(f"LiteRT cannot load the model: {first_line(exc, 240)}", where=str(path),
                                  hint="pass the fp32 and int8 .tflite files of one run") from exc


def _tfl_outputs(it: Any) -> list[tuple[str, int, str, int]]:
    """(key, tensor index, op name, op index) of every op output in execution order; the key is the tensor's name,
    with ``#K`` for its K-th repeat (LiteRT names need not be unique)."""
    details = {int(t["index"]): t for t in it.get_tensor_details()}
    seen: dict[str, int] = {}
    out = []
    for op in it._get_ops_details():
        for t in op["outputs"]:
            if int(t) < 0:
                continue
            name = str(details[int(t)]["name"])
            k = seen.get(name, 0)
            seen[name] = k + 1
            out.append((name if k == 0 else f"{name}#{k}", int(t), str(op["op_name"]), int(op["index"])))
    return out


def _tfl_value(it: Any, detail: Mapping[str, Any]) -> np.ndarray:
    """A tensor's values, integer tensors dequantized with their (per-tensor or per-channel) scale and zero point."""
    x = np.asarray(it.get_tensor(int(detail["index"])))
    if x.dtype.kind not in "iu":
        return x
    q = detail["quantization_parameters"]
    scales, zeros = np.asarray(q["scales"], np.float64), np.asarray(q["zero_points"], np.float64)
    if scales.size == 0:
        return x  # an integer tensor that is not quantized (indices, shapes)
    if scales.size > 1 and x.ndim:
        shape = [1] * x.ndim
        shape[int(q["quantized_dimension"])] = -1
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    value: np.ndarray = ((x.astype(np.float64) - zeros) * scales).astype(np.float32)
    return value


def _tfl_invoke(it: Any, feed: Mapping[str, np.ndarray], where: str) -> None:
    from edgekit.runtimes.litert import _to_tensor

    inputs = it.get_input_details()
    names = [str(d["name"]) for d in inputs]
    values = [feed[n] for n in names] if all(n in feed for n in names) else list(feed.values())[:len(names)]
    if len(values) != len(names):
        raise RuntimeAdapterError("inputs missing for the model", where=where, expected=", ".join(names),
                                  got=sorted(feed), hint="the data does not provide every model input")
    try:
        for d, v in zip(inputs, values, strict=True):
            x = _to_tensor(np.asarray(v), d)
            if tuple(x.shape) != tuple(d["shape"]):
                it.resize_tensor_input(d["index"], list(x.shape))
                it.allocate_tensors()
            it.set_tensor(d["index"], x)
        it.invoke()
    except RuntimeAdapterError:
        raise
    except Exception as exc:
        raise RuntimeAdapterError(f"LiteRT cannot run the model: {first_line(exc, 240)}", where=where,
                                  hint="the feeds must be the .tflite model's inputs (NHWC images)") from exc


def tflite_layer_errors(fp32_path: Path, int8_path: Path, feeds: Sequence[Feeds], *,
                        kept_float: Sequence[str] = ()) -> LayerReport:
    """Compare the output of every op of the fp32 ``.tflite`` with the int8 model's tensor of the same name
    (ai-edge-quantizer keeps the names), dequantized with its scale and zero point, on ``feeds`` (4-8 calibration
    items as the ``.tflite`` takes them -- matched by input name, else by position --, one item per feed).

    Both run in LiteRT with ``experimental_preserve_all_tensors`` and the builtin kernels (no XNNPACK: a delegate
    hides its tensors): the real int8 reference kernels, which every tensor is kept for (no chunks). ``node``: the
    fp32 op as ``OPNAME_INDEX``; ``kept_float``: the int8 op writes a float tensor (a ``no_quantize`` op), or its
    output's name is in ``kept_float``.
    """
    where = str(int8_path)
    items = check_feeds(feeds, where)
    ref_it, got_it = _tfl_interpreter(Path(fp32_path)), _tfl_interpreter(Path(int8_path))
    ref_out, got_out = _tfl_outputs(ref_it), _tfl_outputs(got_it)
    got_by_key = {key: t for key, t, _, _ in got_out}
    got_op = {key: op for key, _, op, _ in got_out}
    ref_d = {int(t["index"]): t for t in ref_it.get_tensor_details()}
    got_d = {int(t["index"]): t for t in got_it.get_tensor_details()}
    pairs = [(key, t, got_by_key[key], op, i) for key, t, op, i in ref_out
             if key in got_by_key and np.dtype(ref_d[t]["dtype"]).kind == "f"]
    stats = Stats()
    for feed in items:
        _tfl_invoke(ref_it, feed, str(fp32_path))
        _tfl_invoke(got_it, feed, where)
        for key, t, g, _, _ in pairs:
            stats.add(key, _tfl_value(ref_it, ref_d[t]), _tfl_value(got_it, got_d[g]))
    names = set(kept_float)
    order = [(key, op, f"{op}_{i}", key in names or (np.dtype(got_d[g]["dtype"]).kind == "f"
                                                     and got_op[key] != "DEQUANTIZE"))  # float I/O's last op
             for key, t, g, op, i in pairs]
    # upstream: the op inputs of each output, by key (graph inputs as "", constants left out)
    key_of = {t: key for key, t, _, _ in ref_out}
    inputs = {int(d["index"]) for d in ref_it.get_input_details()}
    ups: dict[str, list[str]] = {}
    for op in ref_it._get_ops_details():
        srcs = ["" if int(i) in inputs else key_of[int(i)] for i in op["inputs"]
                if int(i) >= 0 and (int(i) in inputs or int(i) in key_of)]
        for t in op["outputs"]:
            if int(t) in key_of:
                ups[key_of[int(t)]] = srcs
    return finish_report(where, len(items), order, stats, lambda k: ups.get(k, []), None)
