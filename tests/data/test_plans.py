"""Fitting data to a model: every mismatch of kind, shape, dtype, size or values is found and named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import IMG224, PP224, TEXT, raises

from edgekit.data import ImagePreprocess, TextPreprocess, check_compatible, load_dataset
from edgekit.types import IOSpec, TensorSpec

pytest.importorskip("PIL.Image")


def test_bad_tensor_data(tmp_path: Path) -> None:
    nan = tmp_path / "nan.npz"
    good = np.ones((4, 3, 8, 8), np.float32)
    bad = good.copy()
    bad[3, 0, 0, 0] = np.nan
    np.savez(nan, calibration=bad, eval=good)
    io = IOSpec((TensorSpec("x", ("batch", 3, 8, 8)),))
    ds = load_dataset(nan)
    check_compatible(ds, io, None)                      # first item is fine
    raises(lambda: list(ds.batches("calibration", io, None)), f"{nan}:calibration[3]", "NaN")
    np.savez(nan, calibration=np.full((2, 3, 8, 8), np.inf, np.float32), eval=good)
    raises(lambda: check_compatible(load_dataset(nan), io, None), str(nan), "NaN or inf")

    small = tmp_path / "small.npz"
    np.savez(small, calibration=np.zeros((5, 3, 32, 32), np.float32), eval=np.zeros((5, 3, 32, 32), np.float32))
    raises(lambda: check_compatible(load_dataset(small), IMG224, PP224), str(small), "(N, 3, 224, 224)")
    flat = tmp_path / "flat.npz"
    np.savez(flat, calibration=np.zeros((5, 3 * 224 * 224), np.float32), eval=np.zeros((5, 150528), np.float32))
    raises(lambda: check_compatible(load_dataset(flat), IMG224, PP224), str(flat), "shape does not fit")

    strings = tmp_path / "strings.npz"
    np.savez(strings, calibration=np.array(["a", "b"]), eval=np.array(["c", "d"]))
    raises(lambda: load_dataset(strings), str(strings), "numeric")
    objects = tmp_path / "objects.npz"
    np.savez(objects, calibration=np.array([{"a": 1}, None], dtype=object), eval=np.zeros((2, 3)))
    raises(lambda: load_dataset(objects), str(objects), "numeric")
    ints = tmp_path / "ints.npz"
    np.savez(ints, calibration=np.zeros((2, 3, 8, 8), np.uint8), eval=np.zeros((2, 3, 8, 8), np.uint8))
    raises(lambda: check_compatible(load_dataset(ints), io, None), str(ints), "dtype")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 truncated")
    raises(lambda: load_dataset(junk), str(junk), "cannot read")
    unknown = tmp_path / "data.csv"
    unknown.write_text("1,2\n")
    raises(lambda: load_dataset(unknown), str(unknown), "unsupported")


def test_data_of_the_wrong_kind_for_the_model(tmp_path: Path, text_pp: TextPreprocess) -> None:
    sentences = load_dataset("sentences")
    raises(lambda: check_compatible(sentences, IMG224, PP224), str(sentences.path), "text data")
    photos = load_dataset("photos")
    raises(lambda: check_compatible(photos, TEXT, text_pp), str(photos.path), "image data given for a text model")
    raises(lambda: check_compatible(photos, IMG224, None), str(photos.path), "needs image preprocessing")
    raises(lambda: check_compatible(photos, IMG224, ImagePreprocess(size=(64, 64))), str(photos.path),
           "size does not match")
    tensors = tmp_path / "t.npz"
    np.savez(tensors, calibration=np.zeros((2, 32), np.int64), eval=np.zeros((2, 32), np.int64))
    raises(lambda: check_compatible(load_dataset(tensors), TEXT, None), str(tensors), "single-input")
    raises(lambda: load_dataset("digits").batches("eval", IMG224, PP224, batch_size=8), "digits",
           "batches of exactly 1")
    short = TextPreprocess(tokenizer_dir=text_pp.tokenizer_dir, max_length=16)
    fixed = IOSpec(tuple(TensorSpec(t.name, (1, 32), "int64") for t in TEXT.inputs))
    raises(lambda: check_compatible(sentences, fixed, short), str(sentences.path), "max_length=32")


def test_image_model_shapes_that_images_cannot_feed() -> None:
    photos = load_dataset("photos")
    raises(lambda: check_compatible(photos, IOSpec(()), PP224), str(photos.path), "no inputs")
    flat = IOSpec((TensorSpec("x", (1, 150528)),))
    raises(lambda: check_compatible(photos, flat, PP224), str(photos.path), "float input of rank 4")
    four = IOSpec((TensorSpec("x", (1, 4, 224, 224)),))
    raises(lambda: check_compatible(photos, four, PP224), str(photos.path), "1 or 3 channels")
