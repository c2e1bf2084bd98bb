"""Per-target recipes (edgekit.variants): one build per distinct recipe family among the targets that take a
format+precision, named after its family only where there are several; each target is given its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgekit.artifacts import Artifact
from edgekit.formats.onnx import OnnxAdapter, OnnxOptions
from edgekit.formats.openvino import OpenVinoAdapter, OpenVinoOptions
from edgekit.quantization.onnx import StaticInt8Options
from edgekit.registry import get_format
from edgekit.targets import Target, load_target
from edgekit.types import Format, IOSpec, Precision, TensorSpec
from edgekit.variants import Variant, artifacts_for, plan_variants, recipe_notes


def _x86(isa: tuple[str, ...], name: str = "local-cpu") -> Target:
    return dataclasses.replace(load_target("local-cpu"), name=name, arch="x86_64", isa=isa)


VNNI = _x86(("avx2", "avx512f", "avx512_vnni"))
AVX2 = _x86(("avx2",), name="intel-cpu")
PI5 = load_target("raspberry-pi-5")
PI4 = load_target("raspberry-pi-4")


def _plan(fmt: Format, prec: Precision, targets: list[Target], options: object | None = None,
          also: tuple[Target, ...] = ()) -> list[Variant]:
    from edgekit.pipeline import RunOptions

    adapter = get_format(fmt.value)
    own = options if options is not None else adapter.options_from(RunOptions().format_options)
    return plan_variants(fmt, prec, targets, adapter, own, "generic", also)


def test_x86_and_arm_targets_get_one_onnx_int8_build_each_and_the_two_pis_share_one() -> None:
    plan = _plan(Format.ONNX, Precision.INT8, [VNNI, PI5, PI4])
    assert [(v.family, v.targets, v.named) for v in plan] == [
        ("vnni", ("local-cpu",), True), ("arm64", ("raspberry-pi-5", "raspberry-pi-4"), True)]
    assert [v.file_name("model.int8.onnx") for v in plan] == ["model.int8-vnni.onnx", "model.int8-arm64.onnx"]
    assert plan[1].isa_preset == "arm64"


def test_one_recipe_keeps_the_plain_name() -> None:
    plan = _plan(Format.ONNX, Precision.INT8, [VNNI])
    assert [(v.family, v.named, v.file_name("model.int8.onnx")) for v in plan] == [
        ("vnni", False, "model.int8.onnx")]
    # a run with only the Pi gets the Pi's recipe (was: 'generic', the ISA its target file declares ignored)
    assert [v.family for v in _plan(Format.ONNX, Precision.INT8, [PI5])] == ["arm64"]


def test_targets_of_an_earlier_run_in_the_folder_name_the_variants_but_are_not_built_for() -> None:
    # run 1: local-cpu alone wrote model.int8.onnx (vnni); run 2 adds the Pi to that report: its arm64 build
    # gets its own name, so it does not overwrite the file run 1's rows were measured on
    plan = _plan(Format.ONNX, Precision.INT8, [PI5], also=(VNNI,))
    assert [(v.family, v.targets, v.file_name("model.int8.onnx")) for v in plan] == [
        ("arm64", ("raspberry-pi-5",), "model.int8-arm64.onnx")]
    # the same recipe as the earlier target: one shared plain name, built for this run's target only
    assert [(v.family, v.targets, v.named) for v in _plan(Format.ONNX, Precision.INT8, [PI4], also=(PI5,))] == [
        ("arm64", ("raspberry-pi-4",), False)]
    # a target in both is this run's
    assert [v.targets for v in _plan(Format.ONNX, Precision.INT8, [VNNI], also=(VNNI, PI5))] == [("local-cpu",)]


def test_builds_that_do_not_depend_on_the_isa_are_shared() -> None:
    for fmt, prec in ((Format.ONNX, Precision.FP16), (Format.TFLITE, Precision.FP16)):
        plan = _plan(fmt, prec, [VNNI, PI5])
        assert [(v.family, v.named) for v in plan] == [(None, False)], (fmt, prec)
        assert set(plan[0].targets) == {"local-cpu", "raspberry-pi-5"}
    # TFLite int8 depends only on whether the target is a CPU (float I/O) or not (int8 I/O): one build for both CPUs
    plan = _plan(Format.TFLITE, Precision.INT8, [VNNI, PI5])
    assert [(v.family, v.named, set(v.targets)) for v in plan] == [("float-io", False,
                                                                    {"local-cpu", "raspberry-pi-5"})]
    # a fixed --int8-preset is the same recipe for every target: one build
    fixed = OnnxOptions(static_int8=StaticInt8Options(preset="ort-default"))
    assert [v.family for v in _plan(Format.ONNX, Precision.INT8, [VNNI, PI5], fixed)] == ["ort-default"]


def test_openvino_int8_differs_only_by_the_overflow_fix_and_only_for_targets_with_openvino() -> None:
    plan = _plan(Format.OPENVINO, Precision.INT8, [VNNI, AVX2, PI5])
    # method auto (the ONNX QDQ route for CNNs): the ONNX preset of each target's ISA family
    assert [(v.family, v.targets) for v in plan] == [("vnni", ("local-cpu",)), ("avx2", ("intel-cpu",))]
    nncf = OpenVinoOptions(int8=dataclasses.replace(OpenVinoOptions().int8, method="nncf"))
    plan = _plan(Format.OPENVINO, Precision.INT8, [VNNI, AVX2, PI5], nncf)
    assert [(v.family, v.targets) for v in plan] == [("full-range", ("local-cpu",)),
                                                       ("overflow-fix", ("intel-cpu",))]
    fixed = OpenVinoOptions(int8=dataclasses.replace(OpenVinoOptions().int8, method="nncf", overflow_fix="disable"))
    assert [v.family for v in _plan(Format.OPENVINO, Precision.INT8, [VNNI, AVX2], fixed)] == [None]
    assert isinstance(get_format("onnx"), OnnxAdapter) and isinstance(get_format("openvino"), OpenVinoAdapter)


def test_each_target_is_given_only_its_own_variant() -> None:
    io = IOSpec((TensorSpec("x", (1, 4), "float32"),), (TensorSpec("y", (1, 2), "float32"),))

    def art(name: str, prec: Precision) -> Artifact:
        return Artifact(path=Path(name), format=Format.ONNX, precision=prec, io=io, sha256="0" * 64)

    arts = [art("model.fp32.onnx", Precision.FP32), art("model.int8-vnni.onnx", Precision.INT8),
            art("model.int8-arm64.onnx", Precision.INT8)]
    assigned = {"model.int8-vnni.onnx": ("local-cpu",), "model.int8-arm64.onnx": ("raspberry-pi-5",)}
    assert [a.name for a in artifacts_for(VNNI, arts, assigned)] == ["model.fp32.onnx", "model.int8-vnni.onnx"]
    assert [a.name for a in artifacts_for(PI5, arts, assigned)] == ["model.fp32.onnx", "model.int8-arm64.onnx"]


def test_the_report_line_names_the_target_its_isa_and_why() -> None:
    from edgekit.quantization.presets import PRESETS

    plan = _plan(Format.ONNX, Precision.INT8, [VNNI, PI5])
    lines = recipe_notes(plan, [VNNI, PI5], {n: p.why for n, p in PRESETS.items()})
    assert len(lines) == 2
    assert lines[1].startswith("int8 recipe of raspberry-pi-5 (aarch64; neon, asimddp, asimdhp): ISA family "
                               "'arm64'")
    assert "onnx int8: arm64 (own build)" in lines[1] and "s8 x s8" in lines[1]
