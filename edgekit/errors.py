"""The one exception tree of edgekit.

Every error a user can cause is an :class:`EdgekitError`; the CLI prints it on one line and exits 2.
Library errors (onnxruntime, torch, ...) are translated at the boundary with ``raise ... from exc``.

::

    EdgekitError
    ├── ConfigError              bad target file, unknown key, bad option value
    │   └── UnknownNameError     unknown target / format / precision / runtime name
    ├── MissingDependencyError   an optional package (an ``edgekit[...]`` extra) is not installed
    ├── SourceError              missing / corrupt / truncated model, unknown input shape
    ├── CalibrationError         wrong shape / dtype / size, empty or NaN-bearing data
    │   └── SourceRunError       the source model's runtime refused the data (token id out of range, ...)
    ├── ExportError              an exporter failed
    │   └── NumericMismatchError the exported model disagrees with the source beyond tolerance
    ├── QuantizationError        a quantizer failed
    ├── RuntimeAdapterError      a runtime could not load or run an artifact
    │   └── DeviceUnavailableError  the target's device / provider is not on this machine
    ├── BenchmarkError           a benchmark could not be completed
    └── DiskFullError            no space left where an output is written (translated from ENOSPC)
"""

from __future__ import annotations

from typing import Any


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 200 else text[:197] + "..."


class EdgekitError(Exception):
    """Base of every user-facing error.

    ``where`` names the file, key or value at fault; ``expected``/``got`` say what was wanted and what
    was found; ``hint`` says how to fix it. ``str(err)`` is one line holding all of them.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        expected: str | None = None,
        got: Any = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.expected = expected
        self.got = got
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [f"{self.where}: {self.message}" if self.where else self.message]
        detail = []
        if self.expected is not None:
            detail.append(f"expected {self.expected}")
        if self.got is not None:
            detail.append(f"got {_show(self.got)}")
        if detail:
            parts.append("(" + ", ".join(detail) + ")")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return " ".join(parts).replace("\n", " ")


class ConfigError(EdgekitError):
    """A target file, option or command-line value is invalid."""


class UnknownNameError(ConfigError):
    """A name (target, format, precision, runtime, ...) is not one edgekit knows."""


class MissingDependencyError(EdgekitError):
    """A dependency is not installed; the hint is the pip line that installs it (:func:`install_hint`)."""


class SourceError(EdgekitError):
    """A model source cannot be loaded or described."""


class CalibrationError(EdgekitError):
    """Calibration or evaluation data is unusable for the model."""


class SourceRunError(CalibrationError):
    """The source model failed on the user's data (its runtime's first line in ``got``); the CLI adds the data
    file to ``where``."""


class ExportError(EdgekitError):
    """An export or conversion failed."""


class NumericMismatchError(ExportError):
    """An artifact's outputs differ from the source's beyond tolerance; ``failures`` lists them all."""

    def __init__(self, message: str, *, failures: list[str], where: str | None = None,
                 hint: str | None = None) -> None:
        self.failures = list(failures)
        super().__init__(f"{message}: " + "; ".join(failures), where=where, hint=hint)


class QuantizationError(EdgekitError):
    """A quantizer failed or could not meet its constraints."""


class RuntimeAdapterError(EdgekitError):
    """A runtime could not load or run an artifact."""


class DeviceUnavailableError(RuntimeAdapterError):
    """The device or execution provider a target asks for is not present here (reported, not measured)."""


class ToolchainError(RuntimeAdapterError):
    """A vendor toolchain in its own virtualenv (:mod:`edgekit.toolchains`) failed to install or to answer."""


class BenchmarkError(EdgekitError):
    """A benchmark could not be completed."""


class DiskFullError(EdgekitError):
    """No space is left on the disk an output is written to (``OSError`` ENOSPC / EDQUOT, also when a converter
    raised it wrapped in its own error): names the path, the bytes needed where known and the bytes free.
    Complete artifacts are kept (every write is atomic); a re-run after freeing space reuses them."""

    def __init__(self, path: str | None, *, needed: int | None = None, hint: str | None = None) -> None:
        self.path = path
        self.needed = needed
        free = _free_bytes(path)
        detail = [f"{needed} bytes needed" if needed is not None else None,
                  f"{free} bytes free there" if free is not None else None]
        text = ", ".join(d for d in detail if d)
        super().__init__("no space left on the device" + (f" ({text})" if text else ""), where=path,
                         hint=hint or "free some space on that disk (or use another --out); complete artifacts "
                                      "are kept and the same command reuses them")


_NO_SPACE_TEXT = ("no space left on device", "disk quota exceeded")


def _free_bytes(path: str | None) -> int | None:
    """Bytes free on the file system of ``path`` (its nearest existing parent), or None if unknown."""
    import os
    import shutil

    if not path:
        return None
    p = os.path.abspath(path)
    while p and not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            return None
        p = parent
    try:
        return int(shutil.disk_usage(p).free)
    except OSError:
        return None


def disk_full_cause(exc: BaseException) -> OSError | BaseException | None:
    """The exception in ``exc``'s chain (itself, ``__cause__``, ``__context__``) that says the disk is full: an
    ``OSError`` with errno ENOSPC / EDQUOT, or a library error whose message says so (converters and runtimes
    often re-raise it as their own error type with the text). None when the disk was not full."""
    import errno

    no_space = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:  # never loop on a cyclic chain
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in no_space:
            return cur
        if any(t in str(cur).lower() for t in _NO_SPACE_TEXT):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def as_disk_full(exc: BaseException, where: str | None = None, needed: int | None = None) -> DiskFullError | None:
    """A :class:`DiskFullError` for ``exc`` when its chain says the disk is full (:func:`disk_full_cause`),
    naming the file the ``OSError`` names, else the file an edgekit error of the chain names, else ``where``;
    None otherwise. Some libraries do not say it (OpenVINO's IR writer reports a full disk as "basic_ios::clear:
    iostream error"): given the bytes the failed output ``needed``, a failure while the disk of ``where`` has
    less than that free is a full disk too."""
    if isinstance(exc, DiskFullError):
        return exc
    cause = disk_full_cause(exc)
    if cause is None:
        path = exc.where if isinstance(exc, EdgekitError) and exc.where else where
        free = _free_bytes(path)
        if needed is not None and free is not None and free < needed:
            return DiskFullError(path, needed=needed)
        return None
    path = getattr(cause, "filename", None) if isinstance(cause, OSError) else None
    cur: BaseException | None = exc
    for _ in range(32):  # a chain is short; never loop on a cyclic one
        if path is not None or cur is None or cur is cause:
            break
        if isinstance(cur, EdgekitError) and cur.where:
            path = cur.where
        cur = cur.__cause__ or cur.__context__
    return DiskFullError(str(path) if path else where)


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of an exception's message (its type name when empty), cut to ``limit`` characters:
    library errors are often pages long, and edgekit messages are one line."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]


_PIP_NAMES = {"PIL": "pillow"}  # import name -> pip name, where a base dependency's differ


def install_hint(extra: str | None, *packages: str) -> str:
    """The exact pip line that brings what is missing: ``pip install 'edgekit[<extra>]'``, or, for a base
    dependency of edgekit (``extra=None``: numpy, onnx, onnxruntime, pillow, psutil), the ``packages``
    themselves, given as module names (``"onnxruntime.quantization"`` -> ``onnxruntime``)."""
    if extra is not None:
        return f"pip install 'edgekit[{extra}]'"
    names = dict.fromkeys(_PIP_NAMES.get(top, top) for top in (p.split(".")[0] for p in packages))
    return f"pip install {' '.join(names)} (a base dependency of edgekit; reinstalling edgekit also brings it)"


def require(module: str, extra: str | None, purpose: str) -> Any:
    """Import ``module`` or raise :class:`MissingDependencyError` with :func:`install_hint`'s pip line:
    ``extra`` names the ``edgekit[...]`` extra that provides it, ``None`` a base dependency."""
    import importlib

    from edgekit.interrupts import signals_deferred

    try:
        with signals_deferred():  # a Ctrl-C inside a native extension's initialisation is delivered after it
            return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module!r}, which is not installed",
            where=module,
            hint=install_hint(extra, module),
        ) from exc


def not_found_hint(path: object) -> str:
    """The hint of a "file not found": where it was looked for (a relative path is resolved from the current
    folder, which is often not the one the user thinks of)."""
    from pathlib import Path

    p = Path(str(path))
    where = p if p.is_absolute() else Path.cwd() / p
    parent = next((q for q in where.parents if q.is_dir()), None)
    near = "" if parent is None or parent == where.parent else f"; the nearest folder that exists is {parent}"
    return f"no file at {where}: check the path{near}"

