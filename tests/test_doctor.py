"""``edgekit doctor`` tells ok, missing and broken apart: a plugin whose module raises on import is broken,
shown with its import error, never reported as usable (nor as merely missing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgekit import registry
from edgekit.doctor import doctor_report, entry_status
from edgekit.registry import Entry

PLUGIN = {
    "raises": "raise RuntimeError('libfoo.so: cannot open shared object file')\n",
    "imports_a_missing_module": "import edgekit_test_no_such_dependency  # noqa: F401\n",
}


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path, with the registry's tables restored after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for table in ("RUNTIMES", "FORMATS"):
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    return tmp_path


@pytest.mark.parametrize("kind", sorted(PLUGIN))
def test_a_plugin_that_fails_to_import_shows_as_broken_with_its_error(kind: str, plugin_path: Path) -> None:
    """Installed the way plugins are (a distribution with an ``edgekit.runtimes`` entry point)."""
    module = f"edgekit_test_plugin_{kind}"
    (plugin_path / f"{module}.py").write_text(PLUGIN[kind])
    dist = plugin_path / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[edgekit.runtimes]\nnpu-plugin-{kind} = {module}:Runtime\n")
    sys.modules.pop(module, None)
    text, _ = doctor_report()
    line = next(x for x in text.splitlines() if f"npu-plugin-{kind}" in x)
    assert line.split()[0] == "broken", line
    want = "libfoo.so: cannot open shared object file" if kind == "raises" else "edgekit_test_no_such_dependency"
    assert want in line and "Error" in line, line


def test_ok_missing_and_broken_entries(plugin_path: Path) -> None:
    (plugin_path / "edgekit_test_good_plugin.py").write_text("class Runtime:\n    formats = ('onnx',)\n")
    (plugin_path / "edgekit_test_bad_plugin.py").write_text("1 / 0\n")
    assert entry_status(Entry("good", "edgekit_test_good_plugin:Runtime", (), None))[0] == "ok"
    state, detail = entry_status(Entry("gone", "x:Y", ("edgekit_test_not_installed",), "npu"))
    assert state == "missing" and "pip install 'edgekit[npu]'" in detail
    state, detail = entry_status(Entry("bad", "edgekit_test_bad_plugin:Runtime", (), None))
    assert state == "broken" and "ZeroDivisionError" in detail
    state, detail = entry_status(Entry("nocls", "edgekit_test_good_plugin:Nope", (), None))
    assert state == "broken" and "Nope" in detail
    registry.register_runtime(Entry("bad", "edgekit_test_bad_plugin:Runtime", (), None))
    text, ok = doctor_report()
    assert ok, "a broken plugin does not make the core unusable"
    assert any(x.split()[:2] == ["broken", "bad"] for x in text.splitlines()), text
