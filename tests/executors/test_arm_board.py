"""The emulated Arm board, reached over REAL SSH: a Raspberry Pi 5 as closely as qemu-user allows.

``scripts/emulated-arm-board.sh`` (``make arm-board``, which ``make test`` runs first) builds a Debian bookworm
arm64 rootfs with the aarch64 numpy / onnxruntime / ai-edge-litert wheels at the versions of constraints.txt,
and a wrapper that runs its Python under ``qemu-aarch64-static -cpu cortex-a76``: the HWCAP bits the int8
kernels are chosen from (ONNX Runtime's MLAS, XNNPACK) are a Pi 5's (dot product and fp16 on, i8mm off).
``make test`` passes that wrapper as ``EDGEKIT_ARM_PYTHON``; without it these tests skip.

Each test pushes edgekit's agent over a real sshd on loopback and runs it under emulation as a board's
``--remote-python``, then compares the outputs with this x86 machine's outputs of the same artifact: fp32, an
int8 QDQ ONNX model that edgekit quantized for the raspberry-pi-5 target (preset arm64: s8 activations, s8
per-channel weights) and a full-integer int8 .tflite (LiteRT + XNNPACK). The numbers go to ``EDGEKIT_ARM_RESULT``
(``make test`` / ``make arm-emulated``: runs/arm-emulated/result.json). Correctness only: emulated code runs
hundreds of times slower than the host, and its wall times are recorded as such, never as a board's speed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("asyncssh")
pytest.importorskip("onnxruntime")
from onnx_helpers import make_feeds, make_model
from ssh_helpers import needs_sshd, running_sshd

from edgekit.agent import read_feeds_npz, read_outputs_npz, write_feeds_npz
from edgekit.bench import BenchOptions, result_from_dict
from edgekit.executors.hosts import HostSpec
from edgekit.executors.ssh import RemoteJob, run_one
from edgekit.registry import get_runtime
from edgekit.runtimes.base import RuntimeOptions

ARM_PYTHON = os.environ.get("EDGEKIT_ARM_PYTHON", "")
REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, needs_sshd,
              pytest.mark.skipif(not ARM_PYTHON, reason="the emulated Arm board is not set up: `make arm-board` "
                                 "builds it (make test does, and passes EDGEKIT_ARM_PYTHON=<its python-aarch64>)")]
FEEDS = 16


@pytest.fixture(scope="module")
def record() -> Iterator[dict[str, Any]]:
    """What the tests measured; written to ``EDGEKIT_ARM_RESULT`` (if set) when the module ends."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    data: dict[str, Any] = {
        "note": "emulated (qemu-user) wall times are hundreds of times a real board's: correctness only, never a speed",
        "x86_host": {"cpu_model": cpu, "python": sys.version.split()[0],
                     "versions": {d: metadata.version(d) for d in ("numpy", "onnxruntime", "ai-edge-litert")}}}
    yield data
    if os.environ.get("EDGEKIT_ARM_RESULT"):
        out = Path(os.environ["EDGEKIT_ARM_RESULT"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=2, default=str) + "\n")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostSpec]:
    """A real sshd on a loopback port whose ``--remote-python`` is the emulated board's Python."""
    with running_sshd(tmp_path_factory.mktemp("sshd"), "pi5") as env:
        yield env.spec("pi5", name="emulated-pi5", python=ARM_PYTHON, run_timeout=600.0)


def _job(mode: str, runtime: str, bench: BenchOptions | None = None) -> dict[str, object]:
    job: dict[str, object] = {"mode": mode, "runtime": runtime, "runtime_options": {"threads": 1}}
    if bench is not None:
        job["bench_options"] = dataclasses.asdict(bench)
    return job


def _compare(board: HostSpec, runtime: str, artifact: Path, feeds: Path, out: Path,
             labels: np.ndarray | None = None) -> dict[str, Any]:
    """Outputs of ``artifact`` on the emulated board (agent over SSH) and here (the same runtime adapter the agent
    uses), item by item: cosine, max-abs, argmax agreement, how many are bit-identical."""
    t0 = time.monotonic()
    info = asyncio.run(run_one(board, RemoteJob(_job("outputs", runtime), artifact, feeds, fetch_outputs=out)))
    emulated_s = time.monotonic() - t0
    session = get_runtime(runtime).load(artifact, RuntimeOptions(threads=1))
    x86 = np.stack([np.asarray(session.run(f)[0], np.float64).ravel() for f in read_feeds_npz(feeds)])
    arm = np.stack([np.asarray(o[0], np.float64).ravel() for o in read_outputs_npz(out)])
    assert info["feeds"] == len(x86) == len(arm) and arm.shape == x86.shape
    cos = (x86 * arm).sum(1) / np.maximum(np.linalg.norm(x86, axis=1) * np.linalg.norm(arm, axis=1), 1e-30)
    got: dict[str, Any] = {
        "feeds": len(x86), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
        "max_abs": float(np.abs(x86 - arm).max()), "x86_output_max_abs": float(np.abs(x86).max()),
        "argmax_agreement": float((x86.argmax(1) == arm.argmax(1)).mean()),
        "bit_identical_items": int(sum(np.array_equal(a, b) for a, b in zip(arm, x86, strict=True))),
        "emulated_outputs_job_wall_s": round(emulated_s, 1)}
    if labels is not None:
        got["x86_accuracy"] = float((x86.argmax(1) == labels).mean())
        got["arm_accuracy"] = float((arm.argmax(1) == labels).mean())
    return got


# ------------------------------------------------------------------------------------------ the board itself
def test_board_is_an_aarch64_cortex_a76_like_a_raspberry_pi_5(record: dict[str, Any]) -> None:
    """The kernels see a Pi 5's CPU: HWCAP (from qemu's -cpu) with dot product and fp16 arithmetic, without
    i8mm / SVE; a Cortex-A76 cpuinfo; and the same wheel versions as this venv (else a difference could be a
    version's, not the ISA's)."""
    proc = subprocess.run([ARM_PYTHON, str(REPO / "scripts" / "arm_board_probe.py")], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    probe = json.loads(proc.stdout)
    record["board"] = probe
    caps = set(probe["hwcap_names"]) | set(probe["hwcap2_names"])
    assert probe["machine"] == "aarch64" and probe["python"].startswith("3.11")
    assert {"asimd", "asimddp", "fphp", "asimdhp", "asimdrdm", "atomics", "lrcpc", "dcpop"} <= caps, caps
    assert not caps & {"i8mm", "svei8mm", "sve", "sve2", "bf16", "sme"}, caps  # a Cortex-A76 has none of these
    assert probe["cpuinfo_part"] == "0xd0b" and "asimddp" in probe["cpuinfo_features"]
    assert probe["litert_interpreter_import"] == "ok"
    for module, dist in (("numpy", "numpy"), ("onnxruntime", "onnxruntime"), ("ai_edge_litert", "ai-edge-litert")):
        assert probe["versions"][module] == metadata.version(dist), (module, probe["versions"])


# ------------------------------------------------------------------------------------------ fp32
def _conv_model(path: Path) -> None:
    """A small fp32 CNN (Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm-Softmax), seeded weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32)
    fc = (rng.standard_normal((10, 16)) * 0.5).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]), helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "fc"], ["l"], transB=1),
             helper.make_node("Softmax", ["l"], ["y"], axis=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    graph = helper.make_graph(nodes, "small_cnn", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                                           numpy_helper.from_array(fc, "fc")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_fp32_outputs_match_x86_and_the_agent_reports_an_emulated_pi_5(board: HostSpec, tmp_path: Path,
                                                                        record: dict[str, Any]) -> None:
    """fp32 artifacts (a MatMul-Relu and a small CNN) give the x86 outputs within 1e-4 max-abs; the agent's
    benchmark mode runs and its environment says aarch64, Cortex-A76 and an emulated Raspberry Pi 5."""
    matmul, matmul_feeds = tmp_path / "matmul.onnx", tmp_path / "matmul-feeds.npz"
    make_model(matmul, 64)
    write_feeds_npz(make_feeds(4, 64), matmul_feeds)
    cnn, cnn_feeds = tmp_path / "cnn.onnx", tmp_path / "cnn-feeds.npz"
    _conv_model(cnn)
    rng = np.random.default_rng(5)
    write_feeds_npz([{"x": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(4)], cnn_feeds)
    fp32: dict[str, Any] = {}
    for name, path, feeds in (("matmul_relu", matmul, matmul_feeds), ("small_cnn", cnn, cnn_feeds)):
        fp32[name] = got = _compare(board, "onnxruntime", path, feeds, tmp_path / f"{name}-arm.npz")
        assert got["max_abs"] <= 1e-4, (name, got)
    record["fp32"] = fp32
    bench = BenchOptions(threads=1, warmup_runs=1, min_runs=3, min_seconds=0.1, memory_pass=False)
    res = result_from_dict(asyncio.run(run_one(board, RemoteJob(_job("bench", "onnxruntime", bench), cnn,
                                                                cnn_feeds))))
    env = res.environment
    assert env["machine"] == "aarch64" and res.stats.n >= 3
    assert env["cpu_model"] == "Cortex-A76" and "asimddp" in env["cpu_flags"] and "i8mm" not in env["cpu_flags"]
    assert "Raspberry Pi 5" in env.get("board_model", "") and "emulated" in env["board_model"], env
    record["agent_environment"] = {k: env.get(k) for k in ("machine", "cpu_model", "cpu_flags", "board_model",
                                                            "logical_cores", "python", "runtime_versions")}
    record["small_cnn_bench_p50_ms_EMULATED_not_a_speed"] = res.stats.p50_ms


# ------------------------------------------------------------------------------------------ int8
@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small CNN trained here on the bundled digits (16x16, a few seconds), exported and quantized by edgekit's
    API for the raspberry-pi-5 target: int8 QDQ ONNX (its ISA preset, arm64) and full-integer int8 TFLite; plus
    16 held-out items as feeds in each artifact's layout."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    from torch import nn

    import edgekit
    from edgekit.data.load import load_dataset
    from edgekit.layout import to_layout

    ds = load_dataset("digits")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a shared 2-core machine, 1 thread trained this 16x faster than 2
    try:
        torch.manual_seed(0)
        module = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                               nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                               nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        src = edgekit.load_source(module, input_shapes={"input": (1, 3, 16, 16)}, task="image-classification",
                                  preprocess={"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3})
        x = torch.from_numpy(np.concatenate([f["input"] for f in ds.batches("train", src.io, src.preprocess)]))
        y = torch.from_numpy(np.asarray(ds.labels("train"), np.int64))
        opt = torch.optim.Adam(module.parameters(), 3e-3)
        module.train()
        for _ in range(6):
            perm = torch.randperm(len(x))
            for i in range(0, len(x), 32):
                idx = perm[i:i + 32]
                loss = nn.functional.cross_entropy(module(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
        module.eval()
        out = tmp_path_factory.mktemp("digits-int8")
        quiet = lambda _m: None  # noqa: E731
        arts = {}
        for fmt in ("onnx", "tflite"):
            fp32 = edgekit.export(src, out / fmt, fmt=fmt, calibration=ds, progress=quiet)
            arts[fmt] = edgekit.quantize(src, fp32, "int8", calibration=ds, out_dir=out / fmt,
                                         target="raspberry-pi-5", progress=quiet)
    finally:
        torch.set_num_threads(threads)
    feeds = list(ds.batches("eval", src.io, src.preprocess, limit=FEEDS))
    paths = {}
    for fmt, art in arts.items():
        paths[fmt] = out / f"feeds-{fmt}.npz"
        write_feeds_npz([to_layout(f, art.layout) for f in feeds], paths[fmt])
    return {"artifacts": arts, "feeds": paths, "labels": np.asarray(ds.labels("eval"))[:FEEDS], "dir": out}


def test_onnx_int8_on_arm_kernels_matches_x86(board: HostSpec, digits_int8: dict[str, Any],
                                              record: dict[str, Any]) -> None:
    """edgekit's int8 QDQ ONNX for the Pi 5 (preset arm64: s8 x s8, per-channel) on ONNX Runtime's aarch64 MLAS
    kernels (dot-product, as on a Cortex-A76) gives this x86 machine's outputs. Measured: bit-identical on all
    16 items (cosine 1.0); asserted with a margin for kernels that round differently: cosine >= 0.999 on every
    item and the same argmax on all but at most one."""
    art = digits_int8["artifacts"]["onnx"]
    s = art.settings
    assert (s["preset"], s["activation_type"], s["weight_type"], s["per_channel"]) == ("arm64", "int8", "int8", True)
    got = _compare(board, "onnxruntime", art.path, digits_int8["feeds"]["onnx"], digits_int8["dir"] / "onnx-arm.npz",
                   digits_int8["labels"])
    got["artifact"] = {"preset": s["preset"], "activations": s["activation_type"], "weights": s["weight_type"],
                       "per_channel": s["per_channel"],
                       "kept_float": [n for n in art.notes if n.startswith("kept ")]}
    record["onnx_int8"] = got
    assert got["min_cosine"] >= 0.999, got
    assert got["argmax_agreement"] >= (FEEDS - 1) / FEEDS, got


def test_tflite_int8_on_litert_arm_matches_x86(board: HostSpec, digits_int8: dict[str, Any],
                                              record: dict[str, Any]) -> None:
    """The aarch64 ai-edge-litert wheel (``ai_edge_litert.interpreter.Interpreter``, XNNPACK) runs edgekit's
    full-integer int8 .tflite under emulation and gives this x86 machine's outputs. Measured: bit-identical on all
    16 items; asserted: cosine >= 0.999 on every item, the same argmax on all but at most one."""
    art = digits_int8["artifacts"]["tflite"]
    assert art.layout == "NHWC"
    got = _compare(board, "litert", art.path, digits_int8["feeds"]["tflite"], digits_int8["dir"] / "tflite-arm.npz",
                   digits_int8["labels"])
    got["artifact"] = {"notes": [n for n in art.notes if "int8" in n][:1]}
    record["tflite_int8"] = got
    assert got["min_cosine"] >= 0.999, got
    assert got["argmax_agreement"] >= (FEEDS - 1) / FEEDS, got



def test_one_run_for_this_machine_and_an_emulated_pi_5_gives_each_its_recipe_and_its_kernels_accuracy(
        board: HostSpec, tiny_model: tuple[str, Path], tmp_path: Path, record: dict[str, Any]) -> None:
    """Issue 12's acceptance, end to end through the CLI: ``--target local-cpu --target raspberry-pi-5 --host
    <emulated board>`` builds two int8 variants (this machine's ISA recipe and the Pi's arm64 one), validates the
    Pi's artifacts on the board's aarch64 kernels under emulation (fp16 included: a Cortex-A76 has fp16
    arithmetic), and reports per target the recipe, whose kernels computed the accuracy, and speed only for
    local-cpu (emulated timings are not the Pi's speed)."""
    from edgekit.cli import main
    from edgekit.targets import load_target

    spec, ckpt = tiny_model
    out = tmp_path / "run"
    t0 = time.monotonic()
    code = main(["run", "--model", spec, "--checkpoint", str(ckpt), "--calibration", "digits", "--out", str(out),
                 "--formats", "onnx", "--precisions", "fp32,fp16,int8", "--calibration-limit", "64",
                 "--eval-limit", "32", "--min-runs", "5", "--min-seconds", "0.1", "--threads", "1",
                 "--target", "local-cpu", "--target", "raspberry-pi-5",
                 "--host", f"{board.user}@127.0.0.1:{board.port}", "--ssh-key", str(board.key),
                 "--ssh-known-hosts", str(board.known_hosts), "--remote-python", ARM_PYTHON])
    wall = time.monotonic() - t0
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    local_family = load_target("local-cpu").int8_preset
    names = {a["name"] for a in report["artifacts"]}
    assert {"model.fp32.onnx", "model.fp16.onnx", f"model.int8-{local_family}.onnx", "model.int8-arm64.onnx"} <= names
    pi = {r["artifact"]: r for r in report["rows"] if r["target"] == "raspberry-pi-5"}
    local = {r["artifact"]: r for r in report["rows"] if r["target"] == "local-cpu" and r["runtime"] == "onnxruntime"}
    assert set(pi) == {"model.fp32.onnx", "model.fp16.onnx", "model.int8-arm64.onnx"}
    assert set(local) == {"model.fp32.onnx", "model.fp16.onnx", f"model.int8-{local_family}.onnx"}
    for row in pi.values():  # the board's kernels, no speed
        assert row["status"] == "validated-remote" and row["bench"] is None, row
        assert "(aarch64, emulated on x86_64, onnxruntime " in row["accuracy_from"], row["accuracy_from"]
        assert row["metrics"]["cosine_mean"] is not None
    assert all(r["status"] == "measured" and r["bench"] and r["accuracy_from"] == "build machine"
               for r in local.values())
    arm_int8 = pi["model.int8-arm64.onnx"]["metrics"]
    assert arm_int8["cosine_mean"] >= 0.99 and arm_int8["top1_agreement"] >= 0.9, arm_int8
    notes = report["notes"]
    assert any(n.startswith("int8 recipe of raspberry-pi-5 (aarch64") and "onnx int8: arm64 (own build)" in n
               for n in notes), notes
    assert any(n.startswith("int8 recipe of local-cpu") and f"onnx int8: {local_family} (own build)" in n
               for n in notes), notes
    recs = {(r["target"], r["runtime"]): r for r in report["recommendations"]}
    assert recs[("raspberry-pi-5", "onnxruntime")]["artifact"] is None
    assert "no speed measured (emulated)" in recs[("raspberry-pi-5", "onnxruntime")]["reason"]
    md = (out / "report.md").read_text()
    assert "validated-remote on" in md and "(accuracy on " in md
    record["pipeline_run_local_cpu_and_emulated_pi5"] = {
        "wall_s_emulated_not_a_speed": round(wall, 1),
        "pi_metrics": {a: {k: r["metrics"][k] for k in ("cosine_mean", "top1_agreement", "accuracy")}
                       for a, r in pi.items()},
        "local_metrics": {a: {k: r["metrics"][k] for k in ("cosine_mean", "top1_agreement", "accuracy")}
                          for a, r in local.items()},
        "accuracy_from": pi["model.int8-arm64.onnx"]["accuracy_from"]}
