"""The calibration split: ranges items and a seeded, disjoint tuning subset, recorded in every int8 artifact
and shown in the report's notes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.data import Dataset, load_dataset
from edgekit.errors import ConfigError
from edgekit.pipeline import RunOptions, build_artifact
from edgekit.quantization.calibration import TuningOptions, split_calibration
from edgekit.report import render_markdown
from edgekit.results import AccuracyBudget, RunResult
from edgekit.sources.base import ModelSource
from edgekit.types import Format, Precision

Feeds = dict[str, np.ndarray]


def _items(n: int, size: int = 4) -> Iterator[Feeds]:
    """``n`` feeds whose values are their own index, so every item can be told apart."""
    for i in range(n):
        yield {"x": np.full((1, size), i, np.float32)}


def _ids(feeds: Iterator[Feeds] | tuple[Feeds, ...]) -> list[int]:
    return [int(f["x"][0, 0]) for f in feeds]


def test_tuning_and_ranges_items_are_disjoint_seeded_and_counted() -> None:
    labels = np.arange(200) % 10
    split = split_calibration(lambda: _items(200), total=200, labels=labels)
    ranges, tuning = _ids(split.ranges()), _ids(split.tuning)
    assert len(tuning) == 50 and len(ranges) == 150  # 25% of the split by default
    assert not set(ranges) & set(tuning) and sorted(ranges + tuning) == list(range(200))
    assert tuning == list(split.tuning_indices) and tuning != list(range(50))  # seeded, spread over the split
    assert split.tuning_labels is not None and list(split.tuning_labels) == [labels[i] for i in tuning]
    assert split.describe() == {"calibration_items": 200, "ranges_items": 150, "tuning_items": 50, "tuning_seed": 0,
                                "tuning_labelled": True, "split_of": 200}
    assert split.note().startswith("calibration split (200 items): 150 set the ranges; 50 others (seed 0, labelled)")
    again = split_calibration(lambda: _items(200), total=200)
    assert again.tuning_indices == split.tuning_indices  # the same seed, the same items
    other = split_calibration(lambda: _items(200), TuningOptions(seed=1), total=200)
    assert other.tuning_indices != split.tuning_indices
    counted = split_calibration(lambda: _items(200))  # total counted with one pass when not given
    assert counted.tuning_indices == split.tuning_indices and counted.total == 200


def test_split_sizes_follow_the_options() -> None:
    assert len(split_calibration(lambda: _items(1000)).tuning) == 64  # capped by max_items
    assert len(split_calibration(lambda: _items(1000), TuningOptions(max_items=200, share=0.1)).tuning) == 100
    # at most max_bytes of inputs are held in memory: 4 KiB items, 40 KiB -> 10 items
    split = split_calibration(lambda: _items(1000, size=1024), TuningOptions(max_bytes=40 << 10))
    assert len(split.tuning) == 10
    # too few items for a tuning subset: every item sets the ranges, and the note says nothing was checked
    small = split_calibration(lambda: _items(12))
    assert small.tuning == () and small.ranges_items == 12 and _ids(small.ranges()) == list(range(12))
    assert "no tuning items" in small.note() and "no check" in small.note()
    assert split_calibration(lambda: iter(())).total == 0
    for bad in ({"share": 1.0}, {"margin": -0.1}, {"max_items": -1}):
        with pytest.raises(ConfigError, match=rf"tuning\.{next(iter(bad))}"):
            TuningOptions(**bad)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny(tiny_model: tuple[str, Path]) -> ModelSource:
    spec, ckpt = tiny_model
    return edgekit.load_source(spec, checkpoint=ckpt, task="image-classification")


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_int8_artifact_records_the_split_and_the_report_shows_it(tiny: ModelSource, digits: Dataset,
                                                                 tmp_path: Path) -> None:
    opts = RunOptions(calibration_limit=40, budget=AccuracyBudget(min_cosine=0.95, max_drop_points=2.0))
    fp32 = build_artifact(tiny, Format.ONNX, Precision.FP32, tmp_path, dataset=digits, options=opts,
                          progress=lambda _m: None)
    int8 = build_artifact(tiny, Format.ONNX, Precision.INT8, tmp_path, dataset=digits, canonical=fp32,
                          options=opts, isa_preset="vnni", progress=lambda _m: None)
    s = int8.settings
    assert s["calibration_split"] == {"calibration_items": 40, "ranges_items": 30, "tuning_items": 10,
                                      "tuning_seed": 0, "tuning_labelled": True, "split_of": 40}
    assert s["calibration_items"] == 40 and s["check"]["items"] == 10 and s["check"]["labelled_items"] == 10
    # the thresholds follow the run's budget (with the margin), and both are in the recipe
    assert s["budget"]["aim_min_cosine"] == 0.9625 and s["budget"]["aim_max_drop_points"] == 1.5
    assert int8.recipe["budget"] == {"max_drop_points": 2.0, "min_cosine": 0.95, "governs": "both",
                                     "max_flip_rate": 0.01, "max_relative_error": 0.05, "min_iou": 0.9,
                                     "min_detection_match": 0.9, "max_sequence_error": 0.02}
    assert int8.recipe["tuning"]["margin"] == 0.25
    note = next(n for n in int8.notes if n.startswith("calibration split"))
    assert note.startswith("calibration split (40 items): 30 set the ranges; 10 others (seed 0, labelled)")
    result = RunResult(model={"name": "tiny"}, dataset={"name": "digits"}, budget=opts.budget,
                       artifacts=(fp32, int8), rows=(), recommendations=(), environment={})
    assert f"- {int8.name}: {note}" in render_markdown(result)
    # another budget is another artifact: the recipe changes, so nothing stale is reused
    strict = build_artifact(tiny, Format.ONNX, Precision.INT8, tmp_path / "strict", dataset=digits, canonical=fp32,
                            options=RunOptions(calibration_limit=40), isa_preset="vnni", progress=lambda _m: None)
    assert strict.recipe["budget"]["min_cosine"] == 0.99 and strict.settings["budget"]["aim_min_cosine"] == 0.9925
