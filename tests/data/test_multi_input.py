"""Inputs as data: items are named arrays, so a .npz with one array per model input, or a folder of .npz / .npy
files (one item each), feeds multi-input models with any dtypes (an int64 scalar, a recurrent state, bools);
the data/model check names the input that does not fit; items are streamed, never loaded whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import raises

from edgekit.data import check_compatible, load_dataset
from edgekit.types import IOSpec, TensorSpec

# the shape of Silero VAD: audio with context, a recurrent state whose batch axis is its second, a scalar rate
VAD = IOSpec((TensorSpec("input", ("batch", "dim1"), "float32"), TensorSpec("state", (2, "dim1", 128), "float32"),
              TensorSpec("sr", (), "int64")))
N = 10


def vad_arrays(n: int = N) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"input": rng.normal(size=(n, 576)).astype(np.float32),
            "state": rng.normal(size=(n, 2, 1, 128)).astype(np.float32), "sr": np.full(n, 16000, np.int64)}


def test_a_named_npz_feeds_every_input_with_its_dtype(tmp_path: Path) -> None:
    arrays = vad_arrays()
    split = np.array(["calibration"] * 6 + ["eval"] * 3 + ["train"])
    path = tmp_path / "vad.npz"
    np.savez(path, **arrays, labels=np.arange(N) % 2, split=split)
    ds = load_dataset(path)
    assert ds.kind == "tensor" and (ds.count("calibration"), ds.count("eval"), ds.count("train")) == (6, 3, 1)
    assert ds.labels("eval").tolist() == [0, 1, 0] and "'split' array" in ds.describe()["split_rule"]
    check_compatible(ds, VAD, None)
    assert ds.fixed_batch(VAD, None) == 1  # the state and the scalar are fed whole: one item per call
    feeds = list(ds.batches("eval", VAD, None))
    assert len(feeds) == 3
    first = feeds[0]
    assert first["input"].shape == (1, 576) and first["state"].shape == (2, 1, 128) and first["sr"].shape == ()
    assert first["sr"].dtype == np.int64 and int(first["sr"]) == 16000
    np.testing.assert_array_equal(first["input"][0], arrays["input"][6])
    np.testing.assert_array_equal(first["state"], arrays["state"][6])
    raises(lambda: ds.batches("eval", VAD, None, batch_size=4), str(path), "batches of exactly 1")


def test_without_a_split_array_items_split_by_parity_and_stack_in_batches(tmp_path: Path) -> None:
    io = IOSpec((TensorSpec("x", ("batch", 3)), TensorSpec("flag", ("batch",), "bool"),
                 TensorSpec("ids", ("batch", 4), "int64")))
    path = tmp_path / "p.npz"
    np.savez(path, x=np.arange(24, dtype=np.float32).reshape(8, 3), flag=np.arange(8) % 3 == 0,
             ids=np.arange(32, dtype=np.int32).reshape(8, 4))
    ds = load_dataset(path)
    assert (ds.count("calibration"), ds.count("eval")) == (4, 4) and ds.fixed_batch(io, None) is None
    (batch,) = list(ds.batches("calibration", io, None, batch_size=4))
    assert batch["x"][:, 0].tolist() == [0, 6, 12, 18] and batch["flag"].tolist() == [True, False, False, True]
    assert batch["ids"].dtype == np.int64 and batch["ids"].shape == (4, 4)  # int32 data for an int64 input


def test_the_check_names_the_input_that_does_not_fit(tmp_path: Path) -> None:
    def npz(name: str, **arrays: np.ndarray) -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    a = vad_arrays()
    missing = npz("missing.npz", input=a["input"], state=a["state"])
    raises(lambda: check_compatible(load_dataset(missing), VAD, None), str(missing), "model input 'sr' has no array")
    extra = npz("extra.npz", **a, rate=a["sr"])
    raises(lambda: check_compatible(load_dataset(extra), VAD, None), str(extra), "array 'rate' matches no model input")
    shape = npz("shape.npz", **dict(a, state=a["state"][:, :, :, :64]))
    raises(lambda: check_compatible(load_dataset(shape), VAD, None), f"{shape}:state", "model input 'state'")
    dtype = npz("dtype.npz", **dict(a, sr=a["sr"].astype(np.float32)))
    raises(lambda: check_compatible(load_dataset(dtype), VAD, None), f"{dtype}:sr",
           "dtype does not suit model input 'sr'")
    nan = npz("nan.npz", **dict(a, state=np.where(np.arange(N)[:, None, None, None] == 2, np.nan, a["state"])))
    raises(lambda: list(load_dataset(nan).batches("calibration", VAD, None)), f"{nan}:input,state,sr[2]", "NaN")
    counts = npz("counts.npz", **dict(a, sr=a["sr"][:5]))
    raises(lambda: load_dataset(counts), f"{counts}:sr", "different numbers of items")
    scalar = npz("scalar.npz", **dict(a, sr=np.int64(16000)))
    raises(lambda: load_dataset(scalar), f"{scalar}:sr", "leading item axis")
    bad_split = npz("split.npz", **a, split=np.array(["calibration"] * 9 + ["test"]))
    raises(lambda: load_dataset(bad_split), f"{bad_split}:split[9]", "unknown split name")
    legacy = npz("legacy.npz", calibration=a["input"], eval=a["input"])
    raises(lambda: check_compatible(load_dataset(legacy), VAD, None), str(legacy), "single-input")


def test_a_folder_of_npz_items_with_labels(tmp_path: Path) -> None:
    a = vad_arrays()
    for i in range(N):
        split = "calibration" if i < 6 else "eval"
        (tmp_path / "d" / split).mkdir(parents=True, exist_ok=True)
        np.savez(tmp_path / "d" / split / f"item{i:02d}.npz", input=a["input"][i], state=a["state"][i],
                 sr=a["sr"][i], label=np.int64(i % 2))
    ds = load_dataset(tmp_path / "d")
    assert ds.kind == "tensor" and (ds.count("calibration"), ds.count("eval")) == (6, 4)
    assert ds.labels("eval").tolist() == [0, 1, 0, 1]
    check_compatible(ds, VAD, None)
    feeds = list(ds.batches("eval", VAD, None))
    assert len(feeds) == 4 and feeds[0]["state"].shape == (2, 1, 128) and feeds[0]["sr"].shape == ()
    np.testing.assert_array_equal(feeds[1]["input"][0], a["input"][7])
    np.savez(tmp_path / "d" / "eval" / "item99.npz", input=a["input"][0], state=a["state"][0][:, :, :3], sr=a["sr"][0],
             label=np.int64(0))
    raises(lambda: list(load_dataset(tmp_path / "d").batches("eval", VAD, None)), "item99.npz", "'state'")


def test_a_folder_of_npy_items_for_a_single_input_model(tmp_path: Path) -> None:
    io = IOSpec((TensorSpec("x", ("batch", 3, 8, 8)),))
    for i in range(6):
        np.save(tmp_path / f"x{i}.npy", np.full((3, 8, 8), i, np.float32))
    ds = load_dataset(tmp_path)
    assert ds.kind == "tensor" and ds.count("calibration") + ds.count("eval") == 6 and ds.labels("eval") is None
    (batch,) = list(ds.batches("calibration", io, None, batch_size=3))
    assert batch["x"].shape == (3, 3, 8, 8)
    np.savez(tmp_path / "x9.npz", x=np.zeros((3, 8, 8), np.float32))
    raises(lambda: load_dataset(tmp_path), str(tmp_path), "mixed")


def test_items_stream_from_the_zip_without_loading_an_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "vad.npz"
    np.savez(path, **vad_arrays())
    ds = load_dataset(path)

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("np.load read a whole array")

    monkeypatch.setattr(np, "load", no_load)
    assert len(list(ds.batches("eval", VAD, None))) == N // 2


def test_image_folders_still_feed_a_single_image_input(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.full((20, 20, 3), 40 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    assert load_dataset(tmp_path).kind == "image"


def test_an_image_folder_with_class_subfolders_gives_labels(tmp_path: Path) -> None:
    from PIL import Image

    for split, classes in (("calibration", ("cat", "dog")), ("eval", ("ant", "cat", "dog"))):
        for c in classes:
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(np.full((20, 20, 3), 50 * i, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    ds = load_dataset(tmp_path)
    assert ds.kind == "image" and ds.describe()["label_names"] == ["ant", "cat", "dog"]
    assert ds.labels("eval").tolist() == [0, 0, 1, 1, 2, 2] and ds.labels("calibration").tolist() == [1, 1, 2, 2]
    assert [Path(w).parent.name for w, _ in ds.raw_items("eval")] == ["ant", "ant", "cat", "cat", "dog", "dog"]
