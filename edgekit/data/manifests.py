"""Manifests: read a set's ``manifest.toml`` (format, kind, file, split counts), or make one for user data."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgekit.data.dataset import Dataset
from edgekit.data.readers import ImageArrays, NpzTensors, Reader, TextLines, split_subfolders
from edgekit.data.splits import SPLITS
from edgekit.errors import CalibrationError

FORMATS = {"npz-images": "image", "image-folder": "image", "tsv": "text", "npz": "tensor"}
"""The stored forms a manifest may name (``format``) and the ``kind`` each must declare."""

REBUILD = "python scripts/build_datasets.py calibration/"
"""The maintainer's command that regenerates the bundled sets (from a checkout of the edgekit repo)."""


def load_manifest(folder: Path) -> Dataset:
    """The set described by ``folder/manifest.toml``; checks its format, data file and split counts."""
    mpath = folder / "manifest.toml"
    try:
        m = tomllib.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalibrationError(f"cannot read the manifest ({exc})", where=str(mpath)) from exc
    fmt, kind = m.get("format"), m.get("kind")
    if fmt not in FORMATS or kind != FORMATS[fmt]:
        raise CalibrationError("manifest format/kind is not one edgekit reads", where=f"{mpath}:format",
                               expected="; ".join(f"format={f!r} with kind={k!r}" for f, k in FORMATS.items()),
                               got=f"format={fmt!r}, kind={kind!r}")
    reader: Reader
    if fmt == "image-folder":
        reader = split_subfolders(folder)
    else:
        file = folder / str(m.get("file", ""))
        if not m.get("file") or not file.is_file():
            raise CalibrationError("manifest names a data file that is missing", where=f"{mpath}:file",
                                   got=m.get("file"), hint=f"restore it; bundled sets are rebuilt with {REBUILD}")
        reader = (ImageArrays.open(file) if fmt == "npz-images" else
                  TextLines.open(file, tsv=True) if fmt == "tsv" else NpzTensors.open(file))
    ds = Dataset(str(m.get("name", folder.name)), str(kind), folder, m, reader)
    for s, info in dict(m.get("splits", {})).items():
        want = info.get("count") if isinstance(info, Mapping) else None
        if s in SPLITS and want is not None and want != ds.count(s):
            raise CalibrationError(f"split {s!r} does not hold the items the manifest lists", where=str(mpath),
                                   expected=f"{want} items", got=ds.count(s),
                                   hint=f"restore the files; bundled sets are rebuilt with {REBUILD}")
    return ds


def user_manifest(path: Path, kind: str, rule: str) -> dict[str, Any]:
    """The manifest a set without one gets; ``rule`` is ``"<description>; split: <split rule>"``."""
    return {"name": path.stem, "kind": kind, "description": rule.split(";")[0],
            "split_rule": rule.split("; ", 1)[-1], "provenance": {"source": "user data", "path": str(path)},
            "licence": "unknown (user data)"}
