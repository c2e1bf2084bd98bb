"""edgekit: export, quantize, validate and benchmark fine-tuned models for edge devices.

The public API (each a thin function over the stages in :mod:`edgekit.pipeline`)::

    src = edgekit.load_source("examples/digits_model.py:build_model", checkpoint="model.safetensors")
    fp32 = edgekit.export(src, "runs/x/artifacts", calibration="digits")
    int8 = edgekit.quantize(src, fp32, "int8", calibration="digits", out_dir="runs/x/artifacts")
    metrics = edgekit.validate(src, int8, calibration="digits")
    bench = edgekit.benchmark(int8, target="local-cpu", calibration="digits", source=src)
    result = edgekit.run(src, calibration="digits", out_dir="runs/x")
    code = edgekit.exit_status(result)  # 0 / 3 / 4, as `edgekit run` exits (edgekit.exit_codes)
    diff = edgekit.compare_runs("runs/a", "runs/x", fail_on="latency=+5%,accuracy=-0.5")  # diff.regressed

Attributes are imported lazily so that ``import edgekit`` (and the on-device agent) stays light.
"""

from __future__ import annotations

import sys as _sys

#: The oldest Python edgekit (and its on-device agent) runs on: the one it is tested on, here and on the emulated
#: aarch64 board (Debian bookworm). An older board Python gets this one line, not an error deep in an import.
MIN_PYTHON = (3, 11)
if _sys.version_info < MIN_PYTHON:
    raise ImportError(f"edgekit needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}; this is "
                      f"{_sys.version.split()[0]} at {_sys.executable} (on a board: install a newer python3, or "
                      "point --remote-python at one)")

from typing import TYPE_CHECKING  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AccuracyBudget",
    "Artifact",
    "BenchOptions",
    "BenchResult",
    "Comparison",
    "EdgekitError",
    "Metrics",
    "ModelSource",
    "RunOptions",
    "RunResult",
    "Target",
    "__version__",
    "benchmark",
    "check_calibration",
    "compare_runs",
    "exit_status",
    "export",
    "load_source",
    "quantize",
    "run",
    "validate",
]

if TYPE_CHECKING:  # the real names for type checkers; at run time they are imported on first use
    from edgekit.api import benchmark, export, load_source, quantize, run, validate
    from edgekit.artifacts import Artifact
    from edgekit.bench import BenchOptions
    from edgekit.calibration_check import check_calibration
    from edgekit.compare import compare_runs
    from edgekit.comparison import Comparison
    from edgekit.errors import EdgekitError
    from edgekit.outcome import exit_status
    from edgekit.pipeline import RunOptions
    from edgekit.results import AccuracyBudget, BenchResult, Metrics, RunResult
    from edgekit.sources.base import ModelSource
    from edgekit.targets import Target

_LAZY = {
    "load_source": "edgekit.api",
    "export": "edgekit.api",
    "quantize": "edgekit.api",
    "validate": "edgekit.api",
    "benchmark": "edgekit.api",
    "run": "edgekit.api",
    "Artifact": "edgekit.artifacts",
    "RunOptions": "edgekit.pipeline",
    "BenchOptions": "edgekit.bench",
    "AccuracyBudget": "edgekit.results",
    "BenchResult": "edgekit.results",
    "Metrics": "edgekit.results",
    "RunResult": "edgekit.results",
    "ModelSource": "edgekit.sources.base",
    "Target": "edgekit.targets",
    "EdgekitError": "edgekit.errors",
    "compare_runs": "edgekit.compare",
    "check_calibration": "edgekit.calibration_check",
    "Comparison": "edgekit.comparison",
    "exit_status": "edgekit.outcome",
}


def _quiet() -> None:
    from edgekit.noise import quiet_library_noise

    quiet_library_noise()  # torchao's "Failed to load ..._C_*.so" and torch's _pytree warnings: see edgekit.noise


_quiet()


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
