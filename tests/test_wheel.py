"""The package as a user gets it: a wheel built from this checkout, installed into a new venv with the
base dependencies only, and driven from a folder outside the repo.

The base dependencies come from the package index (about 15 s with a warm pip cache); offline, point
pip at a wheelhouse with ``PIP_NO_INDEX=1 PIP_FIND_LINKS=<folder>``, which the install inherits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.registry import FORMATS, RUNTIMES

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
# What a build reads (an sdist carries the same): copying it keeps stale build/ output of the checkout out.
BUILD_INPUTS = ("edgekit", "targets", "calibration", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md")
NOT_DATA = shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "*~")
# Packages of the extras: none of them may be importable in the base-only venv.
EXTRA_MODULES = ("torch", "transformers", "optimum", "openvino", "nncf", "ai_edge_litert", "ai_edge_quantizer",
                 "tensorflow", "litert_torch", "onnx2tf", "ethosu", "asyncssh", "skimage", "sklearn")
WHEEL_MAX_MB = 10.0


def _bundled_files() -> dict[str, str]:
    """``{path inside the wheel: sha256}`` of every repo file the wheel must carry under ``edgekit/_data``."""
    out = {}
    for name in ("targets", "calibration"):
        for p in sorted((REPO / name).rglob("*")):
            rel = p.relative_to(REPO)
            if p.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                out[f"edgekit/_data/{rel.as_posix()}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _clean_env() -> dict[str, str]:
    """The environment of the commands: nothing that points Python back at the checkout or its venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _tiny_classifier(path: Path) -> None:
    """Conv 3x3 -> Relu -> global average pool -> MatMul: 1x3x16x16 images to 10 logits (seeded weights)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w": (0.3 * rng.standard_normal((8, 3, 3, 3))).astype(np.float32), "b": np.zeros(8, np.float32),
               "g": rng.standard_normal((8, 10)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("MatMul", ["f", "g"], ["logits"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
                              initializer=[numpy_helper.from_array(a, n) for n, a in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the base dependencies allow
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_version_has_one_source() -> None:
    """pyproject.toml takes the version from ``edgekit.__version__`` (the wheel test checks the built metadata)."""
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "edgekit.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([.-]?\w+)*", edgekit.__version__)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built offline (no build isolation, no index) from a copy of the build inputs."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in BUILD_INPUTS:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=NOT_DATA)
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    start = time.perf_counter()
    _ok(_run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
              "-w", str(root / "dist"), str(src)], cwd=root))
    print(f"\nwheel built in {time.perf_counter() - start:.1f} s")
    (whl,) = (root / "dist").glob("edgekit-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_carries_the_catalogue(wheel: Path) -> None:
    """Every target file and bundled data file, byte for byte, the code and metadata; no tests, no caches."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        shipped = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in names if n.startswith("edgekit/_data/")}
        meta = zf.read(f"edgekit-{edgekit.__version__}.dist-info/METADATA").decode()
    size_mb = wheel.stat().st_size / 2**20
    print(f"wheel {wheel.name}: {size_mb:.2f} MiB, {len(names)} files ({len(shipped)} under edgekit/_data)")
    assert shipped == _bundled_files()
    assert {"edgekit/__main__.py", "edgekit/py.typed", "edgekit/_data/targets/local-cpu.toml"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or n.startswith("tests/")]
    assert size_mb < WHEEL_MAX_MB
    assert re.search(rf"^Version: {re.escape(edgekit.__version__)}$", meta, re.M)
    requires = sorted(re.findall(r"^Requires-Dist: ([^;\n]+)$", meta, re.M))
    assert requires == sorted(PYPROJECT["project"]["dependencies"])  # extras' requirements carry a '; extra'
    assert set(re.findall(r"^Provides-Extra: (\S+)$", meta, re.M)) == set(PYPROJECT["project"]["optional-dependencies"])


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding the wheel and the base dependencies only (pinned by constraints.txt)."""
    root = tmp_path_factory.mktemp("venv")
    start = time.perf_counter()
    _ok(_run([sys.executable, "-m", "venv", str(root / "venv")], cwd=root))
    py = root / "venv" / "bin" / "python"
    _ok(_run([str(py), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), str(wheel)], cwd=root))
    print(f"\nvenv with the wheel and the base dependencies in {time.perf_counter() - start:.1f} s")
    return root / "venv"


@pytest.mark.slow
def test_installed_wheel_works_with_base_dependencies(venv: Path, tmp_path: Path) -> None:
    """From a folder outside the repo: --version, targets list, doctor, and a full run on a bundled set that
    goes on with ONNX and names the exact pip line of every format it had to skip."""
    bin_ = venv / "bin"
    where = tmp_path / "elsewhere"
    where.mkdir()
    probe = ("import edgekit, importlib.metadata as md, importlib.util as u, json, sys; print(json.dumps("
             "[edgekit.__file__, md.version('edgekit'), [m for m in sys.argv[1:] if u.find_spec(m)]]))")
    file, dist_version, extras_seen = json.loads(_ok(_run([str(bin_ / "python"), "-c", probe, *EXTRA_MODULES], where)))
    assert Path(file).is_relative_to(venv) and dist_version == edgekit.__version__ and extras_seen == []

    assert _ok(_run([str(bin_ / "edgekit"), "--version"], where)).strip() == f"edgekit {edgekit.__version__}"
    assert _ok(_run([str(bin_ / "python"), "-m", "edgekit", "--version"], where)).strip() == \
        f"edgekit {edgekit.__version__}"

    listed = {line.split()[0] for line in _ok(_run([str(bin_ / "edgekit"), "targets", "list"], where)).splitlines()}
    builtin = {tomllib.loads(p.read_text())["name"] for p in (REPO / "targets").glob("*.toml")}
    assert listed == builtin and "local-cpu" in listed

    doctor = _ok(_run([str(bin_ / "edgekit"), "doctor"], where))
    assert re.search(r"^\s+ok\s+onnxruntime\s", doctor, re.M), doctor
    assert "pip install 'edgekit[openvino]'" in doctor and "pip install 'edgekit[torch]'" in doctor

    _tiny_classifier(where / "tiny.onnx")
    start = time.perf_counter()
    proc = _run([str(bin_ / "edgekit"), "run", "--model", "tiny.onnx", "--task", "image-classification",
                 "--calibration", "digits", "--target", "local-cpu", "--out", "run", "--calibration-limit", "32",
                 "--eval-limit", "64", "--min-runs", "5", "--min-seconds", "0.1", "--warmup", "2", "--no-memory"],
                where)
    print(f"\nedgekit run in {time.perf_counter() - start:.1f} s")
    _ok(proc)
    assert (where / "run" / "report.md").is_file()
    report = json.loads((where / "run" / "report.json").read_text())
    assert Path(report["dataset"]["path"]).is_relative_to(venv)  # the wheel's copy, not the repo's
    skipped = {fmt: entry for fmt, entry in FORMATS.items() if fmt != "onnx"}
    assert skipped, "no optional format registered: nothing to check"
    for fmt, entry in skipped.items():
        line = f"pip install 'edgekit[{entry.extra}]'"
        assert any(n.startswith(f"format {fmt} skipped") and n.endswith(line) for n in report["notes"]), \
            (fmt, report["notes"])
    rows = report["rows"]
    assert rows and {r["format"] for r in rows if r["status"] == "measured"} == {"onnx"}
    assert {"fp32", "int8"} <= {r["precision"] for r in rows if r["status"] == "measured"}
    for r in rows:  # local-cpu also lists runtimes of the extras: rows that say what to install
        if r["runtime"] != "onnxruntime":
            assert r["status"] == "not-available", r
            assert f"pip install 'edgekit[{RUNTIMES[r['runtime']].extra}]'" in r["reason"], r
