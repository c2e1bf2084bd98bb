"""One answer per target from an interleaved re-measurement of its finalists (edgekit.finalists): real sessions,
real timings; the ratio statistics on known samples; the rule that prefers a more accurate candidate when the
speed difference is not measurable."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from onnx_helpers import make_feeds, make_model

from edgekit.artifacts import Artifact
from edgekit.bench import BenchOptions, benchmark
from edgekit.executors.base import ExecutorOptions
from edgekit.finalists import decide, paired_ratio
from edgekit.results import AccuracyBudget, Metrics, Row
from edgekit.runtimes.base import RuntimeOptions
from edgekit.targets import load_target
from edgekit.types import Format, IOSpec, Precision, TensorSpec

IO = IOSpec((TensorSpec("X", (1, 64), "float32"),), (TensorSpec("Y", (1, 64), "float32"),))
QUICK = BenchOptions(min_runs=30, min_seconds=0.05, warmup_runs=3, memory_pass=False)


def test_paired_ratio_finds_a_real_difference_and_holds_1_for_none() -> None:
    rng = np.random.default_rng(0)
    base = 1.0 + rng.random(200)  # a noisy machine: each round's level moves, both candidates with it
    ratio, (lo, hi) = paired_ratio(base * 1.2, base)
    assert ratio == pytest.approx(1.2) and lo == pytest.approx(1.2) and hi == pytest.approx(1.2)
    jitter = rng.permutation(np.repeat(np.linspace(-0.05, 0.05, 20), 10))  # centred on 0: median ratio 1.0
    ratio, (lo, hi) = paired_ratio(base * (1.0 + jitter), base)
    assert lo < 1.0 < hi and abs(ratio - 1.0) < 0.01
    ratio, (lo, hi) = paired_ratio(base * (1.1 + jitter), base)
    assert 1.0 < lo < ratio < hi < 1.2


def _metrics(cosine: float, accuracy: float) -> Metrics:
    return Metrics(n=16, cosine_mean=cosine, cosine_min=cosine, max_abs=0.01, mean_abs=0.001, accuracy=accuracy,
                   source_accuracy=0.9)


def _row(path: Path, name: str, precision: Precision, metrics: Metrics) -> Row:
    art = Artifact(path=path, format=Format.ONNX, precision=precision, io=IO, sha256="0" * 64)
    bench = benchmark("onnxruntime", path, make_feeds(4), QUICK, RuntimeOptions(threads=1))
    return Row(art, "local-cpu", "onnxruntime", "measured", metrics, bench)


def test_same_speed_more_accurate_wins_and_the_reason_says_no_measurable_difference(tmp_path: Path) -> None:
    """Two byte-identical models (the same speed, measured) with different accuracy: whichever was faster in its
    own row, the interleaved rounds find no measurable difference and the more accurate one is the answer."""
    a = tmp_path / "a.onnx"
    make_model(a)
    b = tmp_path / "b.onnx"
    shutil.copy(a, b)
    # both rows fp32 (two fp32 exports, say): the "lower precision slower than fp32" rule stays out of the way
    rows = [_row(a, "a", Precision.FP32, _metrics(0.9999, 0.90)), _row(b, "b", Precision.FP32, _metrics(0.9999, 0.95))]
    target = load_target("local-cpu")
    options = ExecutorOptions(bench=dataclasses.replace(QUICK, min_runs=200), threads=1)
    (d,) = decide(rows, AccuracyBudget(max_drop_points=10.0), [target], make_feeds(4), options, lambda _m: None)
    assert d.target == "local-cpu" and d.rounds >= 200
    assert d.artifact == "b.onnx", d.reason
    other = next(f for f in d.finalists if f.artifact == "a.onnx")
    assert all(len(f.samples_ms) == d.rounds for f in d.finalists)
    if other.ratio is not None and other.ratio < 1.0:  # a was the faster in the rounds: the swap is said
        assert "no measurable difference in speed from the fastest, a.onnx" in d.reason
    assert other.interval is not None and other.interval[0] <= 1.02 and other.interval[1] >= 0.98


def _chain(path: Path, depth: int) -> None:
    """Y = Relu(...Relu(X @ W) @ W...) with ``depth`` MatMuls, X: (1, 64): the same I/O, ``depth`` times the work."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8
    nodes, prev = [], "X"
    for k in range(depth):
        nodes += [helper.make_node("MatMul", [prev, "W"], [f"m{k}"]),
                  helper.make_node("Relu", [f"m{k}"], ["Y" if k == depth - 1 else f"r{k}"])]
        prev = f"r{k}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 64])],
                              [numpy_helper.from_array(w, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_real_speed_difference_keeps_the_faster_and_names_the_runner_up(tmp_path: Path) -> None:
    """A model doing 40x the work is measurably slower: the faster one stays the answer although the slower is
    more accurate, and the runner-up line gives the percentage and its interval."""
    fast, slow = tmp_path / "fast.onnx", tmp_path / "slow.onnx"
    _chain(fast, 1)
    _chain(slow, 40)
    rows = [_row(fast, "fast", Precision.INT8, _metrics(0.9999, 0.90)),
            _row(slow, "slow", Precision.FP32, _metrics(1.0, 0.95))]
    options = ExecutorOptions(bench=QUICK, threads=1)
    (d,) = decide(rows, AccuracyBudget(max_drop_points=10.0), [load_target("local-cpu")], make_feeds(4), options,
                  lambda _m: None)
    assert d.artifact == "fast.onnx", d.reason
    runner = next(f for f in d.finalists if f.artifact == "slow.onnx")
    assert runner.ratio is not None and runner.interval is not None and runner.interval[0] > 1.5
    assert "fastest within budget" in d.reason and "runner-up slow.onnx on onnxruntime" in d.reason
    assert "slower by" in d.reason
    # one candidate: said so
    (one,) = decide(rows[:1], AccuracyBudget(max_drop_points=10.0), [load_target("local-cpu")], make_feeds(4),
                    options, lambda _m: None)
    assert one.artifact == "fast.onnx" and "the only candidate within budget" in one.reason
