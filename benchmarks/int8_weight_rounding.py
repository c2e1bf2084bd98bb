"""Optimized weight rounding (``StaticInt8Options(weight_rounding=True)``, :mod:`edgekit.quantization.rounding`) vs
nearest rounding for ONNX static int8: held-out top-1 agreement and mean cosine with fp32 on the int8_vs_peers models.

Same models, calibration (the bundled ``photos`` split, divided into ranges / tuning items as the pipeline does) and
held-out photos (120 seeded crops of six photos shipped in other wheels) as ``int8_vs_peers.py``; every other
option at edgekit's default (bias correction, sensitivity search); real ONNX Runtime CPU kernels. Accuracy only:
no timing (the rounding changes int8 values, not kernels).

Run: ``python benchmarks/int8_weight_rounding.py [--models lite0 lite1 mnv2]`` (about 9 minutes on 2 cores). Writes
``benchmarks/results/int8_weight_rounding.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _peers import crop_boxes, crop_feeds, heldout_photos
from int8_accuracy_vs_defaults import machine, save_results
from int8_vs_peers import MODELS, image_agreement

NAME = "int8_weight_rounding"


def outputs(path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    from edgekit.runtimes.ort import import_ort

    ort = import_ort()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, f)[0] for f in feeds])


def run_model(key: str) -> dict[str, Any]:
    import edgekit
    from edgekit.data import load_dataset
    from edgekit.formats.base import FormatOptions
    from edgekit.formats.onnx import OnnxOptions
    from edgekit.pipeline import RunOptions
    from edgekit.quantization.onnx import StaticInt8Options

    spec = MODELS[key]
    src, ds = spec.source(), load_dataset(spec.dataset)
    out: dict[str, Any] = {"title": spec.title, "variants": {}}
    with tempfile.TemporaryDirectory(prefix=f"edgekit-rounding-{key}-") as tmp_dir:
        tmp = Path(tmp_dir)
        fp32 = edgekit.export(src, tmp, fmt="onnx", calibration=ds, progress=lambda m: None)
        boxes = crop_boxes(heldout_photos(), 120)
        held = crop_feeds(boxes, src.preprocess, src.io.inputs[0].name)
        ref = outputs(fp32.path, held)
        for choice in (False, "auto", True):
            d = tmp / f"weight-rounding-{choice}"
            d.mkdir()
            opts = RunOptions(format_options=FormatOptions(OnnxOptions(
                static_int8=StaticInt8Options(weight_rounding=choice))))
            t0 = time.perf_counter()
            art = edgekit.quantize(src, fp32, "int8", calibration=ds, out_dir=d, target="local-cpu", options=opts,
                                   progress=lambda m: None)
            out["variants"][f"weight_rounding={choice}"] = {
                "agreement": image_agreement(ref, outputs(art.path, held)), "seconds": time.perf_counter() - t0,
                "notes": [n for n in art.notes if "weight rounding" in n or "bias correction" in n]}
            print(key, choice, out["variants"][f"weight_rounding={choice}"]["agreement"], flush=True)
    out["n_heldout"] = len(held)
    return out


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# Optimized weight rounding vs nearest rounding (ONNX static int8)", "",
             f"Machine: {m.get('cpu')}, {m.get('logical_cpus')} logical CPUs; ISA: {', '.join(m.get('isa', []))}; "
             f"onnxruntime {m.get('onnxruntime')}. "
             f"Command: `python benchmarks/int8_weight_rounding.py`. Measured {res['date']}.", "",
             "Cells: top-1 agreement / mean cosine with the fp32 ONNX on 120 held-out photo crops (other photos "
             "than the calibration set); every other option at edgekit's default.", "",
             "| model | nearest (weight_rounding=False) | weight_rounding=\"auto\" (default) | weight_rounding=True |",
             "|---|---|---|---|"]
    for key, r in res["models"].items():
        cells = [f"{v['agreement']['top1_agreement']:.3f} / {v['agreement']['cosine_mean']:.4f}"
                 for v in r["variants"].values()]
        lines.append(f"| {key} | {' | '.join(cells)} |")
    lines += ["", "Notes of the weight rounding (the auto run: its decision on the tuning items):", ""]
    for key, r in res["models"].items():
        lines += [f"- {key}: {n}" for n in r["variants"]["weight_rounding=auto"]["notes"] if "weight rounding" in n]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["lite0", "lite1", "mnv2"], choices=sorted(MODELS))
    args = ap.parse_args(argv)
    res: dict[str, Any] = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "models": {k: run_model(k) for k in args.models}}
    save_results(NAME, res, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
