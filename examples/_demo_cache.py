"""The reuse-or-retrain rule shared by the demo fine-tuning scripts.

A script records what determines its output (``settings``, including a hash of its own source) and the
SHA-256 of every file it wrote in ``<out>/train.json``, written last. A rerun reuses ``<out>`` only when
the settings are equal and every recorded file still has its hash; a half-written or edited folder is
retrained.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:
    import edgekit  # noqa: F401
except ImportError:  # a checkout used without `pip install -e .`
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from edgekit.artifacts import atomic_write_json, sha256_file

RECORD = "train.json"


def source_hash(paths: Iterable[Path]) -> str:
    """SHA-256 over the bytes of ``paths`` in order: a change to any of them invalidates the cache."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()


def is_cached(out: Path, settings: dict[str, Any], required: Iterable[str]) -> bool:
    """True when ``out/train.json`` records ``settings`` and lists every ``required`` file, and every
    file it lists still has its recorded SHA-256."""
    try:
        record = json.loads((out / RECORD).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("settings") != settings:
        return False
    files = record.get("files")
    if not isinstance(files, dict) or not set(required) <= set(files):
        return False
    return all((out / name).is_file() and sha256_file(out / name) == digest for name, digest in files.items())


def write_record(out: Path, record: dict[str, Any], files: Iterable[str]) -> None:
    """Write ``out/train.json`` (atomically) with ``record`` plus the SHA-256 of each of ``files``."""
    atomic_write_json(out / RECORD, {**record, "files": {name: sha256_file(out / name) for name in files}})
