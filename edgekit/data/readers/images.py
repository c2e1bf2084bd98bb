"""Image readers: the bundled ``npz-images`` form and folders of image files."""

from __future__ import annotations

import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.data.readers.base import Item, check_labels, open_npz
from edgekit.data.splits import HASH_RULE, SPLITS, Split, by_name_hash
from edgekit.errors import CalibrationError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ImageArrays:
    """The bundled npz-images form: ``images`` (N,H,W[,C]) uint8, ``labels``, ``<split>_index``."""

    file: Path
    index: Mapping[str, np.ndarray]
    all_labels: np.ndarray | None

    @staticmethod
    def open(file: Path) -> ImageArrays:
        """Check the arrays' names, dtype and index ranges; reads the images only in :meth:`items`."""
        with open_npz(file) as z:
            keys = set(z.files)
            if "images" not in keys:
                raise CalibrationError("no 'images' array", where=str(file), expected="arrays images, "
                                       "<split>_index", got=sorted(keys))
            n, dtype = z["images"].shape[0], z["images"].dtype
            if dtype != np.uint8:
                raise CalibrationError("images must be uint8", where=str(file), got=str(dtype))
            index: dict[str, np.ndarray] = {s: z[f"{s}_index"].astype(np.int64) for s in SPLITS if f"{s}_index" in keys}
            labels = check_labels(z["labels"], n, f"{file}:labels") if "labels" in keys else None
        for s, idx in index.items():
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
                raise CalibrationError(f"{s}_index is not a list of item numbers", where=str(file),
                                       expected=f"1-D integers in [0, {n})", got=idx.shape)
        return ImageArrays(file, index, labels)

    def count(self, split: Split) -> int:
        return len(self.index.get(split, ()))

    def labels(self, split: Split) -> np.ndarray | None:
        if self.all_labels is None:
            return None
        return self.all_labels[self.index[split]] if split in self.index else np.zeros(0, np.int64)

    def items(self, split: Split) -> Generator[Item, None, None]:
        with open_npz(self.file) as z:
            images = z["images"]
        for i in self.index.get(split, ()):
            yield f"{self.file}[{int(i)}]", images[i]


@dataclass(frozen=True)
class ImageFiles:
    """Image files per split; items are their paths, decoded only when preprocessed. ``label_arrays`` holds the
    labels of the splits whose images sit in class subfolders (``eval/<class>/...``): the folder's number when
    every class folder is named by one (``eval/3/``: class 3), else the index of the class in ``classes`` (the
    class folder names of every split, sorted); :attr:`label_rule` says which, for the report."""

    files: Mapping[Split, tuple[Path, ...]]
    label_arrays: Mapping[Split, np.ndarray] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    numbered: bool = False

    @property
    def label_names(self) -> tuple[str, ...]:
        """The class of each label (label k is ``label_names[k]``) when labels are by sorted folder name."""
        return () if self.numbered else self.classes

    @property
    def label_rule(self) -> str:
        """How the class folders became labels, in words ("" without class folders)."""
        if not self.classes:
            return ""
        if self.numbered:
            return f"labels: the class folder names as class numbers ({', '.join(self.classes)})"
        pairs = [f"{name}={k}" for k, name in enumerate(self.classes)]
        more = f", ... ({len(pairs)} classes)" if len(pairs) > 20 else ""
        return "labels from folder names by sorted order: " + ", ".join(pairs[:20]) + more

    def count(self, split: Split) -> int:
        return len(self.files.get(split, ()))

    def labels(self, split: Split) -> np.ndarray | None:
        return self.label_arrays.get(split)

    def items(self, split: Split) -> Generator[Item, None, None]:
        for f in self.files.get(split, ()):
            yield str(f), f


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder`` (by suffix, any case), sorted."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(folder: Path) -> list[Path]:
    """The subfolders of ``folder`` that hold images (its classes, when it holds no image itself), sorted."""
    if image_files(folder):
        return []
    return sorted(d for d in folder.iterdir() if d.is_dir() and image_files(d))


def split_subfolders(folder: Path) -> ImageFiles:
    """The images of ``folder``'s ``calibration/``, ``eval/`` and ``train/`` subfolders, those that exist; a split
    whose images sit in class subfolders (``eval/cat/1.jpg``) is labelled with the class's index among the class
    names of every split, sorted, or, when every class folder is a number (``eval/3/``), with that number."""
    splits = [s for s in SPLITS if (folder / s).is_dir()]
    by_class = {s: class_folders(folder / s) for s in splits}
    names = {d.name for ds in by_class.values() for d in ds}
    numbered = bool(names) and all(re.fullmatch(r"[0-9]{1,9}", n) for n in names)
    classes = tuple(sorted(names, key=int) if numbered else sorted(names))
    files: dict[Split, tuple[Path, ...]] = {}
    labels: dict[Split, np.ndarray] = {}
    for s in splits:
        if by_class[s]:
            pairs = [(f, int(d.name) if numbered else classes.index(d.name))
                     for d in by_class[s] for f in image_files(d)]
            files[s] = tuple(f for f, _ in pairs)
            labels[s] = np.array([k for _, k in pairs], dtype=np.int64)
        else:
            files[s] = tuple(image_files(folder / s))
    return ImageFiles(files, labels, classes, numbered)


def folder_reader(folder: Path) -> tuple[ImageFiles, str]:
    """A folder without a manifest: its split subfolders if it has them, else :data:`HASH_RULE`; and the rule."""
    if (folder / "calibration").is_dir() or (folder / "eval").is_dir():
        files = split_subfolders(folder)
        return files, "the calibration/, eval/ subfolders" + (f"; {files.label_rule}" if files.classes else "")
    return ImageFiles(by_name_hash(image_files(folder))), HASH_RULE
