"""A lazy name -> ``"module:Class"`` table of runtimes (and later formats/estimators).

Entries are imported only when used, so a missing optional package only matters when its entry is
asked for, and then the error names the ``edgekit[...]`` extra to install. Third parties add entries
through the ``edgekit.runtimes`` entry-point group; a duplicate name is an error.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from edgekit.errors import ConfigError, MissingDependencyError, UnknownNameError


@dataclass(frozen=True)
class Entry:
    """One registry entry: where the class is, the package it needs, and the extra that installs it."""

    name: str
    target: str
    requires: tuple[str, ...]
    extra: str


RUNTIMES: dict[str, Entry] = {}


def register_runtime(entry: Entry) -> None:
    """Add a runtime entry; a name already taken raises :class:`ConfigError`."""
    if entry.name in RUNTIMES:
        raise ConfigError("runtime registered twice", where=entry.name, got=entry.target,
                          hint=f"already provided by {RUNTIMES[entry.name].target}")
    RUNTIMES[entry.name] = entry


register_runtime(Entry("onnxruntime", "edgekit.runtimes.ort:OrtRuntime", ("onnxruntime",), "onnx"))

_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group="edgekit.runtimes"):
        register_runtime(Entry(ep.name, ep.value, (), ep.dist.name if ep.dist else "?"))


def _missing(entry: Entry) -> str | None:
    for mod in entry.requires:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            return f"{mod} not importable ({exc.__class__.__name__}: {exc})"
    return None


def runtime_status() -> list[tuple[str, bool, str]]:
    """(name, available, detail) for every runtime entry: used by ``edgekit doctor``."""
    _load_entry_points()
    rows = []
    for name, entry in sorted(RUNTIMES.items()):
        why = _missing(entry)
        rows.append((name, why is None, why or entry.target))
    return rows


def get_runtime(name: str) -> Any:
    """Instantiate the runtime registered as ``name``."""
    _load_entry_points()
    entry = RUNTIMES.get(name)
    if entry is None:
        raise UnknownNameError("unknown runtime", where="runtime", expected="one of: " + ", ".join(
            sorted(RUNTIMES)), got=name)
    why = _missing(entry)
    if why:
        raise MissingDependencyError(f"runtime {name!r} is not usable: {why}", where=name,
                                     hint=f"pip install 'edgekit[{entry.extra}]'")
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()
