"""Feeds files: the numpy inputs (and outputs) the on-device agent reads and writes, one ``.npz`` each.

A feeds file holds one array per key ``"<i>/<input_name>"`` for feed ``i``; an outputs file uses
``"<i>/<output_index>"``. Imports only numpy and :mod:`edgekit.artifacts`/:mod:`edgekit.errors`, so it
runs on a board beside the agent (it is one of the pushed agent modules).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgekit.errors import BenchmarkError


def write_npz(arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Write ``arrays`` (keys holding a ``"/"``) as one ``.npz``, atomically."""
    from edgekit.artifacts import atomic_path

    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        # keys always hold a "/", so they cannot collide with savez's own keyword arguments
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]


def write_feeds_npz(feeds: Sequence[Mapping[str, np.ndarray]], path: Path) -> None:
    """Write feeds as one ``.npz`` with keys ``"<i>/<input_name>"`` (atomically)."""
    write_npz({f"{i}/{name}": arr for i, feed in enumerate(feeds) for name, arr in feed.items()}, Path(path))


def read_feeds_npz(path: Path) -> list[dict[str, np.ndarray]]:
    """Read a file written by :func:`write_feeds_npz`, feeds in index order."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError) as exc:
        raise BenchmarkError(f"cannot read the feeds file: {exc}", where=str(path),
                             expected="an .npz written by edgekit.feeds.write_feeds_npz") from exc
    by_index: dict[int, dict[str, np.ndarray]] = {}
    for key, arr in arrays.items():
        index, sep, name = key.partition("/")
        if not sep or not index.isdigit() or not name:
            raise BenchmarkError("malformed key in the feeds file", where=f"{path}:{key}",
                                 expected='"<feed index>/<input name>"', got=key)
        by_index.setdefault(int(index), {})[name] = arr
    if sorted(by_index) != list(range(len(by_index))):
        raise BenchmarkError("feed indices are not 0..n-1", where=str(path), got=sorted(by_index)[:10])
    return [by_index[i] for i in range(len(by_index))]


def read_outputs_npz(path: Path) -> list[list[np.ndarray]]:
    """Read an ``outputs`` mode file: for each feed, the outputs in model order."""
    return [[feed[k] for k in sorted(feed, key=int)] for feed in read_feeds_npz(path)]
