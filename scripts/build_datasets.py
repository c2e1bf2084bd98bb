#!/usr/bin/env python3
"""Regenerate the bundled calibration / evaluation sets: ``python scripts/build_datasets.py calibration/``.

A maintainer's tool, not part of the edgekit package (it needs ``edgekit[data]`` installed). Three sets,
each a folder with a ``manifest.toml``, built deterministically (fixed seeds, fixed zip timestamps):

* ``digits/``    scikit-learn ``load_digits`` (1,797 labelled 8x8 digits) in ``digits.npz``;
* ``photos/``    224x224 RGB crops of real photos that scikit-image / scikit-learn ship, as JPEG files in
  ``calibration/`` and ``eval/``, split by source photo so that no photo feeds both splits;
* ``sentences/`` labelled sentences (0 negative, 1 positive) written for edgekit. Their one copy is
  ``calibration/sentences/sentences.tsv`` (``split<TAB>label<TAB>text``), edited by hand: this script
  reads it, checks it (unique sentences of 5-30 words, both labels balanced in every split) and writes
  it back canonically with its manifest.

Byte-identical output needs the same numpy / Pillow (JPEG encoder) versions; the manifests record them.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import atomic_path, atomic_write_bytes, atomic_write_text
from edgekit.data.readers.text import parse_text
from edgekit.errors import CalibrationError, EdgekitError, require

SEED = 0
BUILDER = "python scripts/build_datasets.py calibration/"
REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO / "calibration" / "sentences" / "sentences.tsv"
PHOTO_SIZE = 224
PHOTOS_PER_SPLIT = 100
JPEG_QUALITY = 92

# ---------------------------------------------------------------------------------------------- TOML


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """A small TOML writer for nested dicts of strings, numbers, booleans and lists of those."""
    plain = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)]
    out = "\n".join(plain) + ("\n" if plain else "")
    for k, v in data.items():
        if isinstance(v, Mapping):
            name = f"{prefix}{k}" if k.replace("_", "").replace("-", "").isalnum() else f"{prefix}{json.dumps(k)}"
            body = to_toml(v, prefix=f"{name}.")
            has_plain = any(not isinstance(x, Mapping) for x in v.values())
            out += (f"\n[{name}]\n" + body.lstrip("\n")) if has_plain or not v else body
    return out


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an ``.npz`` whose bytes depend only on the arrays (fixed zip timestamps)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    return {p: md.version(p) for p in ("numpy", "scikit-learn", "scikit-image", "pillow")}


# -------------------------------------------------------------------------------------------- digits


def build_digits(out: Path) -> dict[str, int]:
    """``digits/digits.npz`` + manifest; returns the split sizes."""
    datasets = require("sklearn.datasets", "data", "building the digits set")
    d = datasets.load_digits()
    images = np.rint(d.images * 255.0 / 16.0).clip(0, 255).astype(np.uint8)
    labels = d.target.astype(np.int64)
    perm = np.random.default_rng(SEED).permutation(len(images))
    train, evaluate = perm[:1200], perm[1200:]
    calibration = train[:200]
    arrays = {"images": images, "labels": labels, "calibration_index": calibration.astype(np.int64),
              "eval_index": evaluate.astype(np.int64), "train_index": train.astype(np.int64)}
    _write_npz(out / "digits.npz", arrays)
    counts = {"calibration": len(calibration), "eval": len(evaluate), "train": len(train)}
    manifest = {
        "schema": 1, "name": "digits", "kind": "image", "format": "npz-images", "file": "digits.npz",
        "description": "Handwritten digits 0-9, 8x8 gray bitmaps (scikit-learn load_digits), labelled.",
        "channels": 1, "image_size": [8, 8], "label_names": [str(i) for i in range(10)],
        "licence": "CC BY 4.0 (UCI Optical Recognition of Handwritten Digits), shipped in scikit-learn "
                   "(BSD-3-Clause)",
        "provenance": {
            "source": "sklearn.datasets.load_digits()",
            "origin": "UCI ML repository, Optical Recognition of Handwritten Digits (E. Alpaydin, C. Kaynak, "
                      "1998): the 1,797 bitmaps of its test set, 32x32 bitmaps counted in 4x4 blocks (0..16)",
            "url": "https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
            "builder": BUILDER, "seed": SEED, "versions": _versions(),
        },
        "preprocessing": {
            "stored": "images uint8 (N,8,8) = round(count * 255 / 16); labels int64",
            "notes": "gray: repeated to 3 channels for an RGB model, resized to the model's size, /255, then "
                     "(x - mean) / std, laid out as NCHW or NHWC",
        },
        "splits": {
            "calibration": {"count": counts["calibration"], "array": "calibration_index",
                            "rule": "train_index[:200]: calibration items are training items, never evaluated on"},
            "eval": {"count": counts["eval"], "array": "eval_index",
                     "rule": "perm[1200:] with perm = np.random.default_rng(0).permutation(1797): held out"},
            "train": {"count": counts["train"], "array": "train_index",
                      "rule": "perm[:1200]: for the demo fine-tune only, never evaluated on"},
        },
    }
    atomic_write_text(out / "manifest.toml", to_toml(manifest))
    return counts


# -------------------------------------------------------------------------------------------- photos


@dataclass(frozen=True)
class _Photo:
    name: str
    group: str                      # photos of one scene share a group and so a split
    split: str
    load: str                       # how the source is read, for the manifest
    credit: str
    licence: str


_SKI = "as shipped in scikit-image"
_PHOTOS: tuple[_Photo, ...] = (
    _Photo("astronaut", "astronaut", "calibration", "skimage.data.astronaut()",
           "NASA, Eileen Collins", "public domain (NASA)"),
    _Photo("coffee", "coffee", "calibration", "skimage.data.coffee()",
           "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    _Photo("motorcycle_left", "motorcycle", "calibration", "skimage.data.stereo_motorcycle()[0]",
           "Middlebury 2014 stereo data set (Scharstein et al.)", f"no licence stated; {_SKI} (BSD-3-Clause)"),
    _Photo("motorcycle_right", "motorcycle", "calibration", "skimage.data.stereo_motorcycle()[1]",
           "Middlebury 2014 stereo data set (Scharstein et al.)", f"no licence stated; {_SKI} (BSD-3-Clause)"),
    _Photo("ihc", "ihc", "calibration", "skimage.data.immunohistochemistry()",
           "Center for Microscopy And Molecular Imaging (CMMI)", "no known copyright restrictions"),
    _Photo("flower", "flower", "calibration", "sklearn.datasets.load_sample_image('flower.jpg')",
           "vultilion on Flickr (https://www.flickr.com/photos/vultilion/6056698931)", "CC BY 2.0"),
    _Photo("camera", "camera", "calibration", "skimage.data.camera()", "Lav Varshney", "CC0"),
    _Photo("gravel", "gravel", "calibration", "skimage.data.gravel()", "CC0Textures Gravel04", "CC0"),
    _Photo("coins", "coins", "calibration", "skimage.data.coins()", "Brooklyn Museum Collection",
           "no known copyright restrictions"),
    _Photo("chelsea", "chelsea", "eval", "skimage.data.chelsea()", "Stefan van der Walt", "CC0"),
    _Photo("rocket", "rocket", "eval", "skimage.data.rocket()", "SpaceX (DSCOVR launch)", "public domain"),
    _Photo("hubble_deep_field", "hubble_deep_field", "eval", "skimage.data.hubble_deep_field()",
           "NASA / HubbleSite", "public domain (NASA)"),
    _Photo("retina", "retina", "eval", "skimage.data.retina()", "Mikael Häggström (Wikimedia Commons)", "CC0"),
    _Photo("china", "china", "eval", "sklearn.datasets.load_sample_image('china.jpg')",
           "danielbuechele on Flickr (https://www.flickr.com/photos/danielbuechele/6061409035)", "CC BY 2.0"),
    _Photo("grass", "grass", "eval", "skimage.data.grass()", "linolafett on DeviantArt", "CC0"),
    _Photo("brick", "brick", "eval", "skimage.data.brick()", "CC0Textures Bricks25", "CC0"),
    _Photo("clock", "clock", "eval", "skimage.data.clock()", "Stefan van der Walt", "public domain"),
)


def _photo_loaders() -> dict[str, Callable[[], np.ndarray]]:
    data = require("skimage.data", "data", "building the photos set")
    datasets = require("sklearn.datasets", "data", "building the photos set")
    loaders: dict[str, Callable[[], np.ndarray]] = {
        "motorcycle_left": lambda: data.stereo_motorcycle()[0],
        "motorcycle_right": lambda: data.stereo_motorcycle()[1],
        "ihc": data.immunohistochemistry,
        "flower": lambda: datasets.load_sample_image("flower.jpg"),
        "china": lambda: datasets.load_sample_image("china.jpg"),
    }
    for p in _PHOTOS:
        if p.name not in loaders:
            loaders[p.name] = getattr(data, p.name)
    return loaders


def _crops(image: np.ndarray, n: int, seed: int) -> list[bytes]:
    """``n`` random square crops (30-100% of the short side, at least 112 px), resized to 224, as JPEG."""
    pil = require("PIL.Image", "data", "building the photos set")
    img = pil.fromarray(image).convert("RGB")          # gray photos become 3 equal channels
    rng = np.random.default_rng(seed)
    w, h = img.size
    short = min(w, h)
    out = []
    for _ in range(n):
        side = int(rng.integers(min(short, max(112, int(0.3 * short))), short + 1))
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((PHOTO_SIZE, PHOTO_SIZE), pil.Resampling.LANCZOS)
        buf = io.BytesIO()
        crop.save(buf, format="JPEG", quality=JPEG_QUALITY)
        out.append(buf.getvalue())
    return out


def build_photos(out: Path) -> dict[str, int]:
    """``photos/{calibration,eval}/*.jpg`` + manifest; returns the split sizes."""
    loaders = _photo_loaders()
    groups: dict[str, set[str]] = {}
    for p in _PHOTOS:
        groups.setdefault(p.group, set()).add(p.split)
    assert all(len(s) == 1 for s in groups.values()), "a photo group spans both splits"
    counts: dict[str, int] = {}
    sources: dict[str, Any] = {}
    for split in ("calibration", "eval"):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        members = [p for p in _PHOTOS if p.split == split]
        per = [PHOTOS_PER_SPLIT // len(members) + (i < PHOTOS_PER_SPLIT % len(members))
               for i in range(len(members))]
        for photo, n in zip(members, per, strict=True):
            image = loaders[photo.name]()
            for k, data in enumerate(_crops(image, n, seed=zlib.crc32(photo.name.encode()) + SEED)):
                atomic_write_bytes(folder / f"{photo.name}_{k:02d}.jpg", data)
            sources[photo.name] = {"split": split, "group": photo.group, "crops": n, "load": photo.load,
                                   "original_size": list(image.shape[:2]), "channels": int(image.ndim == 3) * 2 + 1,
                                   "credit": photo.credit, "licence": photo.licence}
        counts[split] = sum(per)
    manifest = {
        "schema": 1, "name": "photos", "kind": "image", "format": "image-folder",
        "description": "224x224 RGB crops of real photographs (people, animals, objects, scenes, textures, "
                       "microscopy, astronomy); unlabelled: their ImageNet classes are unknown.",
        "channels": 3, "image_size": [PHOTO_SIZE, PHOTO_SIZE], "labelled": False,
        "licence": "per source photo, see [sources]: public domain, CC0, CC BY 2.0 (attribution in 'credit')",
        "provenance": {
            "source": "sample photos shipped offline in scikit-image (skimage/data) and scikit-learn "
                      "(load_sample_images)",
            "builder": BUILDER, "seed": SEED, "versions": _versions(),
        },
        "preprocessing": {
            "stored": f"JPEG quality {JPEG_QUALITY}, RGB; gray photos converted to 3 equal channels; random square "
                      "crops of 30-100% of the short side (at least 112 px) resized to 224x224 with Lanczos",
            "notes": "resized to the model's size, /255, then (x - mean) / std, laid out as NCHW or NHWC",
            "file_names": "<source>_<nn>.jpg",
        },
        "splits": {
            "calibration": {"count": counts["calibration"], "folder": "calibration",
                            "rule": "crops of the calibration source photos only"},
            "eval": {"count": counts["eval"], "folder": "eval",
                     "rule": "crops of the eval source photos only: no source photo feeds both splits "
                             "(the stereo motorcycle pair counts as one photo)"},
        },
        "sources": sources,
    }
    atomic_write_text(out / "manifest.toml", to_toml(manifest))
    return counts


# ----------------------------------------------------------------------------------------- sentences

SPLIT_USE = {"calibration": "", "eval": ", held out", "train": ", for the demo fine-tune only"}


def read_sentences(source: Path) -> list[tuple[str, int, str]]:
    """The ``(split, label, text)`` rows of ``source``, checked: every split present and balanced between
    labels 0 and 1, every sentence unique and 5-30 words long."""
    rows: list[tuple[str, int, str]] = []
    for where, split, label, text in parse_text(source, tsv=True):
        if label is None or label not in (0, 1) or not 5 <= len(text.split()) <= 30 or text != text.strip():
            raise CalibrationError("bad sentence", where=where, got=f"label {label!r}, {text!r}",
                                   expected="label 0 or 1 and a sentence of 5-30 words without outer spaces")
        rows.append((split, label, text))
    texts = [t for _, _, t in rows]
    if len(set(texts)) != len(texts):
        raise CalibrationError("duplicate sentences", where=str(source),
                               got=sorted({t for t in texts if texts.count(t) > 1}), hint="keep one of each")
    for name in SPLIT_USE:
        per_label = [sum(1 for s, lab, _ in rows if s == name and lab == label) for label in (0, 1)]
        if per_label[0] != per_label[1] or not per_label[0]:
            raise CalibrationError(f"split {name!r} is not balanced", where=str(source),
                                   expected="as many negative (0) as positive (1) sentences, at least 1 each",
                                   got=f"{per_label[0]} negative, {per_label[1]} positive")
    return rows


def build_sentences(out: Path, source: Path = SENTENCES) -> dict[str, int]:
    """``sentences/sentences.tsv`` (``split<TAB>label<TAB>text``) from ``source`` + manifest; returns the
    split sizes. ``source`` may be the output file itself: it is then rewritten unchanged if canonical."""
    rows = read_sentences(source)
    text = "split\tlabel\ttext\n" + "".join(f"{s}\t{lab}\t{t}\n" for s, lab, t in rows)
    atomic_write_text(out / "sentences.tsv", text)
    counts = {split: sum(1 for s, _, _ in rows if s == split) for split in SPLIT_USE}
    manifest = {
        "schema": 1, "name": "sentences", "kind": "text", "format": "tsv", "file": "sentences.tsv",
        "description": "Short English sentences (product reviews, service, weather, travel, food, tech, everyday "
                       "life; 5-30 words) with binary sentiment labels, balanced in every split.",
        "label_names": ["negative", "positive"],
        "licence": "CC0 1.0: written for edgekit",
        "provenance": {"source": "written for edgekit; sentences.tsv is their one copy, edited by hand (its split "
                                 "was drawn once, balanced per label, with seed 0)", "builder": BUILDER},
        "preprocessing": {
            "stored": "UTF-8 TSV with a header line: split<TAB>label<TAB>text; label 0 = negative, 1 = positive",
            "notes": "tokenized with the model's own tokenizer, padded / truncated to a fixed length",
        },
        "splits": {split: {"count": n, "rule": f"{n // 2} negative + {n // 2} positive{SPLIT_USE[split]}"}
                   for split, n in counts.items()},
    }
    atomic_write_text(out / "manifest.toml", to_toml(manifest))
    return counts


BUILDERS: dict[str, Callable[[Path], dict[str, int]]] = {
    "digits": build_digits, "photos": build_photos, "sentences": build_sentences,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Build the chosen sets (all by default) under the output folder."""
    parser = argparse.ArgumentParser(prog="python scripts/build_datasets.py", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="output folder, e.g. calibration/")
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append", help="build only this set")
    args = parser.parse_args(argv)
    for name in args.only or list(BUILDERS):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            counts = BUILDERS[name](folder)
        except EdgekitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        print(f"{name}: {counts} -> {folder} ({size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
