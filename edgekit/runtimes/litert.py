"""LiteRT (TFLite) runtime adapter on ``ai-edge-litert``; ``tflite_runtime`` only where it is absent.

A session takes float feeds in the source's layout; it quantizes them to the model's int8/uint8 inputs
with each tensor's scale/zero point and dequantizes int8 outputs, so every runtime answers in floats.
``info()`` says which ops the XNNPACK delegate took and which fell back to the built-in kernels.
Feeds are matched to the model's inputs by name, else by position (litert-torch names inputs
``args_0``...). Layout (NCHW→NHWC) is handled by the pipeline from the artifact's recorded layout.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import MissingDependencyError, RuntimeAdapterError, not_found_hint

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_FLATBUFFER_ID = b"TFL3"


def _interpreter_module() -> tuple[Any, str]:
    """``ai_edge_litert.interpreter`` (preferred) or ``tflite_runtime.interpreter`` and its package name."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter  # type: ignore[import-not-found]

        return interpreter, "tflite-runtime"
    except ImportError as exc:
        raise MissingDependencyError("the LiteRT runtime needs ai-edge-litert", where="litert",
                                     hint="pip install 'edgekit[tflite]'") from exc


def check_tflite_file(path: Path) -> None:
    """Raise :class:`RuntimeAdapterError` unless ``path`` is a readable TFLite flatbuffer."""
    p = Path(path)
    if not p.is_file():
        raise RuntimeAdapterError("model file not found", where=str(p), hint=not_found_hint(p))
    with open(p, "rb") as fh:
        head = fh.read(8)
    if len(head) < 8 or head[4:8] != _FLATBUFFER_ID:
        raise RuntimeAdapterError("not a TFLite flatbuffer", where=str(p), expected="file identifier 'TFL3'",
                                  got=head[4:8] if len(head) >= 8 else f"{len(head)} bytes",
                                  hint="convert the model with edgekit (--formats tflite) or check the file")


def _delegated_nodes(ops: list[dict[str, Any]]) -> set[int]:
    """Indices of the nodes that a delegate node replaced: walk back from each delegate's outputs to its
    inputs through the producers of the original graph."""
    producer: dict[int, int] = {}
    for op in ops:
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = int(op["index"])
    taken: set[int] = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        stop = {int(t) for t in op["inputs"]}
        todo = [int(t) for t in op["outputs"]]
        while todo:
            t = todo.pop()
            node = producer.get(t)
            if t in stop or node is None or node in taken:
                continue
            taken.add(node)
            src = next(o for o in ops if int(o["index"]) == node)
            todo.extend(int(x) for x in src["inputs"] if int(x) >= 0)
    return taken


class LiteRTSession:
    """One ``Interpreter`` behind the Session protocol (float in, float out)."""

    def __init__(self, interp: Any, package: str, threads: int | None, xnnpack: bool) -> None:
        self._it = interp
        self._inputs = interp.get_input_details()
        self._outputs = interp.get_output_details()
        self.input_names = tuple(str(d["name"]) for d in self._inputs)
        self._package = package
        self._threads = threads
        self._xnnpack = xnnpack
        self._info = self._op_report()

    def _op_report(self) -> dict[str, Any]:
        try:
            ops = list(self._it._get_ops_details())
        except Exception:  # older runtimes lack the call: report nothing rather than guess
            return {"delegates": [], "op_counts": {}}
        taken = _delegated_nodes(ops)
        real = [o for o in ops if o["op_name"] != "DELEGATE"]
        on_delegate = Counter(str(o["op_name"]) for o in real if int(o["index"]) in taken)
        fallback = Counter(str(o["op_name"]) for o in real if int(o["index"]) not in taken)
        delegates = (["XNNPACK"] if on_delegate else []) + (["CPU builtin kernels"] if fallback or not on_delegate
                                                             else [])
        return {"delegates": delegates,
                "ops_total": len(real), "ops_on_delegate": dict(on_delegate),
                "ops_on_builtin_kernels": dict(fallback),
                "input_dtypes": [np.dtype(d["dtype"]).name for d in self._inputs],
                "output_dtypes": [np.dtype(d["dtype"]).name for d in self._outputs]}

    def _match(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        if all(n in feeds for n in self.input_names):
            return [np.asarray(feeds[n]) for n in self.input_names]
        if len(feeds) >= len(self.input_names):
            return [np.asarray(v) for v in list(feeds.values())[: len(self.input_names)]]
        raise RuntimeAdapterError("inputs missing for the model", expected=", ".join(self.input_names),
                                  got=sorted(feeds), hint="the data does not provide every model input")

    def _set_inputs(self, feeds: Mapping[str, np.ndarray]) -> None:
        values = self._match(feeds)
        for d, x in zip(self._inputs, values):  # noqa: B905 - runs on Python 3.9 boards; _match sized it
            x = _to_tensor(x, d)
            if tuple(x.shape) != tuple(d["shape"]):
                self._it.resize_tensor_input(d["index"], list(x.shape))
                self._it.allocate_tensors()
                self._inputs = self._it.get_input_details()
            self._it.set_tensor(d["index"], x)

    def bind(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """Copy ``feeds`` into the interpreter's input tensors (quantized for integer inputs) and return the bare
        ``invoke`` (see :func:`edgekit.runtimes.base.timed_call`)."""
        try:
            self._set_inputs(feeds)
        except RuntimeAdapterError:
            raise
        except Exception as exc:
            raise RuntimeAdapterError(f"LiteRT refused the inputs: {exc}".splitlines()[0],
                                      hint="check input shapes/dtypes and the artifact's layout (NCHW/NHWC)") from exc
        invoke: Callable[[], object] = self._it.invoke
        return invoke

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            self._set_inputs(feeds)
            self._it.invoke()
            return [_from_tensor(self._it.get_tensor(d["index"]), d) for d in self._outputs]
        except RuntimeAdapterError:
            raise
        except Exception as exc:
            raise RuntimeAdapterError(f"LiteRT failed to run the model: {exc}".splitlines()[0],
                                      hint="check input shapes/dtypes and the artifact's layout (NCHW/NHWC)") from exc

    def info(self) -> dict[str, Any]:
        return {**self._info, "package": self._package, "threads": self._threads, "xnnpack": self._xnnpack}


def _to_tensor(x: np.ndarray, d: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype(d["dtype"])
    if dtype.kind in "iu" and x.dtype.kind == "f":
        scale, zero = d["quantization"]
        if not scale:
            raise RuntimeAdapterError("integer model input without quantization parameters", where=str(d["name"]),
                                      hint="feed integers directly or re-quantize with float I/O")
        info = np.iinfo(dtype)
        q: np.ndarray = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)
        return q
    cast: np.ndarray = x.astype(dtype, copy=False)
    return cast


def _from_tensor(y: np.ndarray, d: Mapping[str, Any]) -> np.ndarray:
    scale, zero = d["quantization"]
    if np.dtype(d["dtype"]).kind in "iu" and scale:
        out: np.ndarray = ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return out
    return np.array(y)


class LiteRTRuntime:
    """Loads ``.tflite`` files with the LiteRT interpreter (XNNPACK on by default)."""

    name = "litert"
    formats = frozenset({"tflite"})

    def __init__(self, xnnpack: bool = True) -> None:
        self.xnnpack = xnnpack

    def versions(self) -> dict[str, str]:
        from importlib import metadata

        _, package = _interpreter_module()
        return {package: metadata.version(package)}

    def load(self, path: Path, options: Any) -> LiteRTSession:
        """Load ``path``; ``options.device == "no-xnnpack"`` (or ``xnnpack=False``) turns the delegate off."""
        interpreter, package = _interpreter_module()
        check_tflite_file(path)
        xnnpack = self.xnnpack and getattr(options, "device", None) != "no-xnnpack"
        kwargs: dict[str, Any] = {"model_path": str(path), "num_threads": options.threads or None}
        resolver = getattr(interpreter, "OpResolverType", None)
        if not xnnpack and resolver is not None:
            kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            it = interpreter.Interpreter(**kwargs)
            it.allocate_tensors()
        except Exception as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else type(exc).__name__
            hint = ("the model uses an op this runtime does not have: convert with builtin ops only, or use a "
                    "runtime build that registers it") if "op" in text.lower() else "re-convert the model"
            raise RuntimeAdapterError(f"LiteRT cannot load the model: {first}", where=str(path), hint=hint) from exc
        return LiteRTSession(it, package, options.threads, xnnpack)
