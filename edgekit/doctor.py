"""``edgekit doctor``: what is usable on this machine, and what to install for the rest."""

from __future__ import annotations

import importlib
import platform
import sys

from edgekit import registry
from edgekit.errors import EdgekitError, first_line, install_hint
from edgekit.targets import detect_isa, list_targets

# (module, the edgekit[...] extra that brings it or None for a base dependency, what it is for)
OPTIONAL: tuple[tuple[str, str | None, str], ...] = (
    ("torch", "torch", "PyTorch sources"), ("onnxscript", "torch", "PyTorch export"),
    ("transformers", "hf", "Hugging Face sources"), ("optimum.exporters.onnx", "hf", "HF export"),
    ("onnx", None, "ONNX format"), ("onnxruntime", None, "ONNX Runtime"),
    ("skimage", "data", "rebuilding bundled photo sets"), ("PIL", "data", "image folders"))


def _not_installed(exc: ImportError, module: str) -> bool:
    """Whether ``exc`` says ``module`` itself (or its top package) is not installed, as opposed to a module
    that is there but fails to import."""
    name = getattr(exc, "name", None)
    return isinstance(exc, ModuleNotFoundError) and bool(name) and (module == name or module.startswith(f"{name}."))


def entry_status(entry: registry.Entry) -> tuple[str, str]:
    """``("ok" | "missing" | "broken", detail)`` of a registry entry (built-in or plugin). ``missing``: a
    package it needs is not installed (the detail ends with the pip line); ``broken``: something is installed
    but its import fails, or the class is not there (the detail holds the import error)."""
    for module in entry.requires:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if _not_installed(exc, module):
                return "missing", f"{module} not installed; {entry.install_hint()}"
            return "broken", f"{module} fails to import ({type(exc).__name__}: {first_line(exc, 200)})"
        except Exception as exc:  # a package that raises on import is broken, whatever it raises
            return "broken", f"{module} fails to import ({type(exc).__name__}: {first_line(exc, 200)})"
    if entry.toolchain:  # a vendor toolchain in its own virtualenv
        from edgekit import toolchains

        why = toolchains.unusable(toolchains.get(entry.toolchain))
        if why:
            return "missing", f"toolchain {entry.toolchain}: {why}; {entry.install_hint()}"
    module, _, attr = entry.target.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except Exception as exc:
        return "broken", f"{entry.target} fails to import ({type(exc).__name__}: {first_line(exc, 200)})"
    if not callable(obj):
        return "broken", f"{entry.target} is not a class"
    return "ok", entry.target


def doctor_report() -> tuple[str, bool]:
    """A human-readable report and whether the core (ONNX + ONNX Runtime) is usable."""
    lines = [f"edgekit doctor: python {sys.version.split()[0]} on {platform.machine()}, "
             f"ISA: {', '.join(detect_isa()) or 'unknown'}"]
    core_ok = True
    lines.append("packages:")
    for module, extra, purpose in OPTIONAL:
        try:
            mod = importlib.import_module(module)
            version = getattr(mod, "__version__", "")
            lines.append(f"  ok       {module:26} {version:12} {purpose}")
        except Exception as exc:
            if isinstance(exc, ImportError) and _not_installed(exc, module):
                lines.append(f"  missing  {module:26} {'':12} {purpose}: {install_hint(extra, module)}")
            else:
                lines.append(f"  broken   {module:26} {'':12} {purpose}: fails to import "
                             f"({type(exc).__name__}: {first_line(exc, 200)})")
            core_ok = core_ok and module not in ("onnx", "onnxruntime")
    try:
        registry.runtime_names()  # loads the plugins' entry points
    except EdgekitError as exc:
        lines.append(f"plugins: broken: {exc}")
    for title, table in (("runtimes", registry.RUNTIMES), ("formats", registry.FORMATS),
                         ("executors", registry.EXECUTORS), ("estimators", registry.ESTIMATORS)):
        lines.append(f"{title}:")
        for name, entry in sorted(table.items()):
            state, detail = entry_status(entry)
            lines.append(f"  {state:8} {name:26} {detail}")
            core_ok = core_ok and not (state != "ok" and name in ("onnx", "onnxruntime"))
    from edgekit import toolchains

    lines.append(f"toolchains (own virtualenvs under {toolchains.root()}):")
    for name, ok, detail in toolchains.status():
        lines.append(f"  {'ok' if ok else 'missing':8} {name:26} {detail}")
    lines.append("targets:")
    for t in list_targets():
        lines.append(f"  {t.name:30} access={t.access} int8 preset={t.int8_preset}")
    return "\n".join(lines), core_ok
