"""Options a fresh outsider fault pass found accepted and then ignored, checked late (after work), or named by an
internal field: each is now one ``edgekit: error:`` line before any work, naming the option the user typed, exit 2.
Through the real command line (``edgekit.cli.main``). See tests/faults/CASES.md ("Options and inputs")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from edgekit.cli import main

RUN = ["--calibration", "digits", "--formats", "onnx", "--precisions", "fp32", "--calibration-limit", "8",
       "--eval-limit", "8", "--min-runs", "2", "--min-seconds", "0.1", "--no-memory"]
QUANTIZE = ["--calibration", "digits", "--calibration-limit", "8"]
METRIC = Path(__file__).parent / "data" / "metric.py"  # def f(reference, candidate): a dict of one number

Case = Callable[[str, Path], list[str]]
CASES: dict[str, tuple[Case, tuple[str, ...]]] = {
    "max-drop-inf": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--max-drop", "1e309"],
                     ("--max-drop", "[0, 100]", "inf")),
    "max-drop-1000": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--max-drop", "1000"],
                      ("--max-drop", "[0, 100]")),
    "max-relative-error-negative": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN,
                                                  "--max-relative-error", "-1"], ("--max-relative-error", ">= 0")),
    "max-drop-with-budget-rule-cosine": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--budget-rule",
                                                       "cosine", "--max-drop", "0.5"],
                                         ("--max-drop", "--budget-rule cosine never applies")),
    "formats-twice": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--formats", "onnx,onnx"],
                      ("--formats", "given twice")),
    "min-runs-huge": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--min-runs",
                                    "99999999999999999999"], ("--min-runs", "max_runs = 100000")),
    "int8-preset-unknown": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--precisions", "fp32,int8",
                                          "--int8-preset", "turbo"], ("--int8-preset", "turbo")),
    "output-kind-no-such-output": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--output-kind",
                                                 "nosuch=embedding"], ("--output-kind nosuch=embedding",
                                                                       "no output of that name")),
    "quantize-fp32": (lambda m, o: ["quantize", "--model", m, "--out", str(o), *QUANTIZE, "--precision", "fp32"],
                      ("--precision", "fp32 is not a quantized precision", "edgekit export")),
    "quantize-precision-a-format-lacks": (lambda m, o: ["quantize", "--model", m, "--out", str(o), *QUANTIZE,
                                                        "--precision", "int8-dynamic", "--formats", "onnx,openvino"],
                                          ("--precision", "openvino format has no int8-dynamic")),
    "output-kind-twice": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--output-kind",
                                        "logits=embedding", "--output-kind", "logits=classification"],
                          ("--output-kind", "given twice", "logits=embedding came first")),
    "output-kind-value-ignored": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--output-kind",
                                                "logits=embedding@0.5"],
                                  ("--output-kind", "got 'logits=embedding@0.5'")),
    "baseline-is-out": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--baseline", str(o)],
                        ("--baseline", "this run's own --out")),
    "metric-twice": (lambda m, o: ["run", "--model", m, "--out", str(o), *RUN, "--metric", f"logits={METRIC}:f",
                                   "--metric", f"logits={METRIC}:f"], ("--metric logits=", "given twice")),
    "fail-on-never-triggers": (lambda m, o: ["compare", str(o), str(o), "--fail-on", "accuracy=-1000"],
                               ("--fail-on", "can never trigger")),
    "targets-show-unknown": (lambda m, o: ["targets", "show", "nope"], ("edgekit targets show nope",
                                                                        "unknown target")),
}


def _one_error_line(capsys: pytest.CaptureFixture[str], code: int) -> str:
    err = re.sub(r"--- Logging error ---.*?\nArguments: [^\n]*\n", "", capsys.readouterr().err, flags=re.S)
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("edgekit: error:")]
    assert code == 2 and len(errors) == 1, (code, err[-3000:])
    return errors[0]


@pytest.mark.parametrize("case", list(CASES))
def test_option_refused_before_any_work_naming_what_the_user_typed(case: str, tiny_model: tuple[str, Path],
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv, needles = CASES[case]
    out = tmp_path / "out"
    line = _one_error_line(capsys, main(argv(tiny_model[0], out)))
    for needle in needles:
        assert needle in line, (needle, line)
    built = sorted(p.name for p in out.rglob("*") if p.is_file() and p.name != ".edgekit.lock") \
        if out.exists() else []
    assert built == [], built  # refused before any artifact was built


def test_a_target_file_without_schema_says_the_key_is_missing(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "noschema.toml"
    target.write_text('name = "x"\ndescription = "d"\naccess = "local"\narch = "x86_64"\n'
                      '[[runtime]]\nname = "onnxruntime"\n')
    line = _one_error_line(capsys, main(["targets", "show", str(target)]))
    assert "noschema.toml:schema" in line and "the schema key is missing" in line


def test_an_opset_onnxruntime_cannot_load_names_the_option(tiny_model: tuple[str, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``--opset 1``: the exporter wrote a file onnxruntime cannot load ("Mismatched attribute type"), and the line
    gave no hint that the option was the cause."""
    code = main(["run", "--model", tiny_model[0], "--out", str(tmp_path / "out"), *RUN, "--opset", "1"])
    line = _one_error_line(capsys, code)
    assert "--opset 1" in line and "try --opset 17" in line, line


def test_a_metric_that_calls_sys_exit_is_one_line_not_a_silent_exit(tiny_model: tuple[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A ``--metric`` function calling ``sys.exit(5)`` ended edgekit with status 5 and no line (the same fault a
    factory calling ``sys.exit`` had)."""
    metric = tmp_path / "m.py"
    metric.write_text("def exits(reference, candidate):\n    import sys\n    sys.exit(5)\n")
    code = main(["run", "--model", tiny_model[0], "--out", str(tmp_path / "out"), *RUN, "--metric",
                 f"logits={metric}:exits"])
    line = _one_error_line(capsys, code)
    assert "--metric logits=m.py:exits" in line and "sys.exit(5)" in line, line


def test_a_truncated_tflite_source_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first 100 kB of a real .tflite (mediapipe's face detector): a struct.error traceback, exit 1."""
    from model_files import model_file

    whole = model_file("face_detection_short_range.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(whole[:100_000])
    line = _one_error_line(capsys, main(["run", "--model", str(cut), "--out", str(tmp_path / "out"), *RUN[:2],
                                         "--formats", "tflite", "--precisions", "fp32"]))
    assert "cut.tflite" in line and "not a complete TFLite model" in line, line


@pytest.mark.parametrize("flag", [["--checkpoint", "x.safetensors"], ["--opset", "13"], ["--static-batch"]])
def test_export_options_on_a_tflite_source_are_refused(tmp_path: Path, flag: list[str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from model_files import model_file

    model = model_file("face_detection_short_range.tflite")
    line = _one_error_line(capsys, main(["run", "--model", str(model), "--out", str(tmp_path / "out"), *RUN[:2],
                                         "--formats", "tflite", "--precisions", "fp32", *flag]))
    assert flag[0] in line and "does not apply to a .tflite model" in line, line


@pytest.mark.parametrize("name", ["report.md", "report.html", "report.json"])
def test_a_report_path_that_is_a_folder_says_so(name: str, tiny_model: tuple[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    line = _one_error_line(capsys, main(["run", "--model", tiny_model[0], "--out", str(out), *RUN]))
    assert f"{name} here is a folder" in line, line
