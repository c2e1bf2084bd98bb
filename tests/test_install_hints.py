"""Install hints name extras that exist: every ``edgekit[...]`` the package (or the README) can print is
an extra of pyproject.toml, and a base dependency is hinted as itself, never as a made-up extra."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from edgekit import doctor, registry
from edgekit.errors import MissingDependencyError, install_hint, require

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
EXTRAS = set(PROJECT["optional-dependencies"])
BASE = {re.split(r"[<>=!~; \[]", d, maxsplit=1)[0].lower() for d in PROJECT["dependencies"]}
PIP_NAME = {"PIL": "pillow"}  # import name -> pip name where they differ
LITERAL = re.compile(r"edgekit\[([A-Za-z0-9][\w, -]*)\]")  # names only: not the ``[...]`` of prose
HINT_CALLS = {"require": 1, "install_hint": 0}  # function -> position of its ``extra`` argument


def _sources() -> list[Path]:
    return sorted((REPO / "edgekit").rglob("*.py"))


def _literal_extras(path: Path) -> list[tuple[str, str]]:
    """``(extra, file:line)`` for every literal ``edgekit[a,b]`` in ``path`` (templates like ``{extra}`` aside)."""
    text = path.read_text()
    out = []
    for m in LITERAL.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out += [(name.strip(), f"{path.relative_to(REPO)}:{line}") for name in m.group(1).split(",")]
    return out


def _hint_call_extras(path: Path) -> list[tuple[str | None, str, str | None]]:
    """``(extra, file:line, module)`` for every ``require``/``install_hint`` call whose extra is a literal."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name not in HINT_CALLS:
            continue
        pos = HINT_CALLS[name]
        keyword = next((k.value for k in node.keywords if k.arg == "extra"), None)
        arg = node.args[pos] if len(node.args) > pos else keyword
        module = node.args[0] if name == "require" and node.args else None
        if isinstance(arg, ast.Constant) and (arg.value is None or isinstance(arg.value, str)):
            mod = module.value if isinstance(module, ast.Constant) and isinstance(module.value, str) else None
            out.append((arg.value, f"{path.relative_to(REPO)}:{node.lineno}", mod))
    return out


def test_every_hinted_extra_exists() -> None:
    """Literal ``edgekit[...]`` strings, ``require``/``install_hint`` arguments, the registry's entries and the
    doctor's table: each names an extra of pyproject.toml (or None for a base dependency)."""
    found: list[tuple[str, str]] = []
    for path in [*_sources(), REPO / "README.md"]:
        found += _literal_extras(path)
    for path in _sources():
        found += [(extra, where) for extra, where, _ in _hint_call_extras(path) if extra is not None]
    tables = [t for t in vars(registry).values()  # RUNTIMES, FORMATS and every other kind's table
              if isinstance(t, dict) and t and all(isinstance(e, registry.Entry) for e in t.values())]
    assert {id(registry.RUNTIMES), id(registry.FORMATS)} <= {id(t) for t in tables}
    for table in tables:
        found += [(e.extra, f"registry entry {e.name}") for e in table.values() if e.extra is not None]
    found += [(extra, f"doctor.OPTIONAL {module}") for module, extra, _ in doctor.OPTIONAL if extra is not None]
    for deps in PROJECT["optional-dependencies"].values():  # self-references such as edgekit[tflite]
        found += [(name.strip(), "pyproject.toml") for d in deps for m in [LITERAL.search(d)] if m
                  for name in m.group(1).split(",")]
    assert len(found) > 20, "the scan found almost nothing: has the hint code moved?"
    unknown = sorted({(extra, where) for extra, where in found if extra not in EXTRAS})
    assert not unknown, f"hints naming extras that pyproject.toml does not define ({sorted(EXTRAS)}): {unknown}"


def test_hints_are_built_in_one_place() -> None:
    """Only :func:`edgekit.errors.install_hint` formats ``edgekit[{...}]``; everything else calls it."""
    template = re.compile(r"edgekit\[\{")
    offenders = [str(p.relative_to(REPO)) for p in _sources()
                 if p.name != "errors.py" and template.search(p.read_text())]
    assert not offenders


def test_base_dependencies_are_hinted_as_themselves() -> None:
    """``require(module, None, ...)`` is only for base dependencies, and their hint is the pip line of the package."""
    for path in _sources():
        for extra, where, module in _hint_call_extras(path):
            if extra is None and module is not None:
                top = module.split(".")[0]
                assert PIP_NAME.get(top, top).lower() in BASE, f"{where}: {module} is not a base dependency"
    assert install_hint(None, "onnxruntime.quantization", "onnxruntime").startswith("pip install onnxruntime (")
    assert install_hint("openvino") == "pip install 'edgekit[openvino]'"
    assert install_hint(None, "PIL.Image").startswith("pip install pillow (")
    with pytest.raises(MissingDependencyError, match=r"hint: pip install edgekit_no_such_module \(a base"):
        require("edgekit_no_such_module.sub", None, "testing")


def test_all_extra_brings_every_extra() -> None:
    """``edgekit[all]`` lists every extra but the developer tools."""
    (all_req,) = PROJECT["optional-dependencies"]["all"]
    m = LITERAL.search(all_req)
    assert m and set(m.group(1).split(",")) == EXTRAS - {"all", "dev"}


def test_missing_base_runtime_hint_in_a_real_process() -> None:
    """With onnxruntime unimportable, asking for its runtime says to install onnxruntime, not an extra."""
    code = ("import sys, json; sys.modules['onnxruntime'] = None\n"
            "from edgekit.errors import MissingDependencyError\nfrom edgekit.registry import get_runtime\n"
            "try:\n    get_runtime('onnxruntime')\nexcept MissingDependencyError as e:\n    print(json.dumps(e.hint))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    hint = json.loads(proc.stdout)
    assert hint.startswith("pip install onnxruntime (a base dependency") and "edgekit[" not in hint
