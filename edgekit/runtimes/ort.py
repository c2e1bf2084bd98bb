"""ONNX Runtime adapter."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import DeviceUnavailableError, RuntimeAdapterError, first_line, not_found_hint, require
from edgekit.runtimes.base import RuntimeOptions

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def import_ort() -> Any:
    """Import onnxruntime with its telemetry events switched off (it otherwise logs session events to
    ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``). Every edgekit use of ORT goes through here."""
    ort = require("onnxruntime", None, "ONNX Runtime")
    disable = getattr(ort, "disable_telemetry_events", None)
    if disable is not None:
        disable()
    return ort


def load_graph(path: Path) -> Any:
    """The ``GraphProto`` of the ONNX file ``path`` (external data not read): a missing file or one that is not an
    ONNX model raises :class:`RuntimeAdapterError` naming it (for adapters that read the graph before loading)."""
    import onnx

    if not Path(path).exists():
        raise RuntimeAdapterError("model file not found", where=str(path), hint=not_found_hint(path))
    try:
        return onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and friends
        raise RuntimeAdapterError(f"not an ONNX model (corrupt file?): {first_line(exc)}", where=str(path),
                                  hint="re-export the model") from exc


def graph_input_names(path: Path) -> list[str]:
    """The real inputs (initializers excepted) of the ONNX file ``path``, read by :func:`load_graph` (which raises
    naming a missing or non-ONNX file)."""
    graph = load_graph(path)
    init = {i.name for i in graph.initializer}
    return [i.name for i in graph.input if i.name not in init]


class OrtSession:
    """An ``onnxruntime.InferenceSession`` behind the Session protocol."""

    def __init__(self, sess: Any, requested: tuple[str, ...], threads: int | None) -> None:
        self._sess = sess
        self.input_names = tuple(i.name for i in sess.get_inputs())
        self._requested = requested
        self._threads = threads

    def _feed(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise RuntimeAdapterError("inputs missing for the model", expected=", ".join(self.input_names),
                                      got=sorted(feeds), hint="the data does not provide every model input")
        # exporters may prune unused inputs (e.g. token_type_ids); feed only what the graph declares
        return {n: feeds[n] for n in self.input_names}

    def bind(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """The bare ``InferenceSession.run`` on ``feeds`` (see :func:`edgekit.runtimes.base.timed_call`)."""
        return partial(self._sess.run, None, self._feed(feeds))

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        feed = self._feed(feeds)
        try:
            return [np.asarray(o) for o in self._sess.run(None, feed)]
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise RuntimeAdapterError(f"onnxruntime failed to run the model: {exc}".splitlines()[0],
                                      hint="check input names, shapes and dtypes") from exc

    def info(self) -> dict[str, Any]:
        used = list(self._sess.get_providers())
        fallback = [p for p in self._requested if p not in used]
        return {"providers": used, "requested_providers": list(self._requested),
                "fallback": fallback, "intra_op_threads": self._threads}


class OrtRuntime:
    """Loads ``.onnx`` files with ONNX Runtime; records the providers actually used."""

    name = "onnxruntime"
    formats = frozenset({"onnx"})

    def versions(self) -> dict[str, str]:
        ort = import_ort()
        return {"onnxruntime": str(ort.__version__)}

    def load(self, path: Path, options: RuntimeOptions) -> OrtSession:
        ort = import_ort()
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if options.threads:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "1")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = options.providers or ("CPUExecutionProvider",)
        available = set(ort.get_available_providers())
        usable = [p for p in providers if p in available]
        if not usable:
            raise DeviceUnavailableError(
                "none of the requested execution providers is available",
                where=str(path), expected=", ".join(sorted(available)), got=list(providers),
                hint="install an onnxruntime build with that provider or change the target's providers")
        if not Path(path).exists():
            raise RuntimeAdapterError("model file not found", where=str(path), hint=not_found_hint(path))
        try:
            sess = ort.InferenceSession(str(path), sess_options=so, providers=usable)
        except Exception as exc:
            first = first_line(exc)
            raise RuntimeAdapterError(f"onnxruntime cannot load the model: {first}", where=str(path),
                                      hint="is the file a complete .onnx model? re-export it") from exc
        return OrtSession(sess, tuple(providers), options.threads)
