"""Checks a run makes before any work, so that a mistake costs one line instead of a half-made run: options the run
would ignore, ``--exclude-nodes`` names that are no node, labels outside the model's classes, and an output folder
that holds what this run must not replace (a report edgekit did not write, another model's artifacts).

Every check raises one :class:`~edgekit.errors.ConfigError` line naming the option, file or folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgekit.artifacts import SIDECAR_SUFFIX, Artifact, pending_path
from edgekit.errors import ConfigError, MissingDependencyError, require
from edgekit.formats.base import FormatOptions
from edgekit.sources.base import ModelSource
from edgekit.targets import Target
from edgekit.types import Format, Precision, Task

#: The first line of every ``report.md`` edgekit writes: a report without it is the user's (even beside edgekit's
#: own ``report.json``: the user replaced the .md after a run), and never overwritten.
REPORT_MARKER = "<!-- edgekit report"
#: The title line reports of edgekit before the marker began with (:func:`check_report_owner` accepts them).
_OLD_TITLE = "# edgekit report: "
_REPORT_SCHEMA = "edgekit.report"
_EXCLUDE = "--exclude-nodes (static_int8.nodes_to_exclude)"


def class_count(source: ModelSource) -> int | None:
    """How many classes a classifier's primary output has, when its IOSpec says (else None). A model of no stated
    task (an ``.onnx`` file) with one ``(batch, C)`` output counts too: labels given with its data can only be
    class indices of that output, and labels outside it were silently left out of the metrics."""
    if not source.io.outputs or not source.io.outputs[0].shape:
        return None
    if not source.task.is_classification and not (source.task is Task.GENERIC and len(source.io.outputs) == 1
                                                  and len(source.io.outputs[0].shape) == 2):
        return None
    if not source.task.is_classification and source.io.outputs[0].shape[-1] == 1:
        return None  # one score: binary labels, not class indices
    last = source.io.outputs[0].shape[-1]
    return last if isinstance(last, int) and last > 0 else None


def nodes_to_exclude(format_options: FormatOptions) -> tuple[str, ...]:
    """The static int8 ``nodes_to_exclude`` (``--exclude-nodes``) among a run's format options, if any."""
    for item in format_options.items:
        nodes = getattr(getattr(item, "static_int8", None), "nodes_to_exclude", None)
        if nodes:
            return tuple(str(n) for n in nodes)
    return ()


def check_options_apply(nodes_to_exclude: Sequence[str], formats: Sequence[Format],
                        precisions: Sequence[Precision]) -> None:
    """Refuse options this run would ignore: ``nodes_to_exclude`` (``--exclude-nodes``) keeps nodes of the ONNX
    static int8 model in float, so it needs ONNX and int8 among the run's formats and precisions."""
    if nodes_to_exclude and (Format.ONNX not in formats or Precision.INT8 not in precisions):
        raise ConfigError("applies to the ONNX static int8 model, which this run does not build",
                          where=_EXCLUDE, got=",".join(nodes_to_exclude),
                          expected="onnx in --formats and int8 in --precisions",
                          hint="add them, or drop --exclude-nodes")


def check_excluded_nodes(canonical: Artifact, nodes_to_exclude: Sequence[str]) -> None:
    """Refuse ``nodes_to_exclude`` (``--exclude-nodes``) names that are not nodes of the exported ONNX model, before
    anything is quantized (a misspelt name was one failed artifact in a run that exited 0)."""
    if not nodes_to_exclude or canonical.format is not Format.ONNX:
        return
    onnx = require("onnx", None, "reading ONNX files")
    names = [n.name for n in onnx.load(str(canonical.path), load_external_data=False).graph.node]
    unknown = [n for n in nodes_to_exclude if n not in set(names)]
    if unknown:
        raise ConfigError("no such node in the exported model", where=_EXCLUDE, got=",".join(unknown),
                          expected=f"node names of {canonical.name}, e.g. {', '.join(n for n in names[:4] if n)}",
                          hint=f"the names are those of the graph in {canonical.path} (netron or onnx.load show them)")


def check_report_owner(out: Path) -> None:
    """Refuse an output folder whose ``report.md``, ``report.html`` or ``report.json`` edgekit did not write: the run
    would overwrite the user's file. edgekit's ``report.md`` and ``report.html`` start with :data:`REPORT_MARKER`
    (a ``report.md`` from before the marker, with its title line); its ``report.json`` is a JSON object with
    edgekit's schema name."""
    md, js = out / "report.md", out / "report.json"
    for path in (md, out / "report.html", js):
        if path.is_dir():  # "not written by edgekit ... an empty first line" said nothing useful
            raise ConfigError(f"{path.name} here is a folder, where the run writes its {path.name}", where=str(path),
                              expected="a file edgekit wrote, or nothing",
                              hint="choose another output folder (--out), or move that folder away")
    if md.exists():
        try:
            with open(md, encoding="utf-8", errors="replace") as fh:
                first = fh.readline()
        except OSError:
            first = ""
        if not first.startswith((REPORT_MARKER, _OLD_TITLE)):  # whatever report.json says: the .md is the user's
            raise ConfigError("report.md here was not written by edgekit, and the run would overwrite it",
                              where=str(md), expected=f"a report edgekit wrote (first line {REPORT_MARKER} ...)",
                              got=first.strip()[:60] or "an empty first line",
                              hint="choose another output folder (--out), or move your report.md away")
    html = out / "report.html"  # edgekit's starts with the same marker line (edgekit.report.html)
    if html.exists() and not _first_line(html).startswith(REPORT_MARKER):
        raise ConfigError("report.html here was not written by edgekit, and the run would overwrite it",
                          where=str(html), expected=f"a report edgekit wrote (first line {REPORT_MARKER} ...)",
                          got=_first_line(html).strip()[:60] or "an empty first line",
                          hint="choose another output folder (--out), or move your report.html away")
    if js.exists() and not _edgekit_json(js):
        raise ConfigError("report.json here was not written by edgekit, and the run would overwrite it", where=str(js),
                          expected=f"an edgekit report (schema {_REPORT_SCHEMA!r})",
                          hint="choose another output folder (--out), or move your report.json away")


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.readline()
    except OSError:
        return ""


def check_unique_targets(given: Sequence[str | Path], targets: Sequence[Target]) -> None:
    """Refuse a target given twice (by name or by file): its rows were benchmarked twice and compared with each
    other ("1.90x vs fp32" for the fp32 baseline)."""
    seen: dict[str, str | Path] = {}
    for raw, target in zip(given, targets, strict=True):
        if target.name in seen:
            raise ConfigError("target given twice", where="--target", got=f"{seen[target.name]} and {raw}",
                              expected="each target once", hint=f"drop one of the --target {target.name}")
        seen[target.name] = raw


def uses_hosts(target: Target) -> bool:
    """Whether ``target`` runs on boards reached through ``--host``/``--inventory``/``--farm`` (its executor's
    registry entry says ``boards``)."""
    from edgekit.registry import EXECUTORS

    entry = EXECUTORS.get(target.access)
    return entry is not None and entry.boards


def check_hosts(targets: Sequence[Target], hosts: Sequence[Any], farm: bool = False) -> None:
    """Refuse a ``--host``/inventory entry no target of the run would use (it was silently ignored), and a board
    target with no host (it was a silent not-available row) unless a ``farm`` gives the boards."""
    remote = [t for t in targets if uses_hosts(t)]
    by_name = {t.name: t for t in targets}
    for h in hosts:
        where = f"--host {h.label}" if h.target is None else f"host {h.label} (target {h.target})"
        if h.target is not None and h.target in by_name and not uses_hosts(by_name[h.target]):
            raise ConfigError("this target does not run on a board over ssh: the host would be ignored", where=where,
                              got=f"{h.target} (access = {by_name[h.target].access!r})",
                              expected="a target reached over ssh (e.g. raspberry-pi-5)",
                              hint="name a board target for the host, or drop the host")
        if h.target is None and not remote:
            raise ConfigError("no target of the run runs on a board over ssh: the host would be ignored", where=where,
                              got=", ".join(t.name for t in targets), expected="an ssh target among --target",
                              hint="add --target <board target> (edgekit targets list), or drop --host")
    for t in remote:
        if not farm and not any(h.target in (None, t.name) for h in hosts):
            raise ConfigError("this target runs on a board, and no host is given for it", where=f"--target {t.name}",
                              expected="--host USER@HOST:PORT, an --inventory entry with this target, or --farm",
                              hint=f"add --host pi@192.168.1.20:22, or drop --target {t.name}")


def check_targets_have_work(targets: Sequence[Target], formats: Sequence[Format], precisions: Sequence[Precision],
                            skipped: Sequence[str] = ()) -> None:
    """Refuse a target none of whose runtimes takes a format and precision the run builds (``--target
    ethos-u55-128 --formats onnx`` ended with exit 0 and the reason only inside report.md). ``skipped`` names
    formats left out because they are not installed (the hint then names that, not ``--formats``)."""
    from edgekit.registry import formats_of

    built = {f.value for f in formats}
    wanted = {Precision.FP32, *precisions}  # fp32 is always built: the others derive from it
    for t in targets:
        takes = [(r.name, formats_of(r.name), r.precisions) for r in t.runtimes]
        if any(set(fmts) & built and set(precs) & wanted for _, fmts, precs in takes):
            continue
        needs = "; ".join(f"{name}: {'/'.join(fmts) or '?'} {'/'.join(p.value for p in precs)}"
                          for name, fmts, precs in takes)
        missing = sorted({f for _, fmts, _ in takes for f in fmts} & set(skipped))
        hint = (f"{', '.join(missing)} is not installed here (edgekit doctor says which extra)" if missing else
                f"add the format and precision it takes to --formats/--precisions, or drop --target {t.name}")
        raise ConfigError("this target can run nothing the run builds", where=f"--target {t.name}",
                          expected=needs or "a target with runtimes",
                          got=f"formats {', '.join(sorted(built)) or '-'}; precisions "
                              f"{', '.join(p.value for p in precisions)}", hint=hint)


def check_artifact_paths(art_dir: Path, formats: Sequence[Format], precisions: Sequence[Precision]) -> None:
    """:func:`check_artifact_owner` for every artifact a run may build, before any work: a failed build of one
    precision is only a note, and the user's file must stop the run. A format that is not installed is skipped
    (the run notes it)."""
    from edgekit.registry import get_format

    for fmt in formats:
        try:
            adapter = get_format(fmt.value)
        except MissingDependencyError:
            continue
        for precision in precisions:
            check_artifact_owner(art_dir / adapter.file_name(precision))


@contextlib.contextmanager
def building(path: Path) -> Iterator[None]:
    """Mark ``path`` as edgekit's own while it is built, until its sidecar is written (see
    :func:`check_artifact_owner`). A failure that left no model file removes the mark too; a model file left
    without its sidecar (a kill between the two writes) keeps it, so the re-run rebuilds it."""
    marker = pending_path(path)
    with contextlib.suppress(OSError):  # a full disk is reported by the build itself
        marker.write_text(f"{os.getpid()}\n")
    try:
        yield
    except BaseException:
        if not path.exists():
            marker.unlink(missing_ok=True)
        raise
    marker.unlink(missing_ok=True)


def check_artifact_owner(path: Path) -> None:
    """Refuse to build an artifact over a file edgekit did not record: a file with an artifact's name and no
    edgekit sidecar beside it is the user's (edgekit writes its model files atomically, then the sidecar)."""
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if pending_path(path).exists():
        return  # edgekit's own build of it was interrupted between the model file and its sidecar: rebuild
    if (path.exists() or path.is_symlink()) and not side.exists():
        raise ConfigError("a file with this artifact's name is here without edgekit's sidecar, and the build would "
                          "overwrite it", where=str(path), expected=f"no file, or one edgekit wrote (with {side.name})",
                          hint="move your file away or choose another --out (delete it if an interrupted edgekit "
                               "run left it)")


def _edgekit_json(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == _REPORT_SCHEMA


def check_same_model(art_dir: Path, source: ModelSource, out: Path, progress: Callable[[str], None]) -> None:
    """Refuse an output folder whose artifacts were built from another model (each sidecar records the source
    fingerprint): this run would replace them. The same model with changed weights (the folder's report names the
    same model) is fine: its artifacts are rebuilt, and a progress line says so."""
    foreign: list[tuple[str, str]] = []
    for side in sorted(art_dir.glob(f"*{SIDECAR_SUFFIX}")) if art_dir.is_dir() else []:
        try:
            fingerprint = str(json.loads(side.read_text(encoding="utf-8"))["recipe"]["source"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a complete artifact's sidecar: that file is rebuilt anyway
        if fingerprint != source.fingerprint:
            foreign.append((side.name[: -len(SIDECAR_SUFFIX)], fingerprint))
    if not foreign:
        return
    before = _reported_model(out)
    if before is not None and before.get("kind") == source.kind and before.get("name") == source.name:
        progress(f"{source.name} changed since the artifacts in {art_dir} were built: they are rebuilt")
        return
    name, fingerprint = foreign[0]
    other = f"model {before.get('name')!r} ({before.get('kind')})" if before else "another model"
    more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
    raise ConfigError(f"this folder holds the artifacts of {other}, which this run would replace", where=str(out),
                      expected=f"artifacts of {source.name!r} (source {source.fingerprint[:16]})",
                      got=f"artifacts/{name}{more}, built from source {fingerprint[:16]}",
                      hint=f"choose another output folder (--out), or delete {art_dir} to rebuild there")


def _reported_model(out: Path) -> dict[str, Any] | None:
    """The ``model`` entry of the edgekit report in ``out`` (the model of the last complete run), if any."""
    try:
        data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, dict) else None
