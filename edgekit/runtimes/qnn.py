"""Qualcomm Hexagon NPU (HTP) through ONNX Runtime's QNN execution provider (the ``onnxruntime-qnn`` plugin).

On an x86_64 machine the plugin's HTP backend runs the graph on an **emulator** of the Hexagon Tensor Processor:
the outputs are the NPU's numerics (u8/u16 activations, per-channel s8 weights, float layers in fp16), its
timings are not the NPU's speed. On a Snapdragon device the same session runs on the NPU itself.

A target names the SoC in its runtime's ``device`` (``"SM8650"``); :data:`SOCS` maps it to QNN's ``soc_model``
and ``htp_arch``, the numbers the HTP library itself names (a wrong pair is refused by it). Sessions never fall
back to the CPU silently: an op the HTP cannot take fails the load, with the op named. QNN takes static shapes
only: a dynamic batch (first axis) is fixed to 1, any other dynamic dimension is refused with its name.
:func:`compile_context` writes the context binary a device loads (an ``EPContext`` ONNX model beside its ``.bin``)
for one SoC.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, RuntimeAdapterError, first_line, require
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.ort import OrtSession, import_ort, load_graph

EP_NAME = "QNNExecutionProvider"


@dataclass(frozen=True)
class Soc:
    """A Snapdragon SoC as QNN knows it: its marketing name, ``soc_model`` number and HTP architecture."""

    name: str
    soc_model: int
    htp_arch: int


#: The SoCs targets may name. Numbers as the HTP library of onnxruntime-qnn 2.7.0 (QAIRT 2.51) resolves them
#: (its log names the SoC for each number and refuses unknown ones).
SOCS: dict[str, Soc] = {s.name.split(" ")[0]: s for s in (
    Soc("SM8550 (Snapdragon 8 Gen 2)", 43, 73),
    Soc("SM8650 (Snapdragon 8 Gen 3)", 57, 75),
    Soc("SM8750 (Snapdragon 8 Elite)", 69, 79),
    Soc("SC8380XP (Snapdragon X Elite)", 60, 73),
)}


def soc_of(device: str | None, where: str) -> Soc:
    """The :class:`Soc` a target's ``device`` names; :class:`ConfigError` naming ``where`` otherwise."""
    if device not in SOCS:
        raise ConfigError("unknown Snapdragon SoC for the QNN HTP runtime", where=where,
                          expected=", ".join(SOCS), got=device, hint="set the runtime's device to one of these")
    return SOCS[device]


def _plugin() -> Any:
    """The ``onnxruntime_qnn`` module, its EP library registered with ONNX Runtime once per process."""
    qnn = require("onnxruntime_qnn", "qnn", "the Qualcomm QNN execution provider")
    ort = import_ort()
    if not any(d.ep_name == EP_NAME for d in ort.get_ep_devices()):
        ort.register_execution_provider_library(EP_NAME, qnn.get_library_path())
    return qnn


def _session_options(path: Path, soc: Soc, extra: Mapping[str, str], trace: Path | None = None,
                     fallback: bool = False) -> Any:
    ort = import_ort()
    qnn = _plugin()
    so = ort.SessionOptions()
    so.log_severity_level = 4  # its errors are raised, with the trace's reasons, not printed
    if not fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")  # never a silent CPU fallback
    for name in _free_dims(path):
        so.add_free_dimension_override_by_name(name, 1)
    for key, value in extra.items():
        so.add_session_config_entry(key, value)
    devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    ep = {"backend_path": qnn.get_qnn_htp_path(), "soc_model": str(soc.soc_model), "htp_arch": str(soc.htp_arch)}
    if trace is not None:
        ep |= {"enable_framework_op_trace": "1", "framework_op_trace_dir": str(trace)}
    so.add_provider_for_devices(devices, ep)
    return so


def _dynamic_dims(path: Path) -> tuple[list[str], list[str]]:
    """The symbolic batch dimensions (first axis) of the model's inputs, and every other dynamic dimension as
    ``input[axis] (name)``; a missing file or one that is not an ONNX model raises."""
    graph = load_graph(path)
    init = {i.name for i in graph.initializer}
    dims = [(i.name, k, d.dim_param) for i in graph.input if i.name not in init
            for k, d in enumerate(i.type.tensor_type.shape.dim) if d.dim_param or d.dim_value <= 0]
    batch = {p for _, k, p in dims if k == 0 and p}
    return sorted(batch), [f"{name}[{k}] ({p or '?'})" for name, k, p in dims if p not in batch]


def _free_dims(path: Path) -> list[str]:
    """The symbolic batch dimensions of the model's inputs, which QNN gets fixed to 1; any other dynamic dimension
    raises (QNN takes static shapes only: :meth:`QnnHtpRuntime.emulate` fixes them from the items first)."""
    batch, other = _dynamic_dims(path)
    if other:
        raise RuntimeAdapterError("the QNN HTP backend takes static shapes only: dynamic " + ", ".join(other),
                                  where=str(path), hint="export the model with fixed input shapes (a fixed "
                                  "sequence length for text models); a dynamic batch is fixed to 1 here")
    return batch


def _open(path: Path, soc: Soc, extra: Mapping[str, str] | None = None, trace: Path | None = None) -> Any:
    """An HTP session of ``path`` (no CPU fallback); ``trace``: a folder for QNN's op trace (which ONNX node became
    which QNN op, and why a node could not). A model the HTP cannot take raises, naming its nodes."""
    ort = import_ort()
    options = _session_options(path, soc, dict(extra or {}), trace)  # a bad file or a dynamic shape raises here
    try:
        return ort.InferenceSession(str(path), sess_options=options)
    except Exception as exc:  # ORT's own untyped errors
        why = first_line(exc)
    with tempfile.TemporaryDirectory(prefix="edgekit-qnn-trace-") as tmp:  # why: the trace of a fallback session
        try:
            ort.InferenceSession(str(path), sess_options=_session_options(path, soc, {}, Path(tmp), fallback=True))
            why = unsupported(Path(tmp)) or why
        except Exception:  # the first error stands
            pass
    raise RuntimeAdapterError(f"the QNN HTP backend cannot take the model for {soc.name}: {why}", where=str(path),
                              hint="every op must run on the HTP (no CPU fallback): static int8 (QDQ, e.g. "
                                   "--precisions int8) or fp32 models of the ops QNN supports")


def unsupported(trace: Path) -> str | None:
    """The nodes QNN's op trace in ``trace`` could not place on the HTP (graph-input quantization, which ONNX
    Runtime runs on the CPU by design, left out), as one line; None when there is no trace or no such node."""
    data = _trace(trace)
    if data is None:
        return None
    nodes = [n for n in data.get("unsupported_nodes", [])
             if "consume a graph input" not in str(n.get("reason", ""))]
    if not nodes:
        return None
    total = (data.get("summary") or {}).get("total_onnx_nodes", "?")
    shown = "; ".join(f"{n.get('node_name')} ({n.get('op_type')}: {n.get('reason')})" for n in nodes[:6])
    return f"{len(nodes)} of {total} ONNX nodes cannot run on the HTP: {shown}" + (" ..." if len(nodes) > 6 else "")


def _trace_facts(dest: Path) -> dict[str, Any]:
    """What the compile of ``dest`` recorded beside it (``<dest>.json``: where the nodes landed), {} if nothing."""
    try:
        data: dict[str, Any] = json.loads(dest.with_name(f"{dest.name}.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def _trace(folder: Path) -> dict[str, Any] | None:
    files = sorted(folder.glob("*.json"))
    if not files:
        return None
    try:
        data: dict[str, Any] = json.loads(files[0].read_text())
    except (OSError, ValueError):
        return None
    return data


class QnnSession(OrtSession):
    """An ``InferenceSession`` on the QNN HTP backend behind the Session protocol (ONNX Runtime's session adapter,
    with where it runs: the SoC, HTP architecture, emulated or not)."""

    def __init__(self, sess: Any, soc: Soc, emulated: bool) -> None:
        super().__init__(sess, (EP_NAME,), None)
        self._soc = soc
        self._emulated = emulated

    def info(self) -> dict[str, Any]:
        return {"providers": list(self._sess.get_providers()), "soc": self._soc.name,
                "soc_model": self._soc.soc_model, "htp_arch": f"v{self._soc.htp_arch}",
                "emulated": self._emulated, "cpu_fallback": "disabled"}


def emulated_here() -> bool:
    """Whether the HTP backend here is the x86 emulator (no Hexagon NPU on this machine)."""
    import platform

    return platform.machine().lower() in ("x86_64", "amd64")


class QnnHtpRuntime:
    """Loads ``.onnx`` files on the Hexagon NPU (the HTP emulator on x86_64) for the SoC of ``options.device``."""

    name = "qnn-htp"
    formats = frozenset({"onnx"})

    def versions(self) -> dict[str, str]:
        qnn = _plugin()
        info = getattr(qnn, "build_and_package_info", None)
        return {"onnxruntime": str(import_ort().__version__), "onnxruntime-qnn": str(qnn.__version__),
                "qairt": str(getattr(info, "qnn_version", "?"))}

    def load(self, path: Path, options: RuntimeOptions) -> QnnSession:
        _free_dims(path)  # a missing file or one that is not a model is named as such before the SoC is asked for
        soc = soc_of(options.device, "runtime qnn-htp: device")
        return QnnSession(_open(path, soc), soc, emulated_here())

    def numerics(self, options: RuntimeOptions, precision: str) -> str:
        """Whose numerics a session of ``options`` computes (the executor's ``accuracy_from``)."""
        soc = soc_of(options.device, "runtime qnn-htp: device")
        qnn = _plugin()
        where = "emulator on this x86_64 machine" if emulated_here() else "NPU"
        return (f"Hexagon HTP v{soc.htp_arch} {where} for {soc.name} (onnxruntime-qnn {qnn.__version__})"
                + ("; float layers run in fp16 on the HTP" if precision in ("fp32", "fp16") else ""))

    def emulate(self, path: Path, options: RuntimeOptions, feeds: Sequence[Mapping[str, np.ndarray]],
                progress: Callable[[str], None]) -> tuple[list[list[np.ndarray]], str]:
        """Compile ``path`` for ``options.device`` (the context binary beside it, :func:`compile_context`) and run
        ``feeds`` on the HTP: the outputs per feed, and one line saying what was written. Dynamic input dimensions
        are fixed to the feeds' shapes first (QNN takes static shapes: a text model's sequence length, an image
        model's H and W), so the context binary is for those shapes."""
        soc = soc_of(options.device, "runtime qnn-htp: device")
        path = Path(path)
        dest = path.with_name(f"{path.stem}.{options.device}_ctx.onnx")
        with tempfile.TemporaryDirectory(prefix="edgekit-qnn-static-") as tmp:
            static, fixed = static_copy(path, {k: np.asarray(v).shape for k, v in feeds[0].items()} if feeds else {},
                                        Path(tmp))
            progress(f"  compile {path.name} for {soc.name}" + (f" ({fixed})" if fixed else ""))
            ctx = compile_context(static, options.device, dest, newer_than=path)
            session = QnnSession(_open(static, soc), soc, emulated_here())
            outputs = []
            last = time.monotonic()
            for i, feed in enumerate(feeds):
                if i == 0 or time.monotonic() - last > 2.0:
                    last = time.monotonic()
                    progress(f"  {path.name} on the HTP ({'emulated' if emulated_here() else 'NPU'}) {i}/{len(feeds)}")
                outputs.append(session.run(feed))
        how = "reused" if ctx.reused else f"compiled in {ctx.compile_s:.1f} s"
        note = (f"context binary {dest.name} + {len(ctx.files) - 1} .bin ({ctx.bytes / 1e6:.2f} MB, {how}) for "
                f"{soc.name}" + (f"; {ctx.placed}" if ctx.placed else "") + (f"; {fixed}" if fixed else ""))
        return outputs, note


def static_copy(path: Path, shapes: Mapping[str, tuple[int, ...]], folder: Path) -> tuple[Path, str]:
    """``path`` with the dynamic dimensions of its inputs (other than a named first-axis batch) set from ``shapes``,
    saved in ``folder``, and what was fixed; ``path`` itself and "" when nothing needs fixing."""
    import onnx

    if not _dynamic_dims(path)[1]:
        return path, ""
    model = onnx.load(str(path))
    fixed = []
    for inp in model.graph.input:
        want = shapes.get(inp.name)
        dims = inp.type.tensor_type.shape.dim
        if want is None or len(want) != len(dims):
            continue
        for k, d in enumerate(dims):
            # a named first axis is the batch (overridden by name); any other dynamic dim, an unnamed batch too
            if (d.dim_param or d.dim_value <= 0) and not (k == 0 and d.dim_param):
                fixed.append(f"{inp.name}[{k}]={want[k]}")
                d.Clear()
                d.dim_value = int(want[k])
    if not fixed:
        return path, ""
    out = folder / path.name
    onnx.save(model, str(out))
    _free_dims(out)  # anything still dynamic is refused with its name
    return out, "dynamic dims fixed to the held-out items' shapes: " + ", ".join(fixed)


@dataclass(frozen=True)
class ContextBinary:
    """A compiled QNN context: the ``EPContext`` model a device loads, its ``.bin`` files, and the compile time."""

    model: Path
    files: tuple[Path, ...]
    bytes: int
    compile_s: float
    reused: bool
    placed: str = ""  # "61 of 61 ONNX nodes on the HTP" (QNN's op trace), "" when unknown


def compile_context(path: Path, device: str | None, dest: Path, newer_than: Path | None = None) -> ContextBinary:
    """Compile ``path`` for the SoC ``device`` into the context binary ``dest`` (``<name>_ctx.onnx``) and the
    ``.bin`` beside it: built in a temporary folder and moved into place, so a cut-off compile leaves nothing;
    reused when ``dest`` and its files exist and are newer than ``newer_than`` (default ``path``: the artifact
    a static copy was made from)."""
    soc = soc_of(device, "runtime qnn-htp: device")
    if dest.exists() and dest.stat().st_mtime >= Path(newer_than or path).stat().st_mtime:
        bins = tuple(sorted(dest.parent.glob(f"{dest.stem}_*.bin")))
        if bins:
            facts = _trace_facts(dest)
            return ContextBinary(dest, (dest, *bins), sum(p.stat().st_size for p in (dest, *bins)), 0.0, True,
                                 str(facts.get("placed", "")))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edgekit-qnn-", dir=dest.parent) as tmp:
        staged = Path(tmp) / dest.name
        t0 = time.perf_counter()
        trace = Path(tmp) / "trace"
        sess = _open(path, soc, {"ep.context_enable": "1", "ep.context_file_path": str(staged),
                                 "ep.context_embed_mode": "0"}, trace)
        del sess
        took = time.perf_counter() - t0
        summary = (_trace(trace) or {}).get("summary") or {}
        placed = f"{summary['supported_nodes']} of {summary['total_onnx_nodes']} ONNX nodes on the HTP" \
            if {"supported_nodes", "total_onnx_nodes"} <= set(summary) else ""
        shutil.rmtree(trace, ignore_errors=True)
        (Path(tmp) / f"{dest.name}.json").write_text(json.dumps({"placed": placed, "compile_s": round(took, 3),
                                                                 "soc": soc.name}))
        made = sorted(Path(tmp).iterdir())
        if staged not in made:
            raise RuntimeAdapterError("the QNN EP wrote no context model", where=str(path),
                                      hint="onnxruntime-qnn >= 2.7 writes <name>_ctx.onnx with ep.context_enable=1")
        moved = []
        for f in [p for p in made if p != staged] + [staged]:  # the model last: it exists only when complete
            os.replace(f, dest.parent / f.name)
            moved.append(dest.parent / f.name)
        shutil.rmtree(tmp, ignore_errors=True)
    return ContextBinary(dest, tuple(moved), sum(p.stat().st_size for p in moved), took, False, placed)
