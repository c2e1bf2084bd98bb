"""Automation (issue 13): the exit statuses of ``edgekit run`` (0 / 3 / 4 / 2), ``edgekit compare`` as a CI gate,
``edgekit run --baseline``, and what ``report.json`` records of how a run was made. Real runs of a small real CNN
through the real command line (``edgekit.cli.main``), no mocks. Where a test needs a regression or another machine
that two honest runs on this VM cannot give reliably, it edits a *copy* of a real run's ``report.json`` and says
so in its docstring: that tests the gate's logic on real data, not the measurement."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from target_files import local_ort_target

import edgekit
from edgekit.cli import main

FAST = ["--calibration", "digits", "--formats", "onnx", "--calibration-limit", "16", "--eval-limit", "16",
        "--min-runs", "5", "--min-seconds", "0.2", "--no-memory"]
GATE = "latency=+5%,accuracy=-0.5"
INT8_ONLY = local_ort_target("int8-only", "A local stand-in for an accelerator that takes int8 artifacts only")


def _run_args(model: str, out: Path, *extra: str) -> list[str]:
    return ["run", "--model", model, "--out", str(out), *FAST, *extra]


@pytest.fixture(scope="module")
def run_a(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[str]]:
    """A real run with the default budget: (folder, exit status, the argv given)."""
    out = tmp_path_factory.mktemp("run-a") / "out"
    argv = _run_args(tiny_model[0], out)
    return out, main(argv), argv


@pytest.fixture(scope="module")
def int8_only_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("targets") / "int8-only.toml"
    path.write_text(INT8_ONLY)
    return path


def _int8_only_args(model: str, out: Path, target: Path) -> list[str]:
    # fp32 keeps cosine ~1 - 1e-15 and stays within --min-cosine 0.9999999 on local-cpu; dynamic int8 (no
    # calibration, no search: deterministic) loses ~1e-6 of cosine, so the int8-only target has nothing within it
    return _run_args(model, out, "--precisions", "fp32,int8-dynamic", "--target", "local-cpu", "--target",
                     str(target), "--min-cosine", "0.9999999")


@pytest.fixture(scope="module")
def run_c(tiny_model: tuple[str, Path], int8_only_target: Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    out = tmp_path_factory.mktemp("run-c") / "out"
    return out, main(_int8_only_args(tiny_model[0], out, int8_only_target))


def _report(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def _edited_copy(src: Path, dest: Path, edit: Any) -> Path:
    """A copy of run ``src``'s report.json in ``dest``, changed by ``edit(doc)``."""
    dest.mkdir(parents=True, exist_ok=True)
    doc = _report(src)
    edit(doc)
    (dest / "report.json").write_text(json.dumps(doc), encoding="utf-8")
    return dest


def _one_error_line(err: str, code: int) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("edgekit: error:")]
    assert code == 2 and len(lines) == 1, (code, err[-2000:])
    return lines[0]


def test_run_within_budget_exits_0_and_records_how_it_was_made(run_a: tuple[Path, int, list[str]],
                                                                tiny_model: tuple[str, Path]) -> None:
    from edgekit.artifacts import content_sha256, sha256_file

    out, code, argv = run_a
    assert code == 0
    doc = _report(out)
    assert doc["outcome"] == {"exit_status": 0, "unmet_targets": []}
    assert all(r["artifact"] for r in doc["recommendations"]), doc["recommendations"]
    prov = doc["provenance"]
    assert prov["command"] == ["edgekit", *argv]
    assert prov["edgekit"] == edgekit.__version__
    repo = Path(edgekit.__file__).resolve().parents[1]
    if (repo / ".git").exists():  # the tests run from a checkout: its commit and whether tracked files changed
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git"]["commit"]) and isinstance(prov["git"]["dirty"], bool)
    from importlib import metadata

    for dist in ("numpy", "onnxruntime", "onnx", "torch"):
        assert prov["libraries"][dist] == metadata.version(dist)
    hashes = prov["hashes"]
    assert hashes["model"] == doc["model"]["fingerprint"]
    assert hashes["calibration"] == content_sha256(doc["dataset"]["path"])
    on_disk = {p.name: sha256_file(p) for p in (out / "artifacts").glob("model.*.onnx")}
    assert {name: h["sha256"] for name, h in hashes["artifacts"].items()} == on_disk


def test_git_state_is_none_outside_a_checkout(tmp_path: Path) -> None:
    from edgekit.provenance import git_state

    assert git_state(tmp_path) is None


def test_run_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "exit status:" in text
    for code in ("0 ", "2 ", "3 ", "4 "):
        assert f"\n  {code}" in text, code
    assert "--baseline" in text and "--fail-on" in text


def test_a_target_with_nothing_within_budget_exits_3_and_is_named(run_c: tuple[Path, int],
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out, code = run_c
    assert code == 3
    doc = _report(out)
    recs = {(r["target"], r["runtime"]): r["artifact"] for r in doc["recommendations"]}
    assert recs[("local-cpu", "onnxruntime")] is not None  # the other target still has its answer
    assert recs[("int8-only", "onnxruntime")] is None
    assert doc["outcome"]["exit_status"] == 3
    assert [u.split(":")[0] for u in doc["outcome"]["unmet_targets"]] == ["int8-only"]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Targets without an artifact within the budget (exit status 3)" in md and "- int8-only:" in md


def test_exit_status_from_python_gives_the_same_rule(run_c: tuple[Path, int], tiny_model: tuple[str, Path],
                                                      int8_only_target: Path) -> None:
    """``edgekit.exit_status(result)`` of the same run through the Python API (artifacts reused) is 3 too; and
    ``edgekit.compare_runs`` takes a RunResult as run B."""
    from edgekit.pipeline import RunOptions
    from edgekit.results import AccuracyBudget
    from edgekit.types import Format, Precision

    out, _ = run_c
    src = edgekit.load_source(tiny_model[0])
    opts = RunOptions(formats=(Format.ONNX,), precisions=(Precision.FP32, Precision.INT8_DYNAMIC),
                      targets=("local-cpu", str(int8_only_target)), budget=AccuracyBudget(min_cosine=0.9999999),
                      bench=edgekit.BenchOptions(min_runs=5, min_seconds=0.2, memory_pass=False),
                      calibration_limit=16, eval_limit=16)
    result = edgekit.run(src, calibration="digits", out_dir=out, options=opts)
    assert edgekit.exit_status(result) == 3
    c = edgekit.compare_runs(out, result)
    assert c.b == "this run" and {r.artifact for r in c.rows} == {"model.fp32.onnx", "model.int8-dynamic.onnx"}
    assert not c.added and not c.removed


def test_compare_a_run_with_itself(run_a: tuple[Path, int, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    out = run_a[0]
    timed = [r for r in _report(out)["rows"] if r["bench"]]
    c = edgekit.compare_runs(out, out / "report.json", fail_on=GATE)
    assert len(c.rows) == len(timed) and not c.added and not c.removed and c.same_machine and not c.warnings
    for r in c.rows:
        assert r.latency is not None and r.latency.ratio == 1.0
        assert r.latency.low is not None and r.latency.high is not None
        assert r.latency.low <= 1.0 <= r.latency.high and r.latency.high - r.latency.low < 0.5
        assert r.accuracy_points == 0.0 and r.cosine == 0.0 and r.top1_points == 0.0
        assert r.outputs and all(d.delta == 0.0 for d in r.outputs)
    assert not c.regressed and c.exit_status() == 0
    capsys.readouterr()
    assert main(["compare", str(out), str(out), "--fail-on", GATE]) == 0
    text = capsys.readouterr().out
    assert "B/A [95% CI]" in text and f"passed on all {len(timed)} rows" in text
    assert main(["compare", str(out), str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_status"] == 0 and doc["same_machine"] is True and len(doc["rows"]) == len(timed)


def test_compare_real_runs_lists_added_and_removed_rows(run_a: tuple[Path, int, list[str]],
                                                        run_c: tuple[Path, int]) -> None:
    c = edgekit.compare_runs(run_a[0], run_c[0])
    assert {r.artifact for r in c.rows} == {"model.fp32.onnx"}
    assert "model.int8-dynamic.onnx on int8-only/onnxruntime" in c.added
    assert "model.fp16.onnx on local-cpu/onnxruntime" in c.removed
    assert c.fail_on is None and not c.regressed  # no gate: nothing judged


def _slower(factor: float) -> Any:
    def edit(doc: dict[str, Any]) -> None:
        for row in doc["rows"]:
            if row["bench"]:
                row["bench"]["samples_ms"] = [factor * x for x in row["bench"]["samples_ms"]]
                row["bench"]["stats"] = {k: (factor * v if k.endswith("_ms") else v)
                                         for k, v in row["bench"]["stats"].items()}
    return edit


def test_compare_gate_fails_on_a_planted_latency_regression(run_a: tuple[Path, int, list[str]], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """B is a copy of a real run's report.json with every latency sample x1.5 (edited: two honest runs on this
    shared 2-core VM differ by more than the gate's 5%, so a real slowdown cannot be planted reliably)."""
    a = run_a[0]
    b = _edited_copy(a, tmp_path / "b", _slower(1.5))
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--fail-on", GATE, "--json"]) == 4
    doc = json.loads(capsys.readouterr().out)
    assert doc["regressed"] is True and doc["exit_status"] == 4
    for row in doc["rows"]:
        assert row["latency"]["ratio"] == pytest.approx(1.5) and row["latency"]["low"] > 1.05
        assert len(row["breaches"]) == 1 and row["breaches"][0].startswith("latency")
    assert main(["compare", str(a), str(b), "--fail-on", "latency=+60%"]) == 0  # a looser gate passes it
    assert main(["compare", str(b), str(a), "--fail-on", GATE]) == 0  # faster is never a regression


def test_compare_gate_fails_on_a_planted_accuracy_drop(run_a: tuple[Path, int, list[str]], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """B is a copy of a real run's report.json where the fp32 ONNX Runtime row lost 1 point of accuracy and 3
    points of top-1 agreement (edited: the tiny untrained model scores 0% on every variant, so no real run of it
    can lose accuracy)."""
    a = run_a[0]

    def edit(doc: dict[str, Any]) -> None:
        for row in doc["rows"]:
            if (row["artifact"], row["runtime"]) == ("model.fp32.onnx", "onnxruntime"):
                m = row["metrics"]
                m["accuracy"] -= 0.01
                m["top1_agreement"] -= 0.03
                m["outputs"][0]["accuracy"] -= 0.01

    b = _edited_copy(a, tmp_path / "b", edit)
    c = edgekit.compare_runs(a, b, fail_on="accuracy=-0.5")
    assert c.regressed and [r.where for r in c.rows if r.breaches] == ["model.fp32.onnx on local-cpu/onnxruntime"]
    broken = next(r for r in c.rows if r.breaches)
    assert broken.accuracy_points == pytest.approx(-1.0) and broken.top1_points == pytest.approx(-3.0)
    assert any(d.output and d.metric == "accuracy" and d.delta == pytest.approx(-0.01) for d in broken.outputs)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--fail-on", GATE]) == 4
    assert "accuracy -1 pt < -0.5 pt" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--fail-on", "accuracy=-2"]) == 0
    assert main(["compare", str(a), str(b), "--fail-on", "accuracy=-2,top1=-1"]) == 4


def test_compare_across_machines_warns_loudly(run_a: tuple[Path, int, list[str]], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """B is a copy of a real run's report.json whose environment says another CPU (edited: one machine here)."""
    a = run_a[0]

    def edit(doc: dict[str, Any]) -> None:
        for env in [doc["environment"], *(r["bench"]["environment"] for r in doc["rows"] if r["bench"])]:
            env["cpu_model"] = "Some Other CPU"
            env["cpu_flags"] = [f for f in env.get("cpu_flags", []) if not f.startswith("avx512")] + ["amx_tile"]

    b = _edited_copy(a, tmp_path / "b", edit)
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--json"]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if "DIFFERENT MACHINES" in line]
    assert len(warning) == 1 and "Some Other CPU" in warning[0] and "amx_tile" in warning[0]
    doc = json.loads(captured.out)
    assert doc["same_machine"] is False and doc["warnings"] and all(r["machine_differs"] for r in doc["rows"])
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr()
    assert "DIFFERENT MACHINES" in out.err and "DIFFERENT MACHINES" in out.out.splitlines()[2]


@pytest.mark.parametrize("gate", ["latency=fast", "speed=+5%", "latency", "accuracy=+0.5", "latency=-5%", " ",
                                  "latency=+5%,latency=+6%", "latency=+5%,", "accuracy=nan", "accuracy=-1000"])
def test_a_malformed_gate_exits_2_with_one_line(gate: str, run_a: tuple[Path, int, list[str]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = run_a[0]
    capsys.readouterr()
    code = main(["compare", str(out), str(out), f"--fail-on={gate}"])
    line = _one_error_line(capsys.readouterr().err, code)
    assert "--fail-on" in line and "latency=+5%,accuracy=-0.5" in line


def test_compare_of_a_folder_without_a_report_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(tmp_path), str(tmp_path)])
    line = _one_error_line(capsys.readouterr().err, code)
    assert "RUN_A" in line and "no report.json" in line


def test_run_fail_on_without_baseline_is_refused_before_any_work(tiny_model: tuple[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(_run_args(tiny_model[0], out, "--fail-on", GATE))
    line = _one_error_line(capsys.readouterr().err, code)
    assert "--fail-on" in line and "--baseline" in line
    assert not (out / "artifacts").exists() or not any((out / "artifacts").iterdir())
    code = main(_run_args(tiny_model[0], out, "--baseline", str(tmp_path / "nowhere")))
    assert "--baseline" in _one_error_line(capsys.readouterr().err, code)


def test_run_with_a_baseline_writes_the_comparison_into_the_report(run_a: tuple[Path, int, list[str]],
                                                                   tiny_model: tuple[str, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Against the real run A, no gate: compared and reported, exit 0 (within budget). Against a copy of A whose
    latency samples were edited to x0.2 (a baseline 5x faster: a slowdown this VM cannot plant honestly), with
    the gate: exit 4, and the report says so."""
    b = tmp_path / "b"
    capsys.readouterr()
    assert main(_run_args(tiny_model[0], b, "--baseline", str(run_a[0]))) == 0
    printed = capsys.readouterr().out
    assert "B/A [95% CI]" in printed and "no gate (--fail-on): not judged" in printed
    doc = _report(b)
    assert doc["baseline"]["a"] == str(run_a[0]) and doc["baseline"]["regressed"] is False
    assert len(doc["baseline"]["rows"]) == len([r for r in doc["rows"] if r["bench"]])
    md = (b / "report.md").read_text(encoding="utf-8")
    assert "## Against baseline" in md

    fast = _edited_copy(run_a[0], tmp_path / "fast-baseline", _slower(0.2))
    c = tmp_path / "c"
    assert main(_run_args(tiny_model[0], c, "--baseline", str(fast), "--fail-on", GATE)) == 4
    printed = capsys.readouterr().out
    assert "REGRESSION" in printed and "exit status 4" in printed
    doc = _report(c)
    assert doc["baseline"]["regressed"] is True and doc["outcome"]["exit_status"] == 4
    assert doc["baseline"]["fail_on"]["latency_pct"] == 5.0
    md = (c / "report.md").read_text(encoding="utf-8")
    assert "## Against baseline" in md and "REGRESSION against --fail-on latency=+5%,accuracy=-0.5" in md
    shutil.rmtree(tmp_path / "fast-baseline")


def test_bootstrap_ratio_of_scaled_samples() -> None:
    import numpy as np

    from edgekit.compare import bootstrap_ratio

    a = np.random.default_rng(1).lognormal(0.0, 0.2, size=2000)
    ratio, low, high = bootstrap_ratio(a, 1.5 * a)
    assert ratio == pytest.approx(1.5) and low < 1.5 < high and high - low < 0.1
    assert bootstrap_ratio(a, 1.5 * a) == (ratio, low, high)  # seeded


def test_hand_edited_samples_are_treated_as_none_not_a_traceback(run_a: tuple[Path, int, list[str]],
                                                                 tmp_path: Path) -> None:
    """``samples_ms`` set to a string in a copy of a real report.json gave a ValueError traceback in the bootstrap
    (found by the second fault pass): such a row is judged on its p50 ratio alone."""
    def garble(doc: dict[str, Any]) -> None:
        for row in doc["rows"]:
            if row["bench"]:
                row["bench"]["samples_ms"] = "oops"

    b = _edited_copy(run_a[0], tmp_path / "b", garble)
    c = edgekit.compare_runs(run_a[0], b)
    ratios = [r.latency for r in c.rows if r.latency is not None]
    assert ratios and all(r.b_samples == 0 and r.low is None and r.ratio == pytest.approx(1.0) for r in ratios)
