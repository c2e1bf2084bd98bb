"""The Dataset record: empty sets and splits, argument checks, and immutability."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import IMG64, PP64, png, raises

from edgekit.data import Dataset, check_compatible, load_dataset
from edgekit.types import IOSpec, TensorSpec

pytest.importorskip("PIL.Image")


def test_empty_sets_and_splits(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    raises(lambda: load_dataset(empty), str(empty), "empty")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    raises(lambda: load_dataset(blank), str(blank), "empty")
    one = tmp_path / "one"
    one.mkdir()
    png(one / "only.png")
    ds = load_dataset(one)
    raises(lambda: check_compatible(ds, IMG64, PP64), str(one), "'eval' split is empty")
    raises(lambda: ds.batches("eval", IMG64, PP64), str(one), "'eval' split is empty")
    only_cal = tmp_path / "cal.npz"
    np.savez(only_cal, calibration=np.zeros((2, 4), np.float32))
    raises(lambda: check_compatible(load_dataset(only_cal), IOSpec((TensorSpec("x", (1, 4)),)), None),
           str(only_cal), "'eval' split is empty")


def test_bad_split_names_and_batch_arguments() -> None:
    ds = load_dataset("digits")
    raises(lambda: ds.count("test"), "split", "calibration, eval, train")  # type: ignore[arg-type]
    raises(lambda: ds.batches("eval", IMG64, PP64, batch_size=0), "digits", "batch_size")
    raises(lambda: ds.batches("eval", IMG64, PP64, limit=0), "digits", "limit")


def test_dataset_is_a_frozen_record() -> None:
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset)
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]
