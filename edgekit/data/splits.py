"""Split names, and the rules that split user data that comes without a manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from edgekit.errors import CalibrationError

Split = Literal["calibration", "eval", "train"]
SPLITS: tuple[Split, ...] = ("calibration", "eval", "train")

HASH_RULE = "files sorted by sha256 of their name: first half calibration, second half eval"
PARITY_RULE = "even = calibration, odd = eval"
PARITY_START: dict[Split, int] = {"calibration": 0, "eval": 1}
"""Index parity split: ``split`` holds items ``PARITY_START[split]::2``."""


def check_split(split: str) -> Split:
    """``split`` as a :data:`Split`; :class:`CalibrationError` for any other name."""
    if split not in SPLITS:
        raise CalibrationError("unknown split", where="split", expected=", ".join(SPLITS), got=split)
    return split


def by_parity(n: int) -> Split:
    """The split of the ``n``-th item (0-based) under the parity rule: even calibration, odd eval."""
    return "calibration" if n % 2 == 0 else "eval"


def by_name_hash(files: Iterable[Path]) -> dict[Split, tuple[Path, ...]]:
    """Files sorted by the sha256 of their name; the first half (rounded up) calibration, the rest eval."""
    ordered = sorted(files, key=lambda f: (hashlib.sha256(f.name.encode()).hexdigest(), f.name))
    half = (len(ordered) + 1) // 2
    return {"calibration": tuple(ordered[:half]), "eval": tuple(ordered[half:])}
