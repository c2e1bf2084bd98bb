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

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """librknnc prints from C++ to the process's stdout/stderr: the descriptors point at /dev/null meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (devnull, *saved):
            os.close(fd)


class _Failed(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


STEP_FILE: list[str] = []  # where the current step is written (a crash in C++ leaves it: edgekit names it)


def _step(name: str) -> None:
    if STEP_FILE:
        with open(STEP_FILE[0], "w") as f:
            f.write(name)


def _check(step: str, ret: Any) -> None:
    if ret != 0:  # rknn returns -1 for some failures (and raises ValueError for others)
        raise _Failed(f"rknn {step} failed (returned {ret})")


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
        with _quiet():
            _step("config")
            _check("config", rknn.config(target_platform=req["platform"]))
            _step("load_onnx")
            _check("load_onnx", rknn.load_onnx(model=req["model"], inputs=names,
                                               input_size_list=[list(a.shape) for a in first]))
            _step("build")
            _check("build", rknn.build(do_quantization=False))
            _step("export_rknn")
            _check("export_rknn", rknn.export_rknn(req["export"]))
        build_s = time.perf_counter() - t0
        with _quiet():
            _step("init_runtime")
            _check("init_runtime", rknn.init_runtime())  # no target: the simulator
        _step("inference")
        out: dict[str, Any] = {}
        for item in items:
            arrays = [feeds[f"{item}/{n}"].astype(np.float32) if feeds[f"{item}/{n}"].dtype == np.float64
                      else feeds[f"{item}/{n}"] for n in names]
            with _quiet():
                got = rknn.inference(inputs=arrays, data_format=["nchw" if a.ndim == 4 else "nhwc" for a in arrays])
            if got is None:
                raise _Failed(f"rknn inference failed on item {item}")
            for j, o in enumerate(got):
                out[f"{item}/{j}"] = np.asarray(o)
        np.savez(req["outputs"], **out)
    finally:
        rknn.release()
    from importlib.metadata import version

    return {"versions": {"rknn-toolkit2": version("rknn-toolkit2"), "numpy": np.__version__},
            "rknn_bytes": os.path.getsize(req["export"]), "build_s": round(build_s, 3), "items": len(items)}


def main() -> int:
    req = json.loads(open(sys.argv[1]).read())
    answer_path = req["answer"]
    STEP_FILE.append(answer_path + ".step")
    try:
        if req.get("op") != "simulate":
            raise _Failed(f"unknown op {req.get('op')!r}", hint="edgekit and its rknn worker differ: reinstall")
        answer = simulate(req)
    except _Failed as exc:
        answer = {"error": str(exc), "where": req.get("model"), "hint": exc.hint}
    except Exception as exc:  # the toolkit's ValueErrors carry its reason on the first line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:400]
        answer = {"error": f"rknn-toolkit2: {first}", "where": req.get("model"),
                  "hint": "ops RKNN cannot take, or a dynamic shape it cannot fix"}
    tmp = answer_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(answer, f)
    os.replace(tmp, answer_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
