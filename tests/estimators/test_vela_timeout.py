"""A compiler estimate that runs past its time-out is one failed row, never a crashed run."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edgekit.artifacts import Artifact
from edgekit.targets import load_target
from edgekit.types import Format, IOSpec, Precision

pytest.importorskip("ethosu.vela")

from edgekit.estimators import vela


def test_vela_past_its_time_out_is_a_failed_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "model.int8.tflite"
    model.write_bytes(b"\0" * 64)
    art = Artifact(model, Format.TFLITE, Precision.INT8, IOSpec(()), "0" * 64)
    # a "vela" that never finishes: the real subprocess machinery, a command that sleeps
    monkeypatch.setattr(vela, "vela_command", lambda: [sys.executable, "-c", "import time; time.sleep(60)"])
    monkeypatch.setattr(vela, "check_int8", lambda path: None)
    target = load_target("ethos-u55-128")
    target = replace(target, extra={**target.extra, "estimate": {**target.extra["estimate"], "timeout_s": 1}})
    t0 = time.monotonic()
    rows = vela.estimate_rows(target, [art], {}, lambda _m: None)
    assert time.monotonic() - t0 < 30, "the compile was stopped at its time-out"
    (row,) = rows
    assert row.status == "failed" and row.bench is None
    assert row.reason is not None and "vela did not finish within 1 s" in row.reason and "timeout_s" in row.reason
