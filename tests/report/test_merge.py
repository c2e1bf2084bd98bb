"""A second run with another ``--target`` into the same ``--out`` adds to the report (issue 13): real runs of a
small real CNN through the real command line; the earlier target's rows come back exactly as measured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from target_files import local_ort_target

from edgekit.cli import main

FAST = ["--calibration", "digits", "--formats", "onnx", "--calibration-limit", "16", "--eval-limit", "16",
        "--min-runs", "5", "--min-seconds", "0.2", "--no-memory", "--precisions", "fp32,int8-dynamic"]
SECOND = local_ort_target("second-cpu", "A second local target, as a second board of the same kind would be")


def _report(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "report.json").read_text(encoding="utf-8"))


def _rows(doc: dict[str, Any], target: str) -> list[dict[str, Any]]:
    return [r for r in doc["rows"] if r["target"] == target]


@pytest.fixture(scope="module")
def two_runs(tiny_model: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("merge")
    second = base / "second-cpu.toml"
    second.write_text(SECOND)
    out = base / "out"
    model = tiny_model[0]
    codes = [main(["run", "--model", model, "--out", str(out), *FAST, "--target", "local-cpu"])]
    first = _report(out)
    codes.append(main(["run", "--model", model, "--out", str(out), *FAST, "--target", str(second)]))
    return {"out": out, "first": first, "merged": _report(out), "codes": codes, "model": model, "second": second}


def test_a_second_target_is_added_to_the_report_and_the_first_kept_as_measured(two_runs: dict[str, Any]) -> None:
    first, merged = two_runs["first"], two_runs["merged"]
    assert two_runs["codes"] == [0, 0]
    assert {r["target"] for r in merged["rows"]} == {"local-cpu", "second-cpu"}
    # the earlier target's rows are the earlier run's, raw samples and all, not re-measured
    assert _rows(merged, "local-cpu") == _rows(first, "local-cpu")
    assert {r["target"] for r in merged["recommendations"]} == {"local-cpu", "second-cpu"}
    assert {d["target"] for d in merged["decisions"]} == {"local-cpu", "second-cpu"}
    assert [d for d in merged["decisions"] if d["target"] == "local-cpu"] == first["decisions"]
    assert merged["outcome"]["unmet_targets"] == []
    assert merged["notes"][0].startswith("this report adds second-cpu to the earlier run in this folder")
    assert merged["provenance"]["earlier_runs"][0]["targets"] == ["local-cpu"]
    md = (two_runs["out"] / "report.md").read_text(encoding="utf-8")
    html = (two_runs["out"] / "report.html").read_text(encoding="utf-8")
    assert "local-cpu" in md and "second-cpu" in md and "local-cpu" in html and "second-cpu" in html


def test_a_run_of_the_same_target_replaces_its_rows_and_replace_report_starts_over(two_runs: dict[str, Any]) -> None:
    out, model = two_runs["out"], two_runs["model"]
    assert main(["run", "--model", model, "--out", str(out), *FAST, "--target", str(two_runs["second"])]) == 0
    again = _report(out)
    assert len(_rows(again, "second-cpu")) == len(_rows(two_runs["merged"], "second-cpu"))
    assert _rows(again, "local-cpu") == _rows(two_runs["first"], "local-cpu")
    assert main(["run", "--model", model, "--out", str(out), *FAST, "--target", str(two_runs["second"]),
                 "--replace-report"]) == 0
    assert {r["target"] for r in _report(out)["rows"]} == {"second-cpu"}


def test_a_run_with_another_budget_replaces_the_report_and_says_why(tiny_model: tuple[str, Path],
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", "--model", tiny_model[0], "--out", str(out), *FAST, "--target", "local-cpu"]) == 0
    second = tmp_path / "second-cpu.toml"
    second.write_text(SECOND)
    main(["run", "--model", tiny_model[0], "--out", str(out), *FAST, "--target", str(second),
          "--min-cosine", "0.5"])
    doc = _report(out)
    assert {r["target"] for r in doc["rows"]} == {"second-cpu"}
    assert any(n.startswith("the earlier report in this folder") and "the accuracy budget" in n
               for n in doc["notes"])
