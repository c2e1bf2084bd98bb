"""load_dataset: what it accepts by name and by path, and the errors for what it does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from data_helpers import raises

from edgekit.data import load_dataset


def test_missing_paths_and_unknown_names() -> None:
    raises(lambda: load_dataset("/no/such/folder/x.npz"), "/no/such/folder/x.npz", "not found")
    raises(lambda: load_dataset("no-such-set"), "no-such-set", "digits, photos, sentences")


def test_user_sets_describe_their_split_rule(tmp_path: Path) -> None:
    single = tmp_path / "single.npz"
    np.savez(single, data=np.zeros((4, 2), np.float32))
    d = load_dataset(single).describe()
    assert d["name"] == "single" and d["kind"] == "tensor" and d["licence"] == "unknown (user data)"
    assert d["description"] == "tensors in a .npz, fed as-is"
    assert d["split_rule"] == "split: by index parity (even = calibration, odd = eval)"
    assert d["provenance"] == {"source": "user data", "path": str(single)}
    text = tmp_path / "s.txt"
    text.write_text("a b c\nd e f\n")
    assert load_dataset(text).describe()["split_rule"] == "split by line parity (even = calibration, odd = eval)"
