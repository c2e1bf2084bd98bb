"""Helpers the planted quantization tests share: the scikit-learn digits as model inputs, a calibration split of
rows, and the mean cosine of per-item outputs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.quantization.calibration import CalibrationSplit, TuningOptions, split_calibration


def digit_pixels() -> np.ndarray:
    """The 1797 digits' 64 pixels in [-1, 1], float32, one row per image."""
    from sklearn.datasets import load_digits

    return ((load_digits().data.astype(np.float32) / 16.0 - 0.5) / 0.5).astype(np.float32)


def split_rows(x: np.ndarray, name: str = "x") -> CalibrationSplit:
    """A calibration split of the rows of ``x``, each fed as ``{name: row[None]}`` (the default tuning options)."""
    return split_calibration(lambda: ({name: v[None]} for v in x), TuningOptions())


def mean_item_cosine(ref: Sequence[Sequence[np.ndarray]], got: Sequence[Sequence[np.ndarray]]) -> float:
    """The mean over items of the cosine between the first outputs of ``ref`` and ``got`` (one list per item)."""
    a = np.concatenate([r[0].reshape(1, -1) for r in ref])
    b = np.concatenate([g[0].reshape(1, -1) for g in got])
    return float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)))
