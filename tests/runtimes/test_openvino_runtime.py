"""The OpenVINO runtime adapter: devices, hints, threads, cache, EXECUTION_DEVICES, bad input, telemetry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import edgekit.runtimes.openvino  # first: switches telemetry off (importing openvino/nncf writes ~/intel/)

pytest.importorskip("openvino")

import edgekit
from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions
from edgekit.data import load_dataset
from edgekit.errors import ConfigError, DeviceUnavailableError, RuntimeAdapterError
from edgekit.pipeline import RunOptions, build_artifact
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import OpenVinoConfig, OpenVinoRuntime, available_devices
from edgekit.sources.base import ModelSource
from edgekit.targets import load_target
from edgekit.types import Format, Precision


@pytest.fixture(scope="module")
def tiny(tiny_model: tuple[str, Path]) -> ModelSource:
    spec, ckpt = tiny_model
    return edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")


@pytest.fixture(scope="module")
def arts(tiny: ModelSource, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    out = tmp_path_factory.mktemp("ovrt")
    ds = load_dataset("digits")
    onnx = build_artifact(tiny, Format.ONNX, Precision.FP32, out, dataset=ds)
    return {"onnx": onnx, "ir": build_artifact(tiny, Format.OPENVINO, Precision.FP32, out, dataset=ds,
                                               canonical=onnx)}


@pytest.fixture(scope="module")
def feed(tiny: ModelSource) -> dict[str, np.ndarray]:
    return next(iter(load_dataset("digits").batches("eval", tiny.io, tiny.preprocess, limit=1)))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["ir", "onnx"])
def test_loads_ir_and_onnx_and_reports_where_it_ran(kind: str, arts: dict[str, Artifact], tiny: ModelSource,
                                                    feed: dict[str, np.ndarray]) -> None:
    sess = OpenVinoRuntime().load(arts[kind].path, RuntimeOptions(threads=1))
    assert sess.input_names == tiny.io.input_names
    np.testing.assert_allclose(sess.run(feed)[0], tiny.run_reference(feed)[0], atol=1e-3, rtol=1e-3)
    info = sess.info()
    assert info["execution_devices"] == ["CPU"] and info["requested_device"] == "CPU" and info["fallback"] == []
    assert info["compile_ms"] > 0 and info["read_ms"] > 0, "compile is timed apart from the first inference"
    assert info["performance_hint"] == "LATENCY" and info["inference_threads"] == "1"
    assert info["config"]["INFERENCE_PRECISION_HINT"] == "f32"


def test_throughput_hint_streams_and_cache_dir(arts: dict[str, Artifact], tmp_path: Path,
                                               feed: dict[str, np.ndarray]) -> None:
    cfg = OpenVinoConfig(hint="THROUGHPUT", streams=2, cache_dir=tmp_path / "cache")
    sess = OpenVinoRuntime(cfg).load(arts["ir"].path, RuntimeOptions(threads=2))
    info = sess.info()
    assert info["performance_hint"] == "THROUGHPUT" and info["streams"] == "2"
    assert sess.run(feed)[0].shape == (1, 10)
    assert any((tmp_path / "cache").iterdir()), "the compiled model is cached"
    with pytest.raises(ConfigError, match=r"openvino\.hint"):
        OpenVinoConfig(hint="FAST")


def test_unknown_and_absent_devices(arts: dict[str, Artifact]) -> None:
    rt = OpenVinoRuntime()
    with pytest.raises(ConfigError) as err:
        rt.load(arts["ir"].path, RuntimeOptions(device="TPU"))
    assert "CPU, GPU, NPU, AUTO" in str(err.value) and "hint:" in str(err.value)
    absent = [d for d in ("NPU", "GPU") if not any(a.startswith(d) for a in available_devices())]
    if not absent:
        pytest.skip("this machine has both a GPU and an NPU for OpenVINO")
    with pytest.raises(DeviceUnavailableError) as derr:
        rt.load(arts["ir"].path, RuntimeOptions(device=absent[0]))
    assert "not present" in str(derr.value) and "CPU" in str(derr.value)
    auto = rt.load(arts["ir"].path, RuntimeOptions(device="AUTO"))
    assert auto.info()["execution_devices"] == ["CPU"]


def test_missing_bin_and_corrupt_xml_are_clear_and_keep_the_files(arts: dict[str, Artifact], tmp_path: Path) -> None:
    xml = tmp_path / "m.xml"
    shutil.copy(arts["ir"].path, xml)
    with pytest.raises(RuntimeAdapterError) as err:
        OpenVinoRuntime().load(xml, RuntimeOptions())
    assert "m.bin" in str(err.value) and "weights file missing" in str(err.value) and "hint:" in str(err.value)
    assert xml.exists(), "nothing written is lost"
    shutil.copy(arts["ir"].path.with_suffix(".bin"), tmp_path / "m.bin")
    xml.write_text(xml.read_text()[:300])  # truncated
    with pytest.raises(RuntimeAdapterError) as err:
        OpenVinoRuntime().load(xml, RuntimeOptions())
    assert "corrupt" in str(err.value) and "\n" not in str(err.value)
    assert xml.exists() and (tmp_path / "m.bin").exists()


def test_npu_and_igpu_targets_are_not_available_rows_with_the_reason(tiny: ModelSource, tmp_path: Path) -> None:
    for name in ("intel-npu", "intel-igpu", "intel-cpu"):
        assert load_target(name).runtime("openvino") is not None
    absent = [t for t, d in (("intel-npu", "NPU"), ("intel-igpu", "GPU"))
              if not any(a.startswith(d) for a in available_devices())]
    if not absent:
        pytest.skip("both devices present")
    opts = RunOptions(formats=(Format.ONNX, Format.OPENVINO), precisions=(Precision.FP32, Precision.FP16),
                      targets=tuple(absent), eval_limit=8,
                      bench=BenchOptions(min_runs=5, min_seconds=0.1, warmup_runs=1, memory_pass=False))
    result = edgekit.run(tiny, calibration="digits", out_dir=tmp_path, options=opts)
    rows = [r for r in result.rows if r.target in absent]
    assert rows and all(r.status == "not-available" and r.bench is None for r in rows)
    assert all("not available here" in (r.reason or "") and "driver" in (r.reason or "") for r in rows)


def test_telemetry_is_off_and_nothing_is_written_under_home(tmp_path: Path) -> None:
    """Plain ``import openvino`` or ``import nncf`` writes ``~/intel/``; through edgekit nothing is written."""
    import os
    import subprocess
    import sys

    code = ("from edgekit.registry import format_missing, runtime_status; runtime_status(); "
            "assert format_missing('openvino') is None; import openvino, nncf; "
            "from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker; "
            "assert OptInChecker().check(False, False) == ConsentCheckResult.DECLINED")
    env = {**os.environ, "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path(__file__).resolve().parents[2])
    assert not (tmp_path / "intel").exists()


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA, read by OpenVINO's CPU plugin at start) and the /proc/cpuinfo flags each
# needs: a cap this CPU lacks is skipped with the reason, every other one is run.
ONEDNN_CAPS = {
    "AVX2": ("avx2",),
    "AVX512_CORE": ("avx512f", "avx512bw", "avx512vl", "avx512dq"),
    "AVX512_CORE_VNNI": ("avx512_vnni",),
    "AVX512_CORE_BF16": ("avx512_bf16",),
    "AVX512_CORE_FP16": ("avx512_fp16",),
    "AVX512_CORE_AMX": ("amx_tile", "amx_int8", "amx_bf16"),
}
_CAP_SCRIPT = """
import sys, numpy as np
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import OpenVinoRuntime
data = np.load(sys.argv[1])
sess = OpenVinoRuntime().load(sys.argv[2], RuntimeOptions(threads=1))
np.save(sys.argv[3], sess.run({"input": data["x"]})[0])
kernels = sorted({str(op.get_rt_info()["primitiveType"]) for op in sess._compiled.get_runtime_model().get_ops()})
print(sess.info()["config"]["INFERENCE_PRECISION_HINT"], " ".join(kernels))
"""


@pytest.mark.parametrize("cap", list(ONEDNN_CAPS))
def test_fp32_ir_keeps_fp32_numerics_under_every_isa_this_cpu_has(cap: str, arts: dict[str, Artifact],
                                                                  tiny: ModelSource, feed: dict[str, np.ndarray],
                                                                  tmp_path: Path) -> None:
    """The f32 precision hint is what keeps an fp32 IR fp32 on CPUs whose default is bf16 (AVX512_BF16, AMX):
    run the IR with oneDNN capped at each ISA level this CPU offers and compare with the source."""
    import os
    import subprocess
    import sys

    from edgekit.formats.base import TOLERANCES
    from edgekit.targets import detect_isa

    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set(detect_isa())
    missing = [f for f in ONEDNN_CAPS[cap] if f not in flags]
    if missing:
        pytest.skip(f"ISA level {cap} needs {', '.join(missing)}, which this CPU lacks")
    np.savez(tmp_path / "in.npz", x=feed["input"])
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": cap}
    done = subprocess.run([sys.executable, "-c", _CAP_SCRIPT, str(tmp_path / "in.npz"), str(arts["ir"].path),
                           str(tmp_path / "out.npy")], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    hint, *kernels = done.stdout.split()
    assert hint == "f32"
    if cap == "AVX2":  # the cap is real: oneDNN picked no AVX-512 kernel
        assert not any("avx512" in k for k in kernels), kernels
    got, want = np.load(tmp_path / "out.npy"), tiny.run_reference(feed)[0]
    tol = TOLERANCES[Precision.FP32]
    assert float(np.max(np.abs(got - want))) <= tol.atol + tol.rtol * float(np.max(np.abs(want))), cap
