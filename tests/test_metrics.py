"""Every output is compared, each with the metrics that fit its kind (edgekit.metrics), and the budget and the
report read those per-output metrics (never a cosine of one score, never an argmax over a flattened map)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import ConfigError, RuntimeAdapterError
from edgekit.metrics import collect, compare, cross_runtime_agreement, infer_kind, pack_outputs, unpack_outputs
from edgekit.results import AccuracyBudget, Metrics
from edgekit.types import Task

RNG = np.random.default_rng(0)


def test_a_binary_score_is_judged_by_flips_never_by_a_cosine() -> None:
    # the detector: [N, 1] probabilities; the old "cosine" of one value was its sign (1.0000)
    ref = RNG.uniform(0, 1, (100, 1)).astype(np.float32)
    cand = ref.copy()
    cand[:8] = np.where(ref[:8] > 0.5, 0.4, 0.6)  # 8 decisions flip
    m = compare({"prob": ref}, {"prob": cand})
    o = m.output("prob")
    assert (o.kind, o.threshold, o.flip_rate) == ("binary", 0.5, pytest.approx(0.08))
    assert o.cosine_mean is None and o.top1_agreement is None and m.cosine_mean is None
    assert m.flip_rate == pytest.approx(0.08)
    failures = AccuracyBudget().output_failures(m)
    assert len(failures) == 1 and "'prob'" in failures[0] and "flips 8.0%" in failures[0]
    assert AccuracyBudget().failures(m.cosine_mean, m.accuracy_drop_points) == []  # no cosine rule to apply
    # logits (not in [0, 1]) are thresholded at 0; a [N] output is a score too
    logits = RNG.normal(0, 3, 50).astype(np.float32)
    o = compare({"logit": logits[:, None]}, {"logit": -logits[:, None]}).output("logit")
    assert (o.threshold, o.flip_rate) == (0.0, 1.0)
    assert infer_kind("x", logits[:, None], Task.IMAGE_CLASSIFICATION, 1) == "binary"


def test_binary_accuracy_with_01_labels() -> None:
    ref = np.array([[0.9], [0.1], [0.8], [0.3]], np.float32)
    cand = np.array([[0.9], [0.6], [0.8], [0.3]], np.float32)
    m = compare({"p": ref}, {"p": cand}, labels=np.array([1, 0, 1, 1]))
    assert (m.source_accuracy, m.accuracy, m.accuracy_drop_points) == (0.75, 0.5, 25.0)


def test_classification_top_k_only_where_it_means_something() -> None:
    ref = RNG.normal(size=(40, 10)).astype(np.float32)
    cand = ref + RNG.normal(0, 0.01, ref.shape).astype(np.float32)
    labels = ref.argmax(axis=1)
    m = compare({"logits": ref}, {"logits": cand}, task=Task.IMAGE_CLASSIFICATION, labels=labels)
    o = m.output("logits")
    assert o.kind == "classification" and o.top1_agreement == 1.0 and o.top5_agreement == 1.0
    assert (m.accuracy, m.source_accuracy, m.top1_agreement) == (1.0, 1.0, 1.0)
    two = compare({"p": np.eye(2, dtype=np.float32)[[0, 1, 1]]}, {"p": np.eye(2, dtype=np.float32)[[0, 1, 0]]})
    assert two.output("p").kind == "classification"  # rows are distributions
    assert two.top1_agreement == pytest.approx(2 / 3) and two.top5_agreement is None  # 2 classes: no top-5


def test_dense_maps_get_iou_and_per_element_error_never_an_argmax() -> None:
    ref = RNG.uniform(0, 1, (4, 1, 16, 16)).astype(np.float32)
    cand = ref.copy()
    cand[:, :, :8] = 1.0 - cand[:, :, :8]  # half of every map inverted
    o = compare({"map": ref}, {"map": cand}, task=Task.IMAGE_CLASSIFICATION).output("map")
    assert o.kind == "dense" and o.top1_agreement is None and o.top5_agreement is None
    assert o.threshold == 0.5 and 0.2 < (o.iou or 0) < 0.5 and o.max_abs > 0.9
    same = compare({"map": ref}, {"map": ref}).output("map")
    assert same.iou == 1.0 and same.max_abs == 0.0
    with pytest.raises(ConfigError, match="argmax over a flattened map"):
        compare({"map": ref}, {"map": ref}, kinds={"map": "classification"})


def test_regression_is_judged_by_relative_error_which_sees_scale() -> None:
    boxes = RNG.normal(size=(30, 4)).astype(np.float32)
    m = compare({"boxes": boxes, "scores": RNG.uniform(0, 1, (30, 1)).astype(np.float32)},
                {"boxes": boxes * 2.0, "scores": RNG.uniform(0, 1, (30, 1)).astype(np.float32)})
    o = m.output("boxes")
    assert o.kind == "regression" and o.cosine_mean is None and o.relative_error == pytest.approx(1.0)
    assert m.relative_error == pytest.approx(1.0)
    assert any("'boxes'" in f and "relative error" in f for f in AccuracyBudget().output_failures(m))


def test_kinds_from_task_name_and_values_and_the_users_word() -> None:
    vec = RNG.normal(size=(5, 8)).astype(np.float32)
    assert infer_kind("out", vec, Task.FEATURE_EXTRACTION, 1) == "embedding"
    assert infer_kind("out", vec, Task.GENERIC, 1) == "classification"     # a model's only vector output
    assert infer_kind("out", vec, Task.GENERIC, 2) == "regression"          # one of several, no hint
    assert infer_kind("bbox_deltas", vec, Task.GENERIC, 2) == "regression"
    assert infer_kind("landmarks", vec, Task.GENERIC, 3) == "regression"
    assert infer_kind("embeddings", vec, Task.GENERIC, 2) == "embedding"
    assert infer_kind("cls_logits", vec, Task.GENERIC, 2) == "classification"
    m = compare({"a": vec, "b": vec}, {"a": vec, "b": vec}, kinds={"a": "embedding"})
    assert [o.kind for o in m.outputs] == ["embedding", "regression"]
    with pytest.raises(ConfigError, match="no output of that name"):
        compare({"a": vec}, {"a": vec}, kinds={"nope": "binary"})
    with pytest.raises(ConfigError, match="unknown output kind"):
        compare({"a": vec}, {"a": vec}, kinds={"a": "boxes"})
    with pytest.raises(ConfigError, match="more than one value"):
        compare({"s": vec[:, :1]}, {"s": vec[:, :1]}, kinds={"s": "embedding"})


def test_every_output_is_collected_with_its_own_item_axis() -> None:
    # a stateful call: prob [1, 1], next state [2, 1, 128] (no item axis), a scalar input fed whole
    feeds = {"input": np.zeros((1, 576), np.float32), "state": np.zeros((2, 1, 128), np.float32),
             "sr": np.array(16000, np.int64)}
    calls = [(feeds, [np.full((1, 1), i / 10, np.float32), np.full((2, 1, 128), i, np.float32)]) for i in range(3)]
    got = collect(calls, Task.GENERIC, ("output", "stateN"))
    assert list(got) == ["output", "stateN"]
    assert got["output"].shape == (3, 1) and got["stateN"].shape == (3, 2, 1, 128)
    batched = {"x": np.zeros((4, 3), np.float32)}
    with pytest.raises(RuntimeAdapterError, match="no item axis"):
        collect([(batched, [np.zeros((2, 5), np.float32)])], Task.GENERIC)
    # the reference cache holds every output in one pickle-free array
    back = unpack_outputs(pack_outputs(got))
    assert list(back) == list(got) and all(np.array_equal(back[k], got[k]) for k in got)


def test_outputs_are_matched_by_shape_and_layout() -> None:
    a, b = RNG.normal(size=(3, 4)).astype(np.float32), RNG.uniform(0, 1, (3, 1)).astype(np.float32)
    m = compare({"boxes": a, "score": b}, {"0": b, "1": a})  # a converter reordered them
    assert m.output("boxes").max_abs == 0.0 and m.output("score").flip_rate == 0.0
    nchw = RNG.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32)
    assert compare({"m": nchw}, {"m": nchw.transpose(0, 2, 3, 1)}).max_abs == 0.0
    with pytest.raises(RuntimeAdapterError, match="fewer outputs"):
        compare({"a": a, "b": b}, {"a": a})
    with pytest.raises(RuntimeAdapterError, match="does not have the source's shape"):
        compare({"a": a}, {"a": a[:, :2]})


def test_headline_fields_summarise_the_outputs() -> None:
    emb = RNG.normal(size=(20, 16)).astype(np.float32)
    score = RNG.uniform(0, 1, (20, 1)).astype(np.float32)
    m = compare({"emb": emb, "score": score}, {"emb": emb + 0.5, "score": score},
                kinds={"emb": "embedding"})
    assert m.cosine_mean == m.output("emb").cosine_mean and m.flip_rate == 0.0
    assert m.max_abs == pytest.approx(0.5) and m.n == 20
    d = m.to_dict()
    assert d["flip_rate"] == 0.0 and [o["kind"] for o in d["outputs"]] == ["embedding", "binary"]
    old = Metrics(n=1, cosine_mean=1.0, cosine_min=1.0, max_abs=0.0, mean_abs=0.0)  # still constructible
    assert old.outputs == () and old.flip_rate is None


def test_cross_runtime_agreement_of_several_outputs() -> None:
    a = {"p": RNG.uniform(0, 1, (5, 1)).astype(np.float32), "s": RNG.normal(size=(5, 2, 8)).astype(np.float32)}
    close = {k: v + 1e-6 for k, v in a.items()}
    assert cross_runtime_agreement("m.onnx", "ort", "ov", a, close).within_tolerance
    far = dict(a, s=a["s"] * -1)
    assert not cross_runtime_agreement("m.onnx", "ort", "ov", a, far).within_tolerance


def test_budget_rules_for_the_new_metrics_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_flip_rate"):
        AccuracyBudget(max_flip_rate=-0.1)
    assert "flip <= 1%" in AccuracyBudget().describe()


def test_the_recommendation_and_the_report_read_the_per_output_metrics(tmp_path: Path) -> None:
    """The issue's case: an int8 detector whose [N, 1] score flips 8% of the frames while a 'cosine' of one value
    would read 1.0000 is refused by the flip-rate rule; the report shows each output with its own metrics."""
    from edgekit.artifacts import Artifact, sha256_file
    from edgekit.report.markdown import render_markdown
    from edgekit.report.recommend import recommend
    from edgekit.results import BenchResult, LatencyStats, Row, RunResult
    from edgekit.types import Format, IOSpec, Precision, TensorSpec

    def art(precision: Precision) -> Artifact:
        path = tmp_path / f"m.{precision.value}.onnx"
        path.write_bytes(b"x")
        return Artifact(path=path, format=Format.ONNX, precision=precision, sha256=sha256_file(path),
                        io=IOSpec((TensorSpec("x", ("batch", 4)),)), recipe={})

    def bench(p50: float) -> BenchResult:
        return BenchResult("onnxruntime", 1, 1.0, p50, (p50,), (p50,) * 3,
                           LatencyStats(3, p50, p50, p50, p50, 0.0, p50, p50))

    ref = RNG.uniform(0, 1, (100, 1)).astype(np.float32)
    flipped = ref.copy()
    flipped[:8] = np.where(ref[:8] > 0.5, 0.2, 0.8)
    budget = AccuracyBudget()
    rows = [Row(art(Precision.FP32), "local-cpu", "onnxruntime", "measured", compare({"score": ref}, {"score": ref}),
                bench(2.0)),
            Row(art(Precision.INT8), "local-cpu", "onnxruntime", "measured",
                compare({"score": ref}, {"score": flipped}), bench(1.0))]
    (rec,) = recommend(rows, budget)
    assert rec.artifact == "m.fp32.onnx" and "flips 8.0%" in rec.rejected[0] and "'score'" in rec.rejected[0]
    result = RunResult(model={"name": "detector", "source": "d.onnx"}, dataset={"name": "d", "eval_items": 100,
                       "calibration_items": 100}, budget=budget, artifacts=tuple(r.artifact for r in rows),
                       rows=tuple(rows), recommendations=(rec,), environment={})
    md = render_markdown(result)
    assert "## Per-output agreement" in md and "| m.int8.onnx | score | binary | 1 | flips 8.0% at 0.5" in md
    assert "cosine" not in md.split("## Per-output agreement")[1].split("##")[0].split("| m.int8.onnx |")[1]


def test_output_kinds_from_the_command_line() -> None:
    from edgekit.metrics import parse_output_kinds

    assert parse_output_kinds(["boxes=regression", " prob = binary"]) == {"boxes": "regression", "prob": "binary"}
    with pytest.raises(ConfigError, match="--output-kind"):
        parse_output_kinds(["boxes:regression"])
    with pytest.raises(ConfigError, match="NAME=KIND"):
        parse_output_kinds(["boxes=bbox"])


def test_detections_are_matched_by_iou_at_the_sources_operating_point() -> None:
    from edgekit.metrics_kinds import box_iou

    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]])).tolist() == \
        [[pytest.approx(1 / 3), 0.0]]
    n, k = 6, 20
    xy = RNG.uniform(0, 200, (n, k, 2))
    boxes = np.concatenate([xy, xy + RNG.uniform(10, 50, (n, k, 2))], axis=2).astype(np.float32)
    scores = RNG.uniform(0, 1, (n, k)).astype(np.float32)
    same = compare({"boxes": boxes, "scores": scores}, {"boxes": boxes, "scores": scores})
    o = same.output("boxes")  # inferred from the names and shapes: boxes [N, K, 4] beside scores [N, K]
    assert (o.kind, o.recall, o.precision, o.match_iou, o.threshold) == ("detection", 1.0, 1.0, 1.0, 0.5)
    assert o.cosine_mean is None and same.output("scores").kind == "binary"  # never a top-1 over the boxes
    assert o.detections == pytest.approx(float(np.sum(scores > 0.5)) / n)
    moved = boxes.copy()
    moved[0] += 1000.0  # item 0's boxes go elsewhere: its detections are missed and its own are false
    m = compare({"boxes": boxes, "scores": scores}, {"boxes": moved, "scores": scores})
    hits = float(np.sum(scores[1:] > 0.5)) / float(np.sum(scores > 0.5))
    o = m.output("boxes")
    assert o.recall == pytest.approx(hits) and o.precision == pytest.approx(hits)
    assert any("detection" in f and "recall" in f for f in AccuracyBudget().output_failures(m))
    # one output [N, K, 6]: x1, y1, x2, y2, score, class; the operating point named by the user
    packed = np.concatenate([boxes, scores[..., None], np.zeros((n, k, 1), np.float32)], axis=2)
    o = compare({"dets": packed}, {"dets": packed}, kinds={"dets": "detection@0.9"}).output("dets")
    assert o.threshold == 0.9 and o.recall == 1.0
    with pytest.raises(ConfigError, match="decoded boxes"):
        compare({"b": boxes}, {"b": boxes}, kinds={"b": "detection"})  # 4 columns and no scores output
    with pytest.raises(ConfigError, match="pair the boxes"):
        compare({"b": boxes}, {"b": boxes}, kinds={"b": "detection:nope"})


def test_sequences_are_decoded_and_compared_as_text() -> None:
    from edgekit.metrics_kinds import decode_sequences, edit_distance

    def steps(*seqs: list[int], c: int = 5) -> np.ndarray:
        return np.stack([np.eye(c, dtype=np.float32)[s] * 0.9 + 0.02 for s in seqs])

    assert decode_sequences(steps([0, 1, 1, 0, 1, 2, 2, 0])) == [(1, 1, 2)]  # repeats collapse, blank 0 splits
    assert edit_distance("kitten", "sitting") == 3  # type: ignore[arg-type]
    ref = steps([1, 1, 0, 2, 3], [4, 0, 4, 4, 0], [0, 0, 0, 0, 0])
    cand = steps([1, 1, 0, 2, 2], [4, 4, 4, 4, 0], [0, 0, 0, 0, 0])
    m = compare({"ctc": ref}, {"ctc": cand})
    o = m.output("ctc")  # rows of per-step distributions: a sequence, inferred
    assert o.kind == "sequence" and o.cosine_mean is None and o.top1_agreement is None
    assert o.sequence_agreement == pytest.approx(1 / 3)  # "1 2 3" -> "1 2", "4 4" -> "4", "" -> ""
    assert o.char_error_rate == pytest.approx(2 / 5) and m.sequence_error == o.char_error_rate
    assert any("character error rate" in f for f in AccuracyBudget().output_failures(m))
    # the blank class named by the user
    assert compare({"s": ref}, {"s": ref}, kinds={"s": "sequence@4"}).output("s").char_error_rate == 0.0
    assert "sequences agree 33.3%" in o.summary()


def test_dense_threshold_and_iou_rule() -> None:
    ref = RNG.uniform(0, 1, (3, 1, 8, 8)).astype(np.float32)
    o = compare({"map": ref}, {"map": ref * 0.9}, kinds={"map": "dense@0.3"}).output("map")
    assert o.threshold == 0.3 and o.iou is not None and o.iou < 1.0
    m = compare({"map": ref}, {"map": 1.0 - ref}, kinds={"map": "dense@0.3"})
    assert any("IoU" in f and "--min-iou" in f for f in AccuracyBudget().output_failures(m))
    assert AccuracyBudget(min_iou=0.0).output_failures(m) == []
    with pytest.raises(ConfigError, match="min_iou"):
        AccuracyBudget(min_iou=1.5)


def test_user_metric_from_a_file(tmp_path: Path) -> None:
    from edgekit.metrics_user import UserMetric, load_user_metrics

    f = tmp_path / "mine.py"
    f.write_text("import numpy as np\n"
                 "def gap(reference, candidate):\n    return {'gap': float(np.abs(reference - candidate).max())}\n"
                 "def bad(reference, candidate):\n    return [1.0]\n"
                 "def nan(reference, candidate):\n    return {'x': float('nan')}\n"
                 "def boom(reference, candidate):\n    raise ValueError('no')\n")
    a = RNG.normal(size=(4, 3)).astype(np.float32)
    (metric,) = load_user_metrics([f"out={f}:gap"])
    o = compare({"out": a}, {"out": a + 0.25}, user_metrics=[metric]).output("out")
    assert dict(o.user)["gap"] == pytest.approx(0.25) and "gap 0.25" in o.summary()
    for spec, match in ((f"out={tmp_path / 'missing.py'}:gap", "no such file"), (f"out={f}:nope", "no such function"),
                        ("out", "NAME=file.py:function")):
        with pytest.raises(ConfigError, match=match):
            UserMetric.load(spec)
    for fn, match in (("bad", "dict of named numbers"), ("nan", "finite number"), ("boom", "raised ValueError")):
        with pytest.raises(ConfigError, match=match):
            compare({"out": a}, {"out": a}, user_metrics=[UserMetric.load(f"out={f}:{fn}")])
    with pytest.raises(ConfigError, match="no output of that name"):
        compare({"out": a}, {"out": a}, user_metrics=[UserMetric.load(f"other={f}:gap")])


def test_the_command_line_takes_the_new_kinds_metrics_and_budget(tmp_path: Path) -> None:
    from edgekit.cli import main
    from edgekit.metrics import parse_output_kinds

    assert parse_output_kinds(["m=dense@0.3", "b=detection:s@0.25", "t=sequence"]) == \
        {"m": "dense@0.3", "b": "detection:s@0.25", "t": "sequence"}
    for bad in ("m=dense@x", "t=sequence@0.5", "m=dense:s"):
        with pytest.raises(ConfigError, match="NAME=KIND"):
            parse_output_kinds([bad])
    from edgekit.cli import _options, build_parser

    f = tmp_path / "mine.py"
    f.write_text("def f(reference, candidate):\n    return {'one': 1.0}\n")
    args = build_parser().parse_args(["run", "--model", "m.onnx", "--calibration", "c", "--out", str(tmp_path / "o"),
                                      "--min-iou", "0.7", "--max-sequence-error", "0.1", "--metric", f"y={f}:f",
                                      "--exclude-op-types", "Add,Mul"])
    opts = _options(args)
    assert (opts.budget.min_iou, opts.budget.max_sequence_error, opts.budget.min_detection_match) == (0.7, 0.1, 0.9)
    assert [m.output for m in opts.user_metrics] == ["y"]
    from edgekit.formats.onnx import OnnxOptions

    onnx_options = opts.format_options.get(OnnxOptions)
    assert onnx_options is not None and onnx_options.static_int8.op_types_to_exclude == ("Add", "Mul")
    assert main(["run", "--model", "m.onnx", "--calibration", "c", "--out", str(tmp_path / "o2"),
                 "--metric", f"y={f}:missing"]) == 2  # one line, no traceback


def test_an_accuracy_drop_of_exactly_the_budget_is_within_it() -> None:
    """99 of 100 against 100 of 100 is a 1.0-point drop; float arithmetic made it 1.0000000000000009 and a
    --max-drop 1 budget refused it (found by the pick-vs-defaults benchmark)."""
    from edgekit.results import AccuracyBudget, Metrics

    m = Metrics(n=100, cosine_mean=0.999, cosine_min=0.99, max_abs=0.1, mean_abs=0.01, accuracy=0.99,
                source_accuracy=1.0)
    assert m.accuracy_drop_points == 1.0
    assert AccuracyBudget(max_drop_points=1.0).metrics_failures(m) == []
