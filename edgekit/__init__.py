"""edgekit: export, quantize, validate and benchmark fine-tuned models for edge devices.

The public API (each a thin function over the stages in :mod:`edgekit.pipeline`)::

    src = edgekit.load_source("examples/digits_model.py:build_model", checkpoint="model.safetensors")
    fp32 = edgekit.export(src, "runs/x/artifacts", calibration="digits")
    int8 = edgekit.quantize(src, fp32, "int8", calibration="digits", out_dir="runs/x/artifacts")
    metrics = edgekit.validate(src, int8, calibration="digits")
    bench = edgekit.benchmark(int8, target="local-cpu", calibration="digits", source=src)
    result = edgekit.run(src, calibration="digits", out_dir="runs/x")

Attributes are imported lazily so that ``import edgekit`` (and the on-device agent) stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "AccuracyBudget",
    "BenchOptions",
    "EdgekitError",
    "RunOptions",
    "__version__",
    "benchmark",
    "export",
    "load_source",
    "quantize",
    "run",
    "validate",
]

_LAZY = {
    "load_source": "edgekit.api",
    "export": "edgekit.api",
    "quantize": "edgekit.api",
    "validate": "edgekit.api",
    "benchmark": "edgekit.api",
    "run": "edgekit.api",
    "RunOptions": "edgekit.pipeline",
    "BenchOptions": "edgekit.bench",
    "AccuracyBudget": "edgekit.results",
    "EdgekitError": "edgekit.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
