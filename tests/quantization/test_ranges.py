"""Per-tensor range choice (:mod:`edgekit.quantization.ranges`) with the real ONNX Runtime quantizer and kernels: the
error model on known histograms, and a planted case (a calibration set with one corrupted, saturated frame) where
the chosen ranges must beat min-max on held-out items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from quant_helpers import split_rows

from edgekit.errors import ConfigError
from edgekit.metrics import row_cosine
from edgekit.quantization.onnx import StaticInt8Options, quantize_static
from edgekit.quantization.ranges import BINS, best_range

torch = pytest.importorskip("torch")
nn = torch.nn


def _hist(items: list[np.ndarray], lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    return (np.stack([np.histogram(v, BINS, range=(min(lo, 0.0), max(hi, 0.0)))[0] for v in items]),
            np.array([np.count_nonzero(v == 0) for v in items]))


def test_one_items_outlier_is_clipped_and_a_uniform_spread_keeps_min_max() -> None:
    rng = np.random.default_rng(0)
    items = [np.abs(rng.normal(0, 1, 10_000)) for _ in range(12)]
    items[3] = np.concatenate([items[3], [60.0]])  # one corrupted item
    (lo, hi), err, err_mm = best_range(*_hist(items, 0.0, 60.0), 0.0, 60.0)
    assert lo == 0.0 and 2.5 < hi < 8.0, hi  # the body reaches ~4; one value at 60 is not worth 256 levels
    assert err < 0.2 * err_mm
    # squared error alone (one item holding everything) keeps the outlier: 55**2 outweighs 100,000 small errors
    (_, hi_one), _, _ = best_range(*_hist([np.concatenate(items)], 0.0, 60.0), 0.0, 60.0)
    assert hi_one > 30
    flat = [rng.uniform(-2, 5, 10_000) for _ in range(12)]
    (lo, hi), err, err_mm = best_range(*_hist(flat, -2.0, 5.0), -2.0, 5.0)
    assert (lo, hi) == pytest.approx((-2.0, 5.0), rel=0.02) and err == pytest.approx(err_mm, rel=0.05)


def test_exact_zeros_cost_nothing() -> None:
    """Half the values are exact zeros (after a ReLU): they do not pull the range in."""
    rng = np.random.default_rng(1)
    items = [np.concatenate([np.zeros(5_000), rng.uniform(0, 6, 5_000)]) for _ in range(8)]
    (_, hi), _, _ = best_range(*_hist(items, 0.0, 6.0), 0.0, 6.0)
    assert hi == pytest.approx(6.0, rel=0.02)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.float32) / 16.0
    return np.ascontiguousarray(np.repeat(np.kron(x, np.ones((2, 2), np.float32))[:, None], 3, axis=1))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.ReLU(), nn.Conv2d(32, 32, 1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    path = tmp_path_factory.mktemp("ranges") / "fp32.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return np.asarray(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0])


def test_range_choice_beats_min_max_when_one_calibration_frame_is_saturated(model: Path, digits: np.ndarray,
                                                                          tmp_path: Path) -> None:
    """One of 100 calibration frames is corrupted (x40, a saturated sensor read): min-max spreads every tensor's
    256 levels over that frame; the per-tensor choice clips it and the other 99 frames' resolution comes back."""
    cal = digits[:100].copy()
    cal[7] *= 40.0
    held = digits[300:500]
    ref = _run(model, held)
    got = {}
    for choice in (False, True):
        opts = StaticInt8Options(range_choice=choice, sensitivity_search=False, bias_correction=False)
        out = tmp_path / f"int8-{choice}.onnx"
        rep = quantize_static(model, out, split_rows(cal, "input"), opts, "vnni")
        q = _run(out, held)
        got[choice] = float(np.linalg.norm(q - ref) / np.linalg.norm(ref))  # relative error over held-out items
        assert float(np.mean(row_cosine(ref, q))) > 0.999
        assert rep.settings["range_choice"]["applied"] is choice
    assert got[True] < got[False] / 3, got  # measured: 0.0171 -> 0.0020 (machine A)
    assert any("per-tensor range choice" in n and "tensors take a clipped range" in n for n in rep.notes)
    assert rep.settings["range_choice"]["clipped"] >= 2


def test_range_choice_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match=r"static_int8\.range_choice"):
        StaticInt8Options(range_choice="auto")  # type: ignore[arg-type]


def test_a_relative_output_folder_keeps_the_pre_processing(model: Path, digits: np.ndarray, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`edgekit run --out runs/x` hands the quantizer a relative path: ORT's pre-processing runs with the temporary
    folder as its working directory, so a relative temporary root made it fail ("No such file") and skip."""
    import shutil

    shutil.copy(model, tmp_path / "fp32.onnx")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    rep = quantize_static(Path("fp32.onnx"), Path("out/int8.onnx"), split_rows(digits[:40], "input"),
                          StaticInt8Options(sensitivity_search=False, bias_correction=False), "vnni")
    assert not any(n.startswith("pre-processing skipped") for n in rep.notes), rep.notes
    assert (tmp_path / "out" / "int8.onnx").is_file() and not list((tmp_path / "out").glob("edgekit-quant-*"))
