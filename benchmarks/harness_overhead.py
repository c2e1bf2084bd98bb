"""How far is edgekit's benchmark p50 from OpenVINO's own ``benchmark_app`` (and from bare runtime loops)?

Same IR, same device (CPU), 1 thread, 1 stream, LATENCY hint, f32 inference precision, one input of static shape
``[1, 3, H, W]`` (float32, the same real image for every tool), for two models built with edgekit's own API into
``runs/bench-harness/<model>/``: the demo digits model (EfficientNet-Lite0, 10 classes, 64x64, the cached fine-tuned
checkpoint ``runs/.cache/digits-effnet/model.safetensors``) and EfficientNet-Lite0 with its ImageNet weights
(224x224). ``static/`` holds the fp32 ONNX and IR exported with ``OnnxOptions(dynamic_batch=False)`` (the IR is
converted from that ONNX: input ``[1,3,H,W]``), ``dynamic/`` edgekit's default export (batch dimension ``?``).

What is timed, per model, in ``--reps`` repetitions (default 16); in each repetition every arm runs once, in a
freshly shuffled order, each loading / compiling its model itself, then timing N inferences (``--scale`` x digits
600, Lite0 100). Two compiles of one IR can differ by several percent for as long as they live (measured below), and
so can the machine's load from one arm to the next: many short repetitions narrow the interval more than a few long
ones.

- ``benchmark_app``: the wheel's ``benchmark_app`` in a subprocess, ``-m static/model.fp32.xml -d CPU -hint latency
  -load_config {"CPU": {"INFERENCE_NUM_THREADS": "1", "NUM_STREAMS": "1"}} -infer_precision f32 -ip f32 -api sync
  -niter N -i input.npy``. In this OpenVINO ``-nthreads`` / ``-nstreams`` are refused unless ``-hint none`` (a
  benchmark_app UI rule), so the thread and stream counts go through ``-load_config``; the properties benchmark_app
  prints for its compiled model are compared with those of a model compiled with edgekit's config (every difference
  is listed). ``-ip f32``: without it benchmark_app makes an image input u8 (a u8 -> f32 Convert in the graph). Its
  "Median:" and "Average:" lines are parsed.
- ``edgekit/openvino``: ``edgekit.bench.benchmark("openvino", ir, [feed], BenchOptions(threads=1, warmup_runs=10,
  min_runs=N, max_runs=N, min_seconds=0, memory_pass=False), RuntimeOptions())`` in this process.
- the bare-OpenVINO ladder, in this process: one model compiled with edgekit's config, one request per call style,
  N calls per style in shuffled interleaved blocks (digits 50 calls, Lite0 10: 60-90 ms, long enough for a steady
  state after each switch; the styles' differences are then paired and tight):
  ``infer()`` on an input tensor set once (what benchmark_app's loop does), with OpenVINO's own per-request timer
  (``InferRequest.latency``: C++ time around the native ``infer``, the number benchmark_app reports) and the wall
  time of the Python call; ``infer({"input": x})`` (the call edgekit's adapter makes: copies x into the request's
  tensor), with its C++ timer too; ``compiled({"input": x})`` (``share_inputs=True`` by default); a lean call (copy x
  into the input tensor, ``infer()``, copy the output); edgekit's ``OpenVinoSession.run`` around that same compiled
  model; and ``infer()`` on a second compile of the same IR (two compiles can differ by several percent for as long
  as they live: the spread every arm that compiles its own model draws from).
- ``edgekit/onnxruntime`` (``edgekit.bench.benchmark("onnxruntime", static/model.fp32.onnx, ...)``) and ``ort
  session.run``: a bare ``session.run(None, {"input": x})`` loop on a session made with the options edgekit's
  adapter sets (1 intra-op and 1 inter-op thread, spinning on, sequential execution); and an ONNX Runtime ladder:
  that bare call and edgekit's ``OrtSession.run`` around the same session, interleaved in blocks the same way, N
  calls each. onnxruntime's own perf tool (``onnxruntime_perf_test``) is not in the wheel.
- ``benchmark_app`` and ``edgekit/openvino`` on the default (dynamic-batch) IR: ``-data_shape [1,3,H,W]``, no
  reshape, so both run the very IR ``edgekit run`` builds by default (``--no-dynamic`` drops these two arms).

Per arm and repetition: p50 (edgekit and bare loops: numpy's median; benchmark_app: its nearest-rank median, printed
with 2 decimals: 10 us steps when its average is >= 1 ms) and mean. Per comparison: the paired ratio of p50s per
repetition (arm / reference), their median with a bootstrap 95% interval (10,000 resamples of the repetitions) and
min-max, and the median p50 difference in microseconds. Verdict against "within 3%": *within* when the interval lies
inside [0.97, 1.03], *outside* when it lies wholly beyond, else *undecided* (the median ratio is given either way).

Per-call costs without the model's own noise: a near-empty model with the same input and output shapes (a mean over
H, W and a 3 x C matmul: a few microseconds of work) goes through the same ladder, plus ONNX Runtime's
``session.run`` / edgekit's ``OrtSession.run`` and edgekit's timing loop (``time_session``), in ``--tiny-rounds``
rounds of 20 calls; single steps of an adapter call are timed alone with ``timeit``. On a real model the same Python
work costs more than on the near-empty one: the inference evicts the interpreter's and the input's cache lines, so
the code after it runs on cold caches; the real-model ladder measures that.

What differs between the tools, by design, and is reported rather than removed: benchmark_app's number is
OpenVINO's C++ timer around the native inference (``run_sync_infer`` in OpenVINO's pybind ``infer_request.cpp``;
the wheel's benchmark_app loop is Python, but input setting, the Python call and the output dict are outside the
timer); edgekit's ``benchmark`` times the Python call of the runtime's own inference on inputs bound before the clock
starts (``OpenVinoSession.bind``: shared input tensors, then ``start_async`` + ``wait``; since the issue-13 change
that put the adapter's input checks, copies and output copies outside the timed call), so its samples include a
Python call and OpenVINO's wait, not the adapter's work. ``edgekit OpenVinoSession.run, called directly`` still
measures the whole adapter call (checks, input copy, output copies).
benchmark_app warms up with one inference, edgekit with 1 + 10; benchmark_app runs in a fresh process, edgekit in
this one. The artifacts are built in a child process, so torch is never loaded in the timing process.

How long (2 shared cores, measured): building the artifacts the first time ~30 s (reused after: 5 s); one repetition
~30 s for both models (benchmark_app's process starts and every compile included), so the default run (16
repetitions, 300 near-empty rounds) ~9 min. ``--dev`` (2 repetitions, 15% of the iterations, 40 rounds) ~1 min.
A run with fewer repetitions, iterations or rounds than the defaults writes
``benchmarks/results/harness_overhead.dev.{json,md}`` (marked as a dev run: it never overwrites the real results),
else ``benchmarks/results/harness_overhead.{json,md}``.

    .venv/bin/python benchmarks/harness_overhead.py [--reps 16] [--scale 1.0] [--models digits,lite0] [--dev]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import subprocess
import sys
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

NAME = "harness_overhead"
RESULTS = REPO / "benchmarks" / "results"
OUT = REPO / "runs" / "bench-harness"
DIGITS_CKPT = REPO / "runs" / ".cache" / "digits-effnet" / "model.safetensors"
THREADS = 1
#: edgekit's OpenVINO compile config for an fp32 IR on CPU at 1 thread (edgekit.runtimes.openvino.OpenVinoRuntime).
OV_CONFIG: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": THREADS,
                             "INFERENCE_PRECISION_HINT": "f32"}
#: What benchmark_app gets through -load_config (its -nthreads / -nstreams need -hint none).
BAPP_LOAD_CONFIG = {"CPU": {"INFERENCE_NUM_THREADS": str(THREADS), "NUM_STREAMS": "1"}}
TARGET = 0.03  # "within 3%"
DEFAULT_REPS, DEFAULT_TINY_ROUNDS, WARMUP = 16, 300, 10
LIBRARIES = ("openvino", "onnxruntime", "numpy", "edgekit", "torch", "onnx")

# The arms (series) of a model's repetitions.
BAPP, EK_OV = "benchmark_app", "edgekit/openvino"
EK_ORT, ORT_RUN = "edgekit/onnxruntime", "ort session.run"
BAPP_DYN, EK_OV_DYN = "benchmark_app dynamic-batch IR", "edgekit/openvino dynamic-batch IR"
# The call styles of the bare-OpenVINO ladder (one compiled model, one request per style, interleaved blocks), on the
# real models and on the near-empty one (S_LOOP there only); the ONNX Runtime pair in a ladder of its own.
S_LAT = "ov C++ timer (request.latency) of infer() on a preset tensor"
S_PRESET = "ov infer() on a preset tensor, wall"
S_DICT_LAT = "ov C++ timer (request.latency) of infer({'input': x})"
S_DICT = "ov infer({'input': x}), wall (the call edgekit's adapter makes)"
S_CALL = "ov compiled({'input': x}), wall (share_inputs=True by default)"
S_LEAN = "ov lean: copy x into the input tensor, infer(), copy the output"
S_EK = "edgekit OpenVinoSession.run, called directly"
S_LAT2 = "ov C++ timer of infer() on a preset tensor, a second compile of the same IR"
S_LOOP = "edgekit time_session samples (OpenVINO)"
S_ORT = "ort session.run(None, feed), interleaved with edgekit's"
S_EK_ORT = "edgekit OrtSession.run, called directly"
LADDER = (S_LAT, S_PRESET, S_DICT_LAT, S_DICT, S_CALL, S_LEAN, S_EK, S_LAT2)
ORT_LADDER = (S_ORT, S_EK_ORT)


@dataclass(frozen=True)
class ModelSpec:
    title: str
    size: int  # input H = W
    classes: int
    dataset: str
    mean: float
    std: float
    iters: int  # timed inferences per arm and repetition at --scale 1
    block: int  # calls per block of the interleaved ladders


MODELS: dict[str, ModelSpec] = {
    "digits": ModelSpec("digits demo model (EfficientNet-Lite0, 10 classes, 64x64)", 64, 10, "digits", 0.5, 0.5,
                        600, 50),
    "lite0": ModelSpec("EfficientNet-Lite0 (ImageNet, 224x224)", 224, 1000, "photos", 0.498, 0.502, 100, 10),
}


def log(msg: str) -> None:
    print(f"[{NAME} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- artifacts


def _source(key: str) -> Any:
    """edgekit's model source (torch): only ever called in the --build-only child process."""
    import edgekit

    spec = MODELS[key]
    shape = (1, 3, spec.size, spec.size)
    pre = {"size": (spec.size, spec.size), "mean": (spec.mean,) * 3, "std": (spec.std,) * 3}
    if key == "digits":  # as `make demo-models`: reuses the cached checkpoint whose hashes match, else fine-tunes
        tune = [sys.executable, str(REPO / "examples" / "finetune_digits.py"), "--out", str(DIGITS_CKPT.parent)]
        subprocess.run(tune, check=True, cwd=REPO, stdout=sys.stderr, stdin=subprocess.DEVNULL)
        return edgekit.load_source(str(REPO / "examples" / "digits_model.py") + ":build_model", checkpoint=DIGITS_CKPT,
                                   input_shapes={"input": shape}, task="image-classification", preprocess=pre)
    from _models import build_imagenet_model

    return edgekit.load_source(build_imagenet_model(), input_shapes={"input": shape}, task="image-classification",
                               preprocess=pre)


def build(key: str) -> dict[str, dict[str, str]]:
    """The fp32 ONNX + IR of the model, static batch 1 and edgekit's default dynamic batch (cached by edgekit's
    sidecars: a re-run only checks them)."""
    import edgekit
    from edgekit.formats.base import FormatOptions
    from edgekit.formats.onnx import OnnxOptions
    from edgekit.pipeline import RunOptions

    src = _source(key)
    out: dict[str, dict[str, str]] = {}
    for variant, opts in (("static", RunOptions(format_options=FormatOptions(OnnxOptions(dynamic_batch=False)))),
                          ("dynamic", RunOptions())):
        folder = OUT / key / variant
        onnx = edgekit.export(src, folder, fmt="onnx", calibration=MODELS[key].dataset, options=opts)
        ir = edgekit.export(src, folder, fmt="openvino", calibration=MODELS[key].dataset, options=opts,
                            canonical=onnx)
        out[variant] = {"onnx": str(onnx.path), "ir": str(ir.path)}
    return out


def build_in_child(keys: Sequence[str]) -> dict[str, dict[str, dict[str, str]]]:
    """Run :func:`build` in a child process (torch never enters the timing process); its last stdout line is JSON."""
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--build-only", "--models", ",".join(keys)], text=True,
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"building the artifacts failed (exit {proc.returncode}); see the messages above")
    log(f"artifacts ready in {time.perf_counter() - t:.0f}s")
    built: dict[str, dict[str, dict[str, str]]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return built


def feed_of(key: str) -> np.ndarray:
    """The first eval item of the model's data set, preprocessed as edgekit does: float32 [1, 3, H, W]."""
    from edgekit.data import ImagePreprocess, load_dataset
    from edgekit.types import IOSpec, TensorSpec

    spec = MODELS[key]
    io = IOSpec((TensorSpec("input", (1, 3, spec.size, spec.size)),))
    pre = ImagePreprocess((spec.size, spec.size), (spec.mean,) * 3, (spec.std,) * 3)
    feed = next(iter(load_dataset(spec.dataset).batches("eval", io, pre, limit=1)))
    return np.ascontiguousarray(feed["input"], dtype=np.float32)


# ---------------------------------------------------------------------------------------------- the arms

Series = dict[str, Any]  # one timed run: p50_ms, mean_ms, n, and what else the arm knows


def _stats(samples_ms: Sequence[float]) -> Series:
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"p50_ms": float(np.median(a)), "mean_ms": float(a.mean()), "p90_ms": float(np.percentile(a, 90)),
            "min_ms": float(a.min()), "n": int(a.size)}


def benchmark_app_exe() -> list[str]:
    """The wheel's console script (``openvino.tools.benchmark.main`` has no ``__main__`` guard: ``python -m`` on it
    would run nothing)."""
    exe = Path(sys.executable).parent / "benchmark_app"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from openvino.tools.benchmark.main import main; sys.exit(main())"]


_LAT = re.compile(r"^\[ INFO \]\s+(Median|Average|Min|Max):\s+([\d.]+) (ms|us)\s*$")
_PROP = re.compile(r"^\[ INFO \]   ([A-Z0-9_]+): (.*)$")
_LAT_KEYS = {"Median": "p50_ms", "Average": "mean_ms", "Min": "min_ms", "Max": "max_ms"}


def parse_benchmark_app(text: str) -> Series:
    """Latency lines (to ms), iteration count, first-inference and compile times, the compiled model's properties
    (step 8) and the inputs as configured (step 6)."""
    out: Series = {"properties": {}, "inputs": []}
    step = 0
    for line in text.splitlines():
        if (m := re.match(r"^\[Step (\d+)/11\]", line)):
            step = int(m.group(1))
        elif (m := _LAT.match(line)):
            out[_LAT_KEYS[m.group(1)]] = float(m.group(2)) / (1000.0 if m.group(3) == "us" else 1.0)
            if m.group(1) == "Median":
                out["printed_unit"] = m.group(3)
        elif (m := re.search(r"Count:\s+(\d+) iterations", line)):
            out["n"] = int(m.group(1))
        elif (m := re.search(r"First inference took ([\d.]+) ms", line)):
            out["first_inference_ms"] = float(m.group(1))
        elif (m := re.search(r"Compile model took ([\d.]+) ms", line)):
            out["compile_ms"] = float(m.group(1))
        elif (m := re.search(r"Benchmarking in (.*) mode", line)):
            out["mode"] = m.group(1)
        elif step == 8 and (m := _PROP.match(line)):
            out["properties"][m.group(1)] = m.group(2).strip()
        elif step == 6 and "(node: " in line:
            out["inputs"].append(line.split("] ", 1)[-1].strip())
    return out


def run_benchmark_app(ir: Path, npy: Path, n: int, config: Path, dynamic_shape: str | None) -> Series:
    cmd = [*benchmark_app_exe(), "-m", str(ir), "-d", "CPU", "-hint", "latency", "-load_config", str(config),
           "-infer_precision", "f32", "-ip", "f32", "-api", "sync", "-niter", str(n), "-i", str(npy)]
    if dynamic_shape:
        cmd += ["-data_shape", dynamic_shape, "-inference_only", "true"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
                          timeout=600, check=False)
    res = parse_benchmark_app(proc.stdout)
    if proc.returncode != 0 or "p50_ms" not in res:
        tail = " | ".join(proc.stdout.strip().splitlines()[-4:])
        raise RuntimeError(f"benchmark_app exited {proc.returncode} without a median: {tail[:500]}")
    shown = [Path(cmd[0]).name, *cmd[1:]] if len(cmd) and cmd[0].endswith("benchmark_app") else cmd
    res["command"] = " ".join(str(Path(c).relative_to(REPO)) if c.startswith(str(REPO)) else c for c in shown)
    return res


def run_edgekit(runtime: str, path: Path, x: np.ndarray, n: int) -> Series:
    from edgekit.bench import BenchOptions, benchmark
    from edgekit.runtimes.base import RuntimeOptions

    opts = BenchOptions(threads=THREADS, warmup_runs=WARMUP, min_runs=n, max_runs=n, min_seconds=0.0,
                        max_seconds=600.0, memory_pass=False)
    res = benchmark(runtime, path, [{"input": x}], opts, RuntimeOptions())
    out = _stats(res.samples_ms)
    out.update({"edgekit_p50_ms": res.stats.p50_ms, "load_ms": res.load_ms,
                "first_inference_ms": res.first_inference_ms, "noise": _jsonable(res.noise),
                "session_info": _jsonable(res.session_info)})
    return out


def ov_compiled(path: Path) -> Any:
    import openvino as ov

    core = ov.Core()
    return core.compile_model(core.read_model(str(path)), "CPU", dict(OV_CONFIG))


def compiled_properties(compiled: Any) -> dict[str, str]:
    out = {}
    for key in compiled.get_property("SUPPORTED_PROPERTIES"):
        if str(key) == "SUPPORTED_PROPERTIES":
            continue
        try:
            out[str(key)] = str(compiled.get_property(key))
        except Exception as exc:  # a property the plugin lists but does not answer
            out[str(key)] = f"? ({type(exc).__name__})"
    return out


def _timed_loop(call: Callable[[], object], n: int) -> list[float]:
    """First call, WARMUP calls, then ``n`` timed calls (gc off, as in edgekit's loop): wall ms."""
    call()
    for _ in range(WARMUP):
        call()
    wall: list[float] = []
    was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(n):
            t0 = time.perf_counter_ns()
            call()
            wall.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        if was:
            gc.enable()
    return wall


def interleaved(calls: Mapping[str, Callable[[], object]], per_style: int, block: int, rng: random.Random,
                warmup: int = WARMUP, timers: Mapping[str, tuple[str, Any]] | None = None,
                blocks: Mapping[str, Callable[[int], Sequence[float]]] | None = None) -> dict[str, list[float]]:
    """Each call style ``1 + warmup`` times, then shuffled interleaved blocks of ``block`` calls until each has
    ``per_style`` samples (ms, gc off). ``timers``: style -> (series, request) whose ``request.latency`` (OpenVINO's
    C++ timer, ms) is read after each call; ``blocks``: styles that time a whole block themselves (``f(n) ->
    samples``)."""
    timers, blocks = timers or {}, blocks or {}
    samples: dict[str, list[float]] = {**{k: [] for k in calls}, **{k: [] for k in blocks},
                                       **{series: [] for series, _req in timers.values()}}
    for call in calls.values():
        for _ in range(1 + warmup):
            call()
    for run in blocks.values():
        run(warmup)
    order = [*calls, *blocks]
    was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(-(-per_style // block)):
            rng.shuffle(order)
            for name in order:
                if name in blocks:
                    samples[name].extend(blocks[name](block))
                    continue
                call, timer = calls[name], timers.get(name)
                for _ in range(block):
                    t0 = time.perf_counter_ns()
                    call()
                    samples[name].append((time.perf_counter_ns() - t0) / 1e6)
                    if timer is not None:
                        samples[timer[0]].append(float(timer[1].latency))
    finally:
        if was:
            gc.enable()
    return samples


def ov_ladder(ir: Path, x: np.ndarray, per_style: int, block: int, rng: random.Random, warmup: int = WARMUP,
              extra: Mapping[str, Callable[[], object]] | None = None,
              blocks: Mapping[str, Callable[[int], Sequence[float]]] | None = None
              ) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Every OpenVINO call style on one compiled model (edgekit's config; a request of its own per style), edgekit's
    ``OpenVinoSession`` around that same compiled model (what ``OpenVinoRuntime.load`` returns after compiling; two
    compiles of one IR can differ by several percent for as long as they live, so every style shares one) and a
    second compile's ``infer()`` (that spread), interleaved (:func:`interleaved`); the request styles also give
    OpenVINO's C++ timer of each call. ``extra`` / ``blocks``: more styles. Returns the samples and the compiled
    model's properties."""
    import openvino as ov

    from edgekit.runtimes.openvino import OpenVinoSession

    compiled = ov_compiled(ir)
    feed = {"input": x}
    preset = compiled.create_infer_request()
    preset.set_input_tensor(ov.Tensor(x.copy()))
    dict_req = compiled.create_infer_request()
    lean_req = compiled.create_infer_request()
    lean_in = lean_req.get_input_tensor(0)

    def lean() -> np.ndarray:
        lean_in.data[:] = x
        lean_req.infer()
        return np.array(lean_req.get_output_tensor(0).data, copy=True)

    ek = OpenVinoSession(compiled, "CPU", {})
    second = ov_compiled(ir).create_infer_request()
    second.set_input_tensor(ov.Tensor(x.copy()))
    calls: dict[str, Callable[[], object]] = {S_PRESET: preset.infer, S_DICT: lambda: dict_req.infer(feed),
                                              S_CALL: lambda: compiled(feed), S_LEAN: lean,
                                              S_EK: lambda: ek.run(feed), "_second": second.infer, **(extra or {})}
    timers = {S_PRESET: (S_LAT, preset), S_DICT: (S_DICT_LAT, dict_req), "_second": (S_LAT2, second)}
    samples = interleaved(calls, per_style, block, rng, warmup, timers=timers, blocks=blocks)
    samples.pop("_second")
    return samples, compiled_properties(compiled)


def ladder_block(spec: ModelSpec, per_style: int) -> int:
    """Calls per block of a ladder: the model's (about 60-100 ms of calls: long enough for a steady state after the
    switch, short enough to pair the styles), fewer where that would give under 5 blocks per style."""
    return max(2, min(spec.block, per_style // 5))


def run_ort_ladder(path: Path, x: np.ndarray, per_style: int, block: int, rng: random.Random) -> dict[str, Series]:
    """A bare session.run and edgekit's OrtSession around the same session (what ``OrtRuntime.load`` returns: two
    sessions of one file can differ as two OpenVINO compiles do), interleaved."""
    from edgekit.runtimes.ort import OrtSession

    feed = {"input": x}
    sess = ort_session(path)
    ek = OrtSession(sess, ("CPUExecutionProvider",), THREADS)
    samples = interleaved({S_ORT: lambda: sess.run(None, feed), S_EK_ORT: lambda: ek.run(feed)}, per_style, block,
                          rng)
    return {k: _stats(v) for k, v in samples.items()}


def run_ov_ladder(ir: Path, x: np.ndarray, per_style: int, block: int, rng: random.Random) -> dict[str, Series]:
    samples, props = ov_ladder(ir, x, per_style, block, rng)
    out: dict[str, Series] = {k: _stats(samples[k]) for k in LADDER}
    out[S_PRESET]["python_call_us_p50"] = float(np.median((np.asarray(samples[S_PRESET])
                                                           - np.asarray(samples[S_LAT])) * 1e3))
    out[S_DICT]["outside_timer_us_p50"] = float(np.median((np.asarray(samples[S_DICT])
                                                          - np.asarray(samples[S_DICT_LAT])) * 1e3))
    out["_ov_properties"] = props
    return out


def ort_session(path: Path) -> Any:
    """A session with the options edgekit's OrtRuntime sets at 1 thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def run_ort(path: Path, x: np.ndarray, n: int) -> Series:
    sess = ort_session(path)
    feed = {"input": x}
    return _stats(_timed_loop(lambda: sess.run(None, feed), n))


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


# ---------------------------------------------------------------------------------------------- statistics


def bootstrap_median(x: Sequence[float], seed: int = 0, resamples: int = 10_000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the median of ``x``."""
    a = np.asarray(x, dtype=np.float64)
    if a.size < 2:
        return float(a[0]), float(a[0])
    rng = np.random.default_rng(seed)
    meds = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    lo, hi = np.percentile(meds, [2.5, 97.5])
    return float(lo), float(hi)


def verdict(lo: float, hi: float) -> str:
    if 1 - TARGET <= lo and hi <= 1 + TARGET:
        return "within 3%"
    if lo > 1 + TARGET or hi < 1 - TARGET:
        return "outside 3%"
    return "undecided"


def compare(reps: Sequence[Mapping[str, Series]], arm: str, ref: str, what: str) -> dict[str, Any] | None:
    """The paired per-repetition ratio arm p50 / ref p50."""
    pairs = [(r[arm]["p50_ms"], r[ref]["p50_ms"]) for r in reps
             if "p50_ms" in r.get(arm, {}) and "p50_ms" in r.get(ref, {})]
    if not pairs:
        return None
    ratios = [a / b for a, b in pairs]
    diffs_us = [(a - b) * 1e3 for a, b in pairs]
    lo, hi = bootstrap_median(ratios)
    return {"arm": arm, "reference": ref, "what": what, "n_reps": len(pairs), "ratios": ratios,
            "ratio_median": float(np.median(ratios)), "ratio_ci95": [lo, hi], "ratio_min": min(ratios),
            "ratio_max": max(ratios), "diff_us_median": float(np.median(diffs_us)), "diffs_us": diffs_us,
            "verdict": verdict(lo, hi)}


def summarize(reps: Sequence[Mapping[str, Series]], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        runs = [r[name] for r in reps if "p50_ms" in r.get(name, {})]
        errors = [r[name]["error"] for r in reps if "error" in r.get(name, {})]
        if not runs:
            out[name] = {"errors": errors}
            continue
        p50 = [s["p50_ms"] for s in runs]
        out[name] = {"p50_ms_per_rep": p50, "p50_ms_median": float(np.median(p50)), "p50_ms_min": min(p50),
                     "p50_ms_max": max(p50), "mean_ms_median": float(np.median([s["mean_ms"] for s in runs])),
                     "n_per_rep": runs[0].get("n"), "errors": errors}
    return out


# ---------------------------------------------------------------------------------------------- one model

#: (comparison key, arm, reference, what it says)
COMPARISONS = (
    ("edgekit_vs_benchmark_app", EK_OV, BAPP, "the question: same static IR"),
    ("edgekit_vs_ov_cpp_timer", EK_OV, S_LAT,
     "vs OpenVINO's C++ timer in this process: benchmark_app's measure without the process difference"),
    ("edgekit_vs_ov_infer_preset", EK_OV, S_PRESET, "vs a bare Python infer() on a preset tensor"),
    ("edgekit_vs_ov_compiled_call", EK_OV, S_CALL, "vs a bare compiled({'input': x})"),
    ("edgekit_bench_vs_session_run", EK_OV, S_EK,
     "edgekit's benchmark() vs its session's run() called directly (separate compiles)"),
    ("second_compile_vs_first", S_LAT2, S_LAT,
     "two compiles of the same IR, same blocks: the compile-to-compile spread"),
    ("adapter_vs_its_ov_call", S_EK, S_DICT, "edgekit's adapter over the OpenVINO call it makes, same blocks"),
    ("ov_infer_dict_vs_preset", S_DICT, S_PRESET, "OpenVINO's Python input dispatch, copy and result dict"),
    ("ov_cpp_timer_dict_vs_preset", S_DICT_LAT, S_LAT,
     "does a new input per call slow the native inference itself (C++ timer)"),
    ("adapter_vs_lean_call", S_EK, S_LEAN, "edgekit's adapter vs a lean copy-infer-copy call"),
    ("adapter_vs_ov_cpp_timer", S_EK, S_LAT,
     "edgekit's session.run vs OpenVINO's C++ timer, same blocks: the question without between-run noise"),
    ("lean_vs_ov_cpp_timer", S_LEAN, S_LAT, "what even a lean Python call adds over the C++ timer, same blocks"),
    ("ov_cpp_timer_vs_benchmark_app", S_LAT, BAPP, "sanity: the same C++ timer, this process vs benchmark_app's"),
    ("edgekit_ort_vs_session_run", EK_ORT, ORT_RUN, "same static ONNX and session options"),
    ("ort_adapter_vs_session_run", S_EK_ORT, S_ORT, "edgekit's OrtSession.run vs a bare session.run, same blocks"),
    ("edgekit_vs_benchmark_app_dynamic", EK_OV_DYN, BAPP_DYN, "edgekit's default IR, both tools on it"),
    ("edgekit_dynamic_vs_benchmark_app_static", EK_OV_DYN, BAPP,
     "edgekit on its default IR vs benchmark_app on the static IR"),
    ("dynamic_vs_static_ir_benchmark_app", BAPP_DYN, BAPP, "the dynamic batch dimension's own cost, benchmark_app"),
)


def run_model(key: str, paths: Mapping[str, Mapping[str, str]], args: argparse.Namespace,
              rng: random.Random) -> dict[str, Any]:
    spec = MODELS[key]
    n = max(20, round(spec.iters * args.scale))
    block = ladder_block(spec, n)
    x = feed_of(key)
    npy = OUT / key / "input.npy"
    np.save(npy, x)
    config = OUT / "benchmark_app_config.json"
    config.write_text(json.dumps(BAPP_LOAD_CONFIG) + "\n")
    static_ir, static_onnx = Path(paths["static"]["ir"]), Path(paths["static"]["onnx"])
    dyn_ir = Path(paths["dynamic"]["ir"])
    shape_text = f"[1,3,{spec.size},{spec.size}]"
    arms: dict[str, Callable[[], dict[str, Series]]] = {
        BAPP: lambda: {BAPP: run_benchmark_app(static_ir, npy, n, config, None)},
        EK_OV: lambda: {EK_OV: run_edgekit("openvino", static_ir, x, n)},
        "ov ladder": lambda: run_ov_ladder(static_ir, x, n, block, rng),
        EK_ORT: lambda: {EK_ORT: run_edgekit("onnxruntime", static_onnx, x, n)},
        ORT_RUN: lambda: {ORT_RUN: run_ort(static_onnx, x, n)},
        "ort ladder": lambda: run_ort_ladder(static_onnx, x, n, block, rng),
    }
    series = {BAPP: [BAPP], EK_OV: [EK_OV], "ov ladder": list(LADDER), EK_ORT: [EK_ORT], ORT_RUN: [ORT_RUN],
              "ort ladder": list(ORT_LADDER)}
    if not args.no_dynamic:
        arms[BAPP_DYN] = lambda: {BAPP_DYN: run_benchmark_app(dyn_ir, npy, n, config, shape_text)}
        arms[EK_OV_DYN] = lambda: {EK_OV_DYN: run_edgekit("openvino", dyn_ir, x, n)}
        series.update({BAPP_DYN: [BAPP_DYN], EK_OV_DYN: [EK_OV_DYN]})
    names = [s for arm in arms for s in series[arm]]
    reps: list[dict[str, Series]] = []
    properties: dict[str, str] = {}
    started = time.perf_counter()
    for rep in range(args.reps):
        order = list(arms)
        rng.shuffle(order)
        got: dict[str, Series] = {"_order": {"order": order}}
        for arm in order:
            gc.collect()
            try:
                got.update(arms[arm]())
            except Exception as exc:  # recorded; the other arms go on
                log(f"[{key}] rep {rep + 1} {arm} FAILED: {type(exc).__name__}: {exc}")
                got.update({s: {"error": f"{type(exc).__name__}: {exc}"[:500]} for s in series[arm]})
        if "_ov_properties" in got:
            properties = got.pop("_ov_properties")
        reps.append(got)
        line = ", ".join(f"{s} {got[s]['p50_ms']:.3f}" for s in names if "p50_ms" in got.get(s, {}))
        log(f"[{key}] rep {rep + 1}/{args.reps} ({time.perf_counter() - started:.0f}s) p50 ms: {line}")
    comparisons = {}
    for ckey, arm, ref, what in COMPARISONS:
        c = compare(reps, arm, ref, what)
        if c is not None:
            comparisons[ckey] = c
    bapp = next((r[BAPP] for r in reps if "properties" in r.get(BAPP, {})), {})
    bapp_dyn = next((r[BAPP_DYN] for r in reps if "properties" in r.get(BAPP_DYN, {})), {})
    shown = bapp.get("properties", {})
    differences = {k: {"benchmark_app": shown[k], "edgekit_config": v} for k, v in properties.items()
                   if k in shown and shown[k] != v}
    ek = next((r[EK_OV] for r in reps if "session_info" in r.get(EK_OV, {})), {})
    ek_config = ek.get("session_info", {}).get("config")
    return {"title": spec.title, "input_shape": [1, 3, spec.size, spec.size], "iterations": n,
            "ladder_per_style": n, "ladder_block": block,
            "artifacts": {v: {k: str(Path(p).relative_to(REPO)) for k, p in d.items()} for v, d in paths.items()},
            "benchmark_app": {k: bapp.get(k) for k in ("command", "inputs", "mode", "printed_unit")},
            "benchmark_app_dynamic": {k: bapp_dyn.get(k) for k in ("command", "inputs", "mode", "printed_unit")},
            "edgekit_session_info": ek.get("session_info", {}), "compiled_property_differences": differences,
            "edgekit_config": ek_config,
            "edgekit_config_is_this_scripts": ek_config == {k: str(v) for k, v in OV_CONFIG.items()},
            "benchmark_app_properties": shown, "edgekit_config_properties": properties,
            "python_call_us_per_rep": [r[S_PRESET]["python_call_us_p50"] for r in reps
                                       if "python_call_us_p50" in r.get(S_PRESET, {})],
            "dict_outside_timer_us_per_rep": [r[S_DICT]["outside_timer_us_p50"] for r in reps
                                              if "outside_timer_us_p50" in r.get(S_DICT, {})],
            "summary": summarize(reps, names), "comparisons": comparisons, "reps": reps,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------- near-empty model


def tiny_models(size: int, classes: int, folder: Path) -> tuple[Path, Path]:
    """A near-empty model with the real models' I/O: input [1,3,size,size] -> mean over H, W -> 3 x classes matmul
    -> logits [1, classes], as an IR and as an ONNX file."""
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    w = np.full((3, classes), 1.0 / 3, np.float32)
    p = ov.opset13.parameter([1, 3, size, size], np.float32, name="input")
    mean = ov.opset13.reduce_mean(p, np.array([2, 3], np.int64), keep_dims=False)
    out = ov.opset13.matmul(mean, ov.opset13.constant(w), False, False)
    out.output(0).get_tensor().set_names({"logits"})
    ir = folder / f"tiny{size}.xml"
    ov.save_model(ov.Model([out], [p], "tiny"), str(ir))
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input"], ["m"], axes=[2, 3], keepdims=0),
         helper.make_node("MatMul", ["m", "w"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / f"tiny{size}.onnx"
    onnx.save(model, str(path))
    return ir, path


def tiny_ladder(size: int, classes: int, rounds: int, per_round: int, folder: Path, seed: int) -> dict[str, Any]:
    """Every call style on the near-empty model (the OpenVINO ladder plus ONNX Runtime's and edgekit's timing
    loop), shuffled interleaved rounds; p50 per style in microseconds, and single adapter steps timed alone."""
    from edgekit.bench import BenchOptions, time_session
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.openvino import OpenVinoRuntime, ov_shape
    from edgekit.runtimes.ort import OrtRuntime

    ir, onnx_path = tiny_models(size, classes, folder)
    x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
    feed = {"input": x}
    sess = ort_session(onnx_path)
    ek_ort = OrtRuntime().load(onnx_path, RuntimeOptions(threads=THREADS))
    ek_ov = OpenVinoRuntime().load(ir, RuntimeOptions(threads=THREADS))

    def loop(n: int) -> Sequence[float]:
        opts = BenchOptions(threads=THREADS, warmup_runs=0, min_runs=max(1, n), max_runs=max(1, n), min_seconds=0.0,
                            memory_pass=False)
        return time_session(ek_ov, [feed], opts)[2]

    samples, _props = ov_ladder(ir, x, rounds * per_round, per_round, random.Random(seed), warmup=100,
                                extra={S_ORT: lambda: sess.run(None, feed), S_EK_ORT: lambda: ek_ort.run(feed)},
                                blocks={S_LOOP: loop})
    compiled = ov_compiled(ir)
    req = compiled.create_infer_request()
    req.infer(feed)
    shape = compiled.inputs[0].get_partial_shape()
    tensor = req.get_input_tensor(0)

    def piece(fn: Callable[[], object]) -> float:
        number = 20_000
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    pieces = {
        "input-shape check: shape.compatible(edgekit's ov_shape(np.shape(x)))":
            piece(lambda: shape.compatible(ov_shape(np.shape(x)))),
        "edgekit's ov_shape alone (a new PartialShape; require('openvino') on each call)":
            piece(lambda: ov_shape(x.shape)),
        "{name: np.ascontiguousarray(x)}": piece(lambda: {n: np.ascontiguousarray(feed[n]) for n in ("input",)}),
        "len(compiled.outputs)": piece(lambda: len(compiled.outputs)),
        "np.array(request.get_output_tensor(0).data, copy=True)":
            piece(lambda: np.array(req.get_output_tensor(0).data, copy=True)),
        "copy x into the request's input tensor (warm caches)": piece(lambda: tensor.data.__setitem__(slice(None), x)),
    }
    return {"input_shape": [1, 3, size, size], "output_shape": [1, classes], "rounds": rounds,
            "per_round": per_round, "n": {k: len(v) for k, v in samples.items()},
            "p50_us": {k: float(np.median(v)) * 1e3 for k, v in samples.items()}, "pieces_us_best_of_5": pieces}


# ---------------------------------------------------------------------------------------------- markdown


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def markdown(res: Mapping[str, Any]) -> str:
    m, v, dev = res["machine"], res["versions"], res["dev"]
    lines = ["# edgekit's benchmark vs OpenVINO benchmark_app and bare runtime loops"
             + (" (DEV RUN: noisy)" if dev else ""), ""]
    if dev:
        lines += ["**DEV RUN** (fewer repetitions / iterations than the defaults): noisy numbers, for checking the "
                  f"script only; the real results go to `{NAME}.md`.", ""]
    lines += [f"Machine: {m.get('cpu')}, {m.get('logical_cpus')} logical CPUs (shared VM), CPU flags "
              f"{', '.join(res['simd_flags'])}; OpenVINO CPU capabilities "
              f"{', '.join(res['openvino_cpu_capabilities'])}. Python {m.get('python')}, openvino "
              f"{v.get('openvino')}, onnxruntime {v.get('onnxruntime')}, numpy {v.get('numpy')}, edgekit "
              f"{v.get('edgekit')}. Load average at start {res['load_average_start']}, at end "
              f"{res['load_average_end']}.", "",
              f"Settings: 1 thread, 1 stream, LATENCY hint, f32 inference precision, batch 1; {res['reps']} "
              "repetitions, each arm once per repetition in a shuffled order, each loading its model itself; "
              f"{WARMUP} warm-up calls after the first (benchmark_app: its 1 first inference). Verdict: *within 3%* "
              "when the bootstrap 95% interval of the median per-repetition ratio lies in [0.97, 1.03], *outside* "
              "when it lies wholly beyond, else *undecided*.", ""]
    for key, mr in res["models"].items():
        if "error" in mr:
            lines += [f"## {key}: failed", "", mr["error"], ""]
            continue
        b = mr["benchmark_app"]
        lines += [f"## {mr['title']}", "",
                  f"Input {mr['input_shape']} float32 (one real `{MODELS[key].dataset}` item), {mr['iterations']} "
                  f"timed inferences per arm and repetition. IRs: `{mr['artifacts']['static']['ir']}` (static "
                  f"batch), `{mr['artifacts']['dynamic']['ir']}` (edgekit's default, dynamic batch).", "",
                  f"benchmark_app: `{b['command']}`; its input: {'; '.join(b['inputs'] or ['?'])}; {b['mode']} mode; "
                  f"median printed in {b['printed_unit']}.", ""]
        diffs = mr["compiled_property_differences"]
        lines += [f"edgekit's compile config (its session info): {mr['edgekit_config']} ("
                  + ("the config this script compiles its bare models with" if mr["edgekit_config_is_this_scripts"]
                     else f"NOT this script's {OV_CONFIG}") + "). "
                  "Compiled-model properties, benchmark_app vs edgekit's config: " + (
            f"identical ({len(mr['benchmark_app_properties'])} properties benchmark_app prints)." if not diffs else
            "; ".join(f"{k}: benchmark_app {d['benchmark_app']}, edgekit {d['edgekit_config']}"
                      for k, d in diffs.items())), "",
                  "| arm | p50 ms: median of reps [min - max] | mean ms (median of reps) | n per rep |",
                  "|---|---|---|---|"]
        for name, s in mr["summary"].items():
            if "p50_ms_median" not in s:
                lines.append(f"| {name} | failed: {'; '.join(s['errors'])[:200]} | - | - |")
                continue
            lines.append(f"| {name} | {_ms(s['p50_ms_median'])} [{_ms(s['p50_ms_min'])} - {_ms(s['p50_ms_max'])}] "
                         f"| {_ms(s['mean_ms_median'])} | {s['n_per_rep']} |")
        head = mr["comparisons"].get("edgekit_vs_benchmark_app")
        if head:
            per = [r for r in mr["reps"] if "p50_ms" in r.get(BAPP, {}) and "p50_ms" in r.get(EK_OV, {})]
            lines += ["", "Per repetition (p50 ms; n = " + f"{mr['iterations']} inferences each):", "",
                      "| rep | benchmark_app | edgekit/openvino | ratio |", "|---|---|---|---|"]
            lines += [f"| {i + 1} | {r[BAPP]['p50_ms']:.3f} | {r[EK_OV]['p50_ms']:.3f} | {ratio:.3f} |"
                      for i, (r, ratio) in enumerate(zip(per, head["ratios"], strict=True))]
        lines += ["", "| arm / reference | ratio of p50s: median [95% CI] (min - max) | p50 difference, us | reps | "
                  "verdict (3%) |", "|---|---|---|---|---|"]
        for c in mr["comparisons"].values():
            lo, hi = c["ratio_ci95"]
            lines.append(f"| {c['arm']} / {c['reference']} ({c['what']}) | {c['ratio_median']:.3f} [{lo:.3f} - "
                         f"{hi:.3f}] ({c['ratio_min']:.3f} - {c['ratio_max']:.3f}) | {c['diff_us_median']:+.0f} | "
                         f"{c['n_reps']} | {c['verdict']} |")
        if mr["python_call_us_per_rep"]:
            preset_us = np.median(mr["python_call_us_per_rep"])
            dict_us = np.median(mr["dict_outside_timer_us_per_rep"])
            lines += ["", "Per call, wall time outside OpenVINO's C++ timer (median over repetitions of the median "
                      f"per-call difference): `infer()` on a preset tensor {preset_us:.0f} us, `infer({{'input': x}})` "
                      f"{dict_us:.0f} us. The bare OpenVINO styles ran {mr['ladder_per_style']} calls each per "
                      f"repetition, in shuffled interleaved blocks of {mr['ladder_block']} on one compiled model."]
        lines.append("")
    tiny = list(res["tiny"].values())
    lines += ["## Where edgekit's per-call time goes (near-empty model, same I/O shapes)", "",
              f"Each call style timed in {tiny[0]['rounds'] if tiny else 0} shuffled interleaved rounds of "
              f"{tiny[0]['per_round'] if tiny else 0} calls on a model that does almost nothing: the difference "
              "between two styles is their Python and copy cost per call with warm caches (p50, microseconds). On "
              "the real models the same steps cost more (the inference leaves the caches cold): see each model's "
              "ladder comparisons above.", "",
              "| call style | " + " | ".join(f"in {t['input_shape']}, out {t['output_shape']}" for t in tiny) + " |",
              "|---" * (1 + len(tiny)) + "|"]
    for st in (tiny[0]["p50_us"] if tiny else {}):
        lines.append(f"| {st} | " + " | ".join(f"{t['p50_us'][st]:.1f}" for t in tiny) + " |")
    lines += ["", "Single steps of an adapter call, timed alone (timeit, best of 5, us):", "",
              "| step | " + " | ".join(str(t["input_shape"]) for t in tiny) + " |", "|---" * (1 + len(tiny)) + "|"]
    for p in (tiny[0]["pieces_us_best_of_5"] if tiny else {}):
        lines.append(f"| {p} | " + " | ".join(f"{t['pieces_us_best_of_5'][p]:.2f}" for t in tiny) + " |")
    lines += ["", "## Findings (computed from this run)", "", *findings(res), "",
              "## What differs between the tools", "",
              "- benchmark_app's latency is OpenVINO's C++ timer around the native `infer()` (the wheel's "
              "benchmark_app is Python, but the Python call, input setting and output reading are outside that "
              "timer); edgekit's benchmark times, from Python, the runtime's own call on inputs bound before the clock "
              "starts (`start_async` + `wait` on shared input tensors): a Python call and OpenVINO's wait are in its "
              "samples, the adapter's checks and copies are not (they are timed apart as `adapter_overhead_ms`).",
              "- benchmark_app: 1 warm-up inference, a fresh process per run, a nearest-rank median printed with 2 "
              "decimals (10 us steps when its average is >= 1 ms). edgekit: 1 + 10 warm-up calls, this process, "
              "numpy's median of the raw samples.",
              "- Same IR file, same compiled-model settings (compared above), same float32 input values (`-i "
              "input.npy`, `-ip f32`).", "",
              f"Command: `{res['command']}` ({res['seconds'] / 60:.1f} min on this machine).", ""]
    return "\n".join(lines)


def _d(c: Mapping[str, Any], key: str) -> str:
    """A comparison's median p50 difference in us, or '?'."""
    return f"{c[key]['diff_us_median']:+.0f} us" if key in c else "?"


def _r(c: Mapping[str, Any], key: str) -> str:
    """A comparison's median ratio and p50 difference, or '?'."""
    return f"{c[key]['ratio_median']:.3f}x ({c[key]['diff_us_median']:+.0f} us)" if key in c else "?"


def findings(res: Mapping[str, Any]) -> list[str]:
    out = []
    for key, mr in res["models"].items():
        c = mr.get("comparisons", {})
        head = c.get("edgekit_vs_benchmark_app")
        if head is None:
            continue
        lo, hi = head["ratio_ci95"]
        py_us = np.median(mr["python_call_us_per_rep"]) if mr["python_call_us_per_rep"] else float("nan")
        sc = c.get("second_compile_vs_first")
        spread = f"{sc['ratio_min']:.3f}x - {sc['ratio_max']:.3f}x" if sc else "?"
        text = (f"- **{key}**: edgekit's benchmark() p50 is {head['ratio_median']:.3f}x benchmark_app's [{lo:.3f} - "
                f"{hi:.3f}], {head['diff_us_median']:+.0f} us per inference: **{head['verdict']}**. In the same "
                f"blocks (no between-run noise) edgekit's session.run is {_r(c, 'adapter_vs_ov_cpp_timer')} OpenVINO's "
                f"C++ timer, the measure benchmark_app reports; even a lean Python call is "
                f"{_r(c, 'lean_vs_ov_cpp_timer')}. A second compile of the same IR, same blocks: {spread} the first "
                "over the repetitions (every arm compiles its own model, so each repetition draws from that spread). "
                "Where edgekit's extra time per call goes (paired medians, roughly "
                f"additive): outside the C++ timer around `infer()` (Python call, result dict) {py_us:+.0f} us; "
                f"`infer(dict)`'s input dispatch and copy over `infer()` {_d(c, 'ov_infer_dict_vs_preset')} (of which "
                f"the native inference itself {_d(c, 'ov_cpp_timer_dict_vs_preset')}); edgekit's adapter on top "
                f"{_d(c, 'adapter_vs_its_ov_call')}. benchmark() vs calling its session directly (separate runs) "
                f"{_d(c, 'edgekit_bench_vs_session_run')}; the same C++ timer here vs in benchmark_app's process "
                f"(separate runs) {_d(c, 'ov_cpp_timer_vs_benchmark_app')}")
        if (ort := c.get("edgekit_ort_vs_session_run")):
            text += (f". ONNX Runtime: benchmark() {ort['ratio_median']:.3f}x a bare session.run loop "
                     f"({ort['diff_us_median']:+.0f} us, {ort['verdict']}); same blocks: edgekit's OrtSession.run "
                     f"{_r(c, 'ort_adapter_vs_session_run')} the bare call")
        if (dyn := c.get("dynamic_vs_static_ir_benchmark_app")):
            text += (f". The dynamic batch dimension of edgekit's default IR costs {dyn['ratio_median']:.3f}x in "
                     "benchmark_app itself")
            if (dd := c.get("edgekit_dynamic_vs_benchmark_app_static")):
                text += f"; edgekit on its default IR vs benchmark_app on the static IR: {dd['ratio_median']:.3f}x"
        out.append(text + ".")
    for t in res["tiny"].values():
        p = t["p50_us"]
        ek, lat = p[S_EK], p[S_LAT]
        out.append(
            f"- Near-empty model, input {t['input_shape']}: edgekit's OpenVinoSession.run takes {ek - lat:.0f} us per "
            f"call more than OpenVINO's C++ timer sees: the Python call of infer() {p[S_PRESET] - lat:.0f} us, "
            f"OpenVINO's `infer(dict)` input dispatch, copy and result dict {p[S_DICT] - p[S_PRESET]:.0f} us, "
            f"edgekit's adapter on top {ek - p[S_DICT]:.0f} us (input checks, a second output copy). A lean call "
            f"(copy into the input tensor, infer(), copy the output) takes {p[S_LEAN]:.0f} us against edgekit's "
            f"{ek:.0f} us. ONNX Runtime: edgekit {p[S_EK_ORT]:.0f} us vs a bare session.run {p[S_ORT]:.0f} us. "
            f"edgekit's timing loop records {p[S_LOOP]:.0f} us (its samples time session.run alone).")
    return out


# ---------------------------------------------------------------------------------------------- main


def _loadavg() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--reps", type=int, default=DEFAULT_REPS, help=f"repetitions (default {DEFAULT_REPS})")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="times the default iterations per arm (digits 600, Lite0 100)")
    ap.add_argument("--tiny-rounds", type=int, default=DEFAULT_TINY_ROUNDS,
                    help=f"rounds of the near-empty-model timing (default {DEFAULT_TINY_ROUNDS})")
    ap.add_argument("--no-dynamic", action="store_true", help="skip the dynamic-batch IR arms")
    ap.add_argument("--dev", action="store_true", help="quick check: --reps 2 --scale 0.15 --tiny-rounds 40")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    keys = [k for k in args.models.split(",") if k]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)}")
    if args.build_only:
        print(json.dumps({k: build(k) for k in keys}))
        return 0
    if args.dev:
        args.reps, args.scale, args.tiny_rounds = min(args.reps, 2), min(args.scale, 0.15), min(args.tiny_rounds, 40)
    dev = args.reps < DEFAULT_REPS or args.scale < 1.0 or args.tiny_rounds < DEFAULT_TINY_ROUNDS
    started = time.perf_counter()
    load_start = _loadavg()
    paths = build_in_child(keys)
    rng = random.Random(args.seed)
    models: dict[str, Any] = {}
    tiny: dict[str, Any] = {}
    for key in keys:
        log(f"[{key}] timing: {args.reps} reps")
        try:
            models[key] = run_model(key, paths[key], args, rng)
        except Exception as exc:  # recorded, the other model goes on
            log(f"[{key}] FAILED {type(exc).__name__}: {exc}")
            models[key] = {"title": MODELS[key].title, "error": f"{type(exc).__name__}: {exc}"}
    for size, classes in sorted({(MODELS[k].size, MODELS[k].classes) for k in keys}):
        log(f"near-empty model {size}x{size} -> {classes}: {args.tiny_rounds} rounds")
        tiny[f"{size}x{size}"] = tiny_ladder(size, classes, args.tiny_rounds, 20, OUT / "tiny", args.seed)
    from int8_accuracy_vs_defaults import machine, versions  # after the timing: machine() imports torch

    from edgekit.artifacts import atomic_write_json, atomic_write_text
    from edgekit.runtimes.openvino import cpu_capabilities

    mach = machine()
    command = "python benchmarks/harness_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    res = _jsonable({
        "schema": 1, "benchmark": NAME, "dev": dev, "machine": mach,
        "simd_flags": sorted(f for f in str(mach.get("cpu_flags", "")).split()
                             if f.startswith(("avx", "amx", "fma")) or "vnni" in f),
        "openvino_cpu_capabilities": list(cpu_capabilities()), "versions": versions(LIBRARIES), "threads": THREADS,
        "ov_config": {k: str(v) for k, v in OV_CONFIG.items()}, "benchmark_app_load_config": BAPP_LOAD_CONFIG,
        "reps": args.reps, "scale": args.scale, "tiny_rounds": args.tiny_rounds, "warmup": WARMUP,
        "seed": args.seed, "command": command.strip(), "load_average_start": load_start,
        "load_average_end": _loadavg(), "seconds": time.perf_counter() - started, "models": models, "tiny": tiny})
    stem = f"{NAME}.dev" if dev else NAME  # a dev run never overwrites the real results
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{stem}.json", res)
    atomic_write_text(RESULTS / f"{stem}.md", markdown(res))
    print(markdown(res))
    log(f"wrote {RESULTS / (stem + '.md')} in {res['seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
