"""The user's own metrics (``--metric NAME=file.py:function``; :attr:`edgekit.pipeline.RunOptions.user_metrics`): a
function that takes the source's and the candidate's values of one output over the held-out items (two arrays,
item axis first) and returns a dict of named floats, shown in the report beside the built-in metrics of that output.

    # my_metrics.py
    def text_map_f1(reference, candidate):
        a, b = reference > 0.3, candidate > 0.3
        return {"f1": 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)}

A file or function that is missing, or a function that raises or returns anything but a dict of finite numbers,
is one :class:`~edgekit.errors.ConfigError` naming it.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, first_line

MetricFunction = Callable[[np.ndarray, np.ndarray], Mapping[str, float]]


@dataclass(frozen=True)
class UserMetric:
    """One user metric: ``function(reference, candidate)`` on the output called ``output``; ``origin`` says where
    it came from (``file.py:function``) in errors and the report."""

    output: str
    function: MetricFunction
    origin: str = ""

    @classmethod
    def load(cls, spec: str, where: str = "--metric") -> UserMetric:
        """``NAME=file.py:function``: the function ``function`` of the Python file, for the output ``NAME``."""
        name, eq, ref = spec.partition("=")
        path, colon, func = ref.rpartition(":")
        if not (eq and name.strip() and colon and path.strip() and func.strip()):
            raise ConfigError("expected NAME=file.py:function", where=where, got=spec,
                              expected="an output name, '=', a Python file, ':', a function in it")
        file = Path(path.strip()).expanduser()
        if not file.is_file():
            raise ConfigError("no such file", where=f"{where} {spec}", got=str(file),
                              hint="give the path of a .py file that defines the function")
        module_spec = importlib.util.spec_from_file_location(f"edgekit_user_metric_{file.stem}", file)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError("not a Python file", where=f"{where} {spec}", got=str(file))
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:  # the user's code: any error is theirs to see, in one line
            raise ConfigError(f"the file could not be imported: {type(exc).__name__}: {first_line(exc, 200)}",
                              where=f"{where} {spec}") from exc
        fn = getattr(module, func.strip(), None)
        if not callable(fn):
            found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
            shown = ", ".join(found[:8]) + (f", ... ({len(found)} in all)" if len(found) > 8 else "")
            raise ConfigError("no such function in the file", where=f"{where} {spec}", got=func.strip(),
                              expected="one of: " + (shown or "(the file defines no function)"))
        return cls(name.strip(), fn, f"{file.name}:{func.strip()}")

    def __call__(self, reference: np.ndarray, candidate: np.ndarray) -> tuple[tuple[str, float], ...]:
        """The metric's named values, checked: a dict of finite numbers with string names."""
        where = f"--metric {self.output}={self.origin or getattr(self.function, '__name__', '?')}"
        from edgekit.bench import python_calls

        try:
            with python_calls():  # the user's Python: Ctrl-C reaches it at once, even inside a native block
                got: Any = self.function(np.array(reference), np.array(candidate))
        except SystemExit as exc:  # sys.exit in the user's code ended edgekit silently with its status
            raise ConfigError(f"the metric function called sys.exit({exc.code!r})", where=where,
                              hint="a metric returns a dict of numbers; it must not exit the process") from exc
        except Exception as exc:
            raise ConfigError(f"the metric function raised {type(exc).__name__}: {first_line(exc, 200)}",
                              where=where, hint="run it on two arrays of this output's shape to see why") from exc
        if not isinstance(got, Mapping) or not got:
            raise ConfigError("a metric function must return a dict of named numbers", where=where,
                              expected='e.g. {"f1": 0.97}', got=type(got).__name__ if not isinstance(got, Mapping)
                              else "an empty dict")
        out: list[tuple[str, float]] = []
        for key, value in got.items():
            number = value.item() if isinstance(value, np.generic) else value
            if not isinstance(key, str) or isinstance(number, bool) or not isinstance(number, (int, float)) \
                    or not math.isfinite(number):
                raise ConfigError("a metric value must be a finite number named by a string", where=where,
                                  got=f"{key!r}: {value!r}"[:120])
            out.append((key, float(number)))
        return tuple(out)


def load_user_metrics(specs: Iterable[str], where: str = "--metric") -> tuple[UserMetric, ...]:
    """The :class:`UserMetric` of each ``NAME=file.py:function`` (the CLI's ``--metric``); the same one given twice
    is a :class:`ConfigError` (its numbers were shown twice)."""
    specs = list(specs)
    twice = sorted({s for s in specs if specs.count(s) > 1})
    if twice:
        raise ConfigError("the same metric given twice", where=f"{where} {twice[0]}", expected="each metric once",
                          hint="drop the second one")
    return tuple(UserMetric.load(s, where) for s in specs)


def check_outputs(metrics: Iterable[UserMetric], outputs: Iterable[str]) -> None:
    """Refuse a user metric about an output the model does not have."""
    names = list(outputs)
    for m in metrics:
        if m.output not in names:
            raise ConfigError("no output of that name", where=f"--metric {m.output}={m.origin}",
                              expected=", ".join(names), got=m.output)
