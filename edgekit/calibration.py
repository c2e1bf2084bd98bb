"""Calibration and evaluation data: load a set, check that it fits a model, stream preprocessed feeds.

:func:`load_dataset` accepts

* a bundled name (``digits``, ``photos``, ``sentences``) or any folder with a ``manifest.toml``;
* a folder of images (jpg/png/bmp) without a manifest: its ``calibration/`` and ``eval/`` (and ``train/``)
  subfolders if it has them, else its files sorted by a hash of their names, first half calibration;
* a ``.npz`` of tensors fed as-is: arrays ``calibration`` and ``eval`` (optionally ``train`` and
  ``<split>_labels``), or one array (optionally ``labels``) split by index parity, even = calibration;
* a ``.txt`` file: one sentence per line, or ``label<TAB>text`` lines; even lines calibration, odd eval.

:meth:`Dataset.batches` streams: it reads one batch of items at a time and yields feeds keyed by the
model's input names. :func:`check_compatible` finds every mismatch between data and model up front.
Every problem is a one-line :class:`~edgekit.errors.CalibrationError` naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import math
import re
import tomllib
import zipfile
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Literal, Protocol, cast

import numpy as np

from edgekit.errors import CalibrationError, ConfigError, require
from edgekit.types import IOSpec, TensorSpec

Split = Literal["calibration", "eval", "train"]
SPLITS: tuple[Split, ...] = ("calibration", "eval", "train")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
RESAMPLE = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
FORMATS = {"npz-images": "image", "image-folder": "image", "tsv": "text", "npz": "tensor"}
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class ImagePreprocess:
    """How raw images become model input: resize to ``size`` (H, W), x/255, (x - mean) / std, ``layout``.

    Gray images are repeated to 3 channels for an RGB model; a 1-channel model gets gray images
    normalised with ``mean[0]`` / ``std[0]``.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    layout: str = "NCHW"
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        size = tuple(self.size)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in size):
            raise ConfigError("image size must be two positive integers (height, width)",
                              where="preprocess.size", got=self.size)
        for key in ("mean", "std"):
            vals = tuple(float(v) for v in getattr(self, key))
            if len(vals) not in (1, 3) or (key == "std" and any(v <= 0 for v in vals)):
                raise ConfigError(f"{key} must hold 1 or 3 numbers" + (", all > 0" if key == "std" else ""),
                                  where=f"preprocess.{key}", got=getattr(self, key))
            object.__setattr__(self, key, vals)
        object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.layout not in ("NCHW", "NHWC"):
            raise ConfigError("unknown layout", where="preprocess.layout", expected="NCHW or NHWC", got=self.layout)
        if self.resize not in RESAMPLE:
            raise ConfigError("unknown resize filter", where="preprocess.resize", expected=", ".join(RESAMPLE),
                              got=self.resize)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "image", "size": list(self.size), "mean": list(self.mean), "std": list(self.std),
                "layout": self.layout, "resize": self.resize}


@dataclass(frozen=True)
class TextPreprocess:
    """Tokenize with the Hugging Face tokenizer in ``tokenizer_dir``, padded / truncated to ``max_length``."""

    tokenizer_dir: Path
    max_length: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokenizer_dir", Path(self.tokenizer_dir))
        if not isinstance(self.max_length, int) or self.max_length < 2:
            raise ConfigError("max_length must be an integer >= 2", where="preprocess.max_length",
                              got=self.max_length)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "text", "tokenizer_dir": str(self.tokenizer_dir), "max_length": self.max_length}


Preprocess = ImagePreprocess | TextPreprocess | None
"""``None``: tensor data fed as-is."""


# ------------------------------------------------------------------------------------------ readers

Item = tuple[str, Any]
"""(where, raw item): a file or ``file[index]`` / ``file:line`` for errors, and an image path or uint8
array, a string, or a tensor."""


class _Reader(Protocol):
    def count(self, split: Split) -> int: ...
    def labels(self, split: Split) -> np.ndarray | None: ...
    def items(self, split: Split) -> Generator[Item, None, None]: ...


def _check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    if labels.dtype.kind not in "iub" or labels.ndim != 1 or len(labels) != n:
        raise CalibrationError("labels must be one integer per item", where=where,
                               expected=f"{n} integers (shape ({n},))", got=f"{labels.dtype} {labels.shape}")
    return labels.astype(np.int64)


@dataclass(frozen=True)
class _ImageArrays:
    """The bundled npz-images form: ``images`` (N,H,W[,C]) uint8, ``labels``, ``<split>_index``."""

    file: Path
    index: Mapping[str, np.ndarray]
    all_labels: np.ndarray | None

    @staticmethod
    def open(file: Path) -> _ImageArrays:
        with _open_npz(file) as z:
            keys = set(z.files)
            if "images" not in keys:
                raise CalibrationError("no 'images' array", where=str(file), expected="arrays images, "
                                       "<split>_index", got=sorted(keys))
            n, dtype = z["images"].shape[0], z["images"].dtype
            if dtype != np.uint8:
                raise CalibrationError("images must be uint8", where=str(file), got=str(dtype))
            index: dict[str, np.ndarray] = {s: z[f"{s}_index"].astype(np.int64) for s in SPLITS if f"{s}_index" in keys}
            labels = _check_labels(z["labels"], n, f"{file}:labels") if "labels" in keys else None
        for s, idx in index.items():
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
                raise CalibrationError(f"{s}_index is not a list of item numbers", where=str(file),
                                       expected=f"1-D integers in [0, {n})", got=idx.shape)
        return _ImageArrays(file, index, labels)

    def count(self, split: Split) -> int:
        return len(self.index.get(split, ()))

    def labels(self, split: Split) -> np.ndarray | None:
        if self.all_labels is None:
            return None
        return self.all_labels[self.index[split]] if split in self.index else np.zeros(0, np.int64)

    def items(self, split: Split) -> Generator[Item, None, None]:
        with _open_npz(self.file) as z:
            images = z["images"]
        for i in self.index.get(split, ()):
            yield f"{self.file}[{int(i)}]", images[i]


@dataclass(frozen=True)
class _ImageFiles:
    files: Mapping[str, tuple[Path, ...]]

    def count(self, split: Split) -> int:
        return len(self.files.get(split, ()))

    def labels(self, split: Split) -> np.ndarray | None:
        return None

    def items(self, split: Split) -> Generator[Item, None, None]:
        for f in self.files.get(split, ()):
            yield str(f), f


def _image_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _folder_reader(folder: Path) -> tuple[_ImageFiles, str]:
    subs = {s: folder / s for s in SPLITS if (folder / s).is_dir()}
    if "calibration" in subs or "eval" in subs:
        return _ImageFiles({s: tuple(_image_files(p)) for s, p in subs.items()}), "the calibration/, eval/ subfolders"
    files = sorted(_image_files(folder), key=lambda f: (hashlib.sha256(f.name.encode()).hexdigest(), f.name))
    half = (len(files) + 1) // 2
    rule = "files sorted by sha256 of their name: first half calibration, second half eval"
    return _ImageFiles({"calibration": tuple(files[:half]), "eval": tuple(files[half:])}), rule


_LABELLED = re.compile(r"^(-?\d+)\t(.*)$")


@dataclass(frozen=True)
class _TextLines:
    """``.txt`` (split by line parity, optional ``label<TAB>``) or the bundled ``split<TAB>label<TAB>text`` TSV."""

    file: Path
    tsv: bool
    counts: Mapping[str, int]
    labelled: bool

    @staticmethod
    def open(file: Path, tsv: bool) -> _TextLines:
        counts: dict[str, int] = {}
        kinds = set()
        for _, split, label, _text in _parse_text(file, tsv):
            counts[split] = counts.get(split, 0) + 1
            kinds.add(label is not None)
        if len(kinds) > 1:
            raise CalibrationError("some lines have a label and some do not", where=str(file),
                                   expected="every line 'label<TAB>text', or none", hint="label every line")
        return _TextLines(file, tsv, counts, kinds == {True})

    def count(self, split: Split) -> int:
        return self.counts.get(split, 0)

    def labels(self, split: Split) -> np.ndarray | None:
        if not self.labelled:
            return None
        return np.array([lab for _, s, lab, _ in _parse_text(self.file, self.tsv) if s == split], dtype=np.int64)

    def items(self, split: Split) -> Generator[Item, None, None]:
        for where, s, _, text in _parse_text(self.file, self.tsv):
            if s == split:
                yield where, text


def _parse_text(file: Path, tsv: bool) -> Iterator[tuple[str, Split, int | None, str]]:
    try:
        fh = file.open(encoding="utf-8-sig")
    except OSError as exc:
        raise CalibrationError(f"cannot read the file ({exc.strerror})", where=str(file)) from exc
    with fh:
        yield from _text_rows(file, fh, tsv)


def _text_rows(file: Path, lines: Iterator[str], tsv: bool) -> Iterator[tuple[str, Split, int | None, str]]:
    n, lineno = 0, 0
    try:
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip("\r\n")
            where = f"{file}:{lineno}"
            if not line.strip() or (tsv and lineno == 1 and line.startswith("split\t")):
                continue
            if tsv:
                parts = line.split("\t")
                if len(parts) != 3 or parts[0] not in SPLITS or not re.fullmatch(r"-?\d*", parts[1]):
                    raise CalibrationError("bad line", where=where, expected="split<TAB>label<TAB>text with split "
                                           "one of calibration, eval, train", got=line)
                yield where, parts[0], int(parts[1]) if parts[1] else None, parts[2]
                continue
            m = _LABELLED.match(line)
            if m is None and "\t" in line:
                raise CalibrationError("bad line", where=where, expected="text, or an integer label<TAB>text",
                                       got=line)
            split: Split = "calibration" if n % 2 == 0 else "eval"
            n += 1
            yield (where, split, int(m.group(1)), m.group(2)) if m else (where, split, None, line)
    except UnicodeDecodeError as exc:
        raise CalibrationError("the file is not UTF-8 text", where=f"{file}:{lineno + 1}", got=str(exc),
                               hint="save it as UTF-8") from exc


@dataclass(frozen=True)
class _NpyMember:
    name: str                       # member in the zip, e.g. "calibration.npy"
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool


@dataclass(frozen=True)
class _NpzTensors:
    """Tensors streamed item by item straight from the ``.npz`` (no full load); ``step`` 2 = parity split."""

    file: Path
    members: Mapping[str, tuple[_NpyMember, int, int]]     # split -> (array, start, step)
    label_arrays: Mapping[str, np.ndarray]

    @staticmethod
    def open(file: Path) -> _NpzTensors:
        headers = _npz_headers(file)
        keys = set(headers)
        data_keys = sorted(k for k in keys if k != "labels" and not k.endswith("_labels"))
        members: dict[str, tuple[_NpyMember, int, int]] = {}
        if keys & set(SPLITS):
            for s in SPLITS:
                if s in keys:
                    members[s] = (headers[s], 0, 1)
        elif len(data_keys) == 1:
            members = {"calibration": (headers[data_keys[0]], 0, 2), "eval": (headers[data_keys[0]], 1, 2)}
        else:
            raise CalibrationError("cannot tell which arrays are which split", where=str(file),
                                   expected="arrays 'calibration' and 'eval', or a single array", got=sorted(keys),
                                   hint="np.savez(path, calibration=..., eval=...)")
        for part, (m, _, _) in members.items():
            if m.dtype.kind not in "biuf" or m.dtype.hasobject:
                raise CalibrationError("tensor dtype must be numeric", where=f"{file}:{m.name[:-4]}",
                                       expected="a bool, integer or float array", got=str(m.dtype),
                                       hint="store numbers, e.g. float32 preprocessed inputs")
            if len(m.shape) == 0:
                raise CalibrationError("tensor data must have a leading item axis", where=f"{file}:{part}",
                                       expected="shape (N, ...)", got="a scalar")
        labels: dict[str, np.ndarray] = {}
        with _open_npz(file) as z:
            for part, (m, start, step) in members.items():
                key = "labels" if step == 2 else f"{part}_labels"
                if key in z.files:
                    arr = z[key][start::step] if step == 2 else z[key]
                    labels[part] = _check_labels(arr, len(range(start, m.shape[0], step)), f"{file}:{key}")
        return _NpzTensors(file, members, labels)

    def item_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        return {s: (m.shape[1:], m.dtype) for s, (m, _, _) in self.members.items()}

    def count(self, split: Split) -> int:
        if split not in self.members:
            return 0
        m, start, step = self.members[split]
        return len(range(start, m.shape[0], step))

    def labels(self, split: Split) -> np.ndarray | None:
        if not self.label_arrays:
            return None
        return self.label_arrays.get(split, np.zeros(0, np.int64))

    def items(self, split: Split) -> Generator[Item, None, None]:
        if split not in self.members:
            return
        m, start, step = self.members[split]
        item_shape = m.shape[1:]
        nbytes = m.dtype.itemsize * math.prod(item_shape)
        with zipfile.ZipFile(self.file) as zf, zf.open(m.name) as fh:
            if m.fortran and len(item_shape) > 0:          # rows are not contiguous: load the array
                arr = np.load(fh, allow_pickle=False)
                for i in range(start, m.shape[0], step):
                    yield f"{self.file}:{m.name[:-4]}[{i}]", arr[i]
                return
            _skip_npy_header(fh)
            for i in range(m.shape[0]):
                buf = fh.read(nbytes)
                if len(buf) != nbytes:
                    raise CalibrationError("array data is truncated", where=f"{self.file}:{m.name[:-4]}[{i}]")
                if i % step == start:
                    yield f"{self.file}:{m.name[:-4]}[{i}]", np.frombuffer(buf, m.dtype).reshape(item_shape)


def _open_npz(file: Path) -> Any:
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"cannot read the .npz file ({exc})", where=str(file),
                               hint="write it with numpy.savez") from exc


def _skip_npy_header(fh: IO[bytes]) -> tuple[Any, ...]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return cast(tuple[Any, ...], np.lib.format.read_array_header_1_0(fh))
    return cast(tuple[Any, ...], np.lib.format.read_array_header_2_0(fh))


def _npz_headers(file: Path) -> dict[str, _NpyMember]:
    out = {}
    try:
        with zipfile.ZipFile(file) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as fh:
                    shape, fortran, dtype = _skip_npy_header(fh)
                out[name[:-4]] = _NpyMember(name, tuple(shape), np.dtype(dtype), bool(fortran))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"cannot read the .npz file ({exc})", where=str(file),
                               hint="write it with numpy.savez") from exc
    if not out:
        raise CalibrationError("the .npz file holds no arrays", where=str(file),
                               expected="arrays 'calibration' and 'eval'")
    return out


# ------------------------------------------------------------------------------------------ dataset


@dataclass(frozen=True)
class Dataset:
    """A calibration / evaluation set. ``kind`` is ``image``, ``text`` or ``tensor``."""

    name: str
    kind: str
    path: Path
    manifest: Mapping[str, Any]
    _reader: _Reader = field(repr=False, compare=False)

    def count(self, split: Split) -> int:
        """Number of items in ``split`` (0 if the set has no such split)."""
        return self._reader.count(_split(split))

    def labels(self, split: Split) -> np.ndarray | None:
        """Integer labels of ``split`` in item order, or ``None`` for an unlabelled set."""
        return self._reader.labels(_split(split))

    def batches(self, split: Split, io: IOSpec, preprocess: Preprocess, *, batch_size: int = 1,
                limit: int | None = None) -> Iterator[Feeds]:
        """Stream feeds for ``io``'s inputs, ``batch_size`` items at a time, over the first ``limit`` items.

        Checks the model fit now; reads items only as the generator is consumed. A model with a fixed
        batch size B > 1 gets only full batches.
        """
        split = _split(split)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CalibrationError("batch_size must be a positive integer", where=str(self.path), got=batch_size)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CalibrationError("limit must be a positive integer or None", where=str(self.path), got=limit)
        plan = _plan(self, io, preprocess)
        if plan.fixed_batch is not None and plan.fixed_batch != batch_size:
            raise CalibrationError(f"the model takes batches of exactly {plan.fixed_batch}", where=str(self.path),
                                   got=f"batch_size={batch_size}", hint=f"use batch_size={plan.fixed_batch}")
        self._require_items(split)
        n = self.count(split) if limit is None else min(limit, self.count(split))
        return _stream(self._reader, split, plan, batch_size, n)

    def raw_items(self, split: Split, limit: int | None = None) -> Iterator[tuple[str, Any]]:
        """Unpreprocessed items as ``(where, item)``: an image path or uint8 array, a sentence, or a tensor."""
        items = self._reader.items(_split(split))
        return items if limit is None else itertools.islice(items, limit)

    def describe(self) -> dict[str, Any]:
        """What the report says about the set: name, kind, path, counts, provenance, licence, split rule."""
        m = self.manifest
        return {
            "name": self.name, "kind": self.kind, "path": str(self.path),
            "counts": {s: self.count(s) for s in SPLITS if self.count(s) or s != "train"},
            "labelled": self.labels("eval") is not None,
            "label_names": list(m.get("label_names", [])) or None,
            "description": m.get("description"), "provenance": m.get("provenance"),
            "licence": m.get("licence"),
            "split_rule": m.get("split_rule") or {s: v.get("rule") for s, v in dict(m.get("splits", {})).items()
                                                  if isinstance(v, Mapping)} or None,
        }

    def _require_items(self, split: Split) -> None:
        if self.count(split) == 0:
            raise CalibrationError(f"the {split!r} split is empty", where=str(self.path),
                                   expected="at least 1 item", got=0,
                                   hint="add items to it" if self.kind != "tensor" else
                                   "give the .npz both 'calibration' and 'eval' arrays")


def _split(split: str) -> Split:
    if split not in SPLITS:
        raise CalibrationError("unknown split", where="split", expected=", ".join(SPLITS), got=split)
    return split


def _stream(reader: _Reader, split: Split, plan: _Plan, batch_size: int, n: int) -> Iterator[Feeds]:
    buf: list[Item] = []
    with contextlib.closing(reader.items(split)) as items:
        for i, item in enumerate(items):
            if i >= n:
                break
            buf.append(item)
            if len(buf) == batch_size:
                yield plan.convert(buf)
                buf = []
    if buf and plan.fixed_batch is None:
        yield plan.convert(buf)


def check_compatible(ds: Dataset, io: IOSpec, preprocess: Preprocess,
                     splits: Sequence[Split] = ("calibration", "eval")) -> None:
    """Raise :class:`CalibrationError` now if ``ds`` cannot feed the model; reads at most one item."""
    plan = _plan(ds, io, preprocess)
    for s in splits:
        ds._require_items(_split(s))
    with contextlib.closing(ds._reader.items(splits[0])) as items:
        first = next(items, None)
    if first is not None:
        plan.convert([first])


# -------------------------------------------------------------------------------- model-side plans


@dataclass(frozen=True)
class _Plan:
    convert: Callable[[list[Item]], Feeds]
    fixed_batch: int | None


def _fixed(dim: Any) -> int | None:
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


def _single_input(ds: Dataset, io: IOSpec, what: str) -> TensorSpec:
    if len(io.inputs) != 1:
        raise CalibrationError(f"{what} data can feed only a single-input model", where=str(ds.path),
                               expected="a model with one input", got=f"inputs {list(io.input_names)}",
                               hint="images and .npz tensors feed one-input models; text sets feed token inputs")
    return io.inputs[0]


def _plan(ds: Dataset, io: IOSpec, preprocess: Preprocess) -> _Plan:
    if not io.inputs:
        raise CalibrationError("the model has no inputs to feed", where=str(ds.path))
    text_model = "input_ids" in io.input_names or isinstance(preprocess, TextPreprocess)
    shapes = ", ".join(f"{t.name} {t.dtype}{list(t.shape)}" for t in io.inputs)
    if ds.kind == "text":
        if not text_model or isinstance(preprocess, ImagePreprocess):
            raise CalibrationError("text data given for a model that does not take token ids", where=str(ds.path),
                                   expected="an image set, a folder of images or a .npz of tensors",
                                   got=f"text for inputs {shapes}", hint="pass data that matches the model")
        return _text_plan(ds, io, preprocess)
    if ds.kind == "image":
        if text_model:
            raise CalibrationError("image data given for a text model", where=str(ds.path),
                                   expected="sentences: a .txt file or a text set such as 'sentences'",
                                   got=f"images for inputs {shapes}", hint="pass data that matches the model")
        return _image_plan(ds, io, preprocess)
    return _tensor_plan(ds, io)


def _image_plan(ds: Dataset, io: IOSpec, preprocess: Preprocess) -> _Plan:
    spec = _single_input(ds, io, "image")
    if not isinstance(preprocess, ImagePreprocess):
        raise CalibrationError("image data needs image preprocessing", where=str(ds.path),
                               expected="an ImagePreprocess (size, mean, std, layout)", got=preprocess,
                               hint="give the model's preprocessing, or pass a .npz of ready tensors")
    dtype = np.dtype(spec.dtype)
    if dtype.kind != "f" or len(spec.shape) != 4:
        raise CalibrationError("image data needs a float input of rank 4", where=str(ds.path),
                               expected=f"{spec.name} float32 [N, C, H, W] or [N, H, W, C]",
                               got=f"{spec.name} {spec.dtype}{list(spec.shape)}")
    c_axis, hw_axes = (1, (2, 3)) if preprocess.layout == "NCHW" else (3, (1, 2))
    channels = _fixed(spec.shape[c_axis])
    if channels not in (1, 3):
        raise CalibrationError(f"the model input does not have 1 or 3 channels in {preprocess.layout} layout",
                               where=str(ds.path), expected="1 or 3 channels",
                               got=f"{spec.name}{list(spec.shape)}", hint="check the preprocessing layout")
    for axis, want in zip(hw_axes, preprocess.size, strict=True):
        if _fixed(spec.shape[axis]) not in (None, want):
            raise CalibrationError("the preprocessing size does not match the model input", where=str(ds.path),
                                   expected=f"size {tuple(spec.shape[a] for a in hw_axes)}",
                                   got=f"size {preprocess.size}", hint="set ImagePreprocess(size=...) to match")
    name, pp, c = spec.name, preprocess, channels

    def convert(items: list[Item]) -> Feeds:
        return {name: np.stack([_image_array(raw, where, pp, c) for where, raw in items]).astype(dtype, copy=False)}

    return _Plan(convert, _fixed(spec.shape[0]))


def _text_plan(ds: Dataset, io: IOSpec, preprocess: Preprocess) -> _Plan:
    if not isinstance(preprocess, TextPreprocess):
        raise CalibrationError("text data needs a tokenizer", where=str(ds.path),
                               expected="a TextPreprocess(tokenizer_dir, max_length)", got=preprocess,
                               hint="load the model from a Hugging Face folder that holds its tokenizer")
    length = preprocess.max_length
    for spec in io.inputs:
        if spec.name not in TEXT_INPUTS:
            raise CalibrationError(f"model input {spec.name!r} cannot be made from text", where=str(ds.path),
                                   expected="inputs among " + ", ".join(TEXT_INPUTS), got=list(io.input_names))
        if len(spec.shape) != 2 or np.dtype(spec.dtype).kind not in "iu":
            raise CalibrationError("token inputs must be integer [batch, sequence]", where=str(ds.path),
                                   got=f"{spec.name} {spec.dtype}{list(spec.shape)}")
        if _fixed(spec.shape[1]) not in (None, length):
            raise CalibrationError("the model's sequence length differs from max_length", where=str(ds.path),
                                   expected=f"max_length={spec.shape[1]}", got=f"max_length={length}",
                                   hint=f"use TextPreprocess(max_length={spec.shape[1]})")
    tok = _tokenizer(str(preprocess.tokenizer_dir))
    specs = io.inputs

    def convert(items: list[Item]) -> Feeds:
        enc = tok([text for _, text in items], padding="max_length", truncation=True, max_length=length,
                  return_tensors="np")
        ids = np.asarray(enc["input_ids"])
        made = {"input_ids": ids, "attention_mask": enc.get("attention_mask", np.ones_like(ids)),
                "token_type_ids": enc.get("token_type_ids", np.zeros_like(ids)),
                "position_ids": np.broadcast_to(np.arange(ids.shape[1]), ids.shape)}
        return {s.name: np.ascontiguousarray(made[s.name], dtype=np.dtype(s.dtype)) for s in specs}

    return _Plan(convert, _fixed(specs[0].shape[0]))


@lru_cache(maxsize=4)
def _tokenizer(directory: str) -> Any:
    transformers = require("transformers", "hf", "tokenizing text")
    if not Path(directory).is_dir():
        raise CalibrationError("tokenizer folder not found", where=directory,
                               hint="TextPreprocess.tokenizer_dir must be a Hugging Face tokenizer folder")
    try:
        return transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # transformers raises many kinds
        raise CalibrationError(f"cannot load the tokenizer ({type(exc).__name__})", where=directory,
                               hint="save it with tokenizer.save_pretrained") from exc


def _tensor_plan(ds: Dataset, io: IOSpec) -> _Plan:
    spec = _single_input(ds, io, "tensor")
    want = np.dtype(spec.dtype)
    reader = cast(_NpzTensors, ds._reader)
    for split, (shape, dtype) in reader.item_spec().items():
        where = f"{ds.path}:{split}"
        if len(shape) + 1 != len(spec.shape) or any(
                _fixed(w) not in (None, h) for h, w in zip(shape, spec.shape[1:], strict=False)):
            raise CalibrationError("tensor shape does not match the model input", where=where,
                                   expected=f"(N, {', '.join(map(str, spec.shape[1:]))}) for {spec.name!r}",
                                   got=f"(N, {', '.join(map(str, shape))})",
                                   hint="store preprocessed inputs with the model's shape, item axis first")
        if not (dtype.kind == want.kind or (dtype.kind in "iu" and want.kind in "iu")):
            raise CalibrationError("tensor dtype does not suit the model input", where=where,
                                   expected=f"{want} (or another {'float' if want.kind == 'f' else 'integer'} type)",
                                   got=str(dtype), hint="store preprocessed inputs in the model's dtype, or put "
                                   "images in a folder so edgekit preprocesses them")
    name = spec.name

    def convert(items: list[Item]) -> Feeds:
        for where, arr in items:
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise CalibrationError("tensor data contains NaN or inf", where=where,
                                       expected="finite values", hint="clean or drop the bad items")
        return {name: np.stack([arr for _, arr in items]).astype(want, copy=False)}

    return _Plan(convert, _fixed(spec.shape[0]))


# --------------------------------------------------------------------------------------- images


def _image_array(raw: Any, where: str, pp: ImagePreprocess, channels: int) -> np.ndarray:
    """One image (path or uint8 array) as a float32 array in ``pp.layout`` without the batch axis."""
    pil = require("PIL.Image", "data", "reading images")
    if isinstance(raw, np.ndarray):
        img = pil.fromarray(raw)
    else:
        img = _decode(raw, where)
    img = img.convert("RGB" if channels == 3 else "L")
    h, w = pp.size
    if img.size != (w, h):
        img = img.resize((w, h), getattr(pil.Resampling, pp.resize.upper()))
    x = np.asarray(img, dtype=np.float32).reshape(h, w, channels) / 255.0
    mean = np.asarray(pp.mean if channels == 3 else pp.mean[:1], np.float32)
    std = np.asarray(pp.std if channels == 3 else pp.std[:1], np.float32)
    x = (x - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1) if pp.layout == "NCHW" else x)


def _decode(path: Path, where: str) -> Any:
    pil = require("PIL.Image", "data", "reading images")
    ops = require("PIL.ImageOps", "data", "reading images")
    try:
        with pil.open(path) as im:
            im.load()
            img = ops.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, pil.DecompressionBombError) as exc:
        raise CalibrationError("cannot decode the image", where=where, expected="a JPEG, PNG or BMP image",
                               got=f"{type(exc).__name__}: {exc}", hint="replace or remove the file") from exc
    if img.mode.startswith("I") or img.mode == "F":            # 16-bit / float gray
        a = np.asarray(img, dtype=np.float64)
        img = pil.fromarray(np.clip(a / 257.0 if a.max() > 255 else a, 0, 255).astype(np.uint8))
    elif img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGB" if img.mode == "RGBA" else "L")      # drop alpha
    return img


# --------------------------------------------------------------------------------------- loading


def builtin_calibration_dir() -> Path:
    """Where the bundled sets are: the wheel's ``edgekit/_data/calibration`` or the repo's ``calibration/``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "_data" / "calibration", here.parent / "calibration"):
        if cand.is_dir():
            return cand
    return here.parent / "calibration"


def list_datasets() -> list[str]:
    """Names of the bundled sets."""
    return sorted(d.name for d in builtin_calibration_dir().iterdir() if (d / "manifest.toml").is_file()) \
        if builtin_calibration_dir().is_dir() else []


def load_dataset(path: str | Path) -> Dataset:
    """Load a bundled set by name, a folder (with or without manifest), a ``.npz`` or a ``.txt`` file."""
    p = Path(path).expanduser()
    if not p.exists():
        if isinstance(path, str) and p.name == path and not p.suffix:
            cand = builtin_calibration_dir() / path
            if (cand / "manifest.toml").is_file():
                return _load_manifest(cand)
            raise CalibrationError("no such data set or path", where=path,
                                   expected="a path, or a bundled set: " + ", ".join(list_datasets()),
                                   hint="give a folder of images, a .npz or a .txt file")
        raise CalibrationError("data path not found", where=str(p),
                               hint="give a folder of images, a .npz or a .txt file, or a bundled set name")
    if p.is_dir():
        if (p / "manifest.toml").is_file():
            return _load_manifest(p)
        reader, rule = _folder_reader(p)
        return _user_set(p, "image", reader, f"folder of images; split: {rule}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        tensors = _NpzTensors.open(p)
        parity = any(step == 2 for _, _, step in tensors.members.values())
        return _user_set(p, "tensor", tensors, "tensors in a .npz, fed as-is; split: " +
                         ("by index parity (even = calibration, odd = eval)" if parity else "its arrays by name"))
    if suffix == ".txt":
        return _user_set(p, "text", _TextLines.open(p, tsv=False),
                         "sentences, one per line; split by line parity (even = calibration, odd = eval)")
    raise CalibrationError("unsupported data file", where=str(p), got=p.suffix or "no suffix",
                           expected="a folder of images, a .npz of tensors or a .txt file of sentences")


def _user_set(p: Path, kind: str, reader: _Reader, rule: str) -> Dataset:
    manifest = {"name": p.stem, "kind": kind, "description": rule.split(";")[0], "split_rule": rule.split("; ", 1)[-1],
                "provenance": {"source": "user data", "path": str(p)}, "licence": "unknown (user data)"}
    ds = Dataset(p.stem, kind, p, manifest, reader)
    if ds.count("calibration") + ds.count("eval") + ds.count("train") == 0:
        raise CalibrationError("the data set is empty", where=str(p), expected="at least 2 items", got=0,
                               hint=f"accepted images: {', '.join(IMAGE_SUFFIXES)}" if kind == "image" else None)
    return ds


def _load_manifest(folder: Path) -> Dataset:
    mpath = folder / "manifest.toml"
    try:
        m = tomllib.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalibrationError(f"cannot read the manifest ({exc})", where=str(mpath)) from exc
    fmt, kind = m.get("format"), m.get("kind")
    if fmt not in FORMATS or kind != FORMATS[fmt]:
        raise CalibrationError("manifest format/kind is not one edgekit reads", where=f"{mpath}:format",
                               expected="; ".join(f"format={f!r} with kind={k!r}" for f, k in FORMATS.items()),
                               got=f"format={fmt!r}, kind={kind!r}")
    reader: _Reader
    if fmt == "image-folder":
        reader = _ImageFiles({s: tuple(_image_files(folder / s)) for s in SPLITS if (folder / s).is_dir()})
    else:
        file = folder / str(m.get("file", ""))
        if not m.get("file") or not file.is_file():
            raise CalibrationError("manifest names a data file that is missing", where=f"{mpath}:file",
                                   got=m.get("file"), hint="rebuild with python -m edgekit.datasets_build")
        reader = (_ImageArrays.open(file) if fmt == "npz-images" else
                  _TextLines.open(file, tsv=True) if fmt == "tsv" else _NpzTensors.open(file))
    ds = Dataset(str(m.get("name", folder.name)), str(kind), folder, m, reader)
    for s, info in dict(m.get("splits", {})).items():
        want = info.get("count") if isinstance(info, Mapping) else None
        if s in SPLITS and want is not None and want != ds.count(s):
            raise CalibrationError(f"split {s!r} does not hold the items the manifest lists", where=str(mpath),
                                   expected=f"{want} items", got=ds.count(s),
                                   hint="restore the files, or rebuild with python -m edgekit.datasets_build")
    return ds
