"""Shared by the tests of :mod:`edgekit.data`: model input specs, preprocessing, image files, error checks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgekit.data import ImagePreprocess
from edgekit.errors import CalibrationError
from edgekit.types import IOSpec, TensorSpec

IMG64 = IOSpec((TensorSpec("pixels", ("batch", 3, 64, 64)),))
IMG224 = IOSpec((TensorSpec("x", (1, 3, 224, 224)),))
TEXT = IOSpec(tuple(TensorSpec(n, ("batch", "sequence"), "int64")
                    for n in ("input_ids", "attention_mask", "token_type_ids")))
PP64 = ImagePreprocess(size=(64, 64))
PP224 = ImagePreprocess(size=(224, 224))


def raises(fn: Callable[[], object], names: str, match: str | None = None) -> CalibrationError:
    """Run ``fn``; it must raise a one-line CalibrationError that names ``names``."""
    with pytest.raises(CalibrationError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text and names in text, text
    if match:
        assert match in text, text
    return info.value


def png(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 30), value: int = 128) -> Path:
    """Write a ``size`` (W, H) PNG in ``mode`` with a horizontal ramp in its first channel."""
    image = pytest.importorskip("PIL.Image")
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = np.full((size[1], size[0], channels), value, np.uint8)
    arr[..., 0] = np.arange(size[0], dtype=np.uint8)[None, :] * 3
    image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(path)
    return path
