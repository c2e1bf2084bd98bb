"""One conformance suite over every registered runtime × every format it loads (ExecuTorch-style).

Each case builds a real fp32 artifact of the format from the same small torch model (through the
registered format adapter) and holds the runtime to one contract. A runtime whose package is missing
is skipped with the install hint; adding a runtime or format to the registry adds its cases here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import edgekit
from edgekit.artifacts import Artifact
from edgekit.errors import MissingDependencyError, RuntimeAdapterError
from edgekit.layout import to_layout
from edgekit.pipeline import build_artifact
from edgekit.registry import FORMATS, RUNTIMES, get_runtime
from edgekit.runtimes.base import RuntimeOptions, Session
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

CASES = [(rt, fmt) for rt, entry in sorted(RUNTIMES.items()) for fmt in entry.formats if fmt in FORMATS]
# what a runtime needs to load anything: the SoC of an NPU runtime
DEVICE = {"qnn-htp": "SM8650", "rknn-sim": "rk3588"}
# runtimes with no single-item session (they quantize with the NPU's own toolchain on the run's calibration items):
# only the file checks apply here; their runs are tested through the emulate executor
BATCH_ONLY = {"mct-imx500": "MCT quantizes on the run's calibration items: tests/executors/test_imx500.py"}
PRE = {"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3}


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
                                  nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def source() -> ModelSource:
    return edgekit.load_source(Small(), input_shapes={"input": (1, 3, 16, 16)}, preprocess=PRE,
                               task="image-classification")


@pytest.fixture(scope="module")
def artifacts(source: ModelSource, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    from edgekit.data import load_dataset

    ds = load_dataset("digits")
    out: dict[str, Artifact] = {}
    canonical = build_artifact(source, Format.ONNX, Precision.FP32, tmp_path_factory.mktemp("onnx"), dataset=ds)
    out["onnx"] = canonical
    for fmt in FORMATS:
        if fmt != "onnx":
            try:
                out[fmt] = build_artifact(source, Format.parse(fmt), Precision.FP32, tmp_path_factory.mktemp(fmt),
                                          dataset=ds, canonical=canonical)
            except MissingDependencyError:
                pass
    return out


def _runtime(name: str, session: bool = True) -> object:
    if session and name in BATCH_ONLY:
        pytest.skip(f"{name} has no single-item session ({BATCH_ONLY[name]})")
    try:
        return get_runtime(name)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


def _feeds(source: ModelSource, n: int = 4) -> list[dict[str, np.ndarray]]:
    from edgekit.data import load_dataset

    return list(load_dataset("digits").batches("eval", source.io, source.preprocess, limit=n))


@pytest.mark.parametrize(("runtime", "fmt"), CASES)
def test_loads_runs_and_matches_the_source(runtime: str, fmt: str, source: ModelSource,
                                           artifacts: dict[str, Artifact]) -> None:
    rt = _runtime(runtime)
    if fmt not in artifacts:
        pytest.skip(f"format {fmt} cannot be built here")
    sess = rt.load(artifacts[fmt].path, RuntimeOptions(threads=1, device=DEVICE.get(runtime)))  # type: ignore[attr-defined]
    assert isinstance(sess, Session)
    tol = 1e-3 if RUNTIMES[runtime].fp32_exact else 2e-2  # an NPU runs fp32 models in fp16
    for feed in _feeds(source):
        got = sess.run(to_layout(feed, artifacts[fmt].layout))  # the artifact's recorded input layout
        want = source.run_reference(feed)
        assert got[0].shape == want[0].shape
        np.testing.assert_allclose(got[0], want[0], atol=tol, rtol=tol)
    info = sess.info()
    assert isinstance(info, dict) and info, "info() must say where the model ran"


@pytest.mark.parametrize(("runtime", "fmt"), CASES)
def test_versions_are_reported(runtime: str, fmt: str) -> None:
    versions = _runtime(runtime, session=False).versions()  # type: ignore[attr-defined]
    assert versions and all(isinstance(v, str) and v for v in versions.values())


# Each built-in adapter's own words for a file that is not there and for a file that is not a model. The
# files are named neutrally (``model<suffix>`` in a folder named ``case``) and the path is cut out of the
# message before matching, so only the adapter's wording can pass (a file named ``missing.onnx`` would
# put the word into every message that quotes the path).
ADAPTER_WORDS: dict[tuple[str, str], tuple[str, str]] = {
    ("onnxruntime", "onnx"): ("model file not found", "onnxruntime cannot load the model"),
    ("openvino", "openvino"): ("model file missing", "OpenVINO IR .xml is corrupt"),
    ("openvino", "onnx"): ("model file missing", "OpenVINO cannot read the model (corrupt file?)"),
    ("litert", "tflite"): ("model file not found", "not a TFLite flatbuffer"),
}
# a plugin runtime: any of the usual wordings (regular expressions)
GENERIC_WORDS = (r"not found|missing|does not exist|no such", r"corrupt|cannot (load|read|parse)|not a |invalid")


def _words(runtime: str, fmt: str) -> tuple[str, str]:
    """Regular expressions for the (absent file, not-a-model file) messages of ``runtime`` loading ``fmt``."""
    import re

    known = ADAPTER_WORDS.get((runtime, fmt))
    return (re.escape(known[0]), re.escape(known[1])) if known else GENERIC_WORDS


def _own_words(err: RuntimeAdapterError, path: Path) -> str:
    assert err.where is not None and str(path) in err.where, f"the error must name the file: {err}"
    assert "\n" not in str(err)
    return err.message.replace(str(path), "<path>")


@pytest.mark.parametrize(("runtime", "fmt"), CASES)
def test_unloadable_files_are_runtime_errors_in_the_adapters_words(runtime: str, fmt: str,
                                                                    tmp_path_factory: pytest.TempPathFactory,
                                                                    artifacts: dict[str, Artifact]) -> None:
    import re

    rt = _runtime(runtime, session=False)
    suffix = artifacts[fmt].path.suffix if fmt in artifacts else f".{fmt}"
    absent_words, garbage_words = _words(runtime, fmt)
    absent = tmp_path_factory.mktemp("case") / f"model{suffix}"
    with pytest.raises(RuntimeAdapterError) as err:
        rt.load(absent, RuntimeOptions())  # type: ignore[attr-defined]
    words = _own_words(err.value, absent)
    assert re.search(absent_words, words), words
    garbage = tmp_path_factory.mktemp("case") / f"model{suffix}"
    garbage.write_bytes(b"\x08\x01garbage" * 64)
    with pytest.raises(RuntimeAdapterError) as err:
        rt.load(garbage, RuntimeOptions())  # type: ignore[attr-defined]
    words = _own_words(err.value, garbage)
    assert re.search(garbage_words, words), words


@pytest.mark.parametrize(("runtime", "fmt"), CASES)
def test_wrong_input_is_a_runtime_error(runtime: str, fmt: str, source: ModelSource,
                                        artifacts: dict[str, Artifact]) -> None:
    rt = _runtime(runtime)
    if fmt not in artifacts:
        pytest.skip(f"format {fmt} cannot be built here")
    sess = rt.load(artifacts[fmt].path, RuntimeOptions(threads=1, device=DEVICE.get(runtime)))  # type: ignore[attr-defined]
    with pytest.raises(RuntimeAdapterError):
        sess.run({source.io.input_names[0]: np.zeros((1, 5, 7, 7), np.float32)})
