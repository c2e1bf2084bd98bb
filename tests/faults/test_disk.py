"""Disk full, unwritable and odd output paths, what an output folder already holds, and cached reference outputs
that changed on disk. Real ``edgekit`` processes on real file systems: a small tmpfs fills up for real (mounted
here as root; without the right to mount, the disk-full tests are skipped and say why), a read-only tmpfs stands
for an unwritable --out (root ignores file modes). See tests/faults/CASES.md ("Disk and paths", "Resume")."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekit.artifacts import SIDECAR_SUFFIX, file_hashes

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "edgekit"]

MODEL = '''
import torch
from torch import nn

INPUT_SHAPE = (1, 3, 16, 16)
PREPROCESS = {{"size": (16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}}
TASK = "image-classification"


def build() -> nn.Module:
    torch.manual_seed({seed})
    return nn.Sequential(nn.Flatten(), nn.Linear(768, {hidden}), nn.ReLU(), nn.Linear({hidden}, 10))
'''


def _factory(folder: Path, name: str, hidden: int = 1024, seed: int = 0) -> str:
    """A model whose fp32 artifacts take about 4 * 768 * hidden bytes (3 MB at 1024): the disk fills predictably."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(MODEL.format(hidden=hidden, seed=seed))
    return f"{path}:build"


def _run(model: str, out: Path | str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "run", "--model", model, "--calibration", "digits", "--out", str(out),
                           "--calibration-limit", "8", "--eval-limit", "8", "--min-runs", "2", "--min-seconds", "0.1",
                           "--no-memory", "--precisions", "fp32", *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=600, check=False)


def _one_line(got: subprocess.CompletedProcess[str]) -> str:
    """The single ``edgekit: error:`` line of a run that exited 2, with no traceback."""
    assert got.returncode == 2, (got.returncode, got.stderr[-3000:])
    assert "Traceback" not in got.stderr, got.stderr[-3000:]
    lines = [ln for ln in got.stderr.splitlines() if ln.startswith("edgekit: ")]
    assert len(lines) == 1 and lines[0].startswith("edgekit: error: "), got.stderr[-3000:]
    return lines[0]


def _complete(art_dir: Path) -> list[str]:
    """The artifacts whose files all hash as their sidecar recorded."""
    names = []
    for side in sorted(art_dir.glob(f"*{SIDECAR_SUFFIX}")):
        model = side.with_name(side.name[: -len(SIDECAR_SUFFIX)])
        assert file_hashes(model) == json.loads(side.read_text())["files"], model
        names.append(model.name)
    return names


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True,
                         text=True, check=False)
    if got.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({got.stderr.strip() or got.returncode}): needs root")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


# ---------------------------------------------------------------------------------------------------- disk full
def test_a_full_disk_in_openvinos_writer_is_one_line_and_keeps_the_onnx_artifact(tmp_path: Path) -> None:
    """The 3 MB fp32 ONNX fits on a 5 MB disk, its IR does not: OpenVINO says only "basic_ios::clear: iostream
    error", which was noted as "could not be built" while the run went on (exit 0). Now: one line naming the IR,
    the bytes it needs and the bytes free, exit 2; the complete ONNX artifact stays and a re-run with room reuses
    it."""
    pytest.importorskip("openvino")
    model = _factory(tmp_path / "src", "wide")
    with _tmpfs(tmp_path / "disk", "size=5m") as disk:
        got = _run(model, disk / "run", "--formats", "onnx,openvino")
        line = _one_line(got)
        assert f"{disk / 'run' / 'artifacts' / 'model.fp32.xml'}: no space left on the device" in line, line
        assert "bytes needed" in line and "bytes free there" in line, line
        assert _complete(disk / "run" / "artifacts") == ["model.fp32.onnx"]
        assert sorted(p.name for p in (disk / "run" / "artifacts").iterdir()) == [
            "model.fp32.onnx", "model.fp32.onnx.edgekit.json"], "a temporary file was left behind"
        subprocess.run(["mount", "-o", "remount,size=40m", str(disk)], check=True)
        again = _run(model, disk / "run", "--formats", "onnx,openvino")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "reuse model.fp32.onnx" in again.stderr, again.stderr[-3000:]
        assert _complete(disk / "run" / "artifacts") == ["model.fp32.onnx", "model.fp32.xml"]


def test_a_full_disk_in_the_onnx_export_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """torch's exporter hit ENOSPC writing the first artifact (a traceback, exit 1)."""
    model = _factory(tmp_path / "src", "wide")
    with _tmpfs(tmp_path / "disk", "size=2m") as disk:
        line = _one_line(_run(model, disk / "run", "--formats", "onnx"))
        assert f"{disk / 'run' / 'artifacts' / 'model.fp32.onnx'}: no space left on the device" in line, line
        assert "bytes free there" in line and "complete artifacts are kept" in line, line
        assert list(disk.iterdir()) == [], "a partial file (or the empty folders) was left behind"


# ------------------------------------------------------------------------------------------- unusable --out
@pytest.mark.parametrize("kind", ["a-file", "read-only", "name-too-long", "path-too-long"])
def test_an_unusable_out_is_one_line_before_any_work(kind: str, tmp_path: Path) -> None:
    """--out that is a file (FileExistsError traceback), on a read-only disk (the whole run was lost at the report
    step), or too long (ENAMETOOLONG traceback): one line naming --out, before the source is even loaded."""
    model = _factory(tmp_path / "src", "small", hidden=16)
    with contextlib.ExitStack() as stack:
        if kind == "a-file":
            out = tmp_path / "report.txt"
            out.write_text("not a folder")
            expect = "this is a file, not a folder"
        elif kind == "read-only":
            out = stack.enter_context(_tmpfs(tmp_path / "ro", "ro,size=1m")) / "run"
            expect = "Read-only file system"
        elif kind == "name-too-long":
            out = tmp_path / ("x" * 300)
            expect = "the path is too long"
        else:
            out = tmp_path.joinpath(*["d" * 200] * 21)  # every name fits, the whole path does not
            expect = "the path is too long"
        got = _run(model, out, "--formats", "onnx")
        line = _one_line(got)
    assert line.startswith("edgekit: error: --out") and expect in line, line
    assert "[edgekit" not in got.stderr, "work started before --out was checked"


# ------------------------------------------------------------------------------- what --out already holds
def test_a_users_own_report_md_is_never_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.md").write_text("# My notes on this model\n\nthree weeks of work\n")
    model = _factory(tmp_path / "src", "small", hidden=16)
    line = _one_line(_run(model, out, "--formats", "onnx"))
    assert f"{out / 'report.md'}: report.md here was not written by edgekit" in line, line
    assert (out / "report.md").read_text() == "# My notes on this model\n\nthree weeks of work\n"
    assert not (out / "artifacts").exists()
    (out / "report.md").unlink()  # edgekit's own report is marked, and replaced by the next run
    assert _run(model, out, "--formats", "onnx").returncode == 0
    assert (out / "report.md").read_text().startswith("<!-- edgekit report")
    again = _run(model, out, "--formats", "onnx")
    assert again.returncode == 0, again.stderr[-3000:]


def test_another_models_artifacts_in_out_are_named_and_kept(tmp_path: Path) -> None:
    """A second model run into the same --out replaced the first one's artifacts (same file names) with exit 0."""
    out = tmp_path / "run"
    first = _factory(tmp_path / "a", "resnet_like", hidden=16)
    assert _run(first, out, "--formats", "onnx").returncode == 0
    before = file_hashes(out / "artifacts" / "model.fp32.onnx")
    other = _factory(tmp_path / "b", "mobilenet_like", hidden=24)
    line = _one_line(_run(other, out, "--formats", "onnx"))
    assert f"{out}: this folder holds the artifacts of model 'resnet_like' (torch)" in line, line
    assert "artifacts/model.fp32.onnx" in line and "mobilenet_like" in line, line
    assert file_hashes(out / "artifacts" / "model.fp32.onnx") == before
    retrained = _factory(tmp_path / "a", "resnet_like", hidden=16, seed=1)  # same model, new weights: rebuilt
    again = _run(retrained, out, "--formats", "onnx")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resnet_like changed since the artifacts" in again.stderr and "build onnx fp32" in again.stderr


# ------------------------------------------------------------------------------------------------- resume
@pytest.mark.parametrize("damage", ["altered", "truncated", "no-hash"])
def test_cached_reference_outputs_are_checked_before_reuse(damage: str, tmp_path: Path) -> None:
    """Altered reference-*.npy values gave cosine -1.0 for every artifact with exit 0; a truncated one a traceback.
    Their hash is recorded beside them now, and a mismatch recomputes them, saying so."""
    out = tmp_path / "run"
    model = _factory(tmp_path / "src", "small", hidden=16)
    assert _run(model, out, "--formats", "onnx").returncode == 0
    (cache,) = out.glob("reference-*.npy")
    if damage == "altered":
        values = np.load(cache)  # one record per output, as the run saved them: flip the sign of every value
        for name in values.dtype.names or ():
            values[name] = -values[name]
        with open(cache, "wb") as fh:
            np.save(fh, values if values.dtype.names else -values)
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:100])
    else:
        cache.with_name(cache.name + SIDECAR_SUFFIX).unlink()
    got = _run(model, out, "--formats", "onnx")
    assert got.returncode == 0 and "Traceback" not in got.stderr, got.stderr[-3000:]
    assert f"cached reference outputs {cache.name}:" in got.stderr and "recomputing them" in got.stderr
    report = json.loads((out / "report.json").read_text())
    (row,) = [r for r in report["rows"] if r.get("runtime") == "onnxruntime"]
    assert row["metrics"]["cosine_mean"] > 0.9999, row["metrics"]
