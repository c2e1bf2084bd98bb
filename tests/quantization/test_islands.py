"""Higher-precision islands before float islands (ONNX static int8), with the real ONNX Runtime kernels.

Two planted models over the 64 pixels of the scikit-learn digits:

* an **activation** problem: ``fc1 -> Add(outlier bias) -> h -> fc2``, where two channels of ``h`` sit near 800
  and fc2 nearly ignores them (ORT's pre-processing fuses fc1 and the Add into one Gemm). An 8-bit ``h`` spreads
  256 levels over [.., 800] and rounds the channels that matter away; reading float weights (the float fix)
  cannot help, 16 bits for ``h`` (fc2's island) can.
* a **weight** problem: ``fc1 -> Clip(0, 6) -> fc2``, fc1's weight columns spanning four decades and quantized
  per-tensor: its ordinary columns round to zero. The float fix helps, a 16-bit island (activations) does not.

Decisions on the tuning items only; held-out items (digits 1000+) are never seen by the search. Smoothing is off:
these MatMul models count as transformers, and moving h's outliers into fc2's weights (smoothing) is another fix of
the first problem; the island search is what is under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_helpers import mean_cosine, outlier_model, run_rows
from quant_helpers import split_rows

from edgekit.errors import ConfigError
from edgekit.quantization.checks import DecisionBudget
from edgekit.quantization.islands import check_islands, island_tensors
from edgekit.quantization.onnx import StaticInt8Options, quantize_static
from edgekit.results import AccuracyBudget

Feeds = dict[str, np.ndarray]
BUDGET = DecisionBudget(AccuracyBudget(min_cosine=0.99))  # the default budget: aim 0.9925 on the tuning items
_16BIT = (TensorProto.UINT16, TensorProto.INT16)


def _save(path: Path, nodes: list[Any], weights: dict[str, np.ndarray]) -> Path:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def outliers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fc1 -> Add -> h -> fc2; two channels of h near 800 that fc2 all but ignores."""
    return outlier_model(tmp_path_factory.mktemp("islands") / "outliers.onnx")


@pytest.fixture(scope="module")
def wide_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fc1 -> Clip(0, 6) -> fc2, fc1's weight columns scaled by 0.01 ... 100 (ReLU6 keeps every channel's
    activations in [0, 6], so the activations are ordinary 8-bit material; fc1's per-tensor weights are not)."""
    rng = np.random.default_rng(1)
    w1 = rng.normal(0, 0.3, (64, 32)) * rng.permutation(np.logspace(-2, 2, 32))
    w2 = rng.normal(0, 0.5, (32, 10))
    return _save(tmp_path_factory.mktemp("islands") / "wide.onnx", [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
        helper.make_node("Clip", ["h0", "lo", "hi"], ["h"], name="relu6"),
        helper.make_node("MatMul", ["h", "w2"], ["y"], name="fc2"),
    ], {"w1": w1, "w2": w2, "lo": np.array(0.0), "hi": np.array(6.0)})


def _held_out_cosine(fp32: Path, quantized: Path, x: np.ndarray) -> float:
    return mean_cosine(run_rows(fp32, x), run_rows(quantized, x))


def _qdq_types(path: Path) -> dict[str, int]:
    """Quantized tensor name -> the element type of its QuantizeLinear's zero point."""
    model = onnx.load(str(path))
    inits = {i.name: i.data_type for i in model.graph.initializer}
    return {n.input[0]: inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_the_search_gives_the_outlier_activation_a_16_bit_island_not_float(
        outliers: Path, pixels: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    options = StaticInt8Options(keep_input_layers_float=False, islands=("int16", "float"), smooth=False)
    rep = quantize_static(outliers, out, split_rows(pixels[:200]), options, "vnni", BUDGET)
    # chosen: a 16-bit island on fc2 (its input h); no node kept float
    assert rep.settings["islands"] == ["int16", "float"]
    assert rep.settings["islands_16bit"] == ["fc2"] and rep.kept_float == ()
    [decision] = rep.settings["island_decisions"]
    assert decision["node"] == "fc2" and decision["fix"] == "int16" and decision["meets_aim"]
    assert decision["cosine_before"] < 0.95 < 0.9925 <= decision["cosine_after"]
    assert not decision["alternatives"]["float"]["meets_aim"]  # float weights leave h in 8 bits
    assert decision["alternatives"]["float"]["cosine"] < 0.95
    kept = next(n for n in rep.notes if n.startswith("kept fc2 at 16-bit activations: sensitivity"))
    assert "% latency" in kept and "float would give cosine" in kept
    assert any(n.startswith("16-bit islands: ") for n in rep.notes)  # integer kernels or float fallback, said
    assert rep.check["cosine_before_search"] < 0.95 and rep.check["cosine"] >= 0.9925
    assert rep.check["items"] == 50  # decisions on the 50 tuning items only
    # the artifact: 16-bit Q/DQ on h, 8-bit elsewhere, at opset 21 (16-bit Q/DQ exists from 21)
    types = _qdq_types(out)
    assert types["h"] in _16BIT and types["x"] == TensorProto.UINT8
    assert [t for t in types.values() if t in _16BIT] == [types["h"]]
    assert next(o.version for o in onnx.load(str(out)).opset_import if o.domain == "") == 21
    # held out: digits the search never saw
    plain = tmp_path / "plain.onnx"
    quantize_static(outliers, plain, split_rows(pixels[:200]),
                    StaticInt8Options(keep_input_layers_float=False, sensitivity_search=False, smooth=False), "vnni",
                    BUDGET)
    held = pixels[1000:1300]
    assert _held_out_cosine(outliers, plain, held) < 0.95
    assert _held_out_cosine(outliers, out, held) >= 0.99


def test_float_only_islands_reproduce_the_float_search(outliers: Path, pixels: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    options = StaticInt8Options(keep_input_layers_float=False, islands=("float",), smooth=False)
    rep = quantize_static(outliers, out, split_rows(pixels[:200]), options, "vnni", BUDGET)
    ranked = next(n for n in rep.notes if n.startswith("sensitivity search: ranked"))
    assert "by the cosine gain of keeping each alone in float" in ranked  # the float-only search's own notes
    assert rep.settings["islands_16bit"] == [] and rep.settings["island_decisions"] == []
    assert rep.check["cosine"] < 0.9925 and any(n.startswith("aim not met on the tuning items") for n in rep.notes)
    assert not any(t in _16BIT for t in _qdq_types(out).values())
    assert next(o.version for o in onnx.load(str(out)).opset_import if o.domain == "") == 17


def test_a_weight_problem_is_kept_float_with_the_16_bit_island_priced(
        wide_weights: Path, pixels: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "int8.onnx"
    options = StaticInt8Options(keep_input_layers_float=False, per_channel=False, islands=("int16", "float"),
                                smooth=False)
    rep = quantize_static(wide_weights, out, split_rows(pixels[:200]), options, "vnni", BUDGET)
    assert rep.kept_float == ("fc1",) and rep.settings["islands_16bit"] == []
    [decision] = rep.settings["island_decisions"]
    assert decision["fix"] == "float" and decision["meets_aim"] and not decision["alternatives"]["int16"]["meets_aim"]
    kept = next(n for n in rep.notes if n.startswith("kept fc1 in float: sensitivity"))
    assert "a 16-bit island would give cosine" in kept and "% latency" in kept
    assert not any(t in _16BIT for t in _qdq_types(out).values())
    assert _held_out_cosine(wide_weights, out, pixels[1000:1300]) >= 0.99


def test_island_options_are_checked_and_part_of_the_recipe() -> None:
    assert StaticInt8Options().islands == ("float",)  # opt-in: see StaticInt8Options
    assert StaticInt8Options(islands=["float"]).islands == ("float",)  # type: ignore[arg-type]
    for bad in ((), ("int8",), ("float", "float"), "float"):
        with pytest.raises(ConfigError, match=r"static_int8\.islands"):
            StaticInt8Options(islands=bad)  # type: ignore[arg-type]
    assert check_islands(["int16"]) == ("int16",)
    from dataclasses import asdict

    assert asdict(StaticInt8Options(islands=("float",)))["islands"] == ("float",)


def test_island_tensors_are_the_activation_inputs_of_the_node(outliers: Path) -> None:
    model = onnx.load(str(outliers))
    assert island_tensors(model, ["fc2"]) == ["h"]
    assert island_tensors(model, ["fc1", "fc2"]) == ["x", "h"]
