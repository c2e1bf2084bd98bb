"""Lazy name -> ``"module:Class"`` tables of runtimes and formats.

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
    """One registry entry: where the class is, the packages it needs, and the extra that installs them.

    For a runtime, ``formats`` lists the formats it loads; for a format, ``runtime`` names the runtime
    that validates its artifacts locally (the reference runtime of that format).
    """

    name: str
    target: str
    requires: tuple[str, ...]
    extra: str
    formats: tuple[str, ...] = ()
    runtime: str | None = None


RUNTIMES: dict[str, Entry] = {}
FORMATS: dict[str, Entry] = {}


def _register(table: dict[str, Entry], kind: str, entry: Entry) -> None:
    if entry.name in table:
        raise ConfigError(f"{kind} registered twice", where=entry.name, got=entry.target,
                          hint=f"already provided by {table[entry.name].target}")
    table[entry.name] = entry


def register_runtime(entry: Entry) -> None:
    """Add a runtime entry; a name already taken raises :class:`ConfigError`."""
    _register(RUNTIMES, "runtime", entry)


def register_format(entry: Entry) -> None:
    """Add a format adapter entry; a name already taken raises :class:`ConfigError`."""
    _register(FORMATS, "format", entry)


# --- the built-in table: one line per runtime / format -------------------------------------------------
register_runtime(Entry("onnxruntime", "edgekit.runtimes.ort:OrtRuntime", ("onnxruntime",), "onnx",
                       formats=("onnx",)))
register_format(Entry("onnx", "edgekit.formats.onnx:OnnxAdapter", ("onnx", "onnxruntime"), "onnx",
                      runtime="onnxruntime"))
# edgekit.runtimes.openvino first: it switches telemetry off before the availability check imports openvino
# or nncf (either import alone writes a client id under ~/intel/ otherwise)
register_runtime(Entry("openvino", "edgekit.runtimes.openvino:OpenVinoRuntime",
                       ("edgekit.runtimes.openvino", "openvino"), "openvino", formats=("openvino", "onnx")))
register_format(Entry("openvino", "edgekit.formats.openvino:OpenVinoAdapter",
                      ("edgekit.runtimes.openvino", "openvino", "nncf"), "openvino", runtime="openvino"))
register_runtime(Entry("litert", "edgekit.runtimes.litert:LiteRTRuntime", ("ai_edge_litert",), "tflite",
                       formats=("tflite",)))
register_format(Entry("tflite", "edgekit.formats.tflite:TfliteAdapter", ("ai_edge_litert", "ai_edge_quantizer"),
                      "tflite", runtime="litert"))

_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group="edgekit.runtimes"):
        try:
            formats = tuple(getattr(ep.load(), "formats", ()))
        except Exception:  # a broken plugin must not break edgekit; doctor shows it as unusable
            formats = ()
        register_runtime(Entry(ep.name, ep.value, (), ep.dist.name if ep.dist else "?", formats=formats))


def _missing(entry: Entry) -> str | None:
    for mod in entry.requires:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            return f"{mod} not importable ({exc.__class__.__name__}: {exc})"
    return None


def format_missing(name: str) -> str | None:
    """Why the format ``name`` cannot be used here (a package that does not import), or None if it can."""
    entry = FORMATS.get(name)
    if entry is None:
        return "not a registered format"
    return _missing(entry)


def runtime_status() -> list[tuple[str, bool, str]]:
    """(name, available, detail) for every runtime entry: used by ``edgekit doctor``."""
    _load_entry_points()
    rows = []
    for name, entry in sorted(RUNTIMES.items()):
        why = _missing(entry)
        rows.append((name, why is None, why or entry.target))
    return rows


def runtimes_for_format(fmt: str) -> tuple[str, ...]:
    """Names of the registered runtimes that load ``fmt``."""
    _load_entry_points()
    return tuple(n for n, e in RUNTIMES.items() if fmt in e.formats)


def reference_runtime(fmt: str) -> str:
    """The runtime that validates artifacts of ``fmt`` locally."""
    entry = FORMATS.get(fmt)
    if entry is None or entry.runtime is None:
        raise UnknownNameError("format not supported by this edgekit version", where=f"--formats {fmt}",
                               expected="one of: " + ", ".join(sorted(FORMATS)), got=fmt)
    return entry.runtime


def get_format(name: str) -> Any:
    """Instantiate the format adapter registered as ``name``."""
    entry = FORMATS.get(name)
    if entry is None:
        raise UnknownNameError("format not supported by this edgekit version", where=f"--formats {name}",
                               expected="one of: " + ", ".join(sorted(FORMATS)), got=name)
    return _instantiate(entry, "format")


def get_runtime(name: str) -> Any:
    """Instantiate the runtime registered as ``name``."""
    _load_entry_points()
    entry = RUNTIMES.get(name)
    if entry is None:
        raise UnknownNameError("unknown runtime", where="runtime", expected="one of: " + ", ".join(
            sorted(RUNTIMES)), got=name)
    return _instantiate(entry, "runtime")


def _instantiate(entry: Entry, kind: str) -> Any:
    why = _missing(entry)
    if why:
        raise MissingDependencyError(f"{kind} {entry.name!r} is not usable: {why}", where=entry.name,
                                     hint=f"pip install 'edgekit[{entry.extra}]'")
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()
