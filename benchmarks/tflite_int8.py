"""TFLite int8: accuracy, speed and Arm Ethos-U estimates (design.md §8).

1. The demo's fine-tuned digits EfficientNet-Lite0 (64x64) as TFLite fp32 / fp16 / dynamic int8 / full-integer
   int8 with edgekit's own API; held-out accuracy (597 items) of each vs the PyTorch source.
2. The other full-integer int8 routes, measured on the same data and compared with edgekit's int8:
   litert-torch's PT2E quantization (the converter-side route for PyTorch sources) and onnx2tf +
   TFLiteConverter representative dataset (the route for ONNX sources); a route that fails is recorded with
   its error.
3. LiteRT speed, 1 thread: one process, shuffled interleaved rounds; p50 ratios vs fp32. Which ops ran on the
   XNNPACK delegate is read back from each session.
4. Ethos-U estimates (ethos-u-vela, its default system config per accelerator): the digits int8 model on every
   Ethos-U target, and EfficientNet-Lite0 (ImageNet weights, 224x224, calibrated on the bundled photos) int8 on
   Ethos-U55-128.
Every sentence and figure of the results comes from the run (versions, machine and CPU flags included).
Writes benchmarks/results/tflite_int8.{json,md}.

    .venv/bin/python benchmarks/tflite_int8.py [--rounds 20] [--per-round 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
CACHE = REPO / "runs" / "bench-tflite"
ETHOS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512", "ethos-u85-256")
WARMUP_RUNS = 10
LIBRARIES = ("ai-edge-litert", "ai-edge-quantizer", "litert-torch", "onnx2tf", "tensorflow", "torch", "torchao",
             "ethos-u-vela")


def versions() -> dict[str, str]:
    from int8_accuracy_vs_defaults import versions as installed

    return installed(LIBRARIES)


def simd_flags(flags: list[str]) -> list[str]:
    """The CPU flags that decide int8 speed on x86: AVX-512 (any), VNNI (any), AMX (any)."""
    return sorted(f for f in flags if f.startswith(("avx512", "amx")) or "vnni" in f)


def quiet(_msg: str) -> None:
    pass


def digits_source() -> Any:
    import edgekit

    ckpt = REPO / "runs" / ".cache" / "digits-effnet"
    if not (ckpt / "model.safetensors").exists():
        subprocess.run([sys.executable, str(REPO / "examples" / "finetune_digits.py"), "--out", str(ckpt)], check=True)
    return edgekit.load_source(f"{REPO}/examples/digits_model.py:build_model", checkpoint=ckpt / "model.safetensors",
                               task="image-classification")


def accuracy_of(path: Path, layout: str, src: Any, ds: Any) -> float:
    from edgekit.layout import to_layout
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.litert import LiteRTRuntime

    sess = LiteRTRuntime().load(path, RuntimeOptions(threads=1))
    preds = [int(np.argmax(sess.run(to_layout(f, layout))[0])) for f in ds.batches("eval", src.io, src.preprocess)]
    labels = ds.labels("eval")
    return float(np.mean(np.asarray(preds) == labels))


def pt2e_route(src: Any, ds: Any, out: Path) -> dict[str, Any]:
    """litert-torch PT2E full-integer int8 (per-channel symmetric), every calibration-split item, NHWC."""
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgekit.layout import to_layout

    path = out / "pt2e.int8.tflite"
    t0 = time.perf_counter()
    model = litert_torch.to_channel_last_io(src.handle.eval(), args=[0])
    cal = [torch.from_numpy(to_layout(f, "NHWC")["input"]) for f in ds.batches("calibration", src.io, src.preprocess)]
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    m = prepare_pt2e(torch.export.export(model, (cal[0],)).module(), q)
    with torch.no_grad():
        for x in cal:
            m(x)
    m = convert_pt2e(m, fold_quantize=False)
    litert_torch.convert(m, (cal[0],), quant_config=QuantConfig(pt2e_quantizer=q)).export(str(path))
    return {"route": "litert-torch PT2E (symmetric per-channel)", "path": path, "seconds": time.perf_counter() - t0,
            "calibration_items": len(cal)}


def onnx2tf_route(src: Any, ds: Any, out: Path) -> dict[str, Any]:
    """onnx2tf + TFLiteConverter with the calibration items as representative dataset (int8 I/O)."""
    from edgekit.formats.base import FormatOptions
    from edgekit.formats.onnx import OnnxOptions
    from edgekit.pipeline import RunOptions, build_artifact
    from edgekit.types import Format, Precision

    static_batch = RunOptions(format_options=FormatOptions(OnnxOptions(dynamic_batch=False)))
    onnx = build_artifact(src, Format.ONNX, Precision.FP32, out / "onnx", dataset=ds, options=static_batch,
                          progress=quiet)
    try:
        import onnx2tf
        from onnx2tf import onnx2tf as o2t
        from onnx2tf.utils import common_functions as cf

        from edgekit.layout import to_layout

        cal = [to_layout(f, "NHWC")["input"] for f in ds.batches("calibration", src.io, src.preprocess)]
        sample = np.concatenate(cal[:20])
        o2t.download_test_image_data = cf.download_test_image_data = lambda: sample
        onnx2tf.convert(input_onnx_file_path=str(onnx.path), output_folder_path=str(out / "sm"), non_verbose=True)
        import tensorflow as tf

        conv = tf.lite.TFLiteConverter.from_saved_model(str(out / "sm"))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in cal)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
        path = out / "converter.int8.tflite"
        path.write_bytes(conv.convert())
        return {"route": "onnx2tf + TFLiteConverter representative dataset", "path": path}
    except Exception as exc:  # recorded, not hidden: the route may not convert this model
        text = str(exc).strip().splitlines()
        return {"route": "onnx2tf + TFLiteConverter representative dataset", "path": None,
                "error": f"{type(exc).__name__}: {' '.join(text[:2])[:300]}"}


def time_interleaved(models: dict[str, tuple[Path, str]], feed: dict[str, np.ndarray], rounds: int,
                     per_round: int) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]]]:
    """Raw samples (ms) per model, and each session's own account (threads, delegates, ops on XNNPACK)."""
    from edgekit.layout import to_layout
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.litert import LiteRTRuntime

    sessions = {}
    for name, (path, layout) in models.items():
        sessions[name] = (LiteRTRuntime().load(path, RuntimeOptions(threads=1)), to_layout(feed, layout))
        for _ in range(WARMUP_RUNS):
            sessions[name][0].run(sessions[name][1])
    samples: dict[str, list[float]] = {n: [] for n in models}
    order = list(models)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            sess, f = sessions[name]
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                sess.run(f)
                samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    info = {}
    for name, (sess, _f) in sessions.items():
        i = sess.info()
        info[name] = {"threads": i.get("threads"), "delegates": list(i.get("delegates", [])),
                      "ops_total": i.get("ops_total"), "ops_on_delegate": sum(i.get("ops_on_delegate", {}).values())}
    return samples, info


def imagenet_int8(out: Path) -> Path:
    from _models import build_imagenet_model

    import edgekit
    from edgekit.data import load_dataset
    from edgekit.pipeline import build_artifact
    from edgekit.types import Format, Precision

    src = edgekit.load_source(build_imagenet_model(), input_shapes={"input": (1, 3, 224, 224)},
                              task="image-classification",
                              preprocess={"size": (224, 224), "mean": (0.498,) * 3, "std": (0.502,) * 3})
    ds = load_dataset("photos")
    fp32 = build_artifact(src, Format.TFLITE, Precision.FP32, out, dataset=ds, progress=quiet)
    return build_artifact(src, Format.TFLITE, Precision.INT8, out, dataset=ds, canonical=fp32, progress=quiet).path


def main() -> int:
    from edgekit.data import load_dataset
    from edgekit.environment import environment
    from edgekit.estimators.vela import estimate
    from edgekit.pipeline import build_artifact, reference_outputs, validate_artifact
    from edgekit.types import Format, Precision

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=20)
    args = ap.parse_args()
    started = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    src, ds = digits_source(), load_dataset("digits")
    ref = reference_outputs(src, ds, CACHE, None, progress=quiet)
    fp32 = build_artifact(src, Format.TFLITE, Precision.FP32, CACHE, dataset=ds, progress=quiet)
    arts = {Precision.FP32: fp32}
    for prec in (Precision.FP16, Precision.INT8_DYNAMIC, Precision.INT8):
        arts[prec] = build_artifact(src, Format.TFLITE, prec, CACHE, dataset=ds, canonical=fp32, progress=quiet)
    acc: list[dict[str, Any]] = []
    for prec, art in arts.items():
        m = validate_artifact(src, art, ds, reference=ref)
        route = art.settings.get("method") or art.settings.get("converter") or "?"
        acc.append({"artifact": art.name, "precision": prec.value, "route": route,
                    "calibration_split": art.settings.get("calibration_split"),
                    "size_mib": art.size_bytes / 2**20, "accuracy": m.accuracy, "source_accuracy": m.source_accuracy,
                    "drop_points": m.accuracy_drop_points, "top1_agreement": m.top1_agreement,
                    "cosine_mean": m.cosine_mean, "n": m.n})
    routes = []
    for route in (pt2e_route, onnx2tf_route):
        try:
            r = route(src, ds, CACHE)
        except Exception as exc:
            r = {"route": route.__name__, "path": None, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        if r.get("path") is not None:
            r["accuracy"] = accuracy_of(Path(r["path"]), "NHWC", src, ds)
            r["size_mib"] = Path(r["path"]).stat().st_size / 2**20
            r["path"] = str(Path(r["path"]).relative_to(REPO))
        routes.append(r)
    feed = next(iter(ds.batches("eval", src.io, src.preprocess, limit=1)))
    models = {a.name: (a.path, a.layout) for a in arts.values()}
    samples, sess_info = time_interleaved(models, feed, args.rounds, args.per_round)
    base = float(np.median(samples[fp32.name]))
    speed = [{"artifact": n, "n": len(s), "p50_ms": float(np.median(s)), "p90_ms": float(np.percentile(s, 90)),
              "speedup_vs_fp32_p50": base / float(np.median(s)), **sess_info[n]} for n, s in samples.items()]
    ethos = []
    for t in ETHOS:
        e = estimate(arts[Precision.INT8].path, t)
        ethos.append({"model": "digits effnet-lite0 64x64 int8", **e.to_dict()})
    t0 = time.perf_counter()
    big = imagenet_int8(CACHE / "imagenet")
    e = estimate(big, "ethos-u55-128")
    ethos.append({"model": "EfficientNet-Lite0 ImageNet 224x224 int8", **e.to_dict(),
                  "build_seconds": time.perf_counter() - t0})
    env = environment(["litert"])
    libs = versions()
    flags = simd_flags(list(env.get("cpu_flags", [])))
    threads = sorted({str(s["threads"]) for s in speed})
    result = {"benchmark": "tflite_int8", "accuracy": acc, "other_int8_routes": routes, "speed": speed,
              "speed_method": f"threads={', '.join(threads)}, one process, {args.rounds} shuffled "
                              f"interleaved rounds x {args.per_round} runs, {WARMUP_RUNS} warmups each, "
                              "perf_counter_ns",
              "ethos_u": ethos, "environment": env, "versions": libs, "simd_flags": flags,
              "seconds": time.perf_counter() - started, "raw_samples_ms": samples}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "tflite_int8.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    lines = ["# TFLite / LiteRT int8: accuracy, speed, Ethos-U estimates", "",
             f"Command: `.venv/bin/python benchmarks/tflite_int8.py --rounds {args.rounds} --per-round "
             f"{args.per_round}` ({result['seconds'] / 60:.1f} min on this machine)  ",
             f"Machine: {env.get('cpu_model', '?')}, {env.get('logical_cores', '?')} logical cores; AVX-512/VNNI/AMX "
             f"flags: {', '.join(flags) or 'none'}  ",
             f"Versions: {', '.join(f'{k} {v}' for k, v in libs.items())}", "",
             f"## Held-out accuracy, digits EfficientNet-Lite0 ({acc[0]['n']} items, {ds.count('calibration')} "
             "calibration items)", "",
             "| artifact | route | MiB | accuracy | Δ vs source (pt) | top-1 agr. | cosine |",
             "|---|---|---|---|---|---|---|"]
    for a in acc:
        delta = round(-a["drop_points"], 2) + 0.0  # + 0.0: no "-0.00"
        lines.append(f"| {a['artifact']} | {a['route']} | {a['size_mib']:.2f} | {100 * a['accuracy']:.2f}% | "
                     f"{delta:+.2f} | {100 * a['top1_agreement']:.1f}% | {a['cosine_mean']:.4f} |")
    ours = next(a for a in acc if a["precision"] == "int8")
    cs = ours.get("calibration_split") or {}
    if cs:
        lines += ["", f"edgekit's int8: {cs.get('ranges_items')} calibration items set the ranges, "
                  f"{cs.get('tuning_items')} others are its tuning items (checks and search decisions)."]
    lines += ["", "Other full-integer int8 routes calibrated on the same calibration split (all its items), against "
              f"edgekit's int8 ({ours['route']}, {100 * ours['accuracy']:.2f}%):", ""]
    for r in routes:
        what = (f"accuracy {100 * r['accuracy']:.2f}% ({100 * (r['accuracy'] - ours['accuracy']):+.2f} pt vs "
                f"edgekit's int8), {r['size_mib']:.2f} MiB") if "accuracy" in r else f"failed: {r.get('error')}"
        lines.append(f"- {r['route']}: {what}")
    lines += ["", f"## LiteRT speed ({result['speed_method']})", "",
              "| artifact | n | p50 ms | p90 ms | vs fp32 (p50) | delegates | ops on delegate |",
              "|---|---|---|---|---|---|---|"]
    for s in speed:
        lines.append(f"| {s['artifact']} | {s['n']} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | "
                     f"{s['speedup_vs_fp32_p50']:.2f}x | {', '.join(s['delegates']) or '?'} | "
                     f"{s['ops_on_delegate']} / {s['ops_total']} |")
    lines += ["", f"## Arm Ethos-U compiler estimates (ethos-u-vela {libs['ethos-u-vela']}, its default system "
              "config per accelerator; estimates, not measurements)", "",
              "| model | accelerator | system config | ≈ ms | ≈ inf/s | NPU cycles | SRAM KiB | flash KiB | DRAM KiB "
              "| ops NPU / CPU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in ethos:
        lines.append(f"| {e['model']} | {e['accelerator']} | {e['system_config']} | {e['latency_ms']:.2f} | "
                     f"{e['inferences_per_second']:.0f} | {e['cycles_npu']:.0f} | {e['sram_kib']:.0f} | "
                     f"{e['flash_kib']:.0f} | {e['dram_kib']:.0f} | {e['npu_ops']} / {e['cpu_ops']} |")
    (out / "tflite_int8.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
