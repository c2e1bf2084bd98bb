"""What every reader offers: item counts, labels and a stream of raw items per split."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Generator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit.data.splits import Split
from edgekit.errors import CalibrationError

Item = tuple[str, Any]
"""(where, raw item): a file or ``file[index]`` / ``file:line`` for errors, and an image path or uint8
array, a string, or a tensor."""


class Reader(Protocol):
    """One stored form of a data set; reads items lazily, one at a time."""

    def count(self, split: Split) -> int: ...
    def labels(self, split: Split) -> np.ndarray | None: ...
    def items(self, split: Split) -> Generator[Item, None, None]: ...


def check_labels(labels: np.ndarray, n: int, where: str) -> np.ndarray:
    """``labels`` as int64 if it holds one integer per item, else :class:`CalibrationError`."""
    if labels.dtype.kind not in "iub" or labels.ndim != 1 or len(labels) != n:
        raise CalibrationError("labels must be one integer per item", where=where,
                               expected=f"{n} integers (shape ({n},))", got=f"{labels.dtype} {labels.shape}")
    return labels.astype(np.int64)


def check_npz_crc(file: Path) -> None:
    """Read every member of the ``.npz`` once and check its CRC-32: a corrupt member is a :class:`CalibrationError`
    naming it (streaming a member checks its CRC only at its end, and a run that reads the first items only would
    never see it; reading one whole was a ``BadZipFile`` traceback)."""
    try:
        with zipfile.ZipFile(file) as zf:
            bad = zf.testzip()
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CalibrationError(f"cannot read the .npz file ({type(exc).__name__}: {exc})", where=str(file),
                               hint="the file is truncated or corrupt: write it again with numpy.savez") from exc
    if bad is not None:
        raise CalibrationError("a member of the .npz file is corrupt (its CRC-32 does not match)",
                               where=f"{file}:{bad}", expected="the bytes numpy.savez wrote",
                               hint="the file was damaged: write it again with numpy.savez")


def open_npz(file: Path) -> Any:
    """``np.load`` of an ``.npz`` without pickles, after :func:`check_npz_crc`; an unreadable file is a
    :class:`CalibrationError`."""
    check_npz_crc(file)
    try:
        return np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationError(f"cannot read the .npz file ({exc})", where=str(file),
                               hint="write it with numpy.savez") from exc
