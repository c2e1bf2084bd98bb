"""The runtime protocol. A runtime loads an artifact into a :class:`Session` that maps named numpy
inputs to a list of numpy outputs. Runtimes must need nothing but numpy and their own package, so
the on-device agent can use them on a board."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class RuntimeOptions:
    """How to load an artifact: thread count (None = runtime default), providers / device."""

    threads: int | None = None
    providers: tuple[str, ...] = ()
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"threads": self.threads, "providers": list(self.providers), "device": self.device}


@runtime_checkable
class Session(Protocol):
    """A loaded model."""

    input_names: tuple[str, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference; outputs in the model's output order."""
        ...

    def info(self) -> dict[str, Any]:
        """Where the model actually runs (providers / execution devices) and load-time facts."""
        ...


class Runtime(Protocol):
    """A runtime adapter: which formats it loads, its versions, and ``load``."""

    name: str
    formats: frozenset[str]

    def versions(self) -> dict[str, str]:
        """Package versions that matter for results."""
        ...

    def load(self, path: Path, options: RuntimeOptions) -> Session:
        """Load the artifact at ``path``; raise :class:`~edgekit.errors.RuntimeAdapterError` on failure."""
        ...
