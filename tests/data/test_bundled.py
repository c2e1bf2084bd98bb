"""The bundled sets: listed, matching their manifests, with the documented disjoint splits."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from data_helpers import IMG224, PP224, TEXT

from edgekit.data import TextPreprocess, builtin_calibration_dir, check_compatible, list_datasets, load_dataset
from edgekit.resources import bundled_dir
from edgekit.types import IOSpec

pytest.importorskip("PIL.Image")


def test_bundled_sets_are_listed_and_match_their_manifests() -> None:
    assert builtin_calibration_dir() == bundled_dir("calibration")
    assert list_datasets() == ["digits", "photos", "sentences"]
    for name in list_datasets():
        ds = load_dataset(name)
        manifest = tomllib.loads((builtin_calibration_dir() / name / "manifest.toml").read_text())
        assert ds.name == name and ds.kind == manifest["kind"]
        for split, info in manifest["splits"].items():
            assert ds.count(split) == info["count"] > 0
        d = ds.describe()
        assert d["licence"] and d["provenance"] and d["counts"]["calibration"] >= 100
        assert d["counts"]["eval"] >= 100


def test_digits_split_is_the_documented_permutation() -> None:
    ds = load_dataset("digits")
    z = np.load(ds.path / "digits.npz")
    perm = np.random.default_rng(0).permutation(1797)
    assert (z["train_index"] == perm[:1200]).all() and (z["eval_index"] == perm[1200:]).all()
    assert (z["calibration_index"] == perm[:200]).all()
    assert not set(z["eval_index"]) & set(z["train_index"])              # never evaluate on training items
    assert (ds.labels("eval") == z["labels"][perm[1200:]]).all()
    assert z["images"].dtype == np.uint8 and z["images"].shape == (1797, 8, 8) and z["images"].max() == 255
    assert np.bincount(ds.labels("eval"), minlength=10).min() > 40       # every digit is in the held-out split


def test_photos_feed_rgb_and_no_source_photo_is_in_both_splits() -> None:
    ds = load_dataset("photos")
    check_compatible(ds, IMG224, PP224)
    x = next(ds.batches("calibration", IMG224, PP224))["x"]
    assert x.shape == (1, 3, 224, 224) and np.isfinite(x).all() and x.std() > 0.1
    assert ds.labels("eval") is None and ds.describe()["labelled"] is False
    sources = tomllib.loads((ds.path / "manifest.toml").read_text())["sources"]
    groups: dict[str, set[str]] = {"calibration": set(), "eval": set()}
    for split in groups:
        files = sorted((ds.path / split).glob("*.jpg"))
        assert len(files) == ds.count(split) == 100
        for f in files:
            source = f.stem.rsplit("_", 1)[0]
            assert sources[source]["split"] == split
            groups[split].add(sources[source]["group"])
    assert not groups["calibration"] & groups["eval"] and len(groups["eval"]) >= 6
    assert {"motorcycle"} <= groups["calibration"]                        # both stereo views on one side


def test_sentences_are_balanced_disjoint_and_tokenized(text_pp: TextPreprocess) -> None:
    ds = load_dataset("sentences")
    texts = {}
    for split in ("calibration", "eval", "train"):
        labels = ds.labels(split)
        assert labels is not None and (np.bincount(labels) == ds.count(split) // 2).all()
        texts[split] = {t for _, t in ds.raw_items(split)}
        assert len(texts[split]) == ds.count(split)
    assert not texts["calibration"] & texts["eval"] and not texts["train"] & texts["eval"]
    check_compatible(ds, TEXT, text_pp)
    feeds = next(ds.batches("eval", TEXT, text_pp, batch_size=4))
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.shape == (4, 32) and v.dtype == np.int64 for v in feeds.values())
    assert (feeds["input_ids"][:, 0] == 101).all() and feeds["attention_mask"].sum() > 4 * 5
    two = IOSpec(TEXT.inputs[:2])
    assert set(next(ds.batches("eval", two, text_pp, limit=1))) == {"input_ids", "attention_mask"}
