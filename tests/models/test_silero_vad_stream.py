"""Silero VAD as the streaming model it is: ``--state stateN->state`` (:mod:`edgekit.sequences`).

The data (see ``test_silero_vad.py``) are one real recording at four levels, each level one ``sequence`` of 512-sample
chunks in order; the first half of each is calibration, the second half held out. With the link, the source runs
each sequence step by step feeding its own ``stateN`` back (the calibration items' states come from that rollout),
and every artifact runs each held-out sequence feeding back ITS OWN ``stateN``: its drift accumulates as in
streaming use. The task's numbers, measured per chunk on the held-out sequences against the run's budget: the
speech decisions flipped at p = 0.5, the largest probability difference, the state drift at the sequence ends.

Silero's graph holds every Conv/LSTM in an ``If`` on ``sr``: ONNX Runtime's quantizer does not enter it (see the
strict xfail in ``test_silero_vad.py``), so its "int8" is the fp32 graph and its numbers are trivially good. The
16 kHz branch inlined into the main graph (Constant-node weights as initializers, as a user can do in a few lines)
gives a really quantized int8, whose streaming numbers the second group of tests measures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_silero_vad import CHUNK, CONTEXT, QUICK, build_npz, silero_onnx, speech

import edgekit
from edgekit.cli import main
from edgekit.data import load_dataset
from edgekit.errors import CalibrationError, ConfigError
from edgekit.pipeline import RunOptions
from edgekit.report.recommend import budget_failures
from edgekit.results import Metrics
from edgekit.sequences import SequenceDataset, StateLink, with_state
from edgekit.types import Format, Precision

LINK = StateLink("stateN", "state")
STEPS, SEQUENCES = 63, 4  # held-out chunks per level, levels


def sequence_npz(tmp_path: Path) -> Path:
    """``build_npz``'s data plus a ``sequence`` id per chunk (its level): each split of a level is one sequence
    whose stored ``state`` at its first chunk is the state fp32 carried there from the start of the recording."""
    z = dict(np.load(build_npz(silero_onnx(), tmp_path)))
    n = len(z["split"])
    path = tmp_path / "vad_seq.npz"
    np.savez(path, **z, sequence=np.repeat(np.arange(SEQUENCES), n // SEQUENCES))
    return path


def check_streaming_numbers(m: Metrics, precision: Precision, budget: edgekit.AccuracyBudget) -> dict[str, float]:
    """The task's numbers of one artifact over the held-out sequences, asserted against the budget."""
    assert m.sequence is not None and m.sequence.links == ("stateN->state",)
    assert (m.sequence.sequences, m.sequence.steps, m.sequence.longest) == (SEQUENCES, SEQUENCES * STEPS, STEPS)
    prob, end = m.output("output"), m.sequence.end_states[0]
    assert prob.kind == "binary" and prob.threshold == 0.5 and prob.flip_rate is not None
    assert end.name == "stateN" and end.cosine_min is not None
    numbers = {"flip_rate": prob.flip_rate, "prob_max_abs": prob.max_abs, "end_state_max_abs": end.max_abs,
               "end_state_cosine_min": end.cosine_min}
    if precision is Precision.FP32:  # the same graph, fed back its own state: the source's rollout exactly
        assert prob.max_abs <= 1e-5 and end.max_abs <= 1e-4, numbers
    assert prob.flip_rate <= budget.max_flip_rate, (precision, numbers)
    assert prob.max_abs <= 0.05, (precision, numbers)
    assert end.cosine_min >= 0.999 and end.max_abs <= 0.25, (precision, numbers)
    return numbers


@pytest.mark.slow
def test_streaming_run_carries_each_artifacts_own_state(tmp_path: Path) -> None:
    model, npz = silero_onnx(), sequence_npz(tmp_path)
    result = edgekit.run(str(model), calibration=npz, out_dir=tmp_path / "out",
                         options=RunOptions(state=(LINK,), bench=QUICK))  # default formats
    assert result.dataset["state"]["links"] == ["stateN->state"]
    assert result.dataset["state"]["eval"] == {"sequences": SEQUENCES, "steps": SEQUENCES * STEPS}
    validated = {r.artifact.precision: r for r in result.rows if r.metrics is not None and r.bench is not None}
    assert {Precision.FP32, Precision.FP16, Precision.INT8} <= set(validated), result.notes
    for precision, row in validated.items():
        assert row.metrics is not None
        check_streaming_numbers(row.metrics, precision, result.budget)
        assert not any("flips" in f for f in budget_failures(row, result.budget))
        assert row.bench.stats.n >= QUICK.min_runs  # one step = one inference, the state input fed
    # the links change the int8 artifact (its calibration states), not the fp32/fp16 ones: recorded accordingly
    recipes = {a.precision: a.recipe for a in result.artifacts if a.format.value == "onnx"}
    assert recipes[Precision.INT8]["calibration"]["dataset"]["state"]["links"] == ["stateN->state"]
    assert "calibration" not in recipes[Precision.FP32] and "calibration" not in recipes[Precision.FP16]
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    said = f"{SEQUENCES} sequences, {SEQUENCES * STEPS} steps (longest {STEPS}) run in order with state carried"
    assert said in report
    assert "stateN (sequence ends)" in report


def inline_16k(src: Path, dst: Path) -> Path:
    """Silero with its ``sr == 16000`` branch as the main graph (``sr`` stays an input, unused) and the branch's
    Constant-node tensors as initializers, so that a quantizer sees its Convs."""
    import onnx

    m = onnx.load(str(src))
    g = m.graph
    branch = next(n for n in g.node if n.op_type == "If")
    then = next(a.g for a in branch.attribute if a.name == "then_branch")
    rename = {o.name: new for o, new in zip(then.output, branch.output, strict=True)}
    nodes = []
    for n in then.node:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
            continue
        copy = onnx.NodeProto()
        copy.CopyFrom(n)
        copy.output[:] = [rename.get(x, x) for x in n.output]
        nodes.append(copy)
    keep = [n for n in g.node if n.op_type not in ("If", "Equal", "Constant")]
    del g.node[:]
    g.node.extend(nodes + keep)
    g.initializer.extend(then.initializer)
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))
    return dst


def int8_streaming(tmp_path: Path) -> tuple[edgekit.RunResult, Path]:
    model = inline_16k(silero_onnx(), tmp_path / "silero_16k.onnx")
    result = edgekit.run(str(model), calibration=sequence_npz(tmp_path), out_dir=tmp_path / "out",
                         options=RunOptions(formats=(Format.ONNX,), precisions=(Precision.FP32, Precision.INT8),
                                            state=(LINK,), bench=QUICK))
    return result, model


@pytest.mark.slow
def test_streaming_validation_judges_a_really_quantized_int8(tmp_path: Path) -> None:
    """The inlined graph's int8 is quantized (QDQ around its Convs). Its numbers over the held-out sequences are
    measured and the recommendation follows them: over the flip budget, it is refused, and the reason names the
    speech decisions that flipped."""
    import onnx

    result, _ = int8_streaming(tmp_path)
    rows = {r.artifact.precision: r for r in result.rows if r.runtime == "onnxruntime" and r.metrics is not None}
    int8 = rows[Precision.INT8]
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(int8.artifact.path)).graph.node)
    check_streaming_numbers(rows[Precision.FP32].metrics, Precision.FP32, result.budget)  # type: ignore[arg-type]
    m = int8.metrics
    assert m is not None and m.sequence is not None
    prob, end = m.output("output"), m.sequence.end_states[0]
    assert prob.max_abs > 0.0 and end.max_abs > 0.0  # a real numeric change, measured step by step
    failures = budget_failures(int8, result.budget)
    over = prob.flip_rate is not None and prob.flip_rate > result.budget.max_flip_rate
    assert over == any("'output'" in f and "flips" in f for f in failures), (prob.summary(), failures)
    if over:
        assert all(rec.artifact != int8.artifact.name for rec in result.recommendations)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="ORT static int8 of Silero's Convs loses the speech decisions (measured on "
                                       "an AMD EPYC with AVX-512 VNNI: 56% of held-out chunks flip step by step, 77% "
                                       "with the int8 state carried). The tuning check now sees it (40% flips on the "
                                       "tuning items, every output judged), but no single weighted node kept float "
                                       "helps (gains <= 0) and quantizing only weighted ops is no better: the search "
                                       "stops and the budget refuses the artifact (issue 11)")
def test_int8_keeps_the_speech_decisions_in_streaming_use(tmp_path: Path) -> None:
    result, _ = int8_streaming(tmp_path)
    row = next(r for r in result.rows if r.artifact.precision is Precision.INT8 and r.metrics is not None)
    check_streaming_numbers(row.metrics, Precision.INT8, result.budget)  # type: ignore[arg-type]


# --- the rollout and the mistakes a user can make (fast: no artifact is built) ----------------------------------


def small_npz(path: Path, *, state: bool = True, split: bool = True, sequence: list[int] | None = None) -> Path:
    """Two sequences of 6 chunks of a real recording (levels 1 and 0.1); steps 0-3 calibration, 4-5 held out."""
    x = speech()[16000:16000 + 6 * CHUNK + CONTEXT]
    chunks = np.stack([x[i * CHUNK:i * CHUNK + CHUNK + CONTEXT] for i in range(6)])
    arrays: dict[str, np.ndarray] = {"input": np.concatenate([chunks, chunks * 0.1]), "sr": np.full(12, 16000)}
    if state:
        arrays["state"] = np.zeros((12, 2, 1, 128), np.float32)
    if split:
        arrays["split"] = np.array((["calibration"] * 4 + ["eval"] * 2) * 2)
    arrays["sequence"] = np.array(sequence if sequence is not None else [0] * 6 + [1] * 6)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_the_rollout_feeds_the_sources_own_state(tmp_path: Path) -> None:
    """Every step's state is the one the source carried from its sequence's start (zeros when the data has no
    state array, given a fixed shape), never the data's value past a sequence's first step."""
    import onnxruntime as ort

    model = silero_onnx()
    source = edgekit.load_source(str(model), input_shapes={"state": (2, 1, 128)})
    ds = with_state(load_dataset(small_npz(tmp_path / "d.npz", state=False)), source, ["stateN->state"])
    assert isinstance(ds, SequenceDataset) and ds.initial == {"state": "zeros"}
    assert ds.spans("calibration") == [(0, 4), (4, 8)] and ds.spans("eval") == [(0, 2), (2, 4)]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    raw = dict(np.load(tmp_path / "d.npz"))
    for split, rows in (("calibration", [0, 1, 2, 3, 6, 7, 8, 9]), ("eval", [4, 5, 10, 11])):
        fed = [f["state"] for f in ds.batches(split, source.io, None, batch_size=1)]
        state = np.zeros((2, 1, 128), np.float32)
        for k, i in enumerate(rows):
            if k in (0, len(rows) // 2):  # a sequence starts: zeros
                state = np.zeros((2, 1, 128), np.float32)
            np.testing.assert_allclose(fed[k], state, atol=1e-6)
            _, state = sess.run(None, {"input": raw["input"][i][None], "state": state, "sr": np.array(16000)})
        assert np.abs(fed[1]).max() > 0  # a carried state, not the zeros of the data


def test_validate_runs_the_held_out_sequences_with_state_carried(tmp_path: Path) -> None:
    from edgekit.artifacts import Artifact, sha256_file

    model = silero_onnx()
    source = edgekit.load_source(str(model))
    art = Artifact(model, Format.ONNX, Precision.FP32, source.io, sha256_file(model))
    m = edgekit.validate(source, art, calibration=small_npz(tmp_path / "d.npz"), cache_dir=tmp_path,
                         state=["stateN->state"])
    assert m.sequence is not None and (m.sequence.sequences, m.sequence.steps, m.sequence.longest) == (2, 4, 2)
    assert m.output("output").max_abs == 0.0 and m.sequence.end_states[0].max_abs == 0.0


@pytest.mark.parametrize(("link", "says"), [
    ("stateX->state", ["--state stateX->state", "no output 'stateX'", "output", "stateN"]),
    ("stateN->h0", ["--state stateN->h0", "no input 'h0'", "input", "state", "sr"]),
    ("output->state", ["--state output->state", "differ in dtype or shape", "state float32[2, dim1, 128]"]),
    ("output->sr", ["--state output->sr", "differ in dtype or shape", "sr int64[]"]),
    ("stateN", ["--state", "expected OUTPUT->INPUT"]),
])
def test_a_link_the_model_does_not_have_is_one_line_naming_the_flag(tmp_path: Path, link: str,
                                                                    says: list[str]) -> None:
    source = edgekit.load_source(str(silero_onnx()))
    with pytest.raises(ConfigError) as err:
        with_state(load_dataset(small_npz(tmp_path / "d.npz")), source, [link])
    assert all(s in str(err.value) for s in says), str(err.value)
    assert "\n" not in str(err.value)


def test_links_need_steps_in_order(tmp_path: Path) -> None:
    source = edgekit.load_source(str(silero_onnx()))
    with pytest.raises(ConfigError, match="state links need a 'split' array"):  # parity would interleave the steps
        with_state(load_dataset(small_npz(tmp_path / "a.npz", split=False)), source, [LINK])
    folder = tmp_path / "items"
    folder.mkdir()
    z = np.load(small_npz(tmp_path / "b.npz"))
    for i in range(12):
        np.savez(folder / f"{i:02d}.npz", input=z["input"][i], state=z["state"][i], sr=z["sr"][i])
    with pytest.raises(ConfigError, match=r"steps of sequences in order: a \.npz"):
        with_state(load_dataset(folder), source, [LINK])
    with pytest.raises(CalibrationError, match="sequence 0 again at item 4"):
        with_state(load_dataset(small_npz(tmp_path / "c.npz", sequence=[0, 0, 1, 1, 0, 0] * 2)), source, [LINK])
    with pytest.raises(ConfigError, match="input-shape state=2,1,128"):  # zeros need a fixed shape
        with_state(load_dataset(small_npz(tmp_path / "d.npz", state=False)), source, [LINK])
    with pytest.raises(ConfigError, match="in two state links"):
        with_state(load_dataset(small_npz(tmp_path / "e.npz")), source, [LINK, "output->state"])


def test_cli_state_mistakes_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    npz = small_npz(tmp_path / "d.npz")
    base = ["run", "--model", str(silero_onnx()), "--calibration", str(npz), "--out", str(tmp_path / "o")]
    assert main([*base, "--state", "stateX->state"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--state stateX->state" in err and "stateN" in err, err
    assert main([*base, "--state", "stateN->state", "--state", "output"]) == 2
    assert "expected OUTPUT->INPUT" in capsys.readouterr().err
    bench = ["bench", "--model", str(silero_onnx()), "--calibration", str(npz), "--artifact", str(silero_onnx())]
    assert main([*bench, "--state", "stateN->state"]) == 2
    assert "--state does not apply to 'edgekit bench'" in capsys.readouterr().err
    assert json.loads(json.dumps(LINK.__dict__)) == {"output": "stateN", "input": "state"}
