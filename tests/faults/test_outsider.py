"""What an outsider found by using edgekit as a user would: lost work (a report.md or a model file of the user's
overwritten), tracebacks for data mistakes, duplicate targets giving wrong numbers, edited sidecars trusted,
options silently ignored, misleading messages and temp dirs left in /tmp. Each is now one ``edgekit: error:``
line (exit 2) naming the option or file, or the right behaviour. Real ONNX files, real CLI runs, no mocks.
See tests/faults/CASES.md ("Outsider pass")."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main

FAST = ["--calibration-limit", "40", "--eval-limit", "20", "--formats", "onnx", "--min-runs", "3",
        "--min-seconds", "0.05", "--warmup", "1", "--no-memory"]


def _conv(path: Path, *, batch: int | str = "N", seed: int = 0) -> Path:
    """A 1x3x16x16 conv classifier with 10 logits (dynamic batch unless ``batch`` is an int)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(8, np.float32), "b"),
             numpy_helper.from_array(rng.normal(0, 0.3, (8, 10)).astype(np.float32), "fw")]
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "fw"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "conv",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _tokens(path: Path) -> Path:
    """int64 token ids (batch, 8) -> a 20-word embedding -> mean -> 3 logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(size=(20, 4)).astype(np.float32), "emb"),
             numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "fw")]
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"], name="gather"),
             helper.make_node("ReduceMean", ["e"], ["m"], axes=[1], keepdims=0, name="mean"),
             helper.make_node("MatMul", ["m", "fw"], ["logits"], name="fc")]
    graph = helper.make_graph(nodes, "tok", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("outsider")
    rng = np.random.default_rng(0)
    out = {"dir": d, "conv": _conv(d / "conv.onnx"), "other": _conv(d / "other.onnx", seed=1),
           "fixed": _conv(d / "fixed.onnx", batch=1), "tok": _tokens(d / "tok.onnx")}
    np.savez(d / "ids.npz", ids=rng.integers(0, 100, (30, 8)).astype(np.int64))  # the vocabulary has 20 words
    np.savez(d / "labels50.npz", input=rng.random((60, 3, 16, 16), dtype=np.float32), labels=np.arange(60) % 50)
    np.savez(d / "tensors.npz", input=rng.random((60, 3, 16, 16), dtype=np.float32), labels=np.arange(60) % 10)
    (d / "dup.toml").write_text('schema = 1\nname = "dup"\naccess = "local"\n[[runtime]]\nname = "onnxruntime"\n'
                                '[[runtime]]\nname = "onnxruntime"\n')
    (d / "none.toml").write_text('schema = 1\nname = "none"\naccess = "local"\n[[runtime]]\nname = "onnxruntime"\n'
                                 'precisions = []\n')
    (d / "ir.xml").write_text("<net/>")
    return out


def _error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("edgekit: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _run(files: dict[str, Path], out: Path, *extra: str, precisions: str = "fp32,int8") -> int:
    return main(["run", "--model", str(files["conv"]), "--calibration", "digits", "--out", str(out),
                 "--precisions", precisions, *FAST, *extra])


def test_a_users_report_md_beside_edgekits_report_json_is_never_overwritten(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d10"
    assert _run(files, out, precisions="fp32") == 0
    (out / "report.md").write_text("# My notes\n")
    line = _error(capsys, _run(files, out, precisions="fp32"))
    assert str(out / "report.md") in line and "not written by edgekit" in line
    assert (out / "report.md").read_text() == "# My notes\n"


@pytest.mark.parametrize("command", ["export", "quantize", "run"])
def test_a_users_file_with_an_artifacts_name_and_no_sidecar_is_never_overwritten(
        command: str, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ux"
    mine = {"export": out / "model.fp32.onnx", "quantize": out / "model.fp16.onnx",
            "run": out / "artifacts" / "model.fp16.onnx"}[command]
    mine.parent.mkdir(parents=True)
    mine.write_bytes(files["other"].read_bytes())
    base = ["--model", str(files["conv"]), "--calibration", "digits", "--out", str(out)]
    argv = {"export": ["export", *base], "quantize": ["quantize", *base, "--precision", "fp16"],
            "run": ["run", *base, "--precisions", "fp32,fp16", *FAST]}[command]
    line = _error(capsys, main(argv))
    assert str(mine) in line and "sidecar" in line
    assert mine.read_bytes() == files["other"].read_bytes()


def test_a_build_interrupted_between_model_file_and_sidecar_is_rebuilt_on_rerun(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A kill between the model file's rename and its sidecar write leaves a complete model file with no sidecar
    (seen by an outsider with SIGINT ~20 ms after `build onnx fp16`): edgekit's pending marker says it is
    edgekit's own, so the re-run the interrupted line suggests rebuilds it instead of refusing it."""
    out = tmp_path / "k"
    assert _run(files, out, precisions="fp32,fp16") == 0
    arts = out / "artifacts"
    assert not list(arts.glob(".*.edgekit-pending")), "a finished build leaves no marker"
    side = arts / "model.fp16.onnx.edgekit.json"
    side.unlink()  # the state the kill left: model file in place, marker written, sidecar never written
    (arts / ".model.fp16.onnx.edgekit-pending").write_text("12345\n")
    capsys.readouterr()
    assert _run(files, out, precisions="fp32,fp16") == 0, capsys.readouterr().err
    assert "build onnx fp16" in capsys.readouterr().err
    assert side.exists() and not (arts / ".model.fp16.onnx.edgekit-pending").exists()


def test_the_sources_runtime_error_on_the_users_data_is_one_line_naming_the_data(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, main(["run", "--model", str(files["tok"]), "--calibration", str(files["dir"] / "ids.npz"),
                                "--out", str(tmp_path / "o"), "--precisions", "fp32", *FAST]))
    assert "ids.npz" in line and "ids int64" in line and "out of data bounds" in line


@pytest.mark.parametrize(("model", "shape", "words"), [
    ("fixed", "input=2,3,16,16", ("dim 0 is fixed", "expected 1")),
    ("conv", "input=1,3,16", ("rank does not match", "4 dims")),
])
def test_input_shape_is_checked_against_the_onnx_model_up_front(
        model: str, shape: str, words: tuple[str, ...], files: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(capsys, main(["run", "--model", str(files[model]), "--calibration", "digits", "--input-shape",
                                shape, "--out", str(tmp_path / "o"), "--precisions", "fp32", *FAST]))
    assert f"--input-shape {shape}" in line and all(w in line for w in words), line


def test_edited_sidecar_fields_are_rebuilt_not_trusted(files: dict[str, Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    assert _run(files, out) == 0
    for name, key, value in (("model.int8.onnx", "precision", "fp16"), ("model.fp32.onnx", "layout", "NHWC")):
        side = out / "artifacts" / f"{name}.edgekit.json"
        data = json.loads(side.read_text())
        data[key] = value  # the top-level field only: the recipe is as it was
        side.write_text(json.dumps(data))
    capsys.readouterr()
    assert _run(files, out) == 0
    err = capsys.readouterr().err
    assert re.search(r"rebuild model\.int8\.onnx: its sidecar says precision 'fp16'", err), err
    assert re.search(r"rebuild model\.fp32\.onnx: its sidecar was edited", err), err
    for name, precision in (("model.int8.onnx", "int8"), ("model.fp32.onnx", "fp32")):
        data = json.loads((out / "artifacts" / f"{name}.edgekit.json").read_text())
        assert (data["precision"], data["layout"]) == (precision, "NCHW")
    capsys.readouterr()
    assert _run(files, out) == 0
    assert capsys.readouterr().err.count("(complete, same recipe") == 2


def _cases(files: dict[str, Path], out: str) -> list[tuple[list[str], tuple[str, ...]]]:
    conv, d = str(files["conv"]), files["dir"]
    run = ["run", "--model", conv, "--calibration", "digits", "--out", out, *FAST]
    exp = ["export", "--model", conv, "--calibration", "digits", "--out", out]
    return [
        ([*run, "--target", "local-cpu", "--target", "local-cpu"], ("--target", "given twice")),
        ([*run, "--target", str(d / "dup.toml")], ("dup.toml:runtime[1].name", "listed twice")),
        ([*run, "--target", str(d / "none.toml")], ("none.toml:runtime[0].precisions", "no precision")),
        ([*exp, "--checkpoint", "w.pt"], ("--checkpoint", ".onnx model")),
        ([*exp, "--opset", "13"], ("--opset", ".onnx model")),
        ([*exp, "--static-batch"], ("--static-batch", ".onnx model")),
        ([*exp, "--max-length", "32"], ("--max-length", "text models")),
        (["run", "--model", conv, "--calibration", str(d / "tensors.npz"), "--mean", "0.5", "--out", out, *FAST],
         ("--mean", ".npz tensors")),
        ([*run, "--std", "inf,1,1"], ("--std", "finite")),
        ([*run, "--mean", "nan"], ("--mean", "finite")),
        ([*run, "--precisions", "fp32", "--int8-preset", "avx2"], ("--int8-preset", "no int8")),
        ([*run, "--precisions", ""], ("--precisions", "empty list")),
        ([*run, "--formats", ""], ("--formats", "empty list")),
        ([*run, "--host", "pi@10.0.0.9:22"], ("--host pi@10.0.0.9:22", "no target of the run")),
        ([*run, "--target", "raspberry-pi-5"], ("--target raspberry-pi-5", "no host")),
        (["doctor", "--target", "nope"], ("--target", "unknown target", "'nope'")),
        (["doctor", "--target", "raspberry-pi-5"], ("--target raspberry-pi-5", "--host")),
        (["targets", "list", "extra"], ("targets list", "takes no name")),
        (["run", "--model", conv, "--calibration", "", "--out", out], ("--calibration", "empty value")),
        (["run", "--model", "", "--calibration", "digits", "--out", out], ("--model", "empty value")),
        ([*run, "--target", ""], ("--target", "empty value")),
        (["run", "--model", conv, "--calibration", str(d / "labels50.npz"), "--out", out, "--precisions", "fp32",
          *FAST], ("labels50.npz", "outside the model's 10 classes", "0..9")),
        (["validate", "--model", conv, "--calibration", "digits", "--artifact", str(d / "ir.xml")],
         ("ir.bin", "weights file is missing")),
    ]


def test_options_that_would_be_ignored_or_misread_are_refused_in_one_line(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for i, (argv, words) in enumerate(_cases(files, str(tmp_path / "o"))):
        line = _error(capsys, main(argv))
        assert all(w in line for w in words), (i, argv, line)


def test_a_sigterm_during_the_int8_build_leaves_nothing_in_tmp_and_the_next_run_cleans_up(
        files: dict[str, Path], tmp_path: Path) -> None:
    """The quantizer's temp dir (and ORT's pre.quant.* inside it) lives under --out; a kill leaves it there only."""
    sys_tmp, out = tmp_path / "sys-tmp", tmp_path / "d"
    sys_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(sys_tmp), "HF_HUB_OFFLINE": "1", "USE_TF": "0"}
    argv = [sys.executable, "-m", "edgekit", "run", "--model", str(files["conv"]), "--calibration", "digits",
            "--out", str(out), "--precisions", "fp32,int8", *FAST]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if list((out / "artifacts").glob("edgekit-quant-*")):
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.002)
    proc.wait(timeout=120)
    assert not [p.name for p in sys_tmp.iterdir() if "quant" in p.name]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not list((out / "artifacts").glob("edgekit-quant-*"))
    assert not [p.name for p in sys_tmp.iterdir() if "quant" in p.name]
