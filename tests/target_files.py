"""Target files the tests write: a local target with one ONNX Runtime runtime (as ``targets/*.toml`` are written)."""

from __future__ import annotations


def local_ort_target(name: str, description: str, precisions: tuple[str, ...] = ("int8-dynamic",)) -> str:
    """The TOML of a local target whose only runtime is ONNX Runtime on the CPU, 1 thread, taking ``precisions``."""
    listed = ", ".join(f'"{p}"' for p in precisions)
    return (f'schema = 1\nname = "{name}"\ndescription = "{description}"\naccess = "local"\narch = "auto"\n'
            f'isa = "auto"\n\n[[runtime]]\nname = "onnxruntime"\nproviders = ["CPUExecutionProvider"]\nthreads = 1\n'
            f"precisions = [{listed}]\n")
