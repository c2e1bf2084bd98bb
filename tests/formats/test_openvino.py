"""OpenVINO IR conversion and NNCF quantization on real models and data, with the real OpenVINO CPU kernels."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import edgekit.runtimes.openvino  # first: switches telemetry off (importing openvino/nncf writes ~/intel/)

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import edgekit
from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions
from edgekit.data import Dataset, load_dataset
from edgekit.errors import ConfigError, ExportError
from edgekit.formats.base import FormatOptions
from edgekit.formats.openvino import OpenVinoOptions, convert_onnx
from edgekit.pipeline import RunOptions, available_formats, build_artifact
from edgekit.quantization.openvino import OvInt8Options, OvWeightOptions, input_layers
from edgekit.runtimes.base import RuntimeOptions
from edgekit.runtimes.openvino import OpenVinoRuntime
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

QUICK_BENCH = BenchOptions(min_runs=10, min_seconds=0.3, warmup_runs=3, memory_pass=False)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture(scope="module")
def tiny(tiny_model: tuple[str, Path]) -> ModelSource:
    spec, ckpt = tiny_model
    return edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")


@pytest.fixture(scope="module")
def built(tiny: ModelSource, digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    out = tmp_path_factory.mktemp("ov")
    opts = RunOptions(calibration_limit=64)
    onnx = build_artifact(tiny, Format.ONNX, Precision.FP32, out, dataset=digits, options=opts)
    arts = {"onnx": onnx}
    arts["fp32"] = build_artifact(tiny, Format.OPENVINO, Precision.FP32, out, dataset=digits, canonical=onnx,
                                  options=opts)
    for prec in (Precision.FP16, Precision.INT8, Precision.INT8_WEIGHTS):
        arts[prec.value] = build_artifact(tiny, Format.OPENVINO, prec, out, dataset=digits, canonical=arts["fp32"],
                                          options=opts, isa_preset="vnni")
    nncf = replace(opts, format_options=FormatOptions(OpenVinoOptions(int8=OvInt8Options(method="nncf"))))
    arts["int8-nncf"] = build_artifact(tiny, Format.OPENVINO, Precision.INT8, out / "nncf", dataset=digits,
                                       canonical=arts["fp32"], options=nncf, isa_preset="vnni")
    return arts


def _outputs(path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    sess = OpenVinoRuntime().load(path, RuntimeOptions(threads=1))
    return np.concatenate([sess.run(f)[0] for f in feeds])


def test_ir_is_two_files_checked_against_the_source(built: dict[str, Artifact]) -> None:
    fp32, fp16 = built["fp32"], built["fp16"]
    for art in (fp32, fp16):
        assert art.path.suffix == ".xml" and art.path.with_suffix(".bin").stat().st_size > 0
        assert art.settings["numeric_check"]["min_cosine"] > 0.999
    assert fp32.recipe["parent"] == built["onnx"].sha256, "the IR records the ONNX it came from"
    assert "converted from model.fp32.onnx" in fp32.notes[0]
    # fp16-compressed weights: about half the .bin
    ratio = fp16.path.with_suffix(".bin").stat().st_size / fp32.path.with_suffix(".bin").stat().st_size
    assert 0.4 < ratio < 0.6
    assert not list(fp32.path.parent.glob(".model.*")), "no temporary files left beside the IR"


def test_direct_torch_conversion_matches_the_onnx_path(tiny: ModelSource, digits: Dataset, tmp_path: Path,
                                                       built: dict[str, Artifact]) -> None:
    opts = RunOptions(format_options=FormatOptions(OpenVinoOptions(convert_from="source")))
    direct = build_artifact(tiny, Format.OPENVINO, Precision.FP32, tmp_path, dataset=digits, options=opts)
    assert "torch module" in direct.notes[0]
    feeds = list(digits.batches("eval", tiny.io, tiny.preprocess, limit=8))  # type: ignore[arg-type]
    sess = OpenVinoRuntime().load(direct.path, RuntimeOptions(threads=1))
    assert sess.input_names == tiny.io.input_names, "names are set on the directly converted model"
    np.testing.assert_allclose(_outputs(direct.path, feeds), _outputs(built["fp32"].path, feeds), atol=1e-4)


def test_int8_is_read_from_the_onnx_int8_and_checked_with_openvino_kernels(built: dict[str, Artifact],
                                                                          tiny: ModelSource, digits: Dataset) -> None:
    """method auto, a CNN from an fp32 ONNX: OpenVINO reads edgekit's ONNX static int8 (QDQ -> FakeQuantize) of the
    IR's parent ONNX, and the check on the tuning items runs with OpenVINO's kernels."""
    import openvino as ov

    int8 = built["int8"]
    s = int8.settings
    assert s["method"] == "onnx-qdq" and s["onnx_static_int8"]["preset"] == "vnni", s
    assert s["check"]["items"] == 16 and s["check"]["cosine"] > 0.98, s["check"]
    assert int8.notes[0].startswith("method onnx-qdq: edgekit's ONNX static int8 read by OpenVINO (method auto")
    assert any(n.startswith("read from edgekit's ONNX static int8 of model.fp32.onnx") for n in int8.notes)
    assert any(n.startswith("check with OpenVINO's CPU kernels: cosine") for n in int8.notes)
    model = ov.Core().read_model(str(int8.path))
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops()) >= 3  # activations
    feeds = list(digits.batches("eval", tiny.io, tiny.preprocess, limit=32))  # type: ignore[arg-type]
    ref, got = _outputs(built["fp32"].path, feeds), _outputs(int8.path, feeds)
    assert float(np.mean(np.sum(ref * got, 1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1))) > 0.98
    assert int8.recipe["isa_recipe"] == "vnni"  # the ONNX preset is what this build depends on


def test_int8_keeps_the_input_layer_float_and_checks_on_calibration_items(built: dict[str, Artifact]) -> None:
    int8 = built["int8-nncf"]
    s = int8.settings
    assert s["method"] == "nncf"
    # preset auto: performance (symmetric activations) for a CNN, mixed for transformers
    assert s["preset"] == "performance" and s["requested_preset"] == "auto"
    assert s["fast_bias_correction"] is False and s["model_type"] == "cnn"
    assert s["overflow_fix"] == "disable", "VNNI kernels do not saturate: no 7-bit weights"
    # 64 calibration items: 16 (seeded, labelled) tuning items for the check, the other 48 set the ranges
    assert s["calibration_items"] == 64 and s["subset_size"] == 48
    assert s["calibration_split"] == {"calibration_items": 64, "ranges_items": 48, "tuning_items": 16,
                                      "tuning_seed": 0, "tuning_labelled": True, "split_of": 64}
    assert len(s["ignored_names"]) == 1 and s["kept_float"][:1] == s["ignored_names"]
    assert s["check"]["cosine"] > 0.98 and s["check"]["items"] == 16 and s["check"]["labelled_items"] == 16
    assert int8.notes[0] == "method nncf: openvino.int8.method='nncf'"
    assert int8.notes[1].startswith("calibration split (64 items): 48 set the ranges; 16 others (seed 0, labelled)")
    weights_only = built["int8-weights"]
    assert weights_only.settings["weights_only"] is True and weights_only.path.name == "model.int8-weights.xml"
    assert weights_only.path.with_suffix(".bin").stat().st_size < built["fp32"].path.with_suffix(".bin").stat().st_size


def test_avx2_preset_turns_the_overflow_fix_on(tiny: ModelSource, digits: Dataset, tmp_path: Path,
                                               built: dict[str, Artifact]) -> None:
    nncf = FormatOptions(OpenVinoOptions(int8=OvInt8Options(method="nncf")))
    art = build_artifact(tiny, Format.OPENVINO, Precision.INT8, tmp_path, dataset=digits, canonical=built["fp32"],
                         options=RunOptions(calibration_limit=16, format_options=nncf), isa_preset="avx2")
    assert art.settings["overflow_fix"] == "enable"
    # method auto: an NNCF option given picks NNCF; a text model too (test_minilm_openvino_int8_keeps_cosine)
    from edgekit.quantization.openvino_qdq import choose_method

    assert choose_method(OvInt8Options(accuracy_control="always"), None, Path("x.onnx"))[0] == "nncf"
    assert choose_method(OvInt8Options(), None, None)[0] == "nncf"  # an IR source: no fp32 ONNX


def test_input_layers_are_found_in_a_real_graph(built: dict[str, Artifact]) -> None:
    import openvino as ov

    model = ov.Core().read_model(str(built["fp32"].path))
    first = next(op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution")
    assert input_layers(model) == [first]


def test_bad_options_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"openvino\.int8\.preset"):
        OvInt8Options(preset="fast")
    with pytest.raises(ConfigError, match=r"openvino\.convert_from"):
        OpenVinoOptions(convert_from="tflite")
    with pytest.raises(ConfigError, match=r"openvino\.weights\.mode"):
        OvWeightOptions(mode="int4")


def test_unsupported_op_is_an_export_error_and_nothing_is_lost(tmp_path: Path, tiny: ModelSource,
                                                               digits: Dataset) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("FancyOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "custom.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.example", 1)]), str(path))
    with pytest.raises(ExportError) as err:
        convert_onnx(path)
    assert "FancyOp" in str(err.value) and "hint:" in str(err.value) and "\n" not in str(err.value)
    # through the adapter: an existing IR at the destination is left as it was
    out = tmp_path / "run"
    onnx_art = build_artifact(tiny, Format.ONNX, Precision.FP32, out, dataset=digits)
    good = build_artifact(tiny, Format.OPENVINO, Precision.FP32, out, dataset=digits, canonical=onnx_art)
    before = good.path.read_bytes(), good.path.with_suffix(".bin").read_bytes()
    broken = replace(onnx_art, path=path, sha256="0" * 64)
    with pytest.raises(ExportError):
        build_artifact(tiny, Format.OPENVINO, Precision.FP32, out, dataset=digits, canonical=broken)
    assert (good.path.read_bytes(), good.path.with_suffix(".bin").read_bytes()) == before


def test_default_formats_are_the_installed_ones() -> None:
    usable, skipped = available_formats()
    assert usable[0] is Format.ONNX and Format.OPENVINO in usable
    assert all("pip install" in why for why in skipped.values())


@pytest.mark.slow
def test_digits_run_has_onnx_and_openvino_rows_and_int8_keeps_accuracy(digits_model_dir: Path,
                                                                       tmp_path: Path) -> None:
    src = edgekit.load_source(f"{Path('examples/digits_model.py').resolve()}:build_model",
                              checkpoint=digits_model_dir / "model.safetensors", task="image-classification")
    opts = RunOptions(formats=(Format.ONNX, Format.OPENVINO), precisions=(Precision.FP32, Precision.INT8),
                      bench=QUICK_BENCH)
    result = edgekit.run(src, calibration="digits", out_dir=tmp_path, options=opts)
    fmts = {(r.artifact.format, r.runtime) for r in result.rows if r.status == "measured"}
    assert fmts >= {(Format.ONNX, "onnxruntime"), (Format.ONNX, "openvino"), (Format.OPENVINO, "openvino")}
    int8 = next(r for r in result.rows if r.artifact.name == "model.int8.xml")
    assert int8.metrics is not None and int8.metrics.n == 597
    drop = int8.metrics.accuracy_drop_points
    assert drop is not None and drop <= 1.0, f"OpenVINO int8 lost {drop:.2f} points"
    info = int8.bench.session_info if int8.bench else {}
    assert info["execution_devices"] == ["CPU"] and info["fallback"] == [] and info["compile_ms"] > 0
    cross = result.cross_runtime
    assert [(c.reference_runtime, c.other_runtime) for c in cross] == [("onnxruntime", "openvino")]
    assert cross[0].within_tolerance and cross[0].metrics.top1_agreement == 1.0
    assert any(n.startswith("read from model.int8.onnx of this run") for n in int8.artifact.notes), \
        "the run's ONNX int8 is read, not quantized again"
    md = (tmp_path / "report.md").read_text()
    assert "model.int8.xml" in md and "model.int8.onnx" in md and "## Cross-runtime agreement" in md
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["cross_runtime"][0]["within_tolerance"] is True


@pytest.mark.slow
def test_minilm_openvino_int8_keeps_cosine(minilm_dir: Path, tmp_path: Path) -> None:
    from edgekit.pipeline import reference_outputs, validate_artifact

    src = edgekit.load_source(minilm_dir)
    ds = load_dataset("sentences")
    onnx = build_artifact(src, Format.ONNX, Precision.FP32, tmp_path, dataset=ds)
    fp32 = build_artifact(src, Format.OPENVINO, Precision.FP32, tmp_path, dataset=ds, canonical=onnx)
    ref = reference_outputs(src, ds, tmp_path, None)
    for prec in (Precision.INT8_WEIGHTS, Precision.INT8):
        art = build_artifact(src, Format.OPENVINO, prec, tmp_path, dataset=ds, canonical=fp32, isa_preset="vnni")
        m = validate_artifact(src, art, ds, reference=ref)
        assert m.n == 100 and m.cosine_mean >= 0.98, f"{art.name}: mean cosine {m.cosine_mean:.4f}"
        if prec is Precision.INT8:
            s = art.settings
            assert s["model_type"] == "transformer" and s["fast_bias_correction"] is True



def test_accuracy_control_validates_on_labelled_calibration_items_only(tiny: ModelSource, digits: Dataset,
                                                                       tmp_path: Path,
                                                                       built: dict[str, Artifact]) -> None:
    opts = RunOptions(calibration_limit=48,
                      format_options=FormatOptions(OpenVinoOptions(int8=OvInt8Options(accuracy_control="always"))))
    art = build_artifact(tiny, Format.OPENVINO, Precision.INT8, tmp_path, dataset=digits, canonical=built["fp32"],
                         options=opts, isa_preset="vnni")
    ac = art.settings["accuracy_control"]
    # validated on the 12 labelled tuning items only (not the 36 that set the ranges), aiming inside --max-drop
    assert ac == {"max_drop": 0.0075, "validation_items": 12, "split": "tuning"}
    assert art.recipe["budget"]["max_drop_points"] == 1.0 and art.settings["budget"]["aim_max_drop_points"] == 0.75
    assert any("quantize_with_accuracy_control" in n and "12 labelled tuning items" in n for n in art.notes)


def test_label_free_search_keeps_layers_float_only_when_they_help(tiny: ModelSource, digits: Dataset,
                                                                  built: dict[str, Artifact]) -> None:
    import openvino as ov

    from edgekit.quantization.calibration import split_calibration
    from edgekit.quantization.checks import DecisionBudget
    from edgekit.quantization.openvino import quantize_static
    from edgekit.results import AccuracyBudget

    model = ov.Core().read_model(str(built["fp32"].path))
    feeds = list(digits.batches("calibration", tiny.io, tiny.preprocess, limit=32))  # type: ignore[arg-type]
    budget = DecisionBudget(AccuracyBudget(min_cosine=0.999999), margin=0.0)  # out of reach: the search runs
    _, rep = quantize_static(model, split_calibration(lambda: iter(feeds)), OvInt8Options(max_float_layers=3),
                             "vnni", budget)
    extra = rep.settings["sensitivity_search"]["kept_float"]
    assert len(extra) <= 3 and set(extra) <= set(rep.kept_float)
    assert rep.check["items"] == 8 and "accuracy_control" not in rep.settings
    assert rep.notes[0].startswith("calibration split (32 items): 24 set the ranges; 8 others")
    assert rep.notes[1].startswith("NNCF int8")
    assert any(n.startswith("sensitivity search: ranked") and "relative output error" in n for n in rep.notes)
    decisions = [n for n in rep.notes[3:] if not n.startswith(("aim not met", "sensitivity search stopped"))]
    assert all(n.startswith(("kept ", "left ")) for n in decisions)


def test_a_collapsed_output_scores_cosine_zero_not_one() -> None:
    """The check NNCF decisions use (shared with every quantizer): an all-zero output against a nonzero
    fp32 output is cosine 0.0, not a perfect match (the old OpenVINO-only agreement said 1.0)."""
    import openvino as ov
    import openvino.opset13 as ops

    from edgekit.quantization.checks import DecisionBudget, Judge
    from edgekit.quantization.openvino import all_outputs

    x = ops.parameter([1, 4], np.float32, name="x")
    identity = ov.Model([ops.multiply(x, ops.constant(np.ones((1, 4), np.float32)))], [x], "same")
    collapsed = ov.Model([ops.multiply(x, ops.constant(np.zeros((1, 4), np.float32)))], [x], "zeros")
    feeds = [{"x": np.full((1, 4), v, np.float32)} for v in (1.0, -2.0, 3.0)]
    judge = Judge(feeds, all_outputs(identity, feeds), None, all_outputs)
    assert judge.check(identity).cosine == pytest.approx(1.0)
    check = judge.check(collapsed)
    assert check.cosine == 0.0 and check.cosine_min == 0.0
    assert not DecisionBudget().meets(check)
