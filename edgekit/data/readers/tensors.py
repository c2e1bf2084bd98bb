"""The ``.npz`` tensor reader: arrays fed as-is, streamed item by item straight from the zip.

Two forms (see :meth:`NpzTensors.open`):

* **named** (any number of model inputs): one array per model input, named after it, item axis first (all
  with the same number of items N); optionally ``labels`` (N,) integers and ``split`` (N,) strings
  ``"calibration"`` / ``"eval"`` / ``"train"``; without ``split``, items are split by index parity (even =
  calibration, odd = eval); optionally ``sequence`` (N,) integers, one sequence id per item, for streaming
  models whose state is carried from step to step (:mod:`edgekit.sequences`; the items of a sequence are
  consecutive). A single array named after no input is refused (an unnamed one, ``arr_0``, feeds a
  single-input model).
* **by split** (one model input): arrays ``calibration`` / ``eval`` (/ ``train``), optionally
  ``<split>_labels``.

Items are ``{array name: one item's array}`` mappings; :mod:`edgekit.data.plans` binds the names to the
model's inputs.
"""

from __future__ import annotations

import contextlib
import math
import zipfile
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

from edgekit.data.readers.base import Item, check_labels, open_npz
from edgekit.data.splits import PARITY_RULE, PARITY_START, SPLITS, Split
from edgekit.errors import CalibrationError

ItemSpec = dict[str, tuple[tuple[int, ...], np.dtype[Any]]]
"""Array name -> (one item's shape, dtype)."""

UNNAMED = ""
"""The array name of the by-split form (``calibration`` / ``eval`` arrays): it feeds the model's only input."""

RESERVED = ("labels", "split", "sequence")


@dataclass(frozen=True)
class NpyMember:
    """One ``.npy`` member of the zip and its header."""

    name: str                       # member in the zip, e.g. "calibration.npy"
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    fortran: bool


@dataclass(frozen=True)
class NpzTensors:
    """Tensors streamed item by item straight from the ``.npz`` (no full load).

    ``members[split]`` maps array names to members, ``rows[split]`` lists the rows of those members that are
    the split's items (in order)."""

    file: Path
    members: Mapping[Split, Mapping[str, NpyMember]]
    rows: Mapping[Split, np.ndarray]
    label_arrays: Mapping[Split, np.ndarray]
    rule: str
    sequence_arrays: Mapping[Split, np.ndarray] = field(default_factory=dict)

    @staticmethod
    def open(file: Path) -> NpzTensors:
        """Read the headers, ``labels`` and ``split`` of ``file`` (not the tensors) and check them."""
        headers = npz_headers(file)
        keys = set(headers)
        if keys & set(SPLITS):
            return _by_split(file, headers)
        return _named(file, headers)

    @property
    def parity_split(self) -> bool:
        """Whether the splits are the even / odd items."""
        return self.rule == PARITY_RULE

    @property
    def named(self) -> bool:
        """Whether items carry their arrays' names (the named form) rather than feed the only input."""
        return any(UNNAMED not in m for m in self.members.values())

    def item_spec(self) -> dict[Split, ItemSpec]:
        """Per split: each array's one-item shape and dtype."""
        return {s: {k: (m.shape[1:], m.dtype) for k, m in arrays.items()} for s, arrays in self.members.items()}

    def count(self, split: Split) -> int:
        return len(self.rows.get(split, ()))

    def labels(self, split: Split) -> np.ndarray | None:
        if not self.label_arrays:
            return None
        return self.label_arrays.get(split, np.zeros(0, np.int64))

    def sequence_ids(self, split: Split) -> np.ndarray | None:
        """The ``sequence`` id of each item of ``split`` in item order, or ``None`` when the file has none."""
        if not self.sequence_arrays:
            return None
        return self.sequence_arrays.get(split, np.zeros(0, np.int64))

    def items(self, split: Split) -> Generator[Item, None, None]:
        if split not in self.members or not self.count(split):
            return
        arrays, rows = self.members[split], self.rows[split]
        with zipfile.ZipFile(self.file) as zf, contextlib.ExitStack() as stack:
            streams = {k: stack.enter_context(_rows(zf, m, self.file)) for k, m in arrays.items()}
            wanted = iter(rows.tolist())
            nxt = next(wanted, None)
            total = next(iter(arrays.values())).shape[0]
            for i in range(total):
                if nxt is None:
                    return
                values = {k: next(s) for k, s in streams.items()}
                if i == nxt:
                    names = ",".join(m.name[:-4] for m in arrays.values())
                    yield f"{self.file}:{names}[{i}]", values
                    nxt = next(wanted, None)


@contextlib.contextmanager
def _rows(zf: zipfile.ZipFile, m: NpyMember, file: Path) -> Iterator[Iterator[np.ndarray]]:
    """The rows of one member, read one at a time (a Fortran-ordered array is loaded whole: its rows are not
    contiguous)."""
    with zf.open(m.name) as fh:
        yield _row_iter(fh, m, file)


def _row_iter(fh: IO[bytes], m: NpyMember, file: Path) -> Iterator[np.ndarray]:
    item_shape = m.shape[1:]
    if m.fortran and len(item_shape) > 0:
        arr = np.load(fh, allow_pickle=False)
        yield from arr
        return
    skip_npy_header(fh)
    nbytes = m.dtype.itemsize * math.prod(item_shape)
    for i in range(m.shape[0]):
        buf = fh.read(nbytes)
        if len(buf) != nbytes:
            raise CalibrationError("array data is truncated", where=f"{file}:{m.name[:-4]}[{i}]")
        yield np.frombuffer(buf, m.dtype).reshape(item_shape)


def _check_member(file: Path, key: str, m: NpyMember) -> None:
    if m.dtype.kind not in "biuf" or m.dtype.hasobject:
        raise CalibrationError("tensor dtype must be numeric", where=f"{file}:{key}",
                               expected="a bool, integer or float array", got=str(m.dtype),
                               hint="store numbers, e.g. float32 preprocessed inputs")
    if len(m.shape) == 0:
        raise CalibrationError("tensor data must have a leading item axis", where=f"{file}:{key}",
                               expected="shape (N, ...): one row per item, also for a scalar input (N,)",
                               got="a scalar", hint=f"repeat it per item, e.g. {key}=np.full(N, value)")


def _by_split(file: Path, headers: Mapping[str, NpyMember]) -> NpzTensors:
    extra = sorted(k for k in headers if k not in SPLITS and not k.endswith("_labels"))
    if extra:
        raise CalibrationError("split arrays and other arrays mixed", where=str(file), got=sorted(headers),
                               expected="only calibration / eval / train (+ <split>_labels), or one array per model "
                                        "input (+ labels, split)", hint=f"rename or drop {extra[0]!r}")
    members: dict[Split, dict[str, NpyMember]] = {s: {UNNAMED: headers[s]} for s in SPLITS if s in headers}
    for s, arrays in members.items():
        _check_member(file, s, arrays[UNNAMED])
    labels: dict[Split, np.ndarray] = {}
    with open_npz(file) as z:
        for s, arrays in members.items():
            if f"{s}_labels" in z.files:
                labels[s] = check_labels(z[f"{s}_labels"], arrays[UNNAMED].shape[0], f"{file}:{s}_labels")
    rows: dict[Split, np.ndarray] = {s: np.arange(a[UNNAMED].shape[0]) for s, a in members.items()}
    return NpzTensors(file, members, rows, labels, "its arrays by name")


def _named(file: Path, headers: Mapping[str, NpyMember]) -> NpzTensors:
    data = {k: m for k, m in headers.items() if k not in RESERVED}
    if not data:
        raise CalibrationError("the .npz file holds no tensors", where=str(file), got=sorted(headers),
                               expected="one array per model input (item axis first), or calibration / eval")
    for k, m in data.items():
        _check_member(file, k, m)
    counts = {k: m.shape[0] for k, m in data.items()}
    n = next(iter(counts.values()))
    for k, c in counts.items():
        if c != n:
            raise CalibrationError("the arrays hold different numbers of items", where=f"{file}:{k}",
                                   expected=f"{n} items (as {next(iter(counts))!r})", got=c,
                                   hint="every input array has one row per item, item axis first")
    with open_npz(file) as z:
        all_labels = check_labels(z["labels"], n, f"{file}:labels") if "labels" in headers else None
        split = _split_array(file, z["split"], n) if "split" in headers else None
        sequence = _sequence_array(file, z["sequence"], n) if "sequence" in headers else None
    rows: dict[Split, np.ndarray]
    if split is None:
        rows = {s: np.arange(start, n, 2) for s, start in PARITY_START.items()}
        rule = PARITY_RULE
    else:
        rows = {s: np.flatnonzero(split == s) for s in SPLITS if np.any(split == s)}
        rule = "its 'split' array"
    members: dict[Split, dict[str, NpyMember]] = {s: dict(data) for s in rows}
    labels = {s: all_labels[r] for s, r in rows.items()} if all_labels is not None else {}
    sequences = {s: sequence[r] for s, r in rows.items()} if sequence is not None else {}
    return NpzTensors(file, members, rows, labels, rule, sequences)


def _sequence_array(file: Path, sequence: np.ndarray, n: int) -> np.ndarray:
    if sequence.dtype.kind not in "iu" or sequence.shape != (n,):
        raise CalibrationError("'sequence' must give each item's sequence id", where=f"{file}:sequence",
                               expected=f"{n} integers (shape ({n},)), equal for the consecutive steps of one "
                                        "sequence", got=f"{sequence.dtype} {sequence.shape}",
                               hint="np.savez(path, ..., sequence=np.array([0, 0, 0, 1, 1, ...]))")
    return sequence.astype(np.int64)


def _split_array(file: Path, split: np.ndarray, n: int) -> np.ndarray:
    if split.dtype.kind not in "US" or split.shape != (n,):
        raise CalibrationError("'split' must name each item's split", where=f"{file}:split",
                               expected=f"{n} strings among {', '.join(SPLITS)}", got=f"{split.dtype} {split.shape}",
                               hint="np.savez(path, ..., split=np.array(['calibration', 'eval', ...]))")
    values = split.astype(str)
    bad = sorted(set(values.tolist()) - set(SPLITS))
    if bad:
        i = int(np.flatnonzero(values == bad[0])[0])
        raise CalibrationError("unknown split name", where=f"{file}:split[{i}]", expected=" | ".join(SPLITS),
                               got=bad[0])
    return values


def skip_npy_header(fh: IO[bytes]) -> tuple[Any, ...]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return cast(tuple[Any, ...], np.lib.format.read_array_header_1_0(fh))
    return cast(tuple[Any, ...], np.lib.format.read_array_header_2_0(fh))


def npz_headers(file: Path) -> dict[str, NpyMember]:
    out = {}
    try:
        with zipfile.ZipFile(file) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
                    continue
                with zf.open(name) as fh:
                    shape, fortran, dtype = skip_npy_header(fh)
                out[name[:-4]] = NpyMember(name, tuple(shape), np.dtype(dtype), bool(fortran))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"cannot read the .npz file ({exc})", where=str(file),
                               hint="write it with numpy.savez") from exc
    if not out:
        raise CalibrationError("the .npz file holds no arrays", where=str(file),
                               expected="one array per model input, or arrays 'calibration' and 'eval'")
    return out
