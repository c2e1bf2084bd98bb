"""16-bit islands in TFLite full int8 (ai-edge-quantizer 16x8 ops), with the real litert-torch conversion,
ai-edge-quantizer and LiteRT kernels.

Planted: ``x -> fc1 -> h -> fc2 -> relu -> fc3 -> y``, where two channels of ``h`` sit near 800 (fc1's bias) and fc2
all but ignores them. An int8 ``h`` spreads 256 levels over [.., 800] (a step of ~6) and rounds the channels that matter
away; keeping fc2 float does not help (it reads the same int8 ``h``, dequantized); a 16-bit island on fc2 (fc2 and
fc1, the op that makes ``h``, at 16x8) does. With int8 I/O the model must stay integer-only, so the island is the
only fix allowed, and the search runs by default. Decisions on the tuning items; held-out items (digits 1000+) are
never seen by the quantizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from quant_helpers import mean_item_cosine, split_rows

from edgekit.errors import ConfigError
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.tflite import TfliteInt8Options, input_producers, quantize_full_int8, weighted_ops
from edgekit.quantization.tflite_search import carry_constants, run_tflite
from edgekit.results import AccuracyBudget

pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")
BUDGET = DecisionBudget(AccuracyBudget(min_cosine=0.99))


@pytest.fixture(scope="module")
def outlier_h(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import litert_torch
    import torch
    from torch import nn

    class Planted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2, self.fc3 = nn.Linear(64, 32), nn.Linear(32, 16), nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            return self.fc3(torch.relu(self.fc2(self.fc1(x))))

    torch.manual_seed(0)
    module = Planted().eval()
    with torch.no_grad():
        module.fc1.weight.mul_(4.0)  # h's ordinary channels: std ~2, far below int8's step over [.., 800]
        module.fc1.bias[:2] = 800.0  # two outlier channels of h
        module.fc2.weight[:, :2] = 1e-4  # that fc2 all but ignores
        module.fc2.bias.zero_()  # the output is all h's ordinary channels (a bias would hide their loss)
    path = tmp_path_factory.mktemp("islands16") / "planted.tflite"
    litert_torch.convert(module, (torch.zeros(1, 64),)).export(str(path))
    return path


def _tensor_types(path: Path) -> set[str]:
    import ai_edge_litert.interpreter as tfl

    it = tfl.Interpreter(model_path=str(path))
    return {np.dtype(t["dtype"]).name for t in it.get_tensor_details()}


def test_int8_io_gets_a_16_bit_island_on_fc2_and_stays_integer_only(outlier_h: Path, pixels: np.ndarray,
                                                                   tmp_path: Path) -> None:
    held = [{"x": v[None]} for v in pixels[1000:1200]]
    ref = run_tflite(outlier_h, held)
    plain, searched = tmp_path / "plain.tflite", tmp_path / "searched.tflite"
    fixes_off = TfliteInt8Options(scope="all", io="int8", weight_rounding=False, bias_correction=False)
    off = quantize_full_int8(outlier_h, plain, split_rows(pixels[:200]), lambda f: f, fixes_off, BUDGET)
    options = TfliteInt8Options(scope="all", io="int8", weight_rounding=False, bias_correction=False,
                                islands=("int16",))
    assert options.search("all") and not fixes_off.search("all")  # int16-only islands keep the promise: on
    rep = quantize_full_int8(outlier_h, searched, split_rows(pixels[:200]), lambda f: f, options, BUDGET)
    fc1, fc2, fc3 = weighted_ops(outlier_h)
    assert input_producers(outlier_h) == {fc1: [], fc2: [fc1], fc3: [fc2]}  # relu: fused into fc2
    assert "sensitivity search off" in " ".join(off.notes)
    assert rep.settings["islands_16bit"] == [fc2] and rep.kept_float == ()
    [decision] = rep.settings["island_decisions"]
    assert decision["fix"] == "int16" and decision["score_after"] > decision["score_before"] + 0.05
    assert decision["latency_ms_before"] > 0 and np.isfinite(decision["latency_cost"])
    assert any("16x8 ops; LiteRT runs" in n for n in rep.notes)
    before, after = mean_item_cosine(ref, run_tflite(plain, held)), mean_item_cosine(ref, run_tflite(searched, held))
    assert before < 0.95 and after > 0.98, (before, after)  # held out
    assert not {"float32", "float16"} & _tensor_types(searched)  # integer-only: int8, int16 and their biases
    assert {"int8", "int16"} <= _tensor_types(searched)


def test_with_both_fixes_each_is_priced_and_the_choice_follows_the_rule(outlier_h: Path, pixels: np.ndarray,
                                                                         tmp_path: Path) -> None:
    """Float I/O, islands ("int16", "float"): float on fc2 does not help (it reads the int8 h either way), so the
    16-bit island wins; the record keeps what float would have given and cost, measured."""
    options = TfliteInt8Options(scope="all", io="float", weight_rounding=False, bias_correction=False,
                                islands=("int16", "float"), float_outputs=False)
    rep = quantize_full_int8(outlier_h, tmp_path / "both.tflite", split_rows(pixels[:200]), lambda f: f, options,
                             BUDGET)
    fc2 = weighted_ops(outlier_h)[1]
    decision = rep.settings["island_decisions"][0]  # the most sensitive first; later decisions may follow
    assert decision["node"] == fc2 and decision["fix"] == "int16"
    alt = decision["alternatives"]["float"]
    assert not alt["meets_aim"] and alt["cosine"] < decision["cosine_after"] - 0.05
    assert np.isfinite(alt["latency_cost"]) and np.isfinite(decision["latency_cost"])


def test_on_an_ethos_u_npu_the_16_bit_island_is_priced_by_vela(outlier_h: Path, pixels: np.ndarray,
                                                              tmp_path: Path) -> None:
    """price_on an Ethos-U accelerator: the same island, its cost Vela's estimate of the model compiled for that NPU
    (the real ethos-u-vela compiler): a few percent there, where LiteRT's XNNPACK has no 16x8 kernels."""
    pytest.importorskip("ethosu.vela")
    from edgekit.estimators.vela import estimate

    options = TfliteInt8Options(scope="all", io="int8", weight_rounding=False, bias_correction=False,
                                islands=("int16",), price_on="ethos-u55-128")
    out = tmp_path / "npu.tflite"
    rep = quantize_full_int8(outlier_h, out, split_rows(pixels[:200]), lambda f: f, options, BUDGET)
    fc2 = weighted_ops(outlier_h)[1]
    [decision] = rep.settings["island_decisions"]
    assert decision["node"] == fc2 and decision["fix"] == "int16"
    assert rep.settings["islands_priced_on"] == options.price_on
    assert decision["priced_by"] == "Vela's estimate for ethos-u55-128"
    est = estimate(out, "ethos-u55-128")
    assert est.cpu_ops == 0 and est.latency_ms == pytest.approx(decision["latency_ms_before"] * (1 + decision[
        "latency_cost"]), rel=1e-6)  # the price recorded is Vela's estimate of the model written
    assert any("Vela places" in n and "on the ethos-u55-128 NPU" in n for n in rep.notes)
    held = [{"x": v[None]} for v in pixels[1000:1200]]
    assert mean_item_cosine(run_tflite(outlier_h, held), run_tflite(out, held)) > 0.98


def test_a_search_trial_carries_the_rounded_weights_and_corrected_biases(outlier_h: Path, pixels: np.ndarray,
                                                                        tmp_path: Path) -> None:
    """A trial is re-quantized from the calibration statistics; without the weight rounding and bias correction of
    the model it is compared with, every island looked like a loss (EfficientNet-Lite0 for Ethos-U: best single
    16-bit island -0.0066 of cosine, the search never kept one)."""
    split = split_rows(pixels[:200])
    plain, tuned = tmp_path / "plain.tflite", tmp_path / "tuned.tflite"
    quantize_full_int8(outlier_h, plain, split, lambda f: f,
                       TfliteInt8Options(scope="all", io="int8", weight_rounding=False, bias_correction=False), BUDGET)
    quantize_full_int8(outlier_h, tuned, split, lambda f: f,
                       TfliteInt8Options(scope="all", io="int8", weight_rounding=True, bias_correction=True), BUDGET)
    carried, n = carry_constants(plain.read_bytes(), tuned.read_bytes())
    assert n >= 3  # fc1-fc3's weights or biases differ after rounding / correction
    held = [{"x": v[None]} for v in pixels[1000:1100]]
    same = run_tflite(carried, held, tmp_path / "carried.tflite")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(same, run_tflite(tuned, held), strict=True))
    _, none = carry_constants(tuned.read_bytes(), tuned.read_bytes())
    assert none == 0


def test_islands_option_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"tflite\.int8\.islands"):
        TfliteInt8Options(islands=("int4",))
    with pytest.raises(ConfigError, match=r"tflite\.int8\.islands"):
        TfliteInt8Options(islands=())
    assert TfliteInt8Options().islands == ("float",) and not TfliteInt8Options(io="int8").search("all")
    with pytest.raises(ConfigError, match=r"tflite\.int8\.price_on.*ethos-u55-128"):
        TfliteInt8Options(islands=("int16",), price_on="u55")
    with pytest.raises(ConfigError, match=r"tflite\.int8\.islands: a float island cannot be priced on an Ethos-U"):
        TfliteInt8Options(islands=("int16", "float"), price_on="ethos-u65-256")
