"""The IMX500 toolchain's worker: runs inside its own virtualenv (Sony's model-compression-toolkit 2.5.1 and
imx500-converter[pt] 3.19.2; see imx500.txt), imports nothing of edgekit, and is driven by
:func:`edgekit.toolchains.call` with one JSON request file; it writes one JSON answer to the path the request names
(``answer``): the result, or ``{"error", "where", "hint"}``.

Request (``op = "quantize_convert"``): ``model`` (an fp32 ONNX file), ``calibration`` and ``inputs`` (.npz files
of items, ``<item>/<input>`` arrays, batch 1, the ONNX layout: the calibration items set MCT's ranges, the held-out
``inputs`` are run on MCT's quantized model), ``input_names``, ``outputs`` (the .npz to write: ``<item>/<output
index>``), ``workdir`` (a folder to write into: ``mct.onnx``, the converter's output folder ``imx``).

Steps: the batch is fixed to 1 and constants folded (onnxruntime's basic optimizations: an exporter's shape
arithmetic becomes constants), onnx2torch turns the graph into a torch module (checked against onnxruntime on the
first calibration item), MCT's post-training quantization for the IMX500 (its ``imx500`` target platform
capabilities, v1) sets the ranges on the calibration items, MCT exports the quantized model to ONNX (MCT's
quantizer ops), onnxruntime runs it with mct_quantizers' custom ops on the held-out items (MCT's fake-quant
numerics, not the camera's), and ``imxconv-pt`` (Sony's converter; Java) compiles it to ``packerOut.zip`` with its
memory report in bytes. Answer: ``versions``, ``fp32_check_max_abs``, ``ptq_s``, ``convert_s``, ``items``,
``calibration_items``, ``memory`` (the converter's report, bytes), ``layers`` (the compiled network's layers by
type: all of them run on the IMX500), ``packer``, ``mct_onnx``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

from worker_base import Failed, current_step, last_line, quiet, serve, step  # type: ignore[import-not-found]  # this folder

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")


def _items(path: str, names: list[str]) -> list[list[Any]]:
    import numpy as np

    z = np.load(path)
    items = sorted({k.split("/")[0] for k in z.files}, key=int)
    return [[np.ascontiguousarray(z[f"{i}/{n}"], dtype=np.float32) for n in names] for i in items]


def _folded(model: str, workdir: str) -> Any:
    """The model with batch 1 and its constants folded by onnxruntime (basic level), as an onnx ModelProto."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(model)
    for i in m.graph.input:
        dims = i.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value:
            dims[0].dim_value = 1
    fixed, folded = os.path.join(workdir, "batch1.onnx"), os.path.join(workdir, "folded.onnx")
    onnx.save(m, fixed)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = folded
    so.log_severity_level = 3
    ort.InferenceSession(fixed, so, providers=["CPUExecutionProvider"])
    return onnx.load(folded)


def _memory(folder: str) -> dict[str, Any]:
    """The converter's memory report (``*_MemoryReport.json``, sizes in bytes with --report-size-unit B)."""
    found = [f for f in os.listdir(folder) if f.endswith("_MemoryReport.json")]
    if not found:
        raise Failed("imxconv-pt wrote no memory report", hint="the converter's version differs from imx500.txt")
    with open(os.path.join(folder, found[0])) as f:
        rep = json.load(f)["Memory Report"]

    def size(key: str) -> int:
        m = re.fullmatch(r"\s*(\d+)\s*B\s*", str(rep[key]))
        if not m:
            raise Failed(f"unexpected memory figure {key}={rep[key]!r} in the converter's report")
        return int(m.group(1))

    return {"used_bytes": size("Memory Usage"), "available_bytes": size("Total Memory Available On Chip"),
            "model_bytes": size("Model Memory Physical Size"), "runtime_bytes": size("Runtime Memory Physical Size"),
            "reserved_bytes": size("Reserved Memory"), "utilization": rep.get("Memory Utilization"),
            "fits": bool(rep["Fit In Chip"]), "input_persistent": bool(rep.get("Input Persistent"))}


def _layers(folder: str) -> dict[str, int]:
    """The compiled network's layers by type, from the converter's ``.pbtxt`` (its bookkeeping entries left out)."""
    found = [f for f in os.listdir(folder) if f.endswith(".pbtxt")]
    if not found:
        return {}
    with open(os.path.join(folder, found[0])) as f:
        kinds = re.findall(r'^  type: "([^"]+)"', f.read(), flags=re.M)
    return dict(Counter(k for k in kinds if k not in ("MemoryReport", "Placeholder", "Output")))


def quantize_convert(req: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    names = list(req["input_names"])
    workdir = req["workdir"]
    step("read items")
    calib, held = _items(req["calibration"], names), _items(req["inputs"], names)
    if not calib:
        raise Failed("no calibration items", hint="MCT's post-training quantization needs calibration items")
    step("fold constants")
    folded = _folded(req["model"], workdir)
    step("onnx2torch")
    import torch
    from onnx2torch import convert  # type: ignore[import-not-found]

    torch.set_num_threads(int(req.get("threads") or 2))
    net = convert(folded).eval()
    ref = ort.InferenceSession(os.path.join(workdir, "batch1.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        got = net(*[torch.from_numpy(a) for a in calib[0]])
    got = got if isinstance(got, (list, tuple)) else [got]
    want = ref.run(None, dict(zip(names, calib[0], strict=True)))
    fp32_max_abs = max(float(np.max(np.abs(g.numpy() - w))) for g, w in zip(got, want, strict=True))

    step("MCT post-training quantization")
    import model_compression_toolkit as mct  # type: ignore[import-not-found]

    tpc = mct.get_target_platform_capabilities("pytorch", "imx500", target_platform_version="v1")

    def representative() -> Iterator[list[Any]]:
        yield from calib

    t0 = time.perf_counter()
    with quiet():
        quantized, _ = mct.ptq.pytorch_post_training_quantization(net, representative,
                                                                  target_platform_capabilities=tpc)
    ptq_s = time.perf_counter() - t0
    step("MCT export")
    mct_onnx = os.path.join(workdir, "mct.onnx")
    export = torch.onnx.export  # torch >= 2.9 exports with dynamo by default; MCT 2.5's exporter needs TorchScript's
    torch.onnx.export = functools.partial(export, dynamo=False)
    try:
        with quiet():
            mct.exporter.pytorch_export_model(quantized, save_model_path=mct_onnx, repr_dataset=representative)
    finally:
        torch.onnx.export = export

    step("onnxruntime with MCT's quantizer ops")
    from mct_quantizers import get_ort_session_options  # type: ignore[import-not-found]

    so = get_ort_session_options()
    so.log_severity_level = 3
    so.intra_op_num_threads = int(req.get("threads") or 2)
    sess = ort.InferenceSession(mct_onnx, so, providers=["CPUExecutionProvider"])
    feed_names = [i.name for i in sess.get_inputs()]
    out: dict[str, Any] = {}
    for k, item in enumerate(held):
        for j, o in enumerate(sess.run(None, dict(zip(feed_names, item, strict=True)))):
            out[f"{k}/{j}"] = np.asarray(o)
    np.savez(req["outputs"], **out)

    step("imxconv-pt")
    if shutil.which("java") is None:
        raise Failed("imxconv-pt needs Java, and there is none on PATH",
                      hint="install a Java runtime (Debian: apt-get install default-jre-headless)")
    # imxconv-pt's console script names the folder its virtualenv was built in (a temporary one): run its module
    conv = [sys.executable, "-m", "imx500_converter.main_pt"]
    folder = os.path.join(workdir, "imx")
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    log = os.path.join(workdir, "imxconv.log")
    with open(log, "w") as f:
        proc = subprocess.run([*conv, "-i", mct_onnx, "-o", folder, "--report-size-unit", "B"], stdout=f,
                              stderr=subprocess.STDOUT, timeout=float(req.get("convert_timeout_s") or 1500))
    convert_s = time.perf_counter() - t0
    with open(log) as f:
        text = f.read()
    if proc.returncode != 0:
        errors = [ln for ln in text.splitlines() if "ERROR" in ln or "Error" in ln] or text.splitlines()[-3:]
        raise Failed(f"imxconv-pt failed (exit {proc.returncode}): {' | '.join(errors[-3:])[:600]}",
                      hint="an op or shape the IMX500 cannot take: Sony's converter names it")
    packer = os.path.join(folder, "packerOut.zip")
    if not os.path.exists(packer):
        raise Failed("imxconv-pt wrote no packerOut.zip", hint="see the converter's log: " + log)
    from importlib.metadata import version

    return {"versions": {p: version(p) for p in ("model-compression-toolkit", "mct-quantizers", "imx500-converter",
                                                 "onnx2torch", "torch", "onnxruntime")},
            "fp32_check_max_abs": fp32_max_abs, "ptq_s": round(ptq_s, 2), "convert_s": round(convert_s, 2),
            "items": len(held), "calibration_items": len(calib), "memory": _memory(folder),
            "layers": _layers(folder), "packer": packer, "mct_onnx": mct_onnx}


def _unexpected(exc: Exception) -> tuple[str, str]:  # MCT / onnx2torch errors: their last line names the layer or op
    return (f"{current_step()}: {type(exc).__name__}: {last_line(exc)}",
            "an op onnx2torch or MCT cannot take, or a shape MCT cannot trace")


def main() -> int:
    return int(serve("imx500", {"quantize_convert": quantize_convert}, _unexpected))


if __name__ == "__main__":
    sys.exit(main())
