"""``edgekit doctor``: what is usable on this machine, and what to install for the rest."""

from __future__ import annotations

import importlib
import platform
import sys

from edgekit.registry import runtime_status
from edgekit.targets import detect_isa, list_targets

OPTIONAL = (("torch", "torch", "PyTorch sources"), ("onnxscript", "torch", "PyTorch export"),
            ("transformers", "hf", "Hugging Face sources"), ("optimum.exporters.onnx", "hf", "HF export"),
            ("onnx", "onnx", "ONNX format"), ("onnxruntime", "onnx", "ONNX Runtime"),
            ("skimage", "data", "rebuilding bundled photo sets"), ("PIL", "data", "image folders"))


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
        except ImportError:
            lines.append(f"  missing  {module:26} {'':12} {purpose}: pip install 'edgekit[{extra}]'")
            core_ok = core_ok and module not in ("onnx", "onnxruntime")
    lines.append("runtimes:")
    for name, ok, detail in runtime_status():
        lines.append(f"  {'ok' if ok else 'missing':8} {name:26} {detail}")
    lines.append("targets:")
    for t in list_targets():
        lines.append(f"  {t.name:30} access={t.access} int8 preset={t.int8_preset}")
    return "\n".join(lines), core_ok
