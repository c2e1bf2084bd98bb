"""Cross-layer equalization (:mod:`edgekit.quantization.equalize`) on real torch exports, quantized with the real
ONNX Runtime kernels: a planted depthwise-separable model whose channel ranges wreck per-tensor int8 activations
(equalization must fix it on held-out items), exactness of the rewritten fp32 graph (Relu, ReLU6 with a
per-channel bound), and models it must leave alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from quant_helpers import split_rows

from edgekit.errors import ConfigError
from edgekit.metrics import row_cosine
from edgekit.quantization.equalize import TOLERANCE, equalize, equalized_model, find_pairs, max_relative_difference
from edgekit.quantization.onnx import StaticInt8Options, quantize_static

torch = pytest.importorskip("torch")
nn = torch.nn
Feeds = dict[str, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """The 1,797 scikit-learn digits as 3x16x16 float32 images in [-1, 1]."""
    from sklearn.datasets import load_digits

    x = load_digits().images.astype(np.float32) / 16.0
    x = np.kron(x, np.ones((2, 2), np.float32))
    return np.ascontiguousarray(np.repeat(((x - 0.5) / 0.5)[:, None], 3, axis=1))


def _export(model: nn.Module, path: Path) -> Path:
    torch.onnx.export(model.eval(), (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def _separable(act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Conv -> act -> depthwise -> act -> pointwise -> act -> depthwise -> act -> pointwise -> act -> head. No biases:
    the logits carry the weights' signal, not a constant."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), act(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), act(),
        nn.Conv2d(16, 32, 1, bias=False), act(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), act(),
        nn.Conv2d(32, 32, 1, bias=False), act(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10, bias=False))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The separable model with planted channel ranges: a third of the first depthwise conv's channels x60 and
    the next conv's matching input channels /60 (likewise x40 in the second): the same function, but one
    per-tensor int8 activation scale must now cover channels 60x apart."""
    model = _separable()
    with torch.no_grad():
        for dw, pw, step, k in ((model[2], model[4], 3, 60.0), (model[6], model[8], 4, 40.0)):
            f = torch.ones(dw.out_channels)
            f[::step] = k
            dw.weight.mul_(f.view(-1, 1, 1, 1))
            pw.weight.div_(f.view(1, -1, 1, 1))
    return _export(model, tmp_path_factory.mktemp("planted") / "fp32.onnx")


def _run(model: Path | onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    src = str(model) if isinstance(model, Path) else model.SerializeToString()
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"input": x})[0])


def test_planted_case_equalization_fixes_int8_on_held_out_items(planted: Path, digits: np.ndarray,
                                                                 tmp_path: Path) -> None:
    calib, held_out = digits[:200], digits[1000:1400]  # decisions see only calib's tuning items
    ref = _run(planted, held_out)
    cosines = {}
    reports = {}
    for mode in (False, "auto"):
        out = tmp_path / f"q-{mode}.onnx"
        # weight rounding off: it fixes part of the planted per-tensor problem too (plain 0.996 -> 0.9993)
        options = StaticInt8Options(sensitivity_search=False, equalize=mode, weight_rounding=False)
        reports[mode] = quantize_static(planted, out, split_rows(calib, "input"), options, isa_preset="vnni")
        got = _run(out, held_out)
        cosines[mode] = float(row_cosine(ref, got).mean())
    eq = reports["auto"].settings["equalization"]
    assert reports[False].settings["equalization"] == {"applied": False, "reason": "equalize=False"}
    assert eq["applied"] is True and eq["pairs"] == 4 and eq["max_scale"] > 20
    assert eq["tuning_cosine_with"] > eq["tuning_cosine_without"]
    assert any(n.startswith("cross-layer equalization: 4 conv pairs (through Relu)") and n.endswith(": kept")
               for n in reports["auto"].notes)
    # the held-out error (1 - cosine) shrinks more than 10x: 0.996 -> 0.9999 when measured
    assert cosines[False] < 0.998 and cosines["auto"] > 0.9995
    assert (1.0 - cosines["auto"]) * 10 < 1.0 - cosines[False]


def test_the_equalized_fp32_graph_computes_the_same_function(planted: Path, digits: np.ndarray) -> None:
    model = onnx.load(str(planted))
    eq = equalize(model)
    assert [p.activation for p in eq.pairs] == ["Relu"] * 4 and not eq.skipped
    x = digits[1000:1100]
    assert max_relative_difference([_run(model, x)], [_run(eq.model, x)]) < TOLERANCE
    # the ranges now match across each pair: output channel of the depthwise conv == input channel of the next
    w = {i.name: onnx.numpy_helper.to_array(i) for i in eq.model.graph.initializer}
    nodes = {n.name: n for n in eq.model.graph.node}
    last = eq.pairs[-1]
    r1 = np.abs(w[nodes[last.first].input[1]]).reshape(32, -1).max(1)
    r2 = np.abs(w[nodes[last.second].input[1]]).max(axis=(0, 2, 3))
    np.testing.assert_allclose(r1, r2, rtol=2e-3)
    # the original model is not touched
    assert max_relative_difference([_run(model, x)], [_run(planted, x)]) == 0.0


def test_relu6_pairs_are_skipped_or_bounded_per_channel_exactly(digits: np.ndarray, tmp_path: Path) -> None:
    path = _export(_separable(nn.ReLU6), tmp_path / "relu6.onnx")
    model = onnx.load(str(path))
    pairs, skipped = find_pairs(model)
    assert pairs == [] and len(skipped) == 4 and "Clip(0, 6) needs a per-channel bound" in skipped[0]
    eq = equalize(model, clip="bound")
    assert len(eq.pairs) == 4 and {p.activation for p in eq.pairs} == {"Clip"}
    ops = [n.op_type for n in eq.model.graph.node]
    assert ops.count("Clip") == 1 and ops.count("Min") == 4  # the last ReLU6 feeds the pooling, not a conv
    x = digits[1000:1100] * 8.0  # drive activations far past 6: the bound must clip exactly where ReLU6 did
    assert max_relative_difference([_run(model, x)], [_run(eq.model, x)]) < TOLERANCE


def test_a_model_without_conv_pairs_is_left_unchanged_with_a_note(digits: np.ndarray, tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 10))
    path = _export(net, tmp_path / "single.onnx")
    notes: list[str] = []
    model = onnx.load(str(path))
    assert equalized_model(model, [], lambda m, f: [], notes) is None
    assert notes == ["cross-layer equalization: no conv pair to equalize; model left unchanged"]
    rep = quantize_static(path, tmp_path / "q.onnx", split_rows(digits[:100], "input"),
                          StaticInt8Options(sensitivity_search=False, equalize=True), isa_preset="vnni")
    assert rep.settings["equalization"]["applied"] is False
    assert "cross-layer equalization: no conv pair to equalize; model left unchanged" in rep.notes
    auto = quantize_static(path, tmp_path / "q2.onnx", split_rows(digits[:100], "input"),
                           StaticInt8Options(sensitivity_search=False, equalize="auto"), isa_preset="vnni")
    assert auto.settings["equalization"] == {"applied": False, "reason": "no depthwise convolution"}


def test_equalize_options_are_validated() -> None:
    for bad in ("yes", 1, None):
        with pytest.raises(ConfigError, match=r"static_int8\.equalize"):
            StaticInt8Options(equalize=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"static_int8\.equalize_clip"):
        StaticInt8Options(equalize_clip="relu")
