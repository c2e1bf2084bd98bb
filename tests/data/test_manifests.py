"""Sets with a manifest.toml: format/kind pairs, the data file, and the split counts it promises."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from data_helpers import raises

from edgekit.data import load_dataset


def test_broken_manifest_and_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "manifest.toml").write_text('schema = 1\nname = "x"\nkind = "text"\nformat = "npz-images"\n')
    raises(lambda: load_dataset(folder), str(folder / "manifest.toml"), "format")
    (folder / "manifest.toml").write_text('schema = 1\nname = "x"\nkind = "text"\nformat = "tsv"\nfile = "a.tsv"\n')
    raises(lambda: load_dataset(folder), str(folder / "manifest.toml"), "missing")
    (folder / "a.tsv").write_text("split\tlabel\ttext\ncalibration\t1\tfine\nholdout\t0\tbad split name\n")
    raises(lambda: load_dataset(folder), f"{folder / 'a.tsv'}:3", "bad line")


def test_manifest_split_counts_are_checked(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    folder.mkdir()
    np.savez(folder / "t.npz", calibration=np.zeros((3, 2), np.float32), eval=np.zeros((2, 2), np.float32))
    head = 'name = "t"\nkind = "tensor"\nformat = "npz"\nfile = "t.npz"\n'
    (folder / "manifest.toml").write_text(head + "[splits.calibration]\ncount = 3\n")
    ds = load_dataset(folder)
    assert ds.name == "t" and ds.count("calibration") == 3 and ds.describe()["split_rule"] == {"calibration": None}
    (folder / "manifest.toml").write_text(head + "[splits.eval]\ncount = 5\n")
    raises(lambda: load_dataset(folder), str(folder / "manifest.toml"), "does not hold the items")
    (folder / "manifest.toml").write_text("name = [")
    raises(lambda: load_dataset(folder), str(folder / "manifest.toml"), "cannot read the manifest")
