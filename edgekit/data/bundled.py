"""The bundled calibration / evaluation sets: where they are and their names."""

from __future__ import annotations

from pathlib import Path

from edgekit.resources import bundled_dir


def builtin_calibration_dir() -> Path:
    """Where the bundled sets are: the wheel's ``edgekit/_data/calibration`` or the repo's ``calibration/``
    (see :func:`edgekit.resources.bundled_dir`)."""
    return bundled_dir("calibration")


def list_datasets() -> list[str]:
    """Names of the bundled sets."""
    root = builtin_calibration_dir()
    return sorted(d.name for d in root.iterdir() if (d / "manifest.toml").is_file()) if root.is_dir() else []
