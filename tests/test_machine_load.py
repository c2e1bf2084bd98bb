"""Noise detection with a real CPU burner beside real benchmarks: other processes' CPU time read from /proc while a
row is timed, the row flagged, ``--strict-timing`` refusing to recommend from it (exit 3), and the interleaved
decision still made from paired rounds (the load hits every finalist alike)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekit.machine_load import BUSY_CORES, noise_between, snapshot

BURN = "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    pass\n"


@contextlib.contextmanager
def burners(n: int, seconds: float) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` busy-looping Python processes (a loaded machine), killed on the way out."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN.format(s=seconds)]) for _ in range(n)]
    try:
        time.sleep(0.3)
        yield procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_burner_is_seen_by_name_and_flags_the_window() -> None:
    with burners(1, 30) as procs:
        before = snapshot()
        time.sleep(1.0)
        record = noise_between(before, snapshot(), [1.0, 1.1, 1.2])
    assert record["other_busy_cores"] >= BUSY_CORES and record["noisy"], record
    assert any(f"({procs[0].pid})" in b for b in record["busiest"]), record["busiest"]
    assert "other processes used" in record["why"] and record["window_s"] >= 1.0
    assert record["loadavg_before"] is not None and record["cv"] is not None


@pytest.mark.slow
def test_strict_timing_refuses_rows_timed_under_load_and_exits_3(tiny_model: tuple[str, Path], tmp_path: Path) -> None:
    """Two burners on this machine while edgekit times the tiny model's ONNX artifacts: every row carries its
    noise record and the warning; with --strict-timing nothing is recommended and the run exits 3."""
    from edgekit.cli import main

    spec, ckpt = tiny_model
    out = tmp_path / "run"
    args = ["run", "--model", spec, "--checkpoint", str(ckpt), "--calibration", "digits", "--out", str(out),
            "--formats", "onnx", "--precisions", "fp32,int8", "--calibration-limit", "32", "--eval-limit", "32",
            "--min-runs", "20", "--min-seconds", "0.5", "--threads", "1", "--target", "local-cpu", "--strict-timing"]
    with burners(2, 600):
        code = main(args)
    report = json.loads((out / "report.json").read_text())
    rows = [r for r in report["rows"] if r["bench"]]
    assert rows and all(r["bench"]["noise"]["noisy"] for r in rows), [r["bench"]["noise"] for r in rows]
    assert code == 3
    assert all(rec["artifact"] is None for rec in report["recommendations"])
    assert any("timed under noise" in line and "--strict-timing" in line
               for rec in report["recommendations"] for line in rec["rejected"])
    assert "⚠ timed under noise: other processes used" in (out / "report.md").read_text()
