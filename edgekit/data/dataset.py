"""The :class:`Dataset` record: counts, labels, streamed feeds per split, and :func:`check_compatible`."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data.plans import Feeds, Plan, plan
from edgekit.data.preprocess import Preprocess
from edgekit.data.readers import Item, Reader
from edgekit.data.splits import SPLITS, Split, check_split
from edgekit.errors import CalibrationError
from edgekit.types import IOSpec


@dataclass(frozen=True)
class Dataset:
    """A calibration / evaluation set. ``kind`` is ``image``, ``text`` or ``tensor``."""

    name: str
    kind: str
    path: Path
    manifest: Mapping[str, Any]
    _reader: Reader = field(repr=False, compare=False)

    def count(self, split: Split) -> int:
        """Number of items in ``split`` (0 if the set has no such split)."""
        return self._reader.count(check_split(split))

    def labels(self, split: Split) -> np.ndarray | None:
        """Integer labels of ``split`` in item order, or ``None`` for an unlabelled set."""
        return self._reader.labels(check_split(split))

    def batches(self, split: Split, io: IOSpec, preprocess: Preprocess, *, batch_size: int = 1,
                limit: int | None = None) -> Iterator[Feeds]:
        """Stream feeds for ``io``'s inputs, ``batch_size`` items at a time, over the first ``limit`` items.

        Checks the model fit now; reads items only as the generator is consumed. A model with a fixed
        batch size B > 1 gets only full batches.
        """
        split = check_split(split)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CalibrationError("batch_size must be a positive integer", where=str(self.path), got=batch_size)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise CalibrationError("limit must be a positive integer or None", where=str(self.path), got=limit)
        p = self._plan(io, preprocess)
        if p.fixed_batch is not None and p.fixed_batch != batch_size:
            raise CalibrationError(f"the model takes batches of exactly {p.fixed_batch}", where=str(self.path),
                                   got=f"batch_size={batch_size}", hint=f"use batch_size={p.fixed_batch}")
        self._require_items(split)
        n = self.count(split) if limit is None else min(limit, self.count(split))
        return _stream(self._reader, split, p, batch_size, n)

    def fixed_batch(self, io: IOSpec, preprocess: Preprocess) -> int | None:
        """The only batch size :meth:`batches` accepts for ``io`` (1 when an input is fed whole, such as a
        scalar or a state), or ``None`` when any goes."""
        return self._plan(io, preprocess).fixed_batch

    def raw_items(self, split: Split, limit: int | None = None) -> Iterator[tuple[str, Any]]:
        """Unpreprocessed items as ``(where, item)``: an image path or uint8 array, a sentence, or a tensor."""
        items = self._reader.items(check_split(split))
        return items if limit is None else itertools.islice(items, limit)

    def describe(self) -> dict[str, Any]:
        """What the report says about the set: name, kind, path, counts, provenance, licence, split rule."""
        m = self.manifest
        return {
            "name": self.name, "kind": self.kind, "path": str(self.path),
            "counts": {s: self.count(s) for s in SPLITS if self.count(s) or s != "train"},
            "labelled": self.labels("eval") is not None,
            "label_names": list(m.get("label_names", [])) or None,
            "description": m.get("description"), "provenance": m.get("provenance"),
            "licence": m.get("licence"),
            "split_rule": m.get("split_rule") or {s: v.get("rule") for s, v in dict(m.get("splits", {})).items()
                                                  if isinstance(v, Mapping)} or None,
        }

    def _plan(self, io: IOSpec, preprocess: Preprocess) -> Plan:
        return plan(self.kind, self.path, self._reader, io, preprocess)

    def _require_items(self, split: Split) -> None:
        if self.count(split) == 0:
            raise CalibrationError(f"the {split!r} split is empty", where=str(self.path),
                                   expected="at least 1 item", got=0,
                                   hint="add items to it" if self.kind != "tensor" else
                                   "give the .npz both 'calibration' and 'eval' arrays")


def _stream(reader: Reader, split: Split, p: Plan, batch_size: int, n: int) -> Iterator[Feeds]:
    buf: list[Item] = []
    with contextlib.closing(reader.items(split)) as items:
        for i, item in enumerate(items):
            if i >= n:
                break
            buf.append(item)
            if len(buf) == batch_size:
                yield p.convert(buf)
                buf = []
    if buf and p.fixed_batch is None:
        yield p.convert(buf)


def check_compatible(ds: Dataset, io: IOSpec, preprocess: Preprocess,
                     splits: Sequence[Split] = ("calibration", "eval")) -> None:
    """Raise :class:`CalibrationError` now if ``ds`` cannot feed the model; reads at most one item."""
    p = ds._plan(io, preprocess)
    for s in splits:
        ds._require_items(check_split(s))
    with contextlib.closing(ds._reader.items(splits[0])) as items:
        first = next(items, None)
    if first is not None:
        p.convert([first])


def check_label_range(ds: Dataset, classes: int, what: str) -> None:
    """Raise :class:`CalibrationError` when a label of ``ds`` (any split) is not one of the model's ``classes``
    class indices (0 .. classes-1): accuracy against such labels would be computed and be wrong. ``what`` names
    the model output the classes come from."""
    for split in ("calibration", "eval"):
        labels = ds.labels(split)
        if labels is None or labels.size == 0:
            continue
        outside = np.flatnonzero((labels < 0) | (labels >= classes))
        if outside.size:
            i = int(outside[0])
            raise CalibrationError(f"a label is outside the model's {classes} classes", where=f"{ds.path} "
                                   f"({split} labels, item {i}; {outside.size} such)",
                                   expected=f"class indices 0..{classes - 1} ({what} has {classes})",
                                   got=int(labels[i]), hint="are these labels for this model? label k means "
                                                            "output k; relabel the data or pick its model")


def check_label_names(ds: Dataset, class_names: Sequence[str], what: str) -> None:
    """Raise :class:`CalibrationError` when ``ds`` took its labels from class folder names (by sorted order) and the
    model names its classes (``class_names``, in output order; ``what`` says where from): a folder name that is no
    class of the model, or a class whose sorted position is not its index in the model, would give wrong labels."""
    names = list(ds.manifest.get("label_names") or ()) if ds.manifest.get("label_names_from") else []
    if not names or not class_names:
        return
    index = {name: i for i, name in enumerate(class_names)}
    listed = ", ".join(f"{i}={n}" for i, n in enumerate(class_names[:12])) + (", ..." if len(class_names) > 12 else "")
    unknown = [n for n in names if n not in index]
    if unknown:
        raise CalibrationError("a class folder is not one of the model's classes", where=f"{ds.path} (class folder "
                               f"{unknown[0]!r})", expected=f"the class names of {what}: {listed}", got=unknown,
                               hint="name each class folder after the model's class, or after its class index "
                                    "(eval/0/, eval/1/, ...)")
    moved = [(k, n) for k, n in enumerate(names) if index[n] != k]
    if moved:
        k, n = moved[0]
        raise CalibrationError(f"labels by sorted folder name are not the model's class indices: folder {n!r} "
                               f"would be label {k} but is class {index[n]} of the model", where=str(ds.path),
                               expected=f"the class order of {what}: {listed}", got=f"sorted folders {names}",
                               hint="name the class folders by class index (eval/0/, eval/1/, ...)")
