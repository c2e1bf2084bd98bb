"""Int8 recipes by the ISA family of the target (``Target.int8_preset``), like optimum's avx2 / avx512_vnni /
arm64 configurations, and what each family means for the quantizers.

optimum's avx2 config uses u8 weights (u8 x u8 kernels); on an AVX2 machine those were as accurate but 6x
slower than u8 x s8 with reduce_range (design notes §7), hence ours. On an AVX-512 VNNI machine the real
u8 x s8 kernels agreed with an fp32 simulation of the same QDQ model, and reduce_range only cost accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgekit.errors import ConfigError, UnknownNameError

QTYPES = ("uint8", "int8")


@dataclass(frozen=True)
class Preset:
    """One ONNX Runtime static int8 recipe and why it suits its ISA family."""

    name: str
    activation_type: str
    weight_type: str
    per_channel: bool
    reduce_range: bool
    keep_input_layers_float: bool
    preprocess: bool
    why: str
    float_outputs: bool = True  # MatMul outputs and graph outputs left float (False: every tensor quantized)


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("avx2", "uint8", "int8", per_channel=True, reduce_range=True, keep_input_layers_float=True,
           preprocess=True, why="AVX2 without VNNI: the u8 x s8 kernels sum pairs of products in saturating 16-bit "
                                "registers; 7-bit weights (reduce_range) keep the sums in range"),
    Preset("vnni", "uint8", "int8", per_channel=True, reduce_range=False, keep_input_layers_float=True,
           preprocess=True, why="AVX-512 VNNI / AVX-VNNI accumulate u8 x s8 products in 32 bits: full 8-bit weights"),
    Preset("arm64", "int8", "int8", per_channel=True, reduce_range=False, keep_input_layers_float=True,
           preprocess=True, why="Arm64 dot-product kernels: s8 x s8, as ONNX Runtime's quantize_static guide "
                                "recommends for Arm"),
    Preset("qnn", "uint8", "int8", per_channel=True, reduce_range=False, keep_input_layers_float=False,
           preprocess=True, why="Qualcomm Hexagon HTP: u8 activations x per-channel symmetric s8 weights, every "
                                "layer quantized (the HTP runs float layers in fp16); per-tensor weights lost "
                                "accuracy on depthwise convnets (issue 14: 0.42 vs 0.82-0.84 top-1 agreement)",
           float_outputs=False),
    Preset("rknn", "int8", "int8", per_channel=True, reduce_range=False, keep_input_layers_float=False,
           preprocess=True, why="Rockchip RKNPU2: asymmetric s8 activations x per-channel s8 weights (RKNN's own "
                                "int8 scheme), every tensor quantized so RKNN keeps the whole graph in int8",
           float_outputs=False),
    Preset("generic", "uint8", "int8", per_channel=True, reduce_range=True, keep_input_layers_float=True,
           preprocess=True, why="unknown CPU: assume no VNNI (SSE/AVX2 u8 x s8 kernels saturate), so 7-bit weights"),
    Preset("ort-default", "int8", "int8", per_channel=False, reduce_range=False, keep_input_layers_float=False,
           preprocess=False, why="exactly onnxruntime.quantization.quantize_static's defaults (QDQ, S8S8, "
                                 "per-tensor, MinMax)", float_outputs=False),
)}


def resolve_preset(name: str, isa_preset: str) -> Preset:
    """Preset ``name``; ``"auto"`` takes the target's ISA family ``isa_preset``."""
    chosen = isa_preset if name == "auto" else name
    if chosen not in PRESETS:
        what = "ISA preset of the target" if name == "auto" else "int8 preset"
        raise UnknownNameError(f"unknown {what}", where="static_int8.preset (--int8-preset)",
                               expected=", ".join(["auto", *PRESETS]), got=chosen,
                               hint="pick one of the listed presets")
    return PRESETS[chosen]


def int8_kernels_saturate(isa_preset: str) -> bool:
    """True where the target's u8 x s8 kernels can saturate 16-bit sums (no VNNI, no Arm dot product): the
    ISA families that want 7-bit weights (ORT ``reduce_range``, NNCF ``overflow_fix``)."""
    return isa_preset not in ("vnni", "arm64", "qnn", "rknn")


def check_choice(value: Any, allowed: Sequence[Any], where: str) -> None:
    """Raise :class:`ConfigError` naming ``where`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError("unknown value", where=where, expected=", ".join(map(str, allowed)), got=value)


def check_names(value: Any, where: str) -> tuple[str, ...]:
    """A tuple of names from a list/tuple of strings; a bare string or other values raise naming ``where``."""
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise ConfigError("expected a list of names", where=where, got=value)
    return tuple(value)
