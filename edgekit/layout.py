"""Input layouts: sources and data sets give image tensors as NCHW; an artifact records the layout its
model really takes (``Artifact.layout``), and feeds are transposed for it here, where they are built."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

LAYOUTS = ("NCHW", "NHWC")


def to_layout(feeds: Mapping[str, np.ndarray], layout: str) -> dict[str, np.ndarray]:
    """``feeds`` (NCHW image tensors, anything else untouched) for a model whose input layout is ``layout``."""
    if layout != "NHWC":
        return dict(feeds)
    return {k: np.ascontiguousarray(v.transpose(0, 2, 3, 1)) if v.ndim == 4 else v for k, v in feeds.items()}
