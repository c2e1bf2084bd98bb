"""What a quantizer did, in one record for every backend, and the settings an artifact keeps of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QuantReport:
    """Effective settings, layers kept float, the calibration split used, the cost, the check and notes.

    ``split``: :meth:`~edgekit.quantization.calibration.CalibrationSplit.describe` (items that set the ranges,
    tuning items, seed); ``check``: :meth:`~edgekit.quantization.checks.Check.as_dict` on the tuning items
    (a one-item smoke check for fp16 / dynamic int8). ``calibration_peak_rss_mb`` is the peak resident
    memory of this whole process while calibration ran (0 where it was not sampled).
    """

    settings: Mapping[str, Any]
    kept_float: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    split: Mapping[str, Any] = field(default_factory=dict)
    calibration_seconds: float = 0.0
    calibration_peak_rss_mb: float = 0.0
    seconds: float = 0.0
    check: Mapping[str, float] = field(default_factory=dict)

    @property
    def calibration_items(self) -> int:
        """Calibration-split items used: those that set the ranges plus the tuning items."""
        return int(self.split.get("calibration_items", 0))

    def artifact_settings(self) -> dict[str, Any]:
        """The settings an adapter records in the artifact: the same keys for every format."""
        out: dict[str, Any] = {**dict(self.settings), "kept_float": list(self.kept_float),
                               "quantize_seconds": round(self.seconds, 3), "check": dict(self.check)}
        if self.split:
            out.update(calibration_items=self.calibration_items, calibration_split=dict(self.split),
                       calibration_seconds=round(self.calibration_seconds, 3),
                       calibration_peak_rss_mb=round(self.calibration_peak_rss_mb, 1))
        return out
