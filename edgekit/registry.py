"""Lazy name -> ``"module:Class"`` tables of every kind of extension: runtimes, formats, executors, estimators.

Entries are imported only when used, so a missing optional package only matters when its entry is
asked for, and then the error names the ``edgekit[...]`` extra to install. Third parties add runtimes
through the ``edgekit.runtimes`` entry-point group; a duplicate name is an error.

Each kind is one protocol, and nothing outside its adapters branches on an adapter's name:

- **runtime** (:class:`edgekit.runtimes.base.Runtime`): loads an artifact into a session that runs it.
- **format** (:class:`edgekit.formats.base.FormatAdapter`): builds the artifacts of one file format.
- **executor** (:class:`edgekit.executors.base.Executor`), keyed by a target's ``access``: where a
  target's benchmark jobs run (``local``: this process; ``ssh``: boards over SSH; ``estimate``: a compiler's
  performance model; ``emulate``: an NPU's vendor emulator here, accuracy only). The targets loader accepts
  exactly the registered access names.
- **estimator** (:class:`edgekit.estimators.base.Estimator`), keyed by the ``[[runtime]]`` name of an
  ``access = "estimate"`` target (``ethos-u-vela``): a hardware-free estimate of latency and memory.

How to add one (the files it touches):

- a runtime for an existing format: a new ``edgekit/runtimes/<name>.py`` implementing ``Runtime``, and one
  ``register_runtime`` line here (``formats`` it loads, ``requires`` imports, the extra, and ``pip`` for the
  board's install line). Targets may then name it; the SSH executor pushes it to boards and the conformance
  suite (tests/runtimes/test_conformance.py) runs it, with no other change.
- a format: ``edgekit/formats/<name>.py`` implementing ``FormatAdapter`` (its frozen options class, which the
  run carries in ``RunOptions.format_options``; ``recipe()``: what of them goes into an artifact's identity;
  ``libraries``: whose versions do), its reference runtime (above), one ``register_format`` line here, and its
  value in ``edgekit.types.Format``. The pipeline has no per-format code (tests/formats/test_new_format.py builds
  a format registered from outside edgekit). Only for a command-line flag: cli.py.
- an executor: ``edgekit/executors/<name>.py`` implementing ``Executor`` (it gets every job of its targets
  and the run's ``ExecutorOptions``: benchmark settings, threads, the ``--host``/``--inventory`` boards) and
  one ``register_executor`` line here; targets then take ``access = "<name>"``. Only if it needs a new user
  option: a field of ``ExecutorOptions`` (executors/base.py) and of ``RunOptions`` (pipeline.py), and a flag
  in cli.py.
- an estimator: ``edgekit/estimators/<name>.py`` implementing ``Estimator`` (it returns an ``Estimate``; the
  ``estimate`` executor makes the report rows) and one ``register_estimator`` line here; targets with
  ``access = "estimate"`` then name it in ``[[runtime]]`` and put its settings in their ``[estimate]`` table.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

from edgekit.errors import ConfigError, MissingDependencyError, UnknownNameError, install_hint

if TYPE_CHECKING:  # never imported at run time: the registry is pushed to boards with the agent
    from edgekit.runtimes.base import Runtime


_T = TypeVar("_T")

@dataclass(frozen=True)
class Entry:
    """One registry entry: where the class is, the packages it needs, and the extra that installs them.

    ``extra`` is an ``edgekit[...]`` extra of pyproject.toml, or None when ``requires`` are base
    dependencies of edgekit. For a runtime, ``formats`` lists the formats it loads; for a format,
    ``runtime`` names the runtime that validates its artifacts locally (the reference runtime of that format),
    and ``canonical`` marks the one format built first, whose fp32 artifact the others convert from (ONNX).
    For an estimator, ``formats`` lists the formats it compiles. For an executor, ``runs`` names the table
    its targets' ``[[runtime]]`` names come from (``"runtime"`` or ``"estimator"``) and ``here`` whether they
    run on this machine (their ISA then picks the run's int8 preset) and ``boards`` whether its targets need
``--host`` / ``--inventory`` / ``--farm`` machines. A runtime that is not ``fp32_exact`` (an NPU's, fp32 run in
fp16) is left out of the fp32 cross-runtime check; ``toolchain`` names the vendor toolchain (its own virtualenv,
:mod:`edgekit.toolchains`) it needs installed. For a runtime, ``pip``
    lists the pip packages a board needs for it (``edgekit doctor --host``; default: the ``requires``).
    """

    name: str
    target: str
    requires: tuple[str, ...]
    extra: str | None
    formats: tuple[str, ...] = ()
    runtime: str | None = None
    runs: str | None = None
    here: bool = False
    pip: tuple[str, ...] = ()
    canonical: bool = False
    boards: bool = False
    fp32_exact: bool = True
    toolchain: str | None = None

    def install_hint(self) -> str:
        """The pip line (or the ``edgekit toolchains install`` line) that installs what this entry needs."""
        if self.toolchain:
            return f"edgekit toolchains install {self.toolchain}"
        return install_hint(self.extra, *(r for r in self.requires if not r.startswith("edgekit.")))


RUNTIMES: dict[str, Entry] = {}
FORMATS: dict[str, Entry] = {}
EXECUTORS: dict[str, Entry] = {}
ESTIMATORS: dict[str, Entry] = {}


def _register(table: dict[str, Entry], kind: str, entry: Entry) -> None:
    if entry.name in table:
        raise ConfigError(f"{kind} registered twice", where=entry.name, got=entry.target,
                          hint=f"already provided by {table[entry.name].target}")
    table[entry.name] = entry


def register_runtime(entry: Entry) -> None:
    """Add a runtime entry; a name already taken raises :class:`ConfigError`."""
    _register(RUNTIMES, "runtime", entry)


def register_format(entry: Entry) -> None:
    """Add a format adapter entry; a name already taken, or a second ``canonical`` format, raises
    :class:`ConfigError`."""
    first = next((e for e in FORMATS.values() if e.canonical), None)
    if entry.canonical and first is not None:
        raise ConfigError("only one format can be canonical", where=entry.name, got=entry.target,
                          hint=f"{first.name} is the canonical format")
    _register(FORMATS, "format", entry)


def register_executor(entry: Entry) -> None:
    """Add an executor entry keyed by the target ``access`` it serves; ``entry.runs`` must name a table."""
    if entry.runs not in _RUNS:
        raise ConfigError("an executor entry must say what its targets name", where=entry.name,
                          expected="runs = " + " | ".join(sorted(_RUNS)), got=entry.runs)
    _register(EXECUTORS, "executor", entry)


def register_estimator(entry: Entry) -> None:
    """Add an estimator entry keyed by the ``[[runtime]]`` name estimate targets give it."""
    _register(ESTIMATORS, "estimator", entry)


_RUNS = {"runtime": RUNTIMES, "estimator": ESTIMATORS}


# --- the built-in table: one line per runtime / format -------------------------------------------------
register_runtime(Entry("onnxruntime", "edgekit.runtimes.ort:OrtRuntime", ("onnxruntime",), None,
                       formats=("onnx",)))
register_format(Entry("onnx", "edgekit.formats.onnx:OnnxAdapter", ("onnx", "onnxruntime"), None,
                      runtime="onnxruntime", canonical=True))
# edgekit.runtimes.openvino first: it switches telemetry off before the availability check imports openvino
# or nncf (either import alone writes a client id under ~/intel/ otherwise)
register_runtime(Entry("openvino", "edgekit.runtimes.openvino:OpenVinoRuntime",
                       ("edgekit.runtimes.openvino", "openvino"), "openvino", formats=("openvino", "onnx")))
register_format(Entry("openvino", "edgekit.formats.openvino:OpenVinoAdapter",
                      ("edgekit.runtimes.openvino", "openvino", "nncf"), "openvino", runtime="openvino"))
register_runtime(Entry("litert", "edgekit.runtimes.litert:LiteRTRuntime", ("ai_edge_litert",), "tflite",
                       formats=("tflite",), pip=("ai-edge-litert",)))
register_format(Entry("tflite", "edgekit.formats.tflite:TfliteAdapter", ("ai_edge_litert", "ai_edge_quantizer"),
                      "tflite", runtime="litert"))
register_runtime(Entry("qnn-htp", "edgekit.runtimes.qnn:QnnHtpRuntime", ("onnxruntime_qnn",), "qnn",
                       formats=("onnx",), pip=("onnxruntime-qnn",), fp32_exact=False))
register_runtime(Entry("rknn-sim", "edgekit.runtimes.rknn:RknnSimRuntime", ("edgekit.toolchains",), None,
                       formats=("onnx",), fp32_exact=False, toolchain="rknn"))
register_runtime(Entry("mct-imx500", "edgekit.runtimes.imx500:Imx500Runtime", ("edgekit.toolchains",), None,
                       formats=("onnx",), fp32_exact=False, toolchain="imx500"))
# executors, by target access; estimators, by the [[runtime]] name of access = "estimate" targets
register_executor(Entry("local", "edgekit.executors.local:LocalExecutor", (), None, runs="runtime", here=True))
register_executor(Entry("ssh", "edgekit.executors.fleet:SshExecutor", ("asyncssh",), "ssh", runs="runtime",
                        boards=True))
register_executor(Entry("estimate", "edgekit.executors.estimate:EstimateExecutor", (), None, runs="estimator"))
register_executor(Entry("emulate", "edgekit.executors.emulate:EmulateExecutor", (), None, runs="runtime"))
register_estimator(Entry("ethos-u-vela", "edgekit.estimators.vela:VelaEstimator", ("ethosu.vela",), "ethos-u",
                         formats=("tflite",)))

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
    if entry.toolchain:
        from edgekit import toolchains

        why = toolchains.unusable(toolchains.get(entry.toolchain))
        if why:
            return f"toolchain {entry.toolchain}: {why}"
    return None


def format_missing(name: str) -> str | None:
    """Why the format ``name`` cannot be used here (a package that does not import), or None if it can."""
    entry = FORMATS.get(name)
    if entry is None:
        return "not a registered format"
    return _missing(entry)


def runtime_status() -> list[tuple[str, bool, str]]:
    """(name, available, detail) for every runtime entry: used by ``edgekit doctor``. The detail of a
    missing one says why and ends with the pip line that installs it."""
    _load_entry_points()
    rows = []
    for name, entry in sorted(RUNTIMES.items()):
        why = _missing(entry)
        rows.append((name, why is None, f"{why}; {entry.install_hint()}" if why else entry.target))
    return rows


def runtime_names() -> tuple[str, ...]:
    """Every registered runtime name (built-in and entry points), sorted: what a target's runtime may name."""
    _load_entry_points()
    return tuple(sorted(RUNTIMES))


def access_kinds() -> tuple[str, ...]:
    """The ``access`` values a target may have: the registered executors, in registration order."""
    return tuple(EXECUTORS)


def runs_here(access: str) -> bool:
    """Whether targets of ``access`` run on this machine (the registered executor's ``here``)."""
    entry = EXECUTORS.get(access)
    return entry is not None and entry.here


def target_runtime_names(access: str) -> tuple[str, ...]:
    """The names a ``[[runtime]]`` of an ``access`` target may give (sorted): registered runtimes, or the
    estimators, as the executor of that access says (``Entry.runs``); () for an unknown access."""
    entry = EXECUTORS.get(access)
    if entry is None or entry.runs is None:
        return ()
    _load_entry_points()
    return tuple(sorted(_RUNS[entry.runs]))


def formats_of(name: str) -> tuple[str, ...]:
    """The formats the runtime or estimator registered as ``name`` takes (() when there is none)."""
    _load_entry_points()
    entry = RUNTIMES.get(name) or ESTIMATORS.get(name)
    return entry.formats if entry is not None else ()


def runtimes_for_format(fmt: str, fp32_exact: bool = False) -> tuple[str, ...]:
    """Names of the registered runtimes that load ``fmt`` (``fp32_exact``: only those computing fp32 in fp32)."""
    _load_entry_points()
    return tuple(n for n, e in RUNTIMES.items() if fmt in e.formats and (e.fp32_exact or not fp32_exact))


def is_canonical_format(name: str) -> bool:
    """Whether the format registered as ``name`` is the canonical one (built first; the others convert from it)."""
    entry = FORMATS.get(name)
    return entry is not None and entry.canonical


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


def get_runtime(name: str) -> Runtime:
    """Instantiate the runtime registered as ``name``."""
    _load_entry_points()
    entry = RUNTIMES.get(name)
    if entry is None:
        raise UnknownNameError("unknown runtime", where="runtime", expected="one of: " + ", ".join(
            sorted(RUNTIMES)), got=name)
    runtime: Runtime = _instantiate(entry, "runtime")
    return runtime


def lookup(table: dict[str, Entry], kind: str, name: str, where: str) -> Entry:
    """The entry ``name`` of ``table`` (:data:`EXECUTORS`, :data:`ESTIMATORS`, ...), or
    :class:`UnknownNameError` citing ``where`` and every registered name."""
    entry = table.get(name)
    if entry is None:
        raise UnknownNameError(f"unknown {kind}", where=where, expected="one of: " + ", ".join(sorted(table)),
                               got=name)
    return entry


def instantiate(entry: Entry, kind: str, protocol: type[_T], expected: str) -> _T:
    """An instance of ``entry``'s class; :class:`MissingDependencyError` with the pip line when a package it
    requires does not import, :class:`ConfigError` when it does not implement ``protocol`` (a runtime-checkable
    protocol; ``expected`` names the method it lacks)."""
    obj: object = _instantiate(entry, kind)
    if not isinstance(obj, protocol):
        raise ConfigError(f"the registered {kind} does not implement {protocol.__name__}", where=entry.target,
                          expected=expected, got=type(obj).__name__)
    return obj


def _instantiate(entry: Entry, kind: str) -> Any:
    why = _missing(entry)
    if why:
        raise MissingDependencyError(f"{kind} {entry.name!r} is not usable: {why}", where=entry.name,
                                     hint=entry.install_hint())
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()
