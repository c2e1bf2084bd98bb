"""The RKNN toolchain's worker: runs inside its own virtualenv (rknn-toolkit2 2.5.0; see rknn.txt), imports nothing
of edgekit, and is driven by :func:`edgekit.toolchains.call` with one JSON request file; it writes one JSON answer
to the path the request names (``answer``): the result, or ``{"error", "where", "hint"}``.

Request (``op = "simulate"``): ``model`` (an ONNX file: fp32, or int8 QDQ whose quantization parameters RKNN
takes as they are), ``platform`` (``rk3588`` ...), ``inputs`` (an .npz of the held-out items: ``<item>/<input>``
arrays, batch 1, the ONNX layout), ``input_names``, ``outputs`` (the .npz to write: ``<item>/<output index>``),
``export`` (where to write the ``.rknn``). The model is built for the platform (fp32 runs in fp16; QDQ int8 keeps
its int8 parameters), exported, and the items run on rknn-toolkit2's x86 simulator: it only runs a model built in
the same session, never a ``.rknn`` read back. Answer: ``versions``, ``rknn_bytes``, ``build_s``, ``items``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from typing import Any

from worker_base import Failed, last_line, quiet, serve, step  # type: ignore[import-not-found]  # this folder

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


def _check(what: str, ret: Any) -> None:
    if ret != 0:  # rknn returns -1 for some failures (and raises ValueError for others)
        raise Failed(f"rknn {what} failed (returned {ret})")


def simulate(req: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from rknn.api import RKNN  # type: ignore[import-not-found]

    feeds = np.load(req["inputs"])
    names = list(req["input_names"])
    items = sorted({k.split("/")[0] for k in feeds.files}, key=int)
    first = [feeds[f"{items[0]}/{n}"] for n in names]
    rknn = RKNN(verbose=False)
    logging.getLogger("rknnLogger").setLevel(logging.ERROR)  # after RKNN(): its constructor resets the level
    t0 = time.perf_counter()
    try:
        with quiet():
            step("config")
            _check("config", rknn.config(target_platform=req["platform"]))
            step("load_onnx")
            _check("load_onnx", rknn.load_onnx(model=req["model"], inputs=names,
                                               input_size_list=[list(a.shape) for a in first]))
            step("build")
            _check("build", rknn.build(do_quantization=False))
            step("export_rknn")
            _check("export_rknn", rknn.export_rknn(req["export"]))
        build_s = time.perf_counter() - t0
        with quiet():
            step("init_runtime")
            _check("init_runtime", rknn.init_runtime())  # no target: the simulator
        step("inference")
        out: dict[str, Any] = {}
        for item in items:
            arrays = [feeds[f"{item}/{n}"].astype(np.float32) if feeds[f"{item}/{n}"].dtype == np.float64
                      else feeds[f"{item}/{n}"] for n in names]
            with quiet():
                got = rknn.inference(inputs=arrays, data_format=["nchw" if a.ndim == 4 else "nhwc" for a in arrays])
            if got is None:
                raise Failed(f"rknn inference failed on item {item}")
            for j, o in enumerate(got):
                out[f"{item}/{j}"] = np.asarray(o)
        np.savez(req["outputs"], **out)
    finally:
        rknn.release()
    from importlib.metadata import version

    return {"versions": {"rknn-toolkit2": version("rknn-toolkit2"), "numpy": np.__version__},
            "rknn_bytes": os.path.getsize(req["export"]), "build_s": round(build_s, 3), "items": len(items)}


def _unexpected(exc: Exception) -> tuple[str, str]:  # the toolkit's ValueErrors carry its reason on the last line
    return f"rknn-toolkit2: {last_line(exc)}", "ops RKNN cannot take, or a dynamic shape it cannot fix"


def main() -> int:
    return int(serve("rknn", {"simulate": simulate}, _unexpected))


if __name__ == "__main__":
    sys.exit(main())
