"""TFLite format: litert-torch and onnx2tf conversion (offline), NHWC layout fed correctly by the
pipeline, fp16 / dynamic / full-integer int8 with int8 or float I/O, and the digits accuracy bars."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.artifacts import Artifact
from edgekit.errors import CalibrationError, QuantizationError
from edgekit.pipeline import RunOptions, build_artifact, reference_outputs, validate_artifact
from edgekit.types import Format, Precision

pytest.importorskip("ai_edge_litert")

from edgekit.formats.base import FormatOptions
from edgekit.formats.tflite import ONNX2TF_SAMPLE, TfliteOptions
from edgekit.formats.tflite_graph import float_io, io_types
from edgekit.quantization.tflite import TfliteInt8Options


def _metrics(small: dict[str, Any], art: Artifact, out: Path, limit: int = 60) -> Any:
    src, ds = small["source"], small["dataset"]
    ref = reference_outputs(src, ds, out, limit, progress=lambda _m: None)
    return validate_artifact(src, art, ds, reference=ref, limit=limit)


def test_torch_source_converts_to_nhwc_and_the_pipeline_feeds_it(small_tflite: dict[str, Any]) -> None:
    fp32: Artifact = small_tflite["fp32"]
    assert fp32.format is Format.TFLITE and fp32.layout == "NHWC"
    assert any("litert-torch" in n and "NHWC" in n for n in fp32.notes)
    m = _metrics(small_tflite, fp32, small_tflite["dir"])  # validate_artifact transposes NCHW data for it
    assert m.cosine_min > 0.9999 and m.top1_agreement == 1.0


def test_precisions_shrink_the_file_and_keep_agreement(small_tflite: dict[str, Any]) -> None:
    src, ds, fp32, out = small_tflite["source"], small_tflite["dataset"], small_tflite["fp32"], small_tflite["dir"]
    arts = {p: build_artifact(src, Format.TFLITE, p, out, dataset=ds, canonical=fp32, progress=lambda _m: None)
            for p in (Precision.FP16, Precision.INT8_DYNAMIC)}
    arts[Precision.INT8] = small_tflite["int8"]
    for prec, art in arts.items():
        assert art.layout == "NHWC" and art.size_bytes < fp32.size_bytes, prec
        m = _metrics(small_tflite, art, out)
        assert m.cosine_mean > (0.9999 if prec is Precision.FP16 else 0.98), (prec, m)
    assert io_types(arts[Precision.INT8].path.read_bytes()) == "int8"
    assert io_types(arts[Precision.FP16].path.read_bytes()) == "float"
    assert arts[Precision.INT8].settings["calibration_items"] == 64
    assert arts[Precision.INT8].settings["calibration_split"]["tuning_items"] == 16


def test_full_int8_with_float_io(small_tflite: dict[str, Any], tmp_path: Path) -> None:
    src, ds, fp32 = small_tflite["source"], small_tflite["dataset"], small_tflite["fp32"]
    opts = RunOptions(calibration_limit=64,
                      format_options=FormatOptions(TfliteOptions(int8=TfliteInt8Options(io="float"))))
    art = build_artifact(src, Format.TFLITE, Precision.INT8, tmp_path, dataset=ds, canonical=fp32, options=opts,
                         progress=lambda _m: None)
    assert io_types(art.path.read_bytes()) == "float" and art.settings["io"] == "float"
    m_float = _metrics(small_tflite, art, tmp_path)
    m_int8 = _metrics(small_tflite, small_tflite["int8"], tmp_path)
    # the same int8 graph with float edges, and the output layer (the Linear) float: no 8-bit logits
    assert m_float.cosine_mean >= m_int8.cosine_mean - 1e-4 and m_float.top1_agreement >= m_int8.top1_agreement
    (head,) = art.settings["float_output_ops"]
    assert art.settings["kept_float"] == [head]
    assert any(n.startswith("the ops that make the outputs stay float") for n in art.notes)
    with pytest.raises(QuantizationError):
        TfliteInt8Options(io="uint4")
    assert io_types(float_io(small_tflite["int8"].path.read_bytes())) == "float"


def test_int8_io_follows_the_target_cpu_float_npu_int8(small_tflite: dict[str, Any], tmp_path: Path) -> None:
    """io "auto": a CPU family (LiteRT on XNNPACK) gets float I/O and a float output layer, any other family (an
    Ethos-U's "generic") int8 I/O; a run for both builds both, each named by its recipe, each target given its own."""
    from edgekit.formats.tflite import TfliteAdapter
    from edgekit.pipeline import run

    tfl, opts = TfliteAdapter(), TfliteOptions()
    assert [tfl.recipe_family(Precision.INT8, opts, f) for f in ("vnni", "avx2", "arm64", "generic")] == [
        "float-io", "float-io", "float-io", "int8-io"]
    assert tfl.recipe_family(Precision.FP16, opts, "vnni") is None
    fixed = TfliteOptions(int8=TfliteInt8Options(io="int8"))
    assert tfl.recipe_family(Precision.INT8, fixed, "vnni") is None  # asked for: the same build everywhere
    ro = RunOptions(formats=(Format.TFLITE,), precisions=(Precision.INT8,), targets=("local-cpu", "ethos-u55-128"),
                    calibration_limit=64, eval_limit=20)
    result = run(small_tflite["source"], small_tflite["dataset"], tmp_path, ro, progress=lambda _m: None)
    by_target = {r.target: r.artifact for r in result.rows if r.artifact is not None}
    cpu, npu = by_target["local-cpu"], by_target["ethos-u55-128"]
    assert (cpu.name, npu.name) == ("model.int8-float-io.tflite", "model.int8-int8-io.tflite")
    assert io_types(cpu.path.read_bytes()) == "float" and io_types(npu.path.read_bytes()) == "int8"
    assert cpu.settings["float_output_ops"] and "float_output_ops" not in npu.settings
    assert any("io auto -> float for ISA family" in n for n in cpu.notes)
    assert any("io auto -> int8 for ISA family 'generic'" in n for n in npu.notes)


def test_full_int8_without_calibration_items_is_an_error(small_tflite: dict[str, Any], tmp_path: Path) -> None:
    from edgekit.quantization.calibration import split_calibration
    from edgekit.quantization.tflite import quantize_full_int8

    with pytest.raises(CalibrationError):
        quantize_full_int8(small_tflite["fp32"].path, tmp_path / "x.tflite", split_calibration(lambda: iter(())),
                           lambda f: f, TfliteInt8Options())


def test_full_int8_search_keeps_an_op_float_through_a_recipe_entry(small_tflite: dict[str, Any],
                                                                    tmp_path: Path) -> None:
    """The shared search on ai-edge-quantizer: a ``no_quantize`` recipe entry per op kept float, decided on
    the tuning items; on by default only with float I/O (full-integer int8 I/O promises integer-only ops).

    Planted: the linear head has an input column of 300s that the data never excites (its feature is always
    0), so per-channel int8 weights round every other weight of each row away. Bias correction is off: it is
    the search under test (with it, the int8-I/O model met this budget without a search)."""
    import torch
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu
    from torch import nn

    import edgekit
    from edgekit.layout import to_layout
    from edgekit.quantization.calibration import split_calibration
    from edgekit.quantization.checks import DecisionBudget
    from edgekit.quantization.tflite import quantize_full_int8, weighted_ops
    from edgekit.results import AccuracyBudget

    torch.manual_seed(3)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                           nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    with torch.no_grad():
        module[2].weight[0].zero_()
        module[2].bias[0] = -1.0  # feature 0 is 0 after the ReLU, always
        module[6].weight[:, 0] = 300.0
    src = edgekit.load_source(module, input_shapes={"input": (1, 3, 16, 16)}, task="image-classification",
                              preprocess={"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    ds = small_tflite["dataset"]
    fp32 = build_artifact(src, Format.TFLITE, Precision.FP32, tmp_path, dataset=ds, progress=lambda _m: None)
    split = split_calibration(lambda: ds.batches("calibration", src.io, src.preprocess, limit=64), total=64)
    budget = DecisionBudget(AccuracyBudget(min_cosine=0.999), margin=0.0)

    def adapt(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return to_layout(feeds, fp32.layout)

    rep = quantize_full_int8(fp32.path, tmp_path / "s.tflite", split, adapt,
                             TfliteInt8Options(io="float", max_float_ops=2, bias_correction=False,
                                               float_outputs=False), budget)
    ops = weighted_ops(fp32.path)
    assert len(ops) == 3 and rep.settings["sensitivity_search"] is True
    assert any(n.startswith("sensitivity search: ranked 3 weighted ops") for n in rep.notes)
    assert rep.kept_float == (ops[-1],), rep.notes  # the linear head, and nothing else: the aim then holds
    assert rep.check["cosine_before_search"] < 0.95 and rep.check["cosine"] >= 0.999 and rep.check["items"] == 16
    model = fu.read_model(str(tmp_path / "s.tflite"))
    types = {(t.name or b"").decode(): t.type for t in model.subgraphs[0].tensors}
    assert types[ops[-1]] == schema.TensorType.FLOAT32  # the op kept float computes in float
    rep8 = quantize_full_int8(fp32.path, tmp_path / "i.tflite", split, adapt, TfliteInt8Options(bias_correction=False),
                              budget)
    assert rep8.kept_float == () and rep8.settings["sensitivity_search"] is False
    assert any(n.startswith("sensitivity search off: full-integer int8") for n in rep8.notes)
    assert any(n.startswith("aim not met on the tuning items") for n in rep8.notes)
    assert io_types((tmp_path / "i.tflite").read_bytes()) == "int8"


def test_onnx_only_source_converts_through_onnx2tf_without_network(small_tflite: dict[str, Any], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnx2tf")
    import edgekit

    attempts: list[str] = []

    def no_network(*args: Any, **kwargs: Any) -> Any:
        attempts.append(repr(args)[:80])
        raise OSError("network access during conversion")

    src, ds = small_tflite["source"], small_tflite["dataset"]
    onnx_art = build_artifact(src, Format.ONNX, Precision.FP32, tmp_path / "from-torch", dataset=ds,
                              progress=lambda _m: None)
    onnx_src = edgekit.load_source(str(onnx_art.path), task="image-classification")
    assert onnx_src.kind == "onnx"
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    import requests

    monkeypatch.setattr(requests, "get", no_network)
    cwd = os.getcwd()
    canonical = build_artifact(onnx_src, Format.ONNX, Precision.FP32, tmp_path / "out", dataset=ds,
                               progress=lambda _m: None)
    art = build_artifact(onnx_src, Format.TFLITE, Precision.FP32, tmp_path / "out", dataset=ds, canonical=canonical,
                         progress=lambda _m: None)
    assert attempts == []  # onnx2tf got the run's own calibration sample instead of downloading one
    assert os.getcwd() == cwd and not (Path(cwd) / ONNX2TF_SAMPLE).exists()
    assert art.layout == "NHWC" and any("onnx2tf" in n for n in art.notes)
    m = _metrics({"source": onnx_src, "dataset": ds}, art, tmp_path)
    assert m.cosine_min > 0.9999


def test_nhwc_option_off_keeps_nchw(small_tflite: dict[str, Any], tmp_path: Path) -> None:
    src, ds = small_tflite["source"], small_tflite["dataset"]
    art = build_artifact(src, Format.TFLITE, Precision.FP32, tmp_path, dataset=ds,
                         options=RunOptions(format_options=FormatOptions(TfliteOptions(nhwc=False))),
                         progress=lambda _m: None)
    assert art.layout == "NCHW"
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.litert import LiteRTRuntime

    feed = next(iter(ds.batches("eval", src.io, src.preprocess, limit=1)))
    got = LiteRTRuntime().load(art.path, RuntimeOptions(threads=1)).run(feed)[0]
    np.testing.assert_allclose(got, src.run_reference(feed)[0], atol=1e-4, rtol=1e-3)


@pytest.mark.slow
def test_digits_full_int8_and_fp16_hold_the_accuracy_budget(digits_model_dir: Path, tmp_path: Path) -> None:
    """The budget (1 point, cosine 0.99), not one CPU's numbers: the seeded fine-tune's weights, and what
    fp16/int8 do to them, differ by CPU and by the kernels each runtime picks for the ISA.

    Full-integer int8 keeps the task accuracy, but its tied int8 logits can leave the logit cosine just under
    0.99 (measured on an AVX-512 VNNI EPYC: 0.9890-0.9892 at a 0.67 pt drop, with or without the tuning
    split). Then the default rule refuses it by the cosine rule alone and must say so; the accuracy rule
    (``--budget-rule accuracy``) must accept it."""
    import edgekit
    from edgekit.data import load_dataset
    from edgekit.report.recommend import budget_failures
    from edgekit.results import AccuracyBudget, Row

    repo = Path(__file__).resolve().parents[2]
    src = edgekit.load_source(f"{repo}/examples/digits_model.py:build_model",
                              checkpoint=digits_model_dir / "model.safetensors", task="image-classification")
    ds = load_dataset("digits")
    ref = reference_outputs(src, ds, tmp_path, None, progress=lambda _m: None)
    fp32 = build_artifact(src, Format.TFLITE, Precision.FP32, tmp_path, dataset=ds, progress=lambda _m: None)
    budget = AccuracyBudget()
    for prec in (Precision.FP32, Precision.FP16, Precision.INT8):
        art = fp32 if prec is Precision.FP32 else build_artifact(
            src, Format.TFLITE, prec, tmp_path, dataset=ds, canonical=fp32, progress=lambda _m: None)
        m = validate_artifact(src, art, ds, reference=ref)
        assert m.accuracy is not None and m.n == 597
        row = Row(art, "local-cpu", "litert", "measured", m)
        if prec is not Precision.INT8:
            assert budget_failures(row, budget) == [], (prec, m)
            continue
        assert budget_failures(row, AccuracyBudget(governs="accuracy")) == [], m  # the task metric holds
        assert m.cosine_mean > 0.985, m  # and the logits stay close
        for line in budget_failures(row, budget):
            assert "the cosine rule alone refused it" in line, line


@pytest.mark.slow
def test_hugging_face_encoder_converts_with_litert_torch(minilm_dir: Path, tmp_path: Path) -> None:
    import edgekit
    from edgekit.data import load_dataset

    src = edgekit.load_source(str(minilm_dir))
    ds = load_dataset("sentences")
    art = build_artifact(src, Format.TFLITE, Precision.FP32, tmp_path, dataset=ds, progress=lambda _m: None)
    assert any("huggingface with litert-torch" in n for n in art.notes)
    ref = reference_outputs(src, ds, tmp_path, 20, progress=lambda _m: None)
    m = validate_artifact(src, art, ds, reference=ref, limit=20)
    assert m.cosine_min > 0.9999
