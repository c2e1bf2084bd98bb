"""LiteRT int8 with scope "weighted" (transformers): the weighted ops static int8, every other op float, and the
search's island is **dynamic-range int8** (int8 weights, activations quantized at run time, a float output) before
any float island. Real litert-torch conversion, ai-edge-quantizer and LiteRT kernels.

Planted: ``x -> fc1 -> relu -> fc2 -> y[:, 2:]``, where fc2's first two output channels sit near 800 (BERT's FFN
output has such outlier channels, up to ~200 in MiniLM) and the model's output is the other channels. A static
fc2 requantizes its output per tensor to int8 (a step of ~6 over [.., 800]) and rounds the channels that matter
away; as a dynamic island its output stays float. Decisions on the tuning items; held-out items (digits 1000+) are
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
from edgekit.quantization.tflite import TfliteInt8Options, quantize_full_int8, weighted_ops
from edgekit.quantization.tflite_search import run_tflite
from edgekit.results import AccuracyBudget

pytest.importorskip("ai_edge_litert")
pytest.importorskip("litert_torch")
BUDGET = DecisionBudget(AccuracyBudget(min_cosine=0.99))


@pytest.fixture(scope="module")
def outlier_fc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import litert_torch
    import torch
    from torch import nn

    class Planted(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 48), nn.Linear(48, 24)

        def forward(self, x: Any) -> Any:
            return self.fc2(torch.relu(self.fc1(x)))[:, 2:]

    torch.manual_seed(0)
    module = Planted().eval()
    with torch.no_grad():
        module.fc2.bias[:2] = 800.0  # two outlier channels the output drops
    path = tmp_path_factory.mktemp("scope") / "planted.tflite"
    litert_torch.convert(module, (torch.zeros(1, 64),)).export(str(path))
    return path


def test_the_search_makes_the_outlier_fc_a_dynamic_island_not_float(outlier_fc: Path, pixels: np.ndarray,
                                                                     tmp_path: Path) -> None:
    held = [{"x": v[None]} for v in pixels[1000:1200]]
    ref = run_tflite(outlier_fc, held)
    plain, searched = tmp_path / "plain.tflite", tmp_path / "searched.tflite"
    off = quantize_full_int8(outlier_fc, plain, split_rows(pixels[:200]), lambda f: f,
                             TfliteInt8Options(scope="weighted", sensitivity_search=False), BUDGET)
    rep = quantize_full_int8(outlier_fc, searched, split_rows(pixels[:200]), lambda f: f,
                             TfliteInt8Options(scope="weighted"), BUDGET)
    fc2 = weighted_ops(outlier_fc)[1]
    assert off.settings["scope"] == rep.settings["scope"] == "weighted" and off.kept_float == ()
    assert rep.kept_float == () and rep.settings["dynamic_int8_ops"] == [fc2]  # fc2 only; fc1 stays static
    assert f"kept 1 ops as dynamic-range int8 islands: {fc2}" in rep.notes
    before, after = mean_item_cosine(ref, run_tflite(plain, held)), mean_item_cosine(ref, run_tflite(searched, held))
    assert before < 0.95 and after > 0.99, (before, after)  # held out
    # the island is int8 weights, not float: the file stays about a quarter of the fp32 one
    assert searched.stat().st_size < 0.5 * outlier_fc.stat().st_size


def test_auto_scope_follows_the_model_and_the_option_is_checked(outlier_fc: Path) -> None:
    assert TfliteInt8Options().scope_for(outlier_fc)[0] == "weighted"  # no convolution
    assert TfliteInt8Options(scope="all").scope_for(outlier_fc) == ("all", "tflite.int8.scope='all'")
    assert TfliteInt8Options().search("weighted") and not TfliteInt8Options().search("all")
    with pytest.raises(ConfigError, match=r"tflite\.int8\.scope"):
        TfliteInt8Options(scope="some")
    with pytest.raises(ConfigError, match=r"tflite\.int8\.max_dynamic_ops"):
        TfliteInt8Options(max_dynamic_ops=-1)
