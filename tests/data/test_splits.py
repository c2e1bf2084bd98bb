"""The split rules for data without a manifest."""

from __future__ import annotations

from pathlib import Path

from data_helpers import raises

from edgekit.data.splits import SPLITS, by_name_hash, by_parity, check_split


def test_split_names() -> None:
    assert [check_split(s) for s in SPLITS] == ["calibration", "eval", "train"]
    raises(lambda: check_split("holdout"), "split", "calibration, eval, train")


def test_parity_and_name_hash_rules() -> None:
    assert [by_parity(i) for i in range(4)] == ["calibration", "eval", "calibration", "eval"]
    files = [Path(f"d/{i}.png") for i in range(5)]
    split = by_name_hash(reversed(files))
    assert len(split["calibration"]) == 3 and len(split["eval"]) == 2
    assert sorted(split["calibration"] + split["eval"]) == files
    assert by_name_hash(files) == split                  # order of the input does not matter
    assert by_name_hash([Path("other/0.png")])["calibration"] == (Path("other/0.png"),)
