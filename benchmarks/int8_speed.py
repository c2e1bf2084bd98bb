"""Is int8 faster than fp32 here? Interleaved, 1 thread, p50 ratios with n (design.md §8).

Builds (or reuses) the fp32 / fp16 / int8 ONNX artifacts of EfficientNet-Lite0 (ImageNet weights, 224x224,
calibrated on the bundled photos) with edgekit's own API, adds the demo's fine-tuned digits model when
`make demo` has made it, then times every artifact in ONE process: ``rounds`` rounds, each round runs
every model ``per_round`` times in a shuffled order, so drift on this noisy shared VM hits all variants alike.
Writes benchmarks/results/int8_speed.{json,md}.

    .venv/bin/python benchmarks/int8_speed.py [--rounds 30] [--per-round 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def imagenet_artifacts(out: Path) -> tuple[list[Path], dict[str, np.ndarray]]:
    from _models import build_imagenet_model

    import edgekit
    from edgekit.pipeline import RunOptions
    from edgekit.types import Precision

    src = edgekit.load_source(build_imagenet_model(), input_shapes={"input": (1, 3, 224, 224)},
                              task="image-classification",
                              preprocess={"size": (224, 224), "mean": (0.498,) * 3, "std": (0.502,) * 3})
    opts = RunOptions()
    fp32 = edgekit.export(src, out, calibration="photos", options=opts)
    arts = [fp32.path]
    for prec in (Precision.FP16, Precision.INT8):
        arts.append(edgekit.quantize(src, fp32, prec, calibration="photos", out_dir=out, options=opts).path)
    from edgekit.data import load_dataset

    ds = load_dataset("photos")
    feed = next(iter(ds.batches("eval", src.io, src.preprocess, limit=1)))
    return arts, feed


def time_interleaved(models: dict[str, Path], feeds: dict[str, dict[str, np.ndarray]], rounds: int,
                     per_round: int, seed: int = 0) -> dict[str, list[float]]:
    import onnxruntime as ort

    sessions = {}
    for name, path in models.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sessions[name] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        for _ in range(10):  # warmup, not recorded
            sessions[name].run(None, feeds[name])
    samples: dict[str, list[float]] = {n: [] for n in models}
    rng = random.Random(seed)
    order = list(models)
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            sess, feed = sessions[name], feeds[name]
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                sess.run(None, feed)
                samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return samples


def main() -> int:
    from edgekit.environment import environment

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=20)
    args = ap.parse_args()
    models: dict[str, Path] = {}
    feeds: dict[str, dict[str, np.ndarray]] = {}
    arts, feed = imagenet_artifacts(REPO / "runs" / "bench-effnet-imagenet")
    for p in arts:
        key = f"effnet-lite0-imagenet/{p.name}"
        models[key], feeds[key] = p, feed
    digits = REPO / "runs" / "demo-digits" / "artifacts"
    if (digits / "model.int8.onnx").exists():
        from edgekit.data import ImagePreprocess, load_dataset
        from edgekit.types import IOSpec, TensorSpec

        io = IOSpec((TensorSpec("input", ("batch", 3, 64, 64)),))
        dfeed = next(iter(load_dataset("digits").batches("eval", io, ImagePreprocess((64, 64), (0.5,) * 3,
                                                                                        (0.5,) * 3), limit=1)))
        for p in sorted(digits.glob("model.*.onnx")):
            key = f"effnet-lite0-digits/{p.name}"
            models[key], feeds[key] = p, dfeed
    samples = time_interleaved(models, feeds, args.rounds, args.per_round)
    rows = []
    for name, s in samples.items():
        a = np.asarray(s)
        group = name.split("/")[0]
        base = np.median(samples[f"{group}/model.fp32.onnx"])
        rows.append({"model": name, "n": int(a.size), "p50_ms": float(np.median(a)),
                     "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)),
                     "mean_ms": float(a.mean()), "stdev_ms": float(a.std(ddof=1)),
                     "speedup_vs_fp32_p50": float(base / np.median(a))})
    env = environment(["onnxruntime"])
    result = {"benchmark": "int8_speed", "threads": 1, "rounds": args.rounds, "per_round": args.per_round,
              "method": "one process, shuffled interleaved rounds, 10 warmup runs per model, perf_counter_ns",
              "rows": rows, "environment": env, "raw_samples_ms": samples}
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "int8_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# int8 vs fp32 speed, ONNX Runtime CPU, 1 thread", "",
             f"Command: `.venv/bin/python benchmarks/int8_speed.py --rounds {args.rounds} "
             f"--per-round {args.per_round}`  ",
             f"Machine: {env.get('cpu_model', '?')}, {env.get('logical_cores', '?')} logical cores; "
             f"onnxruntime {env.get('runtime_versions', {}).get('onnxruntime', '?')}; "
             f"CPU flags: {', '.join(f for f in env.get('cpu_flags', []) if 'avx' in f or f == 'fma')}", "",
             "| model | n | p50 ms | p90 ms | p99 ms | speed-up vs fp32 (p50) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['n']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['speedup_vs_fp32_p50']:.2f}x |")
    (out / "int8_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
