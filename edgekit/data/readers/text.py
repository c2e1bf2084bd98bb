"""Text readers: a ``.txt`` of sentences (split by line parity) and the bundled ``split<TAB>label<TAB>text`` TSV."""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.data.readers.base import Item
from edgekit.data.splits import SPLITS, Split, by_parity
from edgekit.errors import CalibrationError

_LABELLED = re.compile(r"^(-?\d+)\t(.*)$")


@dataclass(frozen=True)
class TextLines:
    """``.txt`` (split by line parity, optional ``label<TAB>``) or the bundled ``split<TAB>label<TAB>text`` TSV."""

    file: Path
    tsv: bool
    counts: Mapping[str, int]
    labelled: bool

    @staticmethod
    def open(file: Path, tsv: bool) -> TextLines:
        """Read the file once to count the items; either every line has a label or none has."""
        counts: dict[str, int] = {}
        kinds = set()
        for _, split, label, _text in parse_text(file, tsv):
            counts[split] = counts.get(split, 0) + 1
            kinds.add(label is not None)
        if len(kinds) > 1:
            raise CalibrationError("some lines have a label and some do not", where=str(file),
                                   expected="every line 'label<TAB>text', or none", hint="label every line")
        return TextLines(file, tsv, counts, kinds == {True})

    def count(self, split: Split) -> int:
        return self.counts.get(split, 0)

    def labels(self, split: Split) -> np.ndarray | None:
        if not self.labelled:
            return None
        return np.array([lab for _, s, lab, _ in parse_text(self.file, self.tsv) if s == split], dtype=np.int64)

    def items(self, split: Split) -> Generator[Item, None, None]:
        for where, s, _, text in parse_text(self.file, self.tsv):
            if s == split:
                yield where, text


def parse_text(file: Path, tsv: bool) -> Iterator[tuple[str, Split, int | None, str]]:
    """``(file:line, split, label or None, text)`` for every non-blank line of ``file``."""
    try:
        fh = file.open(encoding="utf-8-sig")
    except OSError as exc:
        raise CalibrationError(f"cannot read the file ({exc.strerror})", where=str(file)) from exc
    with fh:
        yield from _text_rows(file, fh, tsv)


def _text_rows(file: Path, lines: Iterator[str], tsv: bool) -> Iterator[tuple[str, Split, int | None, str]]:
    n, lineno = 0, 0
    try:
        for lineno, raw in enumerate(lines, 1):
            line = raw.rstrip("\r\n")
            where = f"{file}:{lineno}"
            if not line.strip() or (tsv and lineno == 1 and line.startswith("split\t")):
                continue
            if tsv:
                parts = line.split("\t")
                if len(parts) != 3 or parts[0] not in SPLITS or not re.fullmatch(r"-?\d*", parts[1]):
                    raise CalibrationError("bad line", where=where, expected="split<TAB>label<TAB>text with split "
                                           "one of calibration, eval, train", got=line)
                yield where, parts[0], int(parts[1]) if parts[1] else None, parts[2]
                continue
            m = _LABELLED.match(line)
            if m is None and "\t" in line:
                raise CalibrationError("bad line", where=where, expected="text, or an integer label<TAB>text",
                                       got=line)
            split = by_parity(n)
            n += 1
            yield (where, split, int(m.group(1)), m.group(2)) if m else (where, split, None, line)
    except UnicodeDecodeError as exc:
        raise CalibrationError("the file is not UTF-8 text", where=f"{file}:{lineno + 1}", got=str(exc),
                               hint="save it as UTF-8") from exc
