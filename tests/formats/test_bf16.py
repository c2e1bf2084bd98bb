"""bf16 where the hardware has it: an OpenVINO IR recording INFERENCE_PRECISION_HINT=bf16 in its rt_info, run in
bfloat16 by OpenVINO's CPU plugin (edgekit's runtime and a plain ``compile_model`` alike) on CPUs with AVX-512 BF16
or AMX, refused with the reason elsewhere (never quietly run in f32); built by default only where a target of
the run computes bf16. Both branches are real: which one runs depends on this machine's CPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import edgekit.runtimes.openvino  # first: switches telemetry off

pytest.importorskip("openvino")

import edgekit
from edgekit.data import load_dataset
from edgekit.errors import DeviceUnavailableError
from edgekit.pipeline import RunOptions, build_artifact, run
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import OpenVinoRuntime, cpu_capabilities, recorded_precision
from edgekit.targets import load_target
from edgekit.types import Format, Precision

HAS_BF16 = "BF16" in cpu_capabilities()


@pytest.fixture(scope="module")
def bf16_ir(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    ds = load_dataset("digits")
    out = tmp_path_factory.mktemp("bf16")
    opts = RunOptions(calibration_limit=16)
    onnx = build_artifact(src, Format.ONNX, Precision.FP32, out, dataset=ds, options=opts)
    fp32 = build_artifact(src, Format.OPENVINO, Precision.FP32, out, dataset=ds, canonical=onnx, options=opts)
    bf16 = build_artifact(src, Format.OPENVINO, Precision.BF16, out, dataset=ds, canonical=fp32, options=opts)
    assert bf16.path.name == "model.bf16.xml" and bf16.settings["inference_precision"] == "bf16"
    feeds = list(ds.batches("eval", src.io, src.preprocess, batch_size=1, limit=16))
    return fp32.path, bf16.path, feeds


def test_the_ir_records_bf16_for_itself_and_a_plain_openvino_user_gets_it(bf16_ir: tuple[Path, Path, list]) -> None:
    import openvino as ov

    fp32, bf16, _ = bf16_ir
    core = ov.Core()
    assert recorded_precision(core.read_model(str(bf16))) == "bf16"
    assert recorded_precision(core.read_model(str(fp32))) is None
    if HAS_BF16:  # plain OpenVINO, no config: the IR's own rt_info decides
        compiled = core.compile_model(core.read_model(str(bf16)), "CPU")
        assert str(compiled.get_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no BF16 (the refusal is tested below)")
def test_bf16_runs_in_bf16_close_to_fp32_where_the_cpu_has_it(bf16_ir: tuple[Path, Path, list]) -> None:
    fp32, bf16, feeds = bf16_ir
    s32 = OpenVinoRuntime().load(fp32, RuntimeOptions(threads=1))
    s16 = OpenVinoRuntime().load(bf16, RuntimeOptions(threads=1))
    assert s16.info()["config"]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert s32.info()["config"]["INFERENCE_PRECISION_HINT"] == "f32"  # edgekit's fp32 stays f32
    a = np.concatenate([s32.run(f)[0] for f in feeds])
    b = np.concatenate([s16.run(f)[0] for f in feeds])
    cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert 0 < np.abs(a - b).max() < 0.5 and cos.min() > 0.995  # bf16 numerics: close, not identical
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9


def test_a_cpu_without_the_recorded_precision_refuses_the_artifact_with_the_reason(
        bf16_ir: tuple[Path, Path, list], tmp_path: Path) -> None:
    """The same rule for any precision an IR records: on this CPU, the one of bf16 / f16 its plugin lacks (CPUs
    with both, Xeons with AMX-FP16, skip) is refused naming the capability, never run in f32 instead."""
    import openvino as ov

    from edgekit.runtimes.openvino import NEEDS_CAPABILITY, RT_PRECISION

    missing = [p for p, cap in NEEDS_CAPABILITY.items() if cap not in cpu_capabilities()]
    if not missing:
        pytest.skip("this CPU has both BF16 and FP16")
    fp32, _, _ = bf16_ir
    model = ov.Core().read_model(str(fp32))
    model.set_rt_info(missing[0], list(RT_PRECISION))
    ov.save_model(model, str(tmp_path / "m.xml"), compress_to_fp16=False)
    with pytest.raises(DeviceUnavailableError, match=f"this CPU cannot run {missing[0]}: .*no "
                                                     f"{NEEDS_CAPABILITY[missing[0]]} capability"):
        OpenVinoRuntime().load(tmp_path / "m.xml", RuntimeOptions(threads=1))


@pytest.mark.slow
def test_default_run_builds_bf16_only_for_a_target_that_computes_it(tiny_model: tuple[str, Path],
                                                                   tmp_path: Path) -> None:
    """A target declaring an ISA without BF16 gets no bf16 build and the report says why; a target with it
    (this machine's, where it has BF16) gets model.bf16.xml validated and measured like any artifact."""
    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    local = load_target("local-cpu")
    no_bf16 = tmp_path / "avx2-box.toml"
    no_bf16.write_text((Path(local.source or "").read_text() if local.source else "")
                       .replace('name = "local-cpu"', 'name = "avx2-box"').replace('isa = "auto"', 'isa = ["avx2"]'))
    base = RunOptions(formats=(Format.OPENVINO,), calibration_limit=16, eval_limit=16,
                      bench=dataclasses.replace(RunOptions().bench, min_runs=5, min_seconds=0.05, memory_pass=False))
    res = run(src, "digits", tmp_path / "a", dataclasses.replace(base, targets=(str(no_bf16),)))
    assert not any(a.precision is Precision.BF16 for a in res.artifacts)
    assert any(n.startswith("bf16 not built: not available here: avx2-box has no AVX-512 BF16") for n in res.notes)
    if not local.has_bf16:
        return
    res = run(src, "digits", tmp_path / "b", dataclasses.replace(base, targets=("local-cpu",)))
    rows = [r for r in res.rows if r.artifact.precision is Precision.BF16]
    assert rows and all(r.status == "measured" and r.metrics is not None for r in rows)
    assert rows[0].metrics is not None and (rows[0].metrics.cosine_mean or 0) > 0.995
