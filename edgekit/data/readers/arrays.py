"""The folder-of-arrays reader: one item per ``.npz`` / ``.npy`` file, read only when the item is used.

* ``.npz`` files: one array per model input, named after it, holding one item (no item axis: a scalar input
  is a 0-d array); optionally a ``label`` integer (0-d) in every file.
* ``.npy`` files: one item of a single-input model each.

The files of the folder's ``calibration/``, ``eval/`` (and ``train/``) subfolders if it has them, else its
files sorted by a hash of their names, first half calibration (:data:`~edgekit.data.splits.HASH_RULE`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.readers.base import Item, open_npz
from edgekit.data.readers.tensors import UNNAMED, ItemSpec, npz_headers, skip_npy_header
from edgekit.data.splits import HASH_RULE, SPLITS, Split, by_name_hash
from edgekit.errors import CalibrationError

ARRAY_SUFFIXES = (".npz", ".npy")
LABEL = "label"


def array_files(folder: Path) -> list[Path]:
    """The ``.npz`` / ``.npy`` files directly in ``folder``, sorted."""
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in ARRAY_SUFFIXES)


@dataclass(frozen=True)
class ArrayFiles:
    """Array files per split; ``label_arrays`` holds each split's labels when the files carry ``label``."""

    folder: Path
    files: Mapping[Split, tuple[Path, ...]]
    label_arrays: Mapping[Split, np.ndarray]
    rule: str

    @staticmethod
    def open(folder: Path) -> ArrayFiles | None:
        """The reader of ``folder`` if it (or its split subfolders) holds array files, else ``None``."""
        subfolders = [s for s in SPLITS if (folder / s).is_dir()]
        if subfolders:
            files: dict[Split, tuple[Path, ...]] = {s: tuple(array_files(folder / s)) for s in subfolders}
            rule = "the " + ", ".join(f"{s}/" for s in subfolders) + " subfolders"
        else:
            files, rule = dict(by_name_hash(array_files(folder))), HASH_RULE
        found = [f for fs in files.values() for f in fs]
        if not found:
            return None
        kinds = {f.suffix.lower() for f in found}
        if len(kinds) > 1:
            raise CalibrationError(".npz and .npy item files mixed", where=str(folder),
                                   expected="only .npz files (one array per model input) or only .npy files "
                                            "(one single-input item each)", got=sorted(kinds))
        labels: dict[Split, np.ndarray] = {}
        if kinds == {".npz"} and LABEL in npz_headers(found[0]):
            labels = {s: np.array([_label(f) for f in fs], dtype=np.int64) for s, fs in files.items()}
        return ArrayFiles(folder, files, labels, rule)

    def count(self, split: Split) -> int:
        return len(self.files.get(split, ()))

    def labels(self, split: Split) -> np.ndarray | None:
        if not self.label_arrays:
            return None
        return self.label_arrays.get(split, np.zeros(0, np.int64))

    def item_spec(self) -> dict[Split, ItemSpec]:
        """Per split: the arrays of its first file (every file is checked against the model as it is read)."""
        return {s: _file_spec(fs[0]) for s, fs in self.files.items() if fs}

    def items(self, split: Split) -> Generator[Item, None, None]:
        for f in self.files.get(split, ()):
            yield str(f), _read(f)


def _file_spec(file: Path) -> ItemSpec:
    if file.suffix.lower() == ".npy":
        try:
            with open(file, "rb") as fh:
                shape, _, dtype = skip_npy_header(fh)
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read the .npy file ({exc})", where=str(file),
                                   hint="write it with numpy.save") from exc
        return {UNNAMED: (tuple(shape), np.dtype(dtype))}
    return {k: (m.shape, m.dtype) for k, m in npz_headers(file).items() if k != LABEL}


def _read(file: Path) -> dict[str, np.ndarray]:
    if file.suffix.lower() == ".npy":
        try:
            return {UNNAMED: np.load(file, allow_pickle=False)}
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"cannot read the .npy file ({exc})", where=str(file),
                                   hint="write it with numpy.save") from exc
    with open_npz(file) as z:
        out: dict[str, Any] = {k: z[k] for k in z.files if k != LABEL}
    if not out:
        raise CalibrationError("the item file holds no arrays", where=str(file),
                               expected="one array per model input")
    return out


def _label(file: Path) -> int:
    with open_npz(file) as z:
        if LABEL not in z.files:
            raise CalibrationError("this item file has no label, others have", where=str(file),
                                   expected=f"a {LABEL!r} integer in every file, or in none")
        value = z[LABEL]
    if value.size != 1 or value.dtype.kind not in "iub":
        raise CalibrationError("the label must be one integer", where=f"{file}:{LABEL}",
                               got=f"{value.dtype} {value.shape}")
    return int(value.reshape(-1)[0])
