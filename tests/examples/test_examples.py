"""The demo models a user would bring (examples/): architecture, checkpoint format, caching, HF folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
if str(EXAMPLES) not in sys.path:  # the scripts import their siblings as `python examples/x.py` does
    sys.path.insert(0, str(EXAMPLES))

import digits_model  # noqa: E402
import finetune_digits  # noqa: E402
from _demo_cache import is_cached  # noqa: E402


def test_digits_model_builds_without_weights_and_gives_10_logits() -> None:
    model = digits_model.build_model().eval()
    with torch.no_grad():
        logits = model(torch.zeros(digits_model.INPUT_SHAPE))
    assert logits.shape == (1, 10)
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}
    assert tuple(digits_model.PREPROCESS["size"]) == digits_model.INPUT_SHAPE[2:]


def test_digits_split_and_preprocessing_match_the_bundled_set() -> None:
    bundled = np.load(ROOT / "calibration" / "digits" / "digits.npz")
    train_idx, eval_idx = finetune_digits.split_indices()
    np.testing.assert_array_equal(train_idx, bundled["train_index"])
    np.testing.assert_array_equal(eval_idx, bundled["eval_index"])
    assert not set(eval_idx) & set(bundled["calibration_index"])
    from sklearn.datasets import load_digits

    x = finetune_digits.preprocess(load_digits().images[0])
    assert x.shape == digits_model.INPUT_SHAPE[1:] and x.dtype == np.float32
    # The stored uint8 image through PIL gives the same input: training and evaluation agree exactly.
    from PIL import Image

    u8 = bundled["images"][0]
    pil = np.asarray(Image.fromarray(u8).resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    np.testing.assert_array_equal(x[0], (pil - 0.5) / 0.5)
    np.testing.assert_array_equal(x[0], x[2])


def test_digits_checkpoint_loads_strictly_and_cache_rule(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    model = digits_model.build_model()
    settings = {"epochs": 1, "seed": 0, "script_sha256": "x"}
    finetune_digits.save(tmp_path, model, {"settings": settings})
    for state in (load_file(tmp_path / "model.safetensors"), torch.load(tmp_path / "model.pt")):
        assert not digits_model.build_model().load_state_dict(state, strict=True).missing_keys
    assert is_cached(tmp_path, settings, finetune_digits.WEIGHT_FILES)
    assert not is_cached(tmp_path, {**settings, "epochs": 2}, finetune_digits.WEIGHT_FILES)
    with open(tmp_path / "model.pt", "ab") as fh:
        fh.write(b"\0")
    assert not is_cached(tmp_path, settings, finetune_digits.WEIGHT_FILES)


@pytest.mark.slow
def test_finetune_sentiment_writes_a_loadable_hf_folder(tmp_path: Path) -> None:
    out = tmp_path / "sentiment"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "USE_TF": "0"}
    cmd = [sys.executable, str(EXAMPLES / "finetune_sentiment.py"), "--out", str(out), "--epochs", "1"]
    subprocess.run(cmd, check=True, env=env, timeout=600)
    record = json.loads((out / "train.json").read_text())
    assert record["epochs"] == 1 and record["eval_items"] == 100 and 0.0 <= record["eval_accuracy"] <= 1.0
    assert not list(tmp_path.glob(".sentiment.*")), "the staging folder was left behind"

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)  # type: ignore[no-untyped-call]
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():
        logits = model(**tokenizer("The soup was lovely.", return_tensors="pt")).logits
    assert logits.shape == (1, 2)

    again = subprocess.run(cmd, check=True, env=env, timeout=120, capture_output=True, text=True)
    assert again.stdout.startswith("reusing")
