"""The ``.npz`` tensor reader: arrays fed as-is, streamed item by item straight from the zip."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from edgekit.data.readers.base import Item, check_labels, open_npz
from edgekit.data.splits import PARITY_START, SPLITS, Split
from edgekit.errors import CalibrationError


@dataclass(frozen=True)
class NpyMember:
    """One ``.npy`` member of the zip and its header."""

    name: str                       # member in the zip, e.g. "calibration.npy"
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool


@dataclass(frozen=True)
class NpzTensors:
    """Tensors streamed item by item straight from the ``.npz`` (no full load); ``step`` 2 = parity split."""

    file: Path
    members: Mapping[str, tuple[NpyMember, int, int]]     # split -> (array, start, step)
    label_arrays: Mapping[str, np.ndarray]

    @staticmethod
    def open(file: Path) -> NpzTensors:
        """Arrays ``calibration`` / ``eval`` / ``train`` (+ ``<split>_labels``), or one array (+ ``labels``)
        split by index parity; reads headers and labels only."""
        headers = _npz_headers(file)
        keys = set(headers)
        data_keys = sorted(k for k in keys if k != "labels" and not k.endswith("_labels"))
        members: dict[str, tuple[NpyMember, int, int]] = {}
        if keys & set(SPLITS):
            for s in SPLITS:
                if s in keys:
                    members[s] = (headers[s], 0, 1)
        elif len(data_keys) == 1:
            members = {s: (headers[data_keys[0]], start, 2) for s, start in PARITY_START.items()}
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
        with open_npz(file) as z:
            for part, (m, start, step) in members.items():
                key = "labels" if step == 2 else f"{part}_labels"
                if key in z.files:
                    arr = z[key][start::step] if step == 2 else z[key]
                    labels[part] = check_labels(arr, len(range(start, m.shape[0], step)), f"{file}:{key}")
        return NpzTensors(file, members, labels)

    @property
    def parity_split(self) -> bool:
        """Whether the splits are one array's even / odd items."""
        return any(step == 2 for _, _, step in self.members.values())

    def item_spec(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        """Per split: the shape of one item and the dtype."""
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


def _skip_npy_header(fh: IO[bytes]) -> tuple[Any, ...]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return cast(tuple[Any, ...], np.lib.format.read_array_header_1_0(fh))
    return cast(tuple[Any, ...], np.lib.format.read_array_header_2_0(fh))


def _npz_headers(file: Path) -> dict[str, NpyMember]:
    out = {}
    try:
        with zipfile.ZipFile(file) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as fh:
                    shape, fortran, dtype = _skip_npy_header(fh)
                out[name[:-4]] = NpyMember(name, tuple(shape), np.dtype(dtype), bool(fortran))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"cannot read the .npz file ({exc})", where=str(file),
                               hint="write it with numpy.savez") from exc
    if not out:
        raise CalibrationError("the .npz file holds no arrays", where=str(file),
                               expected="arrays 'calibration' and 'eval'")
    return out
