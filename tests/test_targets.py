"""Targets are validated data: unknown keys and bad values are errors citing file:key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import ConfigError, UnknownNameError
from edgekit.targets import detect_isa, list_targets, load_target, parse_target

GOOD = """
schema = 1
name = "board"
access = "ssh"
arch = "aarch64"
isa = ["neon", "asimddp"]
memory_mb = 8192

[[runtime]]
name = "onnxruntime"
threads = 4
precisions = ["fp32", "int8"]

[[runtime]]
name = "litert"
"""


def test_builtin_local_cpu_loads_with_detected_isa() -> None:
    t = load_target("local-cpu")
    assert t.access == "local"
    assert t.runtime("onnxruntime") is not None
    assert set(t.isa) == set(detect_isa())
    assert "local-cpu" in [x.name for x in list_targets()]


def test_avx2_without_vnni_picks_the_avx2_preset() -> None:
    t = parse_target({"schema": 1, "name": "x", "arch": "x86_64", "isa": ["avx2", "fma"],
                      "runtime": [{"name": "onnxruntime"}]})
    assert t.int8_preset == "avx2"
    t2 = parse_target({"schema": 1, "name": "x", "arch": "x86_64", "isa": ["avx2", "avx512_vnni"],
                       "runtime": [{"name": "onnxruntime"}]})
    assert t2.int8_preset == "vnni"


def test_schema_has_room_for_ssh_and_several_runtimes(tmp_path: Path) -> None:
    f = tmp_path / "board.toml"
    f.write_text(GOOD)
    t = load_target(f)
    assert t.access == "ssh" and [r.name for r in t.runtimes] == ["onnxruntime", "litert"]
    assert t.int8_preset == "arm64" and t.memory_mb == 8192


@pytest.mark.parametrize(("text", "where"), [
    (GOOD.replace("memory_mb", "memroy_mb"), "board.toml:memroy_mb"),
    (GOOD.replace("threads = 4", "thread = 4"), "board.toml:runtime[0].thread"),
    (GOOD.replace('access = "ssh"', 'access = "telnet"'), "board.toml:access"),
    (GOOD.replace('"fp32", "int8"', '"fp32", "int4"'), "board.toml:runtime[0].precisions"),
    (GOOD.replace("schema = 1", "schema = 9"), "board.toml:schema"),
    (GOOD.replace('isa = ["neon", "asimddp"]', 'isa = ["avx9"]'), "board.toml:isa"),
])
def test_bad_target_files_cite_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    f = tmp_path / "board.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_target(f)
    assert where in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_target_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        load_target("rasberry-pi")
    assert "local-cpu" in str(err.value) and "rasberry-pi" in str(err.value)


def test_not_toml_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_target(f)


@pytest.mark.parametrize(("text", "where", "got"), [
    (GOOD.replace('name = "litert"', 'name = "litrt"'), "board.toml:runtime[1].name", "litrt"),
    (GOOD.replace('name = "onnxruntime"', 'name = "onnxruntme"'), "board.toml:runtime[0].name", "onnxruntme"),
    # an estimator is not a runtime of a board, nor a runtime an estimator
    (GOOD.replace('name = "litert"', 'name = "ethos-u-vela"'), "board.toml:runtime[1].name", "ethos-u-vela"),
    ('schema = 1\nname = "npu"\naccess = "estimate"\n[[runtime]]\nname = "onnxruntime"\n',
     "board.toml:runtime[0].name", "onnxruntime"),
])
def test_a_misspelled_runtime_name_is_an_error_naming_file_and_key(tmp_path: Path, text: str, where: str,
                                                                    got: str) -> None:
    """A runtime name no registry entry has would match no artifact: zero rows and no word why. Refused."""
    f = tmp_path / "board.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_target(f)
    msg = str(err.value)
    assert where in msg and repr(got) in msg and "expected one of:" in msg, msg


def test_every_builtin_target_names_registered_runtimes() -> None:
    assert len(list_targets()) >= 10  # each one passed the name check

