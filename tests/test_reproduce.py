"""``edgekit reproduce RUN``: the recorded command run again (from the folder it was run in) into a new folder,
compared with the first run, and what differs in how the two were made."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from edgekit.errors import ConfigError
from edgekit.reproduce import provenance_diff, recorded_command, with_out


def test_the_command_gets_the_new_out_and_the_first_run_as_baseline() -> None:
    args = ["run", "--model", "m.onnx", "--out=old", "--baseline", "older", "--target", "local-cpu"]
    assert with_out(args, "/new", "/old") == ["run", "--model", "m.onnx", "--target", "local-cpu", "--out", "/new",
                                              "--baseline", "/old"]
    with pytest.raises(ConfigError, match="records no 'edgekit run' command line"):
        recorded_command({"provenance": {"command": ["edgekit", "bench", "x"]}}, "r/report.json")


def test_the_diff_names_versions_hashes_and_machine() -> None:
    a = {"provenance": {"edgekit": "0.1.0", "python": "3.11.7", "git": {"commit": "a"},
                        "libraries": {"onnxruntime": "1.32.0", "numpy": "2.4.6"},
                        "hashes": {"model": "m1", "calibration": "c", "artifacts": {"x.onnx": {"sha256": "1" * 64}}}},
         "environment": {"cpu_model": "AMD EPYC", "machine": "x86_64"}}
    assert provenance_diff(a, copy.deepcopy(a)) == []
    b = copy.deepcopy(a)
    b["provenance"]["libraries"]["onnxruntime"] = "1.33.0"
    b["provenance"]["hashes"]["artifacts"]["x.onnx"]["sha256"] = "2" * 64
    b["environment"]["cpu_model"] = "Intel Xeon"
    assert provenance_diff(a, b) == ["library onnxruntime: 1.32.0 -> 1.33.0",
                                     "artifact x.onnx: bytes differ (sha256 111111111111 -> 222222222222)",
                                     "machine cpu_model: differs (AMD EPYC -> Intel Xeon)"]


@pytest.mark.slow
def test_a_real_run_is_reproduced_from_its_folder(tiny_model: tuple[str, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main

    spec, ckpt = tiny_model
    work = tmp_path / "work"
    work.mkdir()
    before = Path.cwd()
    os.chdir(work)  # relative paths in the recorded command: reproduce must run from this folder again
    try:
        assert main(["run", "--model", spec, "--checkpoint", str(ckpt), "--calibration", "digits", "--out", "first",
                     "--formats", "onnx", "--precisions", "fp32", "--eval-limit", "16", "--min-runs", "5",
                     "--min-seconds", "0.05", "--target", "local-cpu"]) == 0
    finally:
        os.chdir(before)
    capsys.readouterr()
    assert main(["reproduce", str(work / "first")]) == 0
    out = capsys.readouterr().out
    assert f"reproduced into {work / 'first-reproduced'} (exit 0)" in out
    second = json.loads((work / "first-reproduced" / "report.json").read_text())
    assert second["baseline"] is not None  # compared with the first run, in the new report
    assert second["provenance"]["cwd"] == str(work)
    assert "made the same way in every recorded respect" in out or "how the runs were made differs in:" in out
