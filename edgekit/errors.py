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
    ├── ExportError              an exporter failed
    │   └── NumericMismatchError the exported model disagrees with the source beyond tolerance
    ├── QuantizationError        a quantizer failed
    ├── RuntimeAdapterError      a runtime could not load or run an artifact
    │   └── DeviceUnavailableError  the target's device / provider is not on this machine
    └── BenchmarkError           a benchmark could not be completed
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


class BenchmarkError(EdgekitError):
    """A benchmark could not be completed."""


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

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module!r}, which is not installed",
            where=module,
            hint=install_hint(extra, module),
        ) from exc
