"""TFLite full int8 for an Arm Ethos-U NPU: 16-bit islands priced by Vela's estimate, on ImageNet convnets.

What: an Ethos-U takes a full-integer model with int8 I/O; an op kept float falls back to the MCU's CPU, so the
default int8 for it runs no sensitivity search. ``TfliteInt8Options(islands=("int16",), price_on=ACCEL)`` searches
with 16-bit islands only (the op and the op making its input run 16x8: integer-only, on the NPU) and prices each
by Vela's estimated latency of the whole model compiled for ``ACCEL``. This compares it with the default, as a user
gets both through ``edgekit.quantize``: at the default budget, and with ``--min-cosine 0.995`` (the search runs only
where the check on the tuning items misses the budget's aim).

How: the models and held-out photos of ``benchmarks/int8_vs_peers.py`` (bundled ``photos`` calibration split;
seeded crops of six photos from other wheels, never seen by a decision). Accuracy: each int8 against the fp32
``.tflite`` on LiteRT's CPU kernels (the Vela-compiled model is the same integer graph; no Ethos-U silicon here).
Speed: Vela's estimates (never measurements) for ethos-u55-128 and ethos-u65-256, with its NPU / CPU op placement.

Run: ``.venv/bin/python benchmarks/int8_npu_islands.py [--models mnv2,lite0,lite1]``. Writes
``benchmarks/results/int8_npu_islands.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _peers import crop_boxes, crop_feeds, heldout_photos, outputs, session
from int8_accuracy_vs_defaults import machine, save_results
from int8_vs_peers import MODELS, image_agreement, log

NAME = "int8_npu_islands"
PRICE_ON = "ethos-u55-128"
ACCELERATORS = ("ethos-u55-128", "ethos-u65-256")


def variants() -> dict[str, tuple[Any, Any]]:
    """name -> (TFLite int8 options, the run's accuracy budget): the search runs only where the check on the tuning
    items misses the budget's aim, so the islands are also tried with a tighter budget (--min-cosine 0.995)."""
    from edgekit.quantization.tflite import TfliteInt8Options
    from edgekit.results import AccuracyBudget

    islands = TfliteInt8Options(io="int8", islands=("int16",), price_on=PRICE_ON)
    return {"int8 (default for an NPU)": (TfliteInt8Options(io="int8"), AccuracyBudget()),
            f"int8 + 16-bit islands priced on {PRICE_ON}": (islands, AccuracyBudget()),
            f"int8 + 16-bit islands priced on {PRICE_ON}, --min-cosine 0.995": (islands,
                                                                                 AccuracyBudget(min_cosine=0.995))}


def run_model(key: str, n_heldout: int) -> dict[str, Any]:
    import edgekit
    from edgekit.data import load_dataset
    from edgekit.estimators.vela import estimate
    from edgekit.formats.base import FormatOptions
    from edgekit.formats.tflite import TfliteOptions
    from edgekit.pipeline import RunOptions

    spec = MODELS[key]
    src, ds = spec.source(), load_dataset(spec.dataset)
    out: dict[str, Any] = {"title": spec.title, "variants": {}}
    with tempfile.TemporaryDirectory(prefix=f"edgekit-npu-{key}-") as tmp_dir:
        tmp = Path(tmp_dir)
        say = lambda m: log(f"    [{key}] {m}")  # noqa: E731
        onnx_fp32 = edgekit.export(src, tmp, fmt="onnx", calibration=ds, progress=say)
        fp32 = edgekit.export(src, tmp, fmt="tflite", calibration=ds, canonical=onnx_fp32, progress=say)
        boxes = crop_boxes(heldout_photos(), n_heldout)
        held = crop_feeds(boxes, src.preprocess, src.io.inputs[0].name)
        ref = outputs(session("tflite", fp32.path), held, fp32.layout)
        for i, (name, (opts, budget)) in enumerate(variants().items()):
            t0 = time.perf_counter()
            run = RunOptions(format_options=FormatOptions(TfliteOptions(int8=opts)), budget=budget)
            art = edgekit.quantize(src, fp32, "int8", calibration=ds, out_dir=tmp / f"v{i}", target=PRICE_ON,
                                   options=run, progress=say)
            seconds = time.perf_counter() - t0
            got = outputs(session("tflite", art.path), held, fp32.layout)
            vela = {acc: estimate(art.path, acc).to_dict() for acc in ACCELERATORS}
            out["variants"][name] = {"agreement": image_agreement(ref, got), "vela": vela, "seconds": seconds,
                                     "size_mb": art.size_bytes / 2**20, "settings": dict(art.settings),
                                     "notes": list(art.notes)}
            top1 = out["variants"][name]["agreement"]["top1_agreement"]
            log(f"  [{key}] {name}: {seconds:.0f}s, top-1 {top1:.3f}")
    out["n_heldout"] = len(held)
    return out


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# TFLite int8 for an Ethos-U NPU: 16-bit islands priced by Vela", "",
             f"Machine (accuracy runs, quantization): {m.get('cpu')}; Vela {res['vela_version']}. Held-out: seeded "
             "crops of six photos from other wheels (as `int8_vs_peers.py`); accuracy against the fp32 `.tflite` on "
             "LiteRT's CPU kernels; latency: Vela's estimates, never measurements.", "",
             "| model | variant | top-1 agr. | cos mean | cos min | 16-bit islands | "
             + " | ".join(f"{a} est. ms (NPU/CPU ops)" for a in ACCELERATORS) + " | quantize s |",
             "|---|---|---|---|---|---|" + "---|" * len(ACCELERATORS) + "---|"]
    for key, r in res["models"].items():
        for name, v in r["variants"].items():
            a = v["agreement"]
            est = " | ".join(f"{e['latency_ms']:.3g} ({e['npu_ops']}/{e['cpu_ops']})" for e in v["vela"].values())
            islands = len(v["settings"].get("islands_16bit") or [])
            lines.append(f"| {key} | {name} | {a['top1_agreement']:.3f} | {a['cosine_mean']:.4f} | "
                         f"{a['cosine_min']:.4f} | {islands} | {est} | {v['seconds']:.0f} |")
    lines += ["", f"Command: `.venv/bin/python benchmarks/int8_npu_islands.py` ({res['minutes']:.1f} min).", ""]
    for key, r in res["models"].items():
        for name, v in r["variants"].items():
            lines += [f"## {key} / {name}", "", *(f"- {n}" for n in v["notes"]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="mnv2,lite0,lite1")
    parser.add_argument("--heldout", type=int, default=120)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    res: dict[str, Any] = {"machine": machine(), "vela_version": version("ethos-u-vela"), "price_on": PRICE_ON,
                           "models": {k: run_model(k, args.heldout) for k in args.models.split(",")}}
    res["minutes"] = (time.perf_counter() - t0) / 60
    save_results(NAME, res, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
