"""The :class:`ModelSource` record every source loader returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.calibration import Preprocess
from edgekit.types import IOSpec, Task

ReferenceFn = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class ModelSource:
    """A loaded model, ready to export and to produce reference outputs.

    ``kind`` is ``torch``, ``huggingface`` or ``onnx``; ``fingerprint`` is a content hash of the
    weights (artifact recipes include it, so a changed checkpoint invalidates cached artifacts);
    ``handle`` is the live object the exporter needs (a ``torch.nn.Module``, an HF model directory,
    or an ``.onnx`` path); ``reference`` runs the source itself on named numpy inputs.
    """

    kind: str
    name: str
    io: IOSpec
    task: Task
    preprocess: Preprocess
    fingerprint: str
    path: Path | None = None
    handle: Any = field(default=None, compare=False, repr=False)
    reference: ReferenceFn | None = field(default=None, compare=False, repr=False)
    details: Mapping[str, Any] = field(default_factory=dict)

    def run_reference(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs of the source model on ``feeds`` (float32 numpy arrays, in output order)."""
        assert self.reference is not None, "source has no reference function"
        return self.reference(feeds)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "path": str(self.path) if self.path else None,
            "task": self.task.value, "io": self.io.to_dict(), "fingerprint": self.fingerprint,
            "preprocess": self.preprocess.to_dict() if self.preprocess is not None else None,
            **dict(self.details),
        }


def parse_shape(text: str, *, where: str) -> tuple[int, ...]:
    """Parse ``1,3,224,224`` (or ``1x3x224x224``) into a tuple of positive ints."""
    from edgekit.errors import ConfigError

    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise ConfigError("bad input shape", where=where, expected="comma-separated positive ints like 1,3,224,224",
                          got=text)
    return dims


def as_numpy_list(outputs: Sequence[Any]) -> list[np.ndarray]:
    """Convert model outputs (tensors / arrays) to float32 numpy arrays."""
    out = []
    for o in outputs:
        arr = o.detach().cpu().numpy() if hasattr(o, "detach") else np.asarray(o)
        out.append(arr.astype(np.float32) if arr.dtype.kind == "f" else arr)
    return out
