"""The Raspberry Pi AI Camera (Sony IMX500) through Sony's toolchain in its own virtualenv (make test installs it:
`make toolchains`): a real run of a small CNN quantizes the fp32 ONNX with MCT on the run's calibration items,
compiles it with imxconv-pt (packerOut.zip + the converter's memory report), and validates the held-out items on
MCT's quantized model; no speed."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

import edgekit
from edgekit import toolchains
from edgekit.pipeline import RunOptions
from edgekit.runtimes.imx500 import memory_line, packer_path, sidecar_path
from edgekit.types import Format, Precision


@pytest.fixture(scope="module")
def imx500_run(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    why = toolchains.unusable(toolchains.get("imx500"))
    if why:
        pytest.skip(f"imx500 toolchain: {why} (edgekit toolchains install imx500)")
    if shutil.which("java") is None:
        pytest.skip("imxconv-pt needs Java and there is none on PATH (Debian: apt-get install default-jre-headless)")
    spec, ckpt = tiny_model
    out = tmp_path_factory.mktemp("imx500")
    src = edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")
    opts = RunOptions(targets=("local-cpu", "rpi-ai-camera"), formats=(Format.ONNX,), precisions=(Precision.FP32,),
                      calibration_limit=32, eval_limit=32)
    return out, edgekit.run(src, calibration="digits", out_dir=out, options=opts, progress=lambda _m: None)


def test_an_ai_camera_target_gets_a_packer_file_its_memory_report_and_mcts_accuracy(
        imx500_run: tuple[Path, object]) -> None:
    out, result = imx500_run
    rows = {(r.artifact.name, r.target): r for r in result.rows}  # type: ignore[attr-defined]
    assert sorted(a for a, t in rows if t == "rpi-ai-camera") == ["model.fp32.onnx"], sorted(rows)
    row = rows[("model.fp32.onnx", "rpi-ai-camera")]
    assert row.status == "validated-remote" and row.bench is None, (row.status, row.reason)
    assert "MCT fake-quant simulation on onnxruntime" in (row.accuracy_from or "") and "not the camera" in \
        (row.accuracy_from or ""), row.accuracy_from
    # MCT's int8, not the fp32 model: close to the source but not bit-exact
    assert row.metrics.n == 32 and row.metrics.cosine_mean > 0.9 and row.metrics.max_abs > 1e-4, row.metrics
    artifact = out / "artifacts" / "model.fp32.onnx"
    packer, side = packer_path(artifact), sidecar_path(artifact)
    with zipfile.ZipFile(packer) as z:  # what imx500-package on the Raspberry Pi takes
        assert {"dnnParams.xml", "l2staticData.bin", "manifest.json"} <= set(z.namelist()), z.namelist()
    record = json.loads(side.read_text())
    mem = record["memory"]
    # the converter's own figures, in bytes: the chip's 8 MB (8,388,480 B) and this small CNN's share of it
    assert mem["available_bytes"] == 8388480 and mem["fits"] is True, mem
    assert 0 < mem["model_bytes"] < mem["used_bytes"] < 1_000_000, mem
    assert mem["used_bytes"] == mem["model_bytes"] + mem["runtime_bytes"] + mem["reserved_bytes"], mem
    assert record["layers_on_imx500"].get("Convolution") == 2, record["layers_on_imx500"]
    assert record["calibration_items"] == 32 and record["held_out_items"] == 32, record
    assert record["fp32_check_max_abs"] < 1e-4, record  # onnx2torch's module computes what the ONNX does
    assert packer.name in row.reason and memory_line(mem) in row.reason and "fits" in row.reason, row.reason
    assert not [f for f in (out / "artifacts").iterdir() if f.name.startswith(".")]  # nothing half-written left


def test_memory_line_says_whether_it_fits() -> None:
    fits = {"used_bytes": 4_096_032, "available_bytes": 8_388_480, "fits": True}
    assert memory_line(fits) == "4.10 of 8.39 MB on the chip (49%): fits"
    over = {"used_bytes": 9_000_000, "available_bytes": 8_388_480, "fits": False}
    assert "does NOT fit" in memory_line(over)


def test_without_the_toolchain_the_target_says_how_to_install_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from edgekit.errors import MissingDependencyError
    from edgekit.registry import get_runtime

    monkeypatch.setenv("EDGEKIT_TOOLCHAINS_DIR", str(tmp_path / "none"))
    with pytest.raises(MissingDependencyError) as missing:
        get_runtime("mct-imx500")
    assert missing.value.hint == "edgekit toolchains install imx500", missing.value.hint
