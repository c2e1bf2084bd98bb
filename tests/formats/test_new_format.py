"""A new format needs no pipeline code: a format defined here, outside edgekit (a copy of the canonical fp32
ONNX file whose producer name is its one option), is registered through the registry and built, reused and
rebuilt by ``build_artifact`` like the built-in ones, with its typed options in the artifact's recipe.

``edgekit.types.Format`` is a closed enum: a real new format adds its value there (one line, see the registry's
docstring); the ``copy_format`` fixture stands in for that line by adding the member for one test."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

import edgekit
from edgekit import registry
from edgekit.artifacts import Artifact, atomic_path
from edgekit.data import Dataset, load_dataset
from edgekit.errors import ConfigError
from edgekit.formats.base import BuildContext, BuildOutput, FormatOptions, own_options
from edgekit.formats.onnx import OnnxAdapter, OnnxOptions
from edgekit.formats.openvino import OpenVinoAdapter, OpenVinoOptions
from edgekit.formats.tflite import TfliteAdapter, TfliteOptions
from edgekit.pipeline import RunOptions, build_artifact, canonical_first, reference_outputs, validate_artifact
from edgekit.quantization.onnx import StaticInt8Options
from edgekit.quantization.onnx_dynamic import DynamicInt8Options
from edgekit.quantization.openvino import OvInt8Options
from edgekit.quantization.tflite import TfliteInt8Options
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

NAME = "onnx-copy"


@dataclass(frozen=True)
class CopyOptions:
    """The toy format's own options: the producer name written into the copy."""

    producer: str = "edgekit-test"


class CopyAdapter:
    """A copy of the canonical fp32 ONNX model with ``producer_name`` set from its options."""

    precisions = (Precision.FP32,)
    libraries = ("onnx",)

    def __init__(self) -> None:
        self.format = Format(NAME)

    def options_from(self, options: FormatOptions) -> CopyOptions:
        return options.get(CopyOptions) or CopyOptions()

    def recipe(self, precision: Precision, options: object) -> dict[str, object]:
        return {"onnx_copy": asdict(own_options(self, options, CopyOptions))}

    def precision_hint(self, precision: Precision) -> str | None:
        return "onnx-copy only copies the fp32 model"

    def file_name(self, precision: Precision) -> str:
        return f"model.{precision.value}.copy.onnx"

    def build(self, precision: Precision, ctx: BuildContext, out_path: Path) -> BuildOutput:
        options = own_options(self, ctx.options, CopyOptions)
        assert ctx.canonical is not None
        model = onnx.load(str(ctx.canonical.path))
        model.producer_name = options.producer
        with atomic_path(out_path) as tmp:
            onnx.save_model(model, str(tmp))
        return BuildOutput(out_path, (f"copy of {ctx.canonical.name}",), {"producer": options.producer})


class ClashingAdapter(CopyAdapter):
    """A broken adapter whose recipe would overwrite the source fingerprint."""

    def recipe(self, precision: Precision, options: object) -> dict[str, object]:
        return {"source": "mine"}


@pytest.fixture
def copy_format(monkeypatch: pytest.MonkeyPatch) -> Iterator[Format]:
    """Register the toy format (its registry entry, and the enum value a real format adds to types.py)."""
    member = str.__new__(Format, NAME)
    member._name_, member._value_ = "ONNX_COPY", NAME  # type: ignore[attr-defined]
    monkeypatch.setitem(Format._member_map_, "ONNX_COPY", member)
    monkeypatch.setitem(Format._value2member_map_, NAME, member)
    monkeypatch.setattr(Format, "_member_names_", [*Format._member_names_, "ONNX_COPY"])
    registry.register_format(registry.Entry(NAME, f"{__name__}:CopyAdapter", ("onnx",), None,
                                            runtime="onnxruntime"))
    try:
        yield Format.parse(NAME)
    finally:
        registry.FORMATS.pop(NAME, None)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def source() -> ModelSource:
    pre = {"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    return edgekit.load_source(Tiny(), input_shapes={"input": (1, 3, 16, 16)}, task="image-classification",
                               preprocess=pre)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)

    def reused(self, name: str) -> bool:
        return any(line.startswith(f"reuse {name} ") for line in self.lines)


def _canonical(source: ModelSource, digits: Dataset, out: Path) -> Artifact:
    return build_artifact(source, Format.ONNX, Precision.FP32, out, dataset=digits, progress=lambda _m: None)


def test_a_format_registered_from_outside_is_built_and_validated_by_the_pipeline(
        copy_format: Format, source: ModelSource, digits: Dataset, tmp_path: Path) -> None:
    onnx_fp32 = _canonical(source, digits, tmp_path)
    opts = RunOptions(format_options=FormatOptions(CopyOptions(producer="first")))
    art = build_artifact(source, copy_format, Precision.FP32, tmp_path, dataset=digits, canonical=onnx_fp32,
                         options=opts, progress=lambda _m: None)
    assert art.format is copy_format and art.path.name == "model.fp32.copy.onnx"
    assert onnx.load(str(art.path)).producer_name == "first"
    # the generic parts of the identity come from the pipeline, the rest from the adapter
    assert art.recipe["onnx_copy"] == {"producer": "first"}
    assert art.recipe["parent"] == onnx_fp32.sha256 and art.recipe["format"] == NAME
    assert set(art.recipe["libraries"]) >= {"onnx", "torch"}  # the adapter's libraries + the source's (fp32)
    assert art.settings["producer"] == "first"
    # validated with the registered reference runtime, like any format
    ref = reference_outputs(source, digits, tmp_path, 8, progress=lambda _m: None)
    m = validate_artifact(source, art, digits, reference=ref, limit=8)
    assert m.cosine_min > 0.9999
    # the canonical format still comes first, whatever order the formats are given in
    assert canonical_first((copy_format, Format.ONNX)) == (Format.ONNX, copy_format)


def test_its_typed_options_are_its_identity_changing_them_rebuilds(
        copy_format: Format, source: ModelSource, digits: Dataset, tmp_path: Path) -> None:
    onnx_fp32 = _canonical(source, digits, tmp_path)

    def build(producer: str, log: Log) -> Artifact:
        opts = RunOptions(format_options=FormatOptions(OnnxOptions(), CopyOptions(producer=producer)))
        return build_artifact(source, copy_format, Precision.FP32, tmp_path, dataset=digits, canonical=onnx_fp32,
                              options=opts, progress=log)

    first = build("first", Log())
    log = Log()
    again = build("first", log)
    assert log.reused("model.fp32.copy.onnx") and again.key == first.key
    log = Log()
    other = build("second", log)
    assert not log.reused("model.fp32.copy.onnx"), "other options must rebuild"
    assert other.key != first.key and other.recipe["onnx_copy"] == {"producer": "second"}
    assert onnx.load(str(other.path)).producer_name == "second"
    # another format's options do not touch this one's identity
    log = Log()
    opts = RunOptions(format_options=FormatOptions(OnnxOptions(opset=13), CopyOptions(producer="second")))
    build_artifact(source, copy_format, Precision.FP32, tmp_path, dataset=digits, canonical=onnx_fp32,
                   options=opts, progress=log)
    assert log.reused("model.fp32.copy.onnx")


def test_wrong_options_unsupported_precision_and_clashing_recipes_are_errors(
        copy_format: Format, source: ModelSource, digits: Dataset, tmp_path: Path) -> None:
    adapter = CopyAdapter()
    with pytest.raises(ConfigError, match=r"CopyAdapter.*not its own.*expected CopyOptions.*got 'OnnxOptions'"):
        adapter.recipe(Precision.FP32, OnnxOptions())
    with pytest.raises(ConfigError, match=r"OnnxAdapter.*expected OnnxOptions.*got 'CopyOptions'"):
        OnnxAdapter().recipe(Precision.FP32, CopyOptions())
    with pytest.raises(ConfigError, match="format options given twice"):
        FormatOptions(CopyOptions("a"), CopyOptions("b"))
    onnx_fp32 = _canonical(source, digits, tmp_path)
    with pytest.raises(ConfigError, match=r"precision not supported.*onnx-copy only copies the fp32 model"):
        build_artifact(source, copy_format, Precision.INT8, tmp_path, dataset=digits, canonical=onnx_fp32,
                       progress=lambda _m: None)

    registry.FORMATS[NAME] = registry.Entry(NAME, f"{__name__}:ClashingAdapter", (), None, runtime="onnxruntime")
    with pytest.raises(ConfigError, match=r"ClashingAdapter.*reuses generic recipe keys.*source"):
        build_artifact(source, copy_format, Precision.FP32, tmp_path, dataset=digits, canonical=onnx_fp32,
                       progress=lambda _m: None)


def test_format_options_get_and_with_options() -> None:
    fo = FormatOptions(OnnxOptions(opset=13), TfliteOptions(nhwc=False))
    assert fo.get(OnnxOptions) == OnnxOptions(opset=13) and fo.get(OpenVinoOptions) is None
    fo2 = fo.with_options(OnnxOptions(opset=17), OpenVinoOptions(convert_from="source"))
    assert fo2.get(OnnxOptions) == OnnxOptions(opset=17) and fo2.get(TfliteOptions) == TfliteOptions(nhwc=False)
    assert fo2.get(OpenVinoOptions) == OpenVinoOptions(convert_from="source")
    assert fo.get(OnnxOptions) == OnnxOptions(opset=13), "frozen: with_options makes a new one"
    with pytest.raises(ConfigError, match=r"onnx.opset"):
        OnnxOptions(opset=0)


def test_built_in_recipes_hold_only_what_shapes_each_precision() -> None:
    onnx_a = OnnxAdapter()
    # ONNX: the same keys and values as before the options were typed (its artifacts are not rebuilt)
    assert onnx_a.recipe(Precision.FP32, OnnxOptions()) == {"opset": None, "dynamic_batch": True}
    assert onnx_a.recipe(Precision.INT8, OnnxOptions()) == {"opset": None, "dynamic_batch": True,
                                                            "static_int8": asdict(StaticInt8Options())}
    assert onnx_a.recipe(Precision.INT8_DYNAMIC, OnnxOptions()) == {"opset": None, "dynamic_batch": True,
                                                                    "dynamic_int8": asdict(DynamicInt8Options())}
    ov = OpenVinoAdapter()
    changed = OpenVinoOptions(int8=OvInt8Options(accuracy_control="always"))
    for prec in (Precision.FP32, Precision.FP16, Precision.INT8_WEIGHTS):
        assert ov.recipe(prec, changed) == ov.recipe(prec, OpenVinoOptions()), prec
    assert ov.recipe(Precision.INT8, changed) != ov.recipe(Precision.INT8, OpenVinoOptions())
    tfl = TfliteAdapter()
    changed_t = TfliteOptions(int8=TfliteInt8Options(io="float"))
    assert tfl.recipe(Precision.FP32, changed_t) == tfl.recipe(Precision.FP32, TfliteOptions()) == \
        {"tflite": {"nhwc": True}}
    assert tfl.recipe(Precision.INT8, changed_t)["tflite"] == {"nhwc": True, "int8": asdict(changed_t.int8)}
    assert tfl.recipe(Precision.FP32, TfliteOptions(nhwc=False)) != tfl.recipe(Precision.FP32, TfliteOptions())


# Where the code above the adapters still names a format member, and why (anything else is a per-format branch).
ALLOWED_FORMAT_NAMES = {
    ("validation.py", "narrow_inputs", "ONNX"): "reads the declared inputs of an ONNX file (ONNX exporters prune)",
    ("api.py", "export", "ONNX"): "the default value of export's fmt",
    ("cli.py", "_export_formats", "ONNX"): "the default of --formats for export/quantize",
    ("cli.py", "_artifact", "ONNX"): "a bare .onnx file given to validate/benchmark is an fp32 ONNX artifact",
}


def _format_names(tree: ast.AST, rel: str) -> set[tuple[str, str, str]]:
    """(file, innermost enclosing function or ``<module>``, member) for every ``Format.<MEMBER>`` in ``tree``."""
    members = {m.name for m in Format}
    found: set[tuple[str, str, str]] = set()

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            where = node.name
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Format" \
                and node.attr in members:
            found.add((rel, where, node.attr))
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(tree, "<module>")
    return found


def test_code_above_the_adapters_does_not_branch_on_formats() -> None:
    package = Path(edgekit.__file__).resolve().parent
    report = [str(p.relative_to(package)) for p in (package / "report").glob("*.py")]
    files = ["pipeline.py", "validation.py", "api.py", "cli.py", *report]
    found: set[tuple[str, str, str]] = set()
    for rel in files:
        found |= _format_names(ast.parse((package / rel).read_text(encoding="utf-8")), rel)
    unexplained = sorted(found - set(ALLOWED_FORMAT_NAMES))
    assert not unexplained, f"per-format code outside the adapters: {unexplained}; ask the adapter or registry"
    stale = sorted(set(ALLOWED_FORMAT_NAMES) - found)
    assert not stale, f"allowed but no longer there (drop them from the list): {stale}"
    assert registry.is_canonical_format("onnx") and not registry.is_canonical_format("tflite")
