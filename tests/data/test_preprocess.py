"""Image preprocessing applied to real items: normalisation, gray to RGB, one-channel models, layouts."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from data_helpers import IMG64, PP64

from edgekit.data import ImagePreprocess, TextPreprocess, load_dataset
from edgekit.errors import ConfigError
from edgekit.types import IOSpec, TensorSpec

Image = pytest.importorskip("PIL.Image")


def test_digits_feeds_are_normalised_gray_repeated_to_rgb() -> None:
    ds = load_dataset("digits")
    batches = ds.batches("eval", IMG64, PP64, batch_size=32)
    assert inspect.isgenerator(batches)
    first = next(batches)
    x = first["pixels"]
    assert x.shape == (32, 3, 64, 64) and x.dtype == np.float32
    raw = x * np.array(PP64.std, np.float32)[:, None, None] + np.array(PP64.mean, np.float32)[:, None, None]
    assert np.allclose(raw[:, 0], raw[:, 1], atol=1e-5) and np.allclose(raw[:, 1], raw[:, 2], atol=1e-5)
    assert raw.min() >= -1e-5 and raw.max() <= 1 + 1e-5 and raw.max() > 0.9
    sizes = [first["pixels"].shape[0]] + [b["pixels"].shape[0] for b in batches]
    assert sum(sizes) == 597 and sizes[-1] == 597 % 32
    nhwc = IOSpec((TensorSpec("pixels", (1, 64, 64, 3)),))
    y = next(ds.batches("eval", nhwc, ImagePreprocess(size=(64, 64), layout="NHWC")))["pixels"]
    assert y.shape == (1, 64, 64, 3) and np.allclose(y[0], x[0].transpose(1, 2, 0))


def test_one_channel_model_gets_gray_normalised_with_the_first_mean(tmp_path: Path) -> None:
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8), "RGB").save(tmp_path / "a.png")
    Image.fromarray(np.full((30, 40), 200, np.uint8), "L").save(tmp_path / "b.png")
    ds = load_dataset(tmp_path)
    gray = IOSpec((TensorSpec("g", ("batch", 1, 30, 40)),))
    pp = ImagePreprocess(size=(30, 40), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = np.concatenate([b["g"] for s in ("calibration", "eval") for b in ds.batches(s, gray, pp)])
    assert x.shape == (2, 1, 30, 40)
    assert np.allclose(x, (200 / 255 - 0.5) / 0.25, atol=1e-5)


@pytest.mark.parametrize(("kwargs", "where"), [
    ({"size": (0, 64)}, "preprocess.size"), ({"size": (64, 64), "std": (0.5, 0.0, 0.5)}, "preprocess.std"),
    ({"size": (64, 64), "mean": (0.5, 0.5)}, "preprocess.mean"), ({"size": (64, 64), "layout": "CHW"}, "layout"),
    ({"size": (64, 64), "resize": "cubic"}, "preprocess.resize")])
def test_bad_preprocessing_is_a_config_error_naming_the_field(kwargs: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        ImagePreprocess(**kwargs)  # type: ignore[arg-type]


def test_preprocessing_records_itself() -> None:
    assert ImagePreprocess(size=(8, 8), mean=(0.5,), std=(0.5,)).to_dict() == {
        "kind": "image", "size": [8, 8], "mean": [0.5], "std": [0.5], "layout": "NCHW", "resize": "bilinear"}
    assert TextPreprocess(tokenizer_dir="tok", max_length=16).to_dict() == {  # type: ignore[arg-type]
        "kind": "text", "tokenizer_dir": "tok", "max_length": 16}
    with pytest.raises(ConfigError, match="max_length"):
        TextPreprocess(tokenizer_dir=Path("tok"), max_length=1)
