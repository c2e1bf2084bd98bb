"""User data without a manifest: image folders, .npz tensors and .txt sentences, split and streamed lazily."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import IMG64, PP64, TEXT, png, raises

from edgekit.data import TextPreprocess, check_compatible, load_dataset
from edgekit.types import IOSpec, TensorSpec

pytest.importorskip("PIL.Image")


def test_image_folder_split_by_name_hash_and_mixed_modes(tmp_path: Path) -> None:
    for i, mode in enumerate(["L", "RGB", "RGBA", "L", "RGB", "RGBA"]):
        png(tmp_path / f"img{i}.png", mode)
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
        png(tmp_path / "calibration" / f"{name}.png")
    png(tmp_path / "eval" / "e.png")
    bad = tmp_path / "calibration" / "z_broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    ds = load_dataset(tmp_path)
    assert ds.count("calibration") == 4 and ds.count("eval") == 1
    check_compatible(ds, IMG64, PP64)                   # reads only the first item, so it passes
    stream = ds.batches("calibration", IMG64, PP64)
    assert [next(stream)["pixels"].shape[0] for _ in range(3)] == [1, 1, 1]
    raises(lambda: next(stream), str(bad), "cannot decode")
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
    np.savez_compressed(single, data, labels=np.arange(7))  # unnamed (arr_0): feeds the one input; 'data' would not
    par = load_dataset(single)
    assert par.count("calibration") == 4 and par.count("eval") == 3 and par.labels("eval").tolist() == [1, 3, 5]
    got = np.concatenate([b["x"] for b in par.batches("eval", io, None)])
    assert (got == data[1::2]).all()


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
    raises(lambda: load_dataset(latin), f"{latin}:1", "UTF-8")
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("1\tgood\nno label here\n")
    raises(lambda: load_dataset(mixed), str(mixed), "some lines have a label")
