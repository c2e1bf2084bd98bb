"""Per-layer error of every int8 artifact of a run: each format's backend (:mod:`edgekit.layer_errors` for ONNX,
:mod:`edgekit.layer_errors_openvino`, :mod:`edgekit.layer_errors_tflite`) compares the int8 artifact's intermediate
tensors with its fp32 sibling's on a few calibration items (never held-out ones), and says where the error jumps
and whether those layers were the ones the quantizer kept in float. Descriptive: a backend that cannot read a model
gives a note, never a failed run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.errors import EdgekitError
from edgekit.layer_errors import Feeds, LayerReport, onnx_layer_errors
from edgekit.layer_errors_openvino import openvino_layer_errors
from edgekit.layer_errors_tflite import tflite_layer_errors
from edgekit.layout import to_layout
from edgekit.types import Format, Precision

#: Calibration items each int8 artifact is probed on.
ITEMS = 8
_BACKENDS: dict[Format, Callable[..., LayerReport]] = {
    Format.ONNX: onnx_layer_errors, Format.OPENVINO: openvino_layer_errors, Format.TFLITE: tflite_layer_errors}


def layer_reports(artifacts: Sequence[Artifact], feeds: Sequence[Feeds],
                  progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """One JSON-ready per-layer report (:meth:`LayerReport.as_dict`) per static int8 artifact that has an fp32
    sibling of its format, on ``feeds`` (calibration items in the source's layout)."""
    fp32 = {a.format: a for a in artifacts if a.precision is Precision.FP32}
    out: list[dict[str, Any]] = []
    for art in artifacts:
        backend = _BACKENDS.get(art.format)
        ref = fp32.get(art.format)
        if art.precision is not Precision.INT8 or backend is None or ref is None:
            continue
        progress(f"per-layer error of {art.name} vs {ref.name} on {len(feeds)} calibration items")
        laid = [to_layout(f, art.layout) for f in feeds]
        kept = tuple(str(n) for n in art.settings.get("kept_float", ()) or ())
        try:
            rep = backend(Path(ref.path), Path(art.path), laid, kept_float=kept).as_dict()
        except (EdgekitError, ValueError, RuntimeError) as exc:  # descriptive: say why, keep the run
            rep = {"artifact": art.name, "items": 0, "layers": [], "jumps": [],
                   "note": f"per-layer error not measured: {exc}"}
        rep["artifact"] = art.name
        out.append(rep)
    return out
