""":func:`load_dataset`: a bundled set by name, a folder (with or without manifest; of images or of ``.npz`` /
``.npy`` item files), a ``.npz`` or a ``.txt``."""

from __future__ import annotations

from pathlib import Path

from edgekit.data.bundled import builtin_calibration_dir, list_datasets
from edgekit.data.dataset import Dataset
from edgekit.data.manifests import load_manifest, user_manifest
from edgekit.data.readers import IMAGE_SUFFIXES, ArrayFiles, NpzTensors, Reader, TextLines, folder_reader
from edgekit.data.splits import PARITY_RULE
from edgekit.errors import CalibrationError


def load_dataset(path: str | Path) -> Dataset:
    """Load a bundled set by name, a folder (with or without manifest), a ``.npz`` or a ``.txt`` file."""
    p = Path(path).expanduser()
    if not p.exists():
        if isinstance(path, str) and p.name == path and not p.suffix:
            cand = builtin_calibration_dir() / path
            if (cand / "manifest.toml").is_file():
                return load_manifest(cand)
            raise CalibrationError("no such data set or path", where=path,
                                   expected="a path, or a bundled set: " + ", ".join(list_datasets()),
                                   hint="give a folder of images, a .npz or a .txt file")
        raise CalibrationError("data path not found", where=str(p),
                               hint="give a folder of images, a .npz or a .txt file, or a bundled set name")
    if p.is_dir():
        if (p / "manifest.toml").is_file():
            return load_manifest(p)
        arrays = ArrayFiles.open(p)
        if arrays is not None:
            return _user_set(p, "tensor", arrays,
                             f"tensors, one item per .npz/.npy file, fed as-is; split: {arrays.rule}")
        reader, rule = folder_reader(p)
        return _user_set(p, "image", reader, f"folder of images; split: {rule}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        tensors = NpzTensors.open(p)
        return _user_set(p, "tensor", tensors, "tensors in a .npz, fed as-is; split: " +
                         (f"by index parity ({PARITY_RULE})" if tensors.parity_split else tensors.rule))
    if suffix == ".txt":
        return _user_set(p, "text", TextLines.open(p, tsv=False),
                         f"sentences, one per line; split by line parity ({PARITY_RULE})")
    raise CalibrationError("unsupported data file", where=str(p), got=p.suffix or "no suffix",
                           expected="a folder of images, a .npz of tensors or a .txt file of sentences")


def _user_set(p: Path, kind: str, reader: Reader, rule: str) -> Dataset:
    manifest = user_manifest(p, kind, rule)
    classes = getattr(reader, "label_names", ())
    if classes:  # an image folder with class subfolders by name, labels by sorted order: eval/<class>/...
        manifest["label_names"] = list(classes)
        manifest["label_names_from"] = "class folders"  # edgekit.data.dataset.check_label_names checks them
    ds = Dataset(p.stem, kind, p, manifest, reader)
    if ds.count("calibration") + ds.count("eval") + ds.count("train") == 0:
        raise CalibrationError("the data set is empty", where=str(p), expected="at least 2 items", got=0,
                               hint=f"accepted images: {', '.join(IMAGE_SUFFIXES)}" if kind == "image" else None)
    return ds
