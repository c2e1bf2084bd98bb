"""scripts/build_datasets.py (the maintainer's tool) reproduces the bundled sets from their sources."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from edgekit.data import builtin_calibration_dir
from edgekit.errors import CalibrationError

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_datasets.py"
BUNDLED = builtin_calibration_dir()


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_datasets", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module                       # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_sentences_are_rebuilt_byte_for_byte_from_their_tsv(build: ModuleType, tmp_path: Path) -> None:
    assert build.main([str(tmp_path), "--only", "sentences"]) == 0
    for name in ("sentences.tsv", "manifest.toml"):
        assert (tmp_path / "sentences" / name).read_bytes() == (BUNDLED / "sentences" / name).read_bytes(), name


def test_bundled_manifests_are_what_the_writer_writes(build: ModuleType) -> None:
    for manifest in sorted(BUNDLED.glob("*/manifest.toml")):
        text = manifest.read_text(encoding="utf-8")
        assert build.to_toml(tomllib.loads(text)) == text, manifest


def test_digits_are_rebuilt_byte_for_byte(build: ModuleType, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    recorded = tomllib.loads((BUNDLED / "digits" / "manifest.toml").read_text())["provenance"]["versions"]
    if {p: importlib.metadata.version(p) for p in recorded} != recorded:
        pytest.skip(f"byte-identical output needs the recorded versions {recorded}")
    assert build.main([str(tmp_path), "--only", "digits"]) == 0
    for name in ("digits.npz", "manifest.toml"):
        assert (tmp_path / "digits" / name).read_bytes() == (BUNDLED / "digits" / name).read_bytes(), name


@pytest.mark.parametrize(("rows", "match"), [
    (["calibration\t1\tthis sentence is long enough", "calibration\t0\ttoo short"], "5-30 words"),
    (["calibration\t1\tthis sentence is long enough"] * 2, "duplicate"),
    (["calibration\t1\tthis sentence is long enough", "calibration\t1\tand so is this one here"], "not balanced"),
    (["calibration\t2\tthis sentence is long enough"], "label 0 or 1"),
])
def test_bad_sentence_sources_are_refused(build: ModuleType, tmp_path: Path, rows: list[str], match: str) -> None:
    source = tmp_path / "s.tsv"
    source.write_text("split\tlabel\ttext\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(CalibrationError, match=match):
        build.read_sentences(source)
