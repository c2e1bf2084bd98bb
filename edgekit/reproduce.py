"""``edgekit reproduce RUN``: run a recorded ``edgekit run`` again from its ``report.json`` provenance (the exact
command line, in the folder it was run from) into a new folder, compared with the first run as ``--baseline``
does, and say what differs in how the two were made: edgekit version and git state, Python, every library whose
version changed, the model / calibration / artifact hashes, the machine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.compare import report_path
from edgekit.errors import ConfigError
from edgekit.report.model import load_report


def recorded_command(document: Mapping[str, Any], where: str) -> tuple[list[str], Path | None]:
    """The ``edgekit run`` argument list (without the program name) and the folder it ran in, from a report."""
    prov = document.get("provenance") or {}
    command = prov.get("command")
    if not isinstance(command, list) or len(command) < 2 or command[1] != "run":
        raise ConfigError("this report records no 'edgekit run' command line", where=where, got=command,
                          hint="only runs made by 'edgekit run' can be reproduced; their report.json has "
                               "provenance.command")
    cwd = prov.get("cwd")
    return [str(a) for a in command[1:]], Path(cwd) if isinstance(cwd, str) else None


def with_out(args: Sequence[str], out: str, baseline: str) -> list[str]:
    """``args`` with ``--out`` (either spelling) set to ``out``, any ``--baseline`` to ``baseline``."""
    result: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in ("--out", "--baseline"):
            skip = True
            continue
        if a.startswith(("--out=", "--baseline=")):
            continue
        result.append(a)
    return [*result, "--out", out, "--baseline", baseline]


@contextlib.contextmanager
def _in_folder(folder: Path | None) -> Iterator[None]:
    before = Path.cwd()
    if folder is not None and folder.is_dir():
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def provenance_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """One line per way the two runs were made differently (empty: the same in every recorded respect)."""
    pa, pb = a.get("provenance") or {}, b.get("provenance") or {}
    out: list[str] = []
    for key in ("edgekit", "python", "git"):
        if pa.get(key) != pb.get(key):
            out.append(f"{key}: {pa.get(key)} -> {pb.get(key)}")
    la, lb = pa.get("libraries") or {}, pb.get("libraries") or {}
    for name in sorted(set(la) | set(lb)):
        if la.get(name) != lb.get(name):
            out.append(f"library {name}: {la.get(name, 'absent')} -> {lb.get(name, 'absent')}")
    ha, hb = pa.get("hashes") or {}, pb.get("hashes") or {}
    for key in ("model", "calibration"):
        if ha.get(key) != hb.get(key):
            out.append(f"{key} hash: {ha.get(key)} -> {hb.get(key)}")
    aa, ab = ha.get("artifacts") or {}, hb.get("artifacts") or {}
    for name in sorted(set(aa) | set(ab)):
        sa, sb = (aa.get(name) or {}).get("sha256"), (ab.get(name) or {}).get("sha256")
        if sa != sb:
            out.append(f"artifact {name}: " + ("only in the first run" if sb is None else "only in the new run"
                                               if sa is None else f"bytes differ (sha256 {sa[:12]} -> {sb[:12]})"))
    ea, eb = a.get("environment") or {}, b.get("environment") or {}
    for key in ("cpu_model", "machine", "cpu_flags"):
        if ea.get(key) != eb.get(key):
            out.append(f"machine {key}: differs ({str(ea.get(key))[:60]} -> {str(eb.get(key))[:60]})")
    return out


def reproduce(run: str, out: str | None, run_main: Any) -> tuple[int, list[str], Path]:
    """Re-run ``run``'s recorded command into ``out`` (default ``<run>-reproduced``) with ``run_main`` (the CLI's
    ``main``); the exit status, what differs in how the runs were made, and the new report's path."""
    first = report_path(run, "RUN")
    document = load_report(first)
    args, cwd = recorded_command(document, str(first))
    folder = first.parent.resolve()
    target = Path(out).resolve() if out else folder.with_name(folder.name + "-reproduced")
    with _in_folder(cwd):
        status = int(run_main(with_out(args, str(target), str(folder))))
    second = target / "report.json"
    if not second.is_file():
        return status, ["the new run wrote no report"], second
    return status, provenance_diff(document, load_report(second)), second
