"""Fixtures of the planted quantization tests."""

from __future__ import annotations

import numpy as np
import pytest
from quant_helpers import digit_pixels


@pytest.fixture(scope="session")
def pixels() -> np.ndarray:
    """The digits' pixels in [-1, 1] (a test module may define its own ``pixels``)."""
    return digit_pixels()
