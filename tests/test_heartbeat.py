"""Long steps speak (issue 10: NNCF ran 32-64 minutes with no output): the heartbeat's "so far" lines, and the
calibration estimate a real int8 build prints before it starts."""

from __future__ import annotations

import time
from pathlib import Path

from edgekit.heartbeat import estimate_line, heartbeat
from edgekit.pipeline import RunOptions, build_artifact
from edgekit.types import Format, Precision


def test_a_long_block_says_how_long_it_has_run_and_a_short_one_says_nothing() -> None:
    lines: list[str] = []
    with heartbeat(lines.append, "build openvino int8", every=0.1, note="calibration inference alone: about 2m30s"):
        time.sleep(0.35)
    assert len(lines) >= 2 and all(ln.startswith("  ... build openvino int8: ") for ln in lines), lines
    assert all(ln.endswith("s so far (calibration inference alone: about 2m30s)") for ln in lines), lines
    quiet: list[str] = []
    with heartbeat(quiet.append, "quick", every=5.0):
        pass
    assert quiet == []


def test_the_estimate_names_its_parts() -> None:
    line, total = estimate_line("calibration of onnx int8", 100, 0.02, 1.0)
    assert total == 2.0 and "100 items x 20.0 ms" in line and "about 2s" in line


def test_an_int8_build_says_what_its_calibration_will_cost_before_it_starts(tiny_model: tuple[str, Path],
                                                                            tmp_path: Path) -> None:
    from edgekit.api import load_source
    from edgekit.data import load_dataset

    factory, _ = tiny_model
    source = load_source(factory)
    ds = load_dataset("digits")
    lines: list[str] = []
    options = RunOptions(calibration_limit=16)
    fp32 = build_artifact(source, Format.ONNX, Precision.FP32, tmp_path, dataset=ds, options=options,
                          progress=lines.append)
    build_artifact(source, Format.ONNX, Precision.INT8, tmp_path, dataset=ds, canonical=fp32, options=options,
                   progress=lines.append)
    estimate = [ln for ln in lines if ln.startswith("calibration of onnx int8: about")]
    build = next(i for i, ln in enumerate(lines) if ln.startswith("build onnx int8"))
    assert len(estimate) == 1 and lines.index(estimate[0]) > build, lines
    assert "16 items x" in estimate[0] and "quantizer's own work comes on top" in estimate[0]
