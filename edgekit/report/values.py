"""Plain values for the report: JSON-ready conversion and artifact sizes (shared by the JSON and Markdown
writers, which import this module and never each other's internals)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from edgekit.artifacts import Artifact


def artifact_size(artifact: Artifact) -> int | None:
    """Size on disk including side files, or None when the file is gone."""
    try:
        return artifact.size_bytes
    except OSError:
        return None


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: dataclasses/mappings -> dicts, tuples -> lists, paths -> str, numpy
    scalars and arrays -> Python numbers and lists, enums -> their value."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays, without importing numpy
    if callable(tolist):
        return jsonable(tolist())
    return str(value)
