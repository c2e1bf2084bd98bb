"""Small value types shared by every stage: formats, precisions, tasks and tensor specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

try:
    from enum import StrEnum
except ImportError:  # Python 3.9/3.10 on a board running the agent: the same behaviour for our use

    class StrEnum(str, Enum):  # type: ignore[no-redef]  # noqa: UP042
        def __str__(self) -> str:
            return str(self.value)


from typing import Any

from edgekit.errors import UnknownNameError


class _NamedEnum(StrEnum):
    @classmethod
    def parse(cls, value: str | _NamedEnum, *, where: str = "") -> Any:
        """Parse a user-given name; unknown names raise :class:`UnknownNameError` listing the choices."""
        if isinstance(value, cls):
            return value
        for member in cls:
            if member.value == value:
                return member
        choices = ", ".join(m.value for m in cls)
        raise UnknownNameError(
            f"unknown {cls.__name__.lower()}",
            where=where or None,
            expected=f"one of: {choices}",
            got=value,
        )

    def __str__(self) -> str:
        return str(self.value)


class Format(_NamedEnum):
    """On-disk model formats."""

    ONNX = "onnx"
    OPENVINO = "openvino"
    TFLITE = "tflite"


class Precision(_NamedEnum):
    """Numeric precision of an artifact.

    ``int8`` is static: weights and activations int8, activation ranges calibrated. ``int8-dynamic`` has int8
    weights and activations quantized at run time from their observed range (ONNX Runtime, TFLite).
    ``int8-weights`` is weight-only: int8 weights, float activations (OpenVINO ``nncf.compress_weights``).
    The three are different numerics and are never compared as one precision. ``bf16``: fp32 weights computed
    in bfloat16 by a runtime whose hardware has it (OpenVINO's CPU plugin on AVX-512 BF16 / AMX), the precision
    recorded in the artifact itself.
    """

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_WEIGHTS = "int8-weights"
    BF16 = "bf16"


class Task(_NamedEnum):
    """What the model's first output means; decides which metrics apply."""

    IMAGE_CLASSIFICATION = "image-classification"
    TEXT_CLASSIFICATION = "text-classification"
    FEATURE_EXTRACTION = "feature-extraction"
    GENERIC = "generic"

    @property
    def is_classification(self) -> bool:
        return self in (Task.IMAGE_CLASSIFICATION, Task.TEXT_CLASSIFICATION)


Dim = int | str
"""A tensor dimension: a fixed size or a symbolic name such as ``"batch"``."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints or symbolic names) and numpy dtype name of one model input or output."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"

    def concrete_shape(self, batch: int = 1) -> tuple[int, ...]:
        """The shape with symbolic dims set: the first to ``batch``; any other symbolic dim is an error."""
        out: list[int] = []
        for i, d in enumerate(self.shape):
            if isinstance(d, int) and d > 0:
                out.append(d)
            elif i == 0:
                out.append(batch)
            else:
                raise UnknownNameError(
                    "input has a symbolic dimension edgekit cannot size",
                    where=f"input {self.name!r} dim {i}",
                    expected="a fixed size",
                    got=d,
                    hint="give the shape explicitly, e.g. --input-shape name=1,3,224,224",
                )
        return tuple(out)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TensorSpec:
        return TensorSpec(str(d["name"]), tuple(d["shape"]), str(d.get("dtype", "float32")))


@dataclass(frozen=True)
class IOSpec:
    """The inputs and outputs of a model, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = field(default_factory=tuple)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> IOSpec:
        return IOSpec(
            tuple(TensorSpec.from_dict(t) for t in d.get("inputs", [])),
            tuple(TensorSpec.from_dict(t) for t in d.get("outputs", [])),
        )
