"""Counts and ETA for loops of known length: a bar redrawn in place on a terminal, count lines elsewhere."""

from __future__ import annotations

import io

import pytest

from edgekit import progress_bar
from edgekit.progress_bar import bar, counted


def test_the_bar_shows_counts_and_an_eta() -> None:
    assert bar("validate m.onnx", 6, 24, 3.0) == "validate m.onnx  [######..................] 6/24  9 s left"
    assert bar("x", 24, 24, 9.0).endswith("24/24")
    assert "min left" in bar("x", 1, 1000, 10.0)


def test_on_a_terminal_one_line_is_redrawn_and_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_bar, "REDRAW_S", 0.0)
    tty = io.StringIO()
    lines: list[str] = []
    assert list(counted(range(5), 5, "validate m.onnx", lines.append, stream=tty)) == [0, 1, 2, 3, 4]
    out = tty.getvalue()
    assert out.count("\r") == 6 and out.endswith("5/5\033[K\n") and "\n" not in out[:-1]
    assert lines == []  # the bar replaces the lines


def test_without_a_terminal_count_lines_go_through_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_bar, "LINE_EVERY_S", 0.0)
    lines: list[str] = []
    assert sum(counted(iter(range(4)), 4, "calibration items", lines.append)) == 6
    assert lines[0].startswith("  calibration items: 1/4") and lines[-1] == "  calibration items: 4/4"
