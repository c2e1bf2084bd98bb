"""Bias correction and weight rounding of full-integer int8 TFLite (ai-edge-quantizer + LiteRT kernels), on a planted
drift.

A small CNN over 16x16 digits converted with litert-torch: conv1's bias keeps its ReLU output near 3 (a large
input mean, like activations after ReLU6), and each output channel of conv2 has one weight of 1 and 71 weights
just over half the int8 step (1 / 127): they all round up, so every conv2 channel's mean moves by about 0.7
while its signal sits around the kink of the ReLU that follows. Decisions on the tuning items; held-out items
(the digits eval split) are never seen by the quantizer. The head's zero bias is dropped by the converter: two
layers to correct. The drift is a rounding bias, so the optimized weight rounding
(:mod:`edgekit.quantization.tflite_rounding`) removes it too: the bias-correction test turns the rounding off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgekit.pipeline import build_artifact
from edgekit.types import Format, Precision

pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import torch
    from torch import nn

    import edgekit
    from edgekit.data import load_dataset

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                           nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        module[0].weight.mul_(0.3)
        module[0].bias.fill_(3.0)
        w = (0.55 + 0.1 * torch.rand(16, 8, 3, 3, generator=gen)) / 127
        w.view(16, -1)[torch.arange(16), torch.randint(0, 72, (16,), generator=gen)] = 1.0
        module[2].weight.copy_(w)
        module[2].bias.copy_(-w.sum((1, 2, 3)) * 3.0)
        module[6].weight.mul_(4.0)  # the logits follow the pooled features, not the head's own bias
        module[6].bias.zero_()
    src = edgekit.load_source(module, input_shapes={"input": (1, 3, 16, 16)}, task="image-classification",
                              preprocess={"size": (16, 16), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    ds = load_dataset("digits")
    out = tmp_path_factory.mktemp("tflite-bias")
    fp32 = build_artifact(src, Format.TFLITE, Precision.FP32, out, dataset=ds, progress=lambda _m: None)
    return {"source": src, "dataset": ds, "fp32": fp32}


def _quantize(d: dict[str, Any], out: Path, mode: bool | str, rounding: bool | str = False) -> Any:
    from edgekit.layout import to_layout
    from edgekit.quantization.calibration import split_calibration
    from edgekit.quantization.checks import DecisionBudget
    from edgekit.quantization.tflite import TfliteInt8Options, quantize_full_int8

    src, ds, fp32 = d["source"], d["dataset"], d["fp32"]
    split = split_calibration(lambda: ds.batches("calibration", src.io, src.preprocess, limit=96), total=96)
    return quantize_full_int8(fp32.path, out, split, lambda f: to_layout(f, fp32.layout),
                              TfliteInt8Options(bias_correction=mode, weight_rounding=rounding), DecisionBudget())


def _held_out_cosine(d: dict[str, Any], model: Path) -> float:
    from edgekit.layout import to_layout
    from edgekit.quantization.tflite_search import run_tflite

    src, ds, fp32 = d["source"], d["dataset"], d["fp32"]
    feeds = [to_layout(f, fp32.layout) for f in ds.batches("eval", src.io, src.preprocess, limit=200)]
    a = np.concatenate([o[0] for o in run_tflite(fp32.path, feeds)]).reshape(len(feeds), -1)
    b = np.concatenate([o[0] for o in run_tflite(model, feeds)]).reshape(len(feeds), -1)
    return float(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))


def test_bias_correction_recovers_the_drift_and_stays_integer_only(drifting: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    from edgekit.formats.tflite_graph import io_types
    from edgekit.quantization.tflite import has_convolutions

    assert has_convolutions(drifting["fp32"].path)  # so "auto" corrects it
    plain, fixed = tmp_path / "plain.tflite", tmp_path / "fixed.tflite"
    off = _quantize(drifting, plain, False)
    rep = _quantize(drifting, fixed, "auto")
    assert off.settings["bias_correction"] == {"applied": False, "reason": "bias_correction=False"}
    record = rep.settings["bias_correction"]
    assert record["applied"] and record["layers"] == 2 and record["tuning_cosine_with"] > record[
        "tuning_cosine_without"]
    assert any(n.startswith("bias correction: 2 layers'") and n.endswith("kept") for n in rep.notes)
    before, after = _held_out_cosine(drifting, plain), _held_out_cosine(drifting, fixed)
    print(f"held-out cosine {before:.4f} -> {after:.4f}")
    assert before < 0.98 and after > before + 0.01  # measured 0.971 -> 0.988
    assert io_types(fixed.read_bytes()) == "int8" and rep.kept_float == ()  # integer-only, int8 I/O
    assert fixed.stat().st_size == plain.stat().st_size  # only bias values changed


def test_weight_rounding_removes_the_drift_and_changes_only_int8_weights(drifting: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    """Bias correction off, so only the rounding differs: each conv2 channel's 71 weights no longer all round up,
    the held-out cosine recovers, the model stays integer-only with int8 I/O and the same size, and every weight
    stays in TFLite's symmetric [-127, 127]."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    from edgekit.formats.tflite_graph import io_types

    plain, rounded = tmp_path / "plain.tflite", tmp_path / "rounded.tflite"
    _quantize(drifting, plain, False, False)
    rep = _quantize(drifting, rounded, False, True)
    record = rep.settings["weight_rounding"]
    assert record["applied"] is True and record["layers"] >= 2 and record["median_error_cut"] > 0.3, record
    assert any(n.startswith("weight rounding:") and "(weight_rounding=True)" in n for n in rep.notes)
    before, after = _held_out_cosine(drifting, plain), _held_out_cosine(drifting, rounded)
    print(f"held-out cosine {before:.4f} -> {after:.4f}")
    assert before < 0.98 and after > before + 0.01, (before, after)
    assert io_types(rounded.read_bytes()) == "int8" and rep.kept_float == ()
    assert rounded.stat().st_size == plain.stat().st_size
    m = fu.convert_bytearray_to_object(bytearray(rounded.read_bytes()))
    sg = m.subgraphs[0]
    weights = [np.frombuffer(bytes(bytearray(m.buffers[sg.tensors[op.inputs[1]].buffer].data)), np.int8)
               for op in sg.operators if fu.get_builtin_code_from_operator_code(m.operatorCodes[op.opcodeIndex])
               in (3, 4, 9) and sg.tensors[op.inputs[1]].type == 9]  # CONV_2D, DEPTHWISE, FC; INT8
    assert len(weights) == 3 and min(int(w.min()) for w in weights) >= -127
    auto = _quantize(drifting, tmp_path / "auto.tflite", "auto", "auto")
    assert "applied" in auto.settings["weight_rounding"] and "applied" in auto.settings["bias_correction"]


def test_a_model_without_convolutions_is_not_corrected(tmp_path: Path) -> None:
    """Transformer-like (FULLY_CONNECTED only): "auto" skips the correction, with the reason in the settings."""
    import torch
    from torch import nn

    import edgekit
    from edgekit.data import load_dataset
    from edgekit.quantization.tflite import has_convolutions, weighted_ops

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    src = edgekit.load_source(mlp, input_shapes={"input": (1, 3, 8, 8)}, task="image-classification",
                              preprocess={"size": (8, 8), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    ds = load_dataset("digits")
    fp32 = build_artifact(src, Format.TFLITE, Precision.FP32, tmp_path, dataset=ds, progress=lambda _m: None)
    assert len(weighted_ops(fp32.path)) == 2 and not has_convolutions(fp32.path)  # two FULLY_CONNECTED, no conv
    rep = _quantize({"source": src, "dataset": ds, "fp32": fp32}, tmp_path / "q.tflite", "auto")
    assert rep.settings["bias_correction"]["applied"] is False
    assert "no convolution" in rep.settings["bias_correction"]["reason"]
