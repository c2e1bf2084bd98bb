"""The emulate executor with the Qualcomm HTP: a real run of a small CNN for a Snapdragon target compiles a QNN
context binary for the SoC, validates fp32 and int8 on the HTP emulator of ``onnxruntime-qnn`` (the NPU's
numerics, no speed), and a model with an op the HTP cannot take is refused naming that op, never run on the CPU."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.errors import ConfigError, RuntimeAdapterError
from edgekit.outcome import unmet_targets
from edgekit.pipeline import RunOptions
from edgekit.runtimes.base import RuntimeOptions
from edgekit.types import Format, Precision

pytest.importorskip("onnxruntime_qnn")
if platform.machine().lower() not in ("x86_64", "amd64"):
    pytest.skip("the HTP emulator of onnxruntime-qnn ships for x86_64 Linux", allow_module_level=True)

from edgekit.runtimes.qnn import QnnHtpRuntime, compile_context


def _run_with(target: str, tiny_model: tuple[str, Path], out: Path) -> tuple[Path, object]:
    """A real run of the small CNN for this CPU and ``target`` (ONNX fp32 + int8, 32 held-out items)."""
    spec, ckpt = tiny_model
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    opts = RunOptions(targets=("local-cpu", target), formats=(Format.ONNX,),
                      precisions=(Precision.FP32, Precision.INT8), calibration_limit=32, eval_limit=32)
    return out, edgekit.run(src, calibration="digits", out_dir=out, options=opts, progress=lambda _m: None)


@pytest.fixture(scope="module")
def snapdragon_run(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    return _run_with("snapdragon-8-gen-3", tiny_model, tmp_path_factory.mktemp("snapdragon"))


def test_a_snapdragon_target_gets_a_context_binary_and_the_htp_emulators_accuracy(
        snapdragon_run: tuple[Path, object]) -> None:
    out, result = snapdragon_run
    rows = {(r.artifact.name, r.target): r for r in result.rows}  # type: ignore[attr-defined]
    names = sorted(a for a, t in rows if t == "snapdragon-8-gen-3")
    # its own int8 recipe (u8 x per-channel s8, every tensor quantized), beside this CPU's
    assert names == ["model.fp32.onnx", "model.int8-qnn.onnx"], names
    for name in names:
        row = rows[(name, "snapdragon-8-gen-3")]
        assert row.status == "validated-remote" and row.bench is None, (row.status, row.reason)
        assert "HTP v75 emulator" in (row.accuracy_from or "") and "SM8650" in row.accuracy_from
        assert row.metrics.n == 32 and row.metrics.cosine_mean > 0.98, row.metrics
        assert "context binary" in row.reason and "ONNX nodes on the HTP" in row.reason, row.reason
        ctx = out / "artifacts" / name.replace(".onnx", ".SM8650_ctx.onnx")
        assert ctx.exists() and list(ctx.parent.glob(ctx.stem + "_*.bin")), sorted(ctx.parent.iterdir())
    # the HTP's numerics: fp32 runs in fp16 there (not bit-exact), int8 further off
    int8 = rows[("model.int8-qnn.onnx", "snapdragon-8-gen-3")].metrics
    fp16 = rows[("model.fp32.onnx", "snapdragon-8-gen-3")].metrics
    assert 0 < fp16.max_abs < int8.max_abs
    report = json.loads((out / "report.json").read_text())
    recs = {(r["target"], r["runtime"]): r for r in report["recommendations"]}
    assert recs[("snapdragon-8-gen-3", "qnn-htp")]["artifact"] is None
    assert "no speed measured (emulated)" in recs[("snapdragon-8-gen-3", "qnn-htp")]["reason"]
    assert not [u for u in unmet_targets(result) if u.startswith("snapdragon")]  # type: ignore[arg-type]
    assert not [c for c in result.cross_runtime if c.other_runtime == "qnn-htp"]  # type: ignore[attr-defined]


def test_the_context_binary_runs_on_the_htp_as_the_model_did(snapdragon_run: tuple[Path, object]) -> None:
    """What ships to the phone: the EPContext model loads (no recompilation) and computes what the model computed."""
    out, _ = snapdragon_run
    art = out / "artifacts" / "model.int8-qnn.onnx"
    ctx = compile_context(art, "SM8650", art.with_name("model.int8-qnn.SM8650_ctx.onnx"))
    assert ctx.reused and ctx.bytes > 10_000 and "ONNX nodes on the HTP" in ctx.placed  # recorded at compile
    import onnx

    rt = QnnHtpRuntime()
    (inp,) = onnx.load(str(art), load_external_data=False).graph.input
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    x = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    want = rt.load(art, RuntimeOptions(device="SM8650")).run(x)[0]
    got = rt.load(ctx.model, RuntimeOptions(device="SM8650")).run(x)[0]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_an_op_the_htp_cannot_take_is_refused_naming_it(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Det", ["r"], ["y"])],
                              "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)
    with pytest.raises(RuntimeAdapterError) as err:
        QnnHtpRuntime().load(path, RuntimeOptions(device="SM8750"))
    assert "SM8750" in str(err.value) and "Det" in str(err.value), str(err.value)
    with pytest.raises(ConfigError) as bad:
        QnnHtpRuntime().load(path, RuntimeOptions(device="SM9999"))
    assert "SM8650" in str(bad.value) and bad.value.where == "runtime qnn-htp: device"


# --- Rockchip RKNPU2 through rknn-toolkit2 in its own virtualenv (make test installs it: `make toolchains`) ------


@pytest.fixture(scope="module")
def rknn_run(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from edgekit import toolchains

    why = toolchains.unusable(toolchains.get("rknn"))
    if why:
        pytest.skip(f"rknn toolchain: {why} (edgekit toolchains install rknn)")
    return _run_with("rk3588", tiny_model, tmp_path_factory.mktemp("rk3588"))


def test_an_rk3588_target_gets_an_rknn_file_and_the_simulators_accuracy(rknn_run: tuple[Path, object]) -> None:
    out, result = rknn_run
    rows = {(r.artifact.name, r.target): r for r in result.rows}  # type: ignore[attr-defined]
    names = sorted(a for a, t in rows if t == "rk3588")
    assert names == ["model.fp32.onnx", "model.int8-rknn.onnx"], names
    sizes = {}
    for name in names:
        row = rows[(name, "rk3588")]
        assert row.status == "validated-remote" and row.bench is None, (row.status, row.reason)
        assert "RKNN simulator for rk3588" in (row.accuracy_from or "")
        assert row.metrics.n == 32 and row.metrics.cosine_mean > 0.98, row.metrics
        rknn = out / "artifacts" / name.replace(".onnx", ".rk3588.rknn")
        assert rknn.exists() and rknn.name in row.reason, row.reason
        sizes[name] = rknn.stat().st_size
    assert min(sizes.values()) > 1000, sizes
    # fp32 runs in fp16 (not bit-exact); the int8 QDQ parameters are applied (further off)
    fp16, int8 = (rows[(n, "rk3588")].metrics for n in names)
    assert 0 < fp16.max_abs < int8.max_abs
    assert not [f for f in (out / "artifacts").iterdir() if f.name.startswith(".")]  # nothing half-written left


def test_the_toolchain_is_driven_as_a_subprocess_with_typed_errors(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's failure is a ToolchainError carrying the vendor tool's own words; a toolchain that is not there
    is a missing dependency whose hint is the install command."""
    from edgekit import toolchains
    from edgekit.errors import MissingDependencyError, ToolchainError

    tc = toolchains.get("rknn")
    if toolchains.unusable(tc):
        pytest.skip(f"rknn toolchain: {toolchains.unusable(tc)}")
    with pytest.raises(ToolchainError, match="unknown op"):
        toolchains.call(tc, {"op": "teleport"})
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x01garbage" * 64)
    with pytest.raises(ToolchainError) as err:
        toolchains.call(tc, {"op": "simulate", "model": str(bad), "platform": "rk3588", "inputs": "missing.npz",
                             "input_names": ["x"], "outputs": str(tmp_path / "o.npz"),
                             "export": str(tmp_path / "m.rknn")})
    assert str(bad) in (err.value.where or "") or "missing.npz" in str(err.value), str(err.value)
    monkeypatch.setenv("EDGEKIT_TOOLCHAINS_DIR", str(tmp_path / "none"))
    with pytest.raises(MissingDependencyError) as missing:
        toolchains.call(tc, {"op": "simulate"})
    assert missing.value.hint == "edgekit toolchains install rknn"
    with pytest.raises(ToolchainError, match="unknown toolchain"):
        toolchains.get("snpe")


def test_rknn_takes_a_relative_path_as_users_give_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out runs/x` gives relative artifact paths; the worker runs in a folder of its own (make demo found it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgekit import toolchains
    from edgekit.runtimes.rknn import RknnSimRuntime

    if toolchains.unusable(toolchains.get("rknn")):
        pytest.skip(f"rknn toolchain: {toolchains.unusable(toolchains.get('rknn'))}")
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "c",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    monkeypatch.chdir(tmp_path)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), "m.onnx")
    feeds = [{"x": np.random.default_rng(i).standard_normal((1, 3, 8, 8)).astype(np.float32)} for i in range(2)]
    outputs, note = RknnSimRuntime().emulate(Path("m.onnx"), RuntimeOptions(device="rk3566"), feeds, lambda _m: None)
    assert len(outputs) == 2 and outputs[0][0].shape == (1, 4, 8, 8) and "m.rk3566.rknn" in note
    assert (tmp_path / "m.rk3566.rknn").exists()


def test_qnn_fixes_unnamed_dynamic_dims_from_the_items(tmp_path: Path) -> None:
    """PP-OCR's classifier declares x as [?, 3, ?, ?] (no dim names): QNN refused it even with --input-shape
    (which fixes the source, not the exported ONNX) until every unnamed dim, the batch too, was fixed."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, None, None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                                                  "c", [x], [y], [w]),
                                opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    with pytest.raises(RuntimeAdapterError, match=r"static shapes only: dynamic x\[0\]"):
        QnnHtpRuntime().load(path, RuntimeOptions(device="SM8650"))
    feeds = [{"x": np.random.default_rng(1).standard_normal((1, 3, 8, 12)).astype(np.float32)}]
    outputs, note = QnnHtpRuntime().emulate(path, RuntimeOptions(device="SM8650"), feeds, lambda _m: None)
    assert outputs[0][0].shape == (1, 4, 8, 12) and "x[0]=1, x[2]=8, x[3]=12" in note, note
    assert (tmp_path / "m.SM8650_ctx.onnx").exists()
