"""One implementation of each metric, the budget the quantizers aim for, and the choice of the rule that
governs (``--budget-rule``): thresholds follow the run's ``--min-cosine`` / ``--max-drop``."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.artifacts import Artifact, sha256_file
from edgekit.cli import _options, build_parser
from edgekit.errors import ConfigError
from edgekit.metrics import compare, cosine, row_cosine
from edgekit.quantization.checks import Check, DecisionBudget, compare_items
from edgekit.report.recommend import budget_failures, recommend
from edgekit.results import AccuracyBudget, BenchResult, LatencyStats, Metrics, Row
from edgekit.types import Format, IOSpec, Precision, TensorSpec


def test_zero_output_against_a_nonzero_reference_is_cosine_zero() -> None:
    ref = np.array([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    zeros = np.zeros_like(ref)
    assert list(row_cosine(ref, zeros)) == [0.0, 1.0]  # collapsed: 0; both all-zero: they agree
    assert cosine(ref[0], zeros[0]) == 0.0 and cosine(zeros, zeros) == 1.0 and cosine(ref, ref) == pytest.approx(1)
    feeds = [{"x": np.ones((1, 3), np.float32)}]
    check = compare_items(feeds, [ref[:1]], [zeros[:1]])
    assert check.cosine == 0.0 and not DecisionBudget().meets(check)
    assert compare(ref[:1], zeros[:1], classification=True).cosine_mean == 0.0


def test_one_cosine_implementation_in_the_package() -> None:
    """Every ``cosine``-like function of edgekit is the one in edgekit.metrics (others only call it)."""
    package = Path(edgekit.__file__).resolve().parent
    found = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("fmt_") and (
                    "cosine" in node.name or node.name in ("agreement", "_agreement")):
                found.append(f"{path.relative_to(package)}:{node.name}")
    assert sorted(found) == ["metrics.py:cosine", "metrics.py:row_cosine"]


def test_compare_items_pools_tokens_and_measures_accuracy_on_labelled_items() -> None:
    ref = [np.array([[2.0, 1.0, 0.0]]), np.array([[0.0, 3.0, 1.0]]), np.array([[1.0, 0.0, 4.0]])]
    got = [np.array([[2.0, 1.1, 0.0]]), np.array([[3.5, 3.0, 1.0]]), np.array([[1.0, 0.0, 4.0]])]
    feeds = [{"x": np.zeros((1, 3))} for _ in ref]
    check = compare_items(feeds, ref, got, labels=np.array([0, 1, 0]))
    assert check.items == 3 and check.top1_agreement == pytest.approx(2 / 3)
    assert check.accuracy_drop_points == pytest.approx(100 / 3) and check.labelled == 3  # fp32 2/3, int8 1/3
    tokens = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    mask = np.array([[1, 1, 0, 0]])
    pooled = compare_items([{"attention_mask": mask}], [tokens], [tokens[:, :2].mean(1, keepdims=True) * 0 + tokens])
    assert pooled.top1_agreement is None and pooled.cosine == pytest.approx(1.0)  # embeddings: no top-1


def test_decision_thresholds_follow_the_budget() -> None:
    d = DecisionBudget(AccuracyBudget(min_cosine=0.98, max_drop_points=2.0), margin=0.25)
    assert d.aim.min_cosine == 0.985 and d.aim.max_drop_points == 1.5 and d.aim.governs == "both"
    assert DecisionBudget(AccuracyBudget(min_cosine=0.98), margin=0.0).aim.min_cosine == 0.98
    at_budget = Check(items=16, cosine=0.98, cosine_min=0.9)
    assert not d.meets(at_budget)  # the budget itself is not enough on tuning items: the margin is kept
    assert d.meets(Check(items=16, cosine=0.986, cosine_min=0.9))
    assert not d.meets(Check(items=0, cosine=1.0, cosine_min=1.0))  # nothing measured never passes
    labelled = Check(items=16, cosine=0.999, cosine_min=0.99, top1_agreement=0.9, accuracy_drop_points=6.25,
                     labelled=16)
    assert d.misses(labelled)[0].startswith("over budget: accuracy drop 6.2 pt > 1.5 pt (the accuracy rule")
    assert d.as_dict()["aim_min_cosine"] == 0.985 and "--min-cosine 0.98" in d.describe()


def test_budget_rules_say_which_rule_refused_and_why() -> None:
    both, acc, cos = (AccuracyBudget(governs=g) for g in ("both", "accuracy", "cosine"))
    # task metric within --max-drop, cosine below --min-cosine
    line = both.failures(0.985, 0.3)
    assert len(line) == 1 and line[0].startswith("over budget: cosine 0.9850 < 0.99 (the cosine rule, --min-cosine)")
    assert "0.3 pt is within --max-drop 1 pt, so the cosine rule alone refused it" in line[0]
    assert "--budget-rule accuracy" in line[0]
    assert acc.failures(0.985, 0.3) == [] and acc.waived(0.985, 0.3) == [
        "cosine 0.9850 < --min-cosine 0.99, not applied: --budget-rule accuracy"]
    assert acc.failures(0.985, None) != []  # no labels: the cosine rule is the only measure left
    assert cos.failures(0.999, 5.0) == [] and "accuracy drop 5.0 pt" in cos.waived(0.999, 5.0)[0]
    assert both.failures(0.999, 5.0)[0].endswith("its cosine 0.9990 is within --min-cosine 0.99")
    assert both.rules(labelled=False) == ("cosine",) and both.rules(labelled=True) == ("cosine", "accuracy")
    with pytest.raises(ConfigError, match="--budget-rule"):
        AccuracyBudget(governs="either")


def _row(tmp_path: Path, name: str, precision: Precision, cosine: float, accuracy: float, p50: float) -> Row:
    path = tmp_path / name
    path.write_bytes(name.encode())
    io = IOSpec((TensorSpec("input", ("batch", 3, 8, 8)),), (TensorSpec("logits", ("batch", 10)),))
    art = Artifact(path=path, format=Format.ONNX, precision=precision, io=io, sha256=sha256_file(path),
                   recipe={"precision": precision.value})
    samples = (p50,) * 5
    stats = LatencyStats(n=5, p50_ms=p50, p90_ms=p50, p99_ms=p50, mean_ms=p50, stdev_ms=statistics.pstdev(samples),
                         min_ms=p50, max_ms=p50)
    bench = BenchResult(runtime="onnxruntime", threads=1, load_ms=1.0, first_inference_ms=p50, warmup_ms=(),
                        samples_ms=samples, stats=stats)
    metrics = Metrics(n=597, cosine_mean=cosine, cosine_min=cosine - 0.05, max_abs=0.5, mean_abs=0.05,
                      top1_agreement=0.99, accuracy=accuracy, source_accuracy=0.972)
    return Row(art, "local-cpu", "onnxruntime", "measured", metrics, bench)


def test_the_user_chooses_which_budget_governs_the_recommendation(tmp_path: Path) -> None:
    """int8 keeps the task accuracy (drop 0.2 pt) but its logits' cosine is 0.985: by default the cosine
    rule refuses it and says so; with --budget-rule accuracy it is recommended, and the reason says what
    was not applied."""
    rows = [_row(tmp_path, "model.fp32.onnx", Precision.FP32, 1.0, 0.972, 3.5),
            _row(tmp_path, "model.int8.onnx", Precision.INT8, 0.985, 0.970, 1.2)]
    default = recommend(rows, AccuracyBudget())[0]
    assert default.artifact == "model.fp32.onnx"
    refused = next(r for r in default.rejected if r.startswith("model.int8.onnx"))
    assert "the cosine rule alone refused it" in refused and budget_failures(rows[1], AccuracyBudget())
    chosen = recommend(rows, AccuracyBudget(governs="accuracy"))[0]
    assert chosen.artifact == "model.int8.onnx"
    assert "not applied: --budget-rule accuracy" in chosen.reason
    cosine_only = recommend(rows, AccuracyBudget(governs="cosine", min_cosine=0.98))[0]
    assert cosine_only.artifact == "model.int8.onnx" and "not applied" not in cosine_only.reason


def test_cli_budget_rule_reaches_the_run_options() -> None:
    base = ["run", "--model", "m.onnx", "--calibration", "digits", "--out", "runs/x"]
    args = build_parser().parse_args([*base, "--budget-rule", "accuracy", "--min-cosine", "0.95", "--max-drop", "0.5"])
    budget = _options(args).budget
    assert (budget.governs, budget.min_cosine, budget.max_drop_points) == ("accuracy", 0.95, 0.5)
    assert _options(build_parser().parse_args(base)).budget.governs == "both"
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--budget-rule", "either"])


def test_every_output_is_judged_by_its_kind_not_the_first_by_cosine() -> None:
    """The tuning check looked at the first output by cosine only: Silero VAD's [1, 1] speech probability read
    "cosine 1.000000" while 56% of its decisions flipped, and no search ran. Now a score per item is judged by its
    flip rate (no cosine of a scalar), the other outputs by theirs, and the misses name the output."""
    rng = np.random.default_rng(0)
    probs = rng.uniform(0.05, 0.95, 40)
    state = rng.standard_normal((40, 2, 1, 8)).astype(np.float32)
    feeds = [{"x": np.zeros((1, 4), np.float32)} for _ in probs]
    ref = [[np.array([[p]], np.float32), s] for p, s in zip(probs, state, strict=True)]
    flipped = [[np.array([[1.0 - p]], np.float32), s] for p, s in zip(probs, state, strict=True)]
    check = compare_items(feeds, ref, flipped)
    assert check.has_vector_output and check.cosine == pytest.approx(1.0)  # the state output: unchanged
    kinds = {o.name: o.kind for o in check.outputs}
    assert kinds == {"output 0": "binary", "output 1": "dense"}  # [N, 1] and [N, 2, 1, 8]
    misses = DecisionBudget().misses(check)
    assert any("'output 0' (binary) flips" in m for m in misses), misses
    assert check.score < 0.5 and "output 0 flips" in check.text()
    same = compare_items(feeds, ref, ref)
    assert DecisionBudget().meets(same) and same.score == pytest.approx(1.0)
    assert DecisionBudget().improves(same, check, 1e-4)
    scalar_only = compare_items(feeds, [r[:1] for r in ref], [f[:1] for f in flipped])
    assert not scalar_only.has_vector_output and not DecisionBudget().meets(scalar_only)


def test_the_aim_keeps_a_margin_on_every_per_output_rule() -> None:
    aim = DecisionBudget(AccuracyBudget(max_flip_rate=0.04, min_iou=0.8, max_sequence_error=0.02), 0.25).aim
    assert (aim.max_flip_rate, aim.min_iou, aim.max_sequence_error) == pytest.approx((0.03, 0.85, 0.015))
