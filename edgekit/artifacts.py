"""Frozen stage records, content hashing and atomic writes.

An :class:`Artifact` is a model file on disk plus how it was made. Beside each artifact file lies a
sidecar ``<file>.edgekit.json`` written *after* the artifact is complete (both atomically): a re-run
finds the sidecar, checks the recipe key and the hash of **every** file of the artifact (the model file
and its side files: an OpenVINO IR's ``.bin``, ONNX external data ``<file>.data``), and reuses the artifact
instead of rebuilding it. A half-written artifact has no sidecar and is rebuilt; so is one whose files
changed, went missing or gained a side file since it was recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.errors import as_disk_full
from edgekit.types import Format, IOSpec, Precision

SIDECAR_SUFFIX = ".edgekit.json"

#: What marks a temporary file of :func:`atomic_path`: ``.<final name>.edgekit-tmp-<8 random chars><suffix>``.
TEMP_MARK = ".edgekit-tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    The temporary name (``.<name>.edgekit-tmp-XXXXXXXX<suffix>``, see :func:`clean_leftovers`) keeps ``path``'s
    suffix (or ``suffix``) so that writers that look at the extension still work. A full disk, while the
    temporary file is written or by a library writing it, is a :class:`~edgekit.errors.DiskFullError` naming
    ``path``.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}", suffix=suffix or target.suffix or ".tmp",
                                   dir=target.parent)
    except OSError as exc:
        full = as_disk_full(exc, str(target))
        if full is None:
            raise
        raise full from exc
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the final file the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()  # first: the free space the error reports is the space there is without it
        full = as_disk_full(exc, str(target)) if isinstance(exc, Exception) else None
        if full is None or full is exc:
            raise
        raise full from exc


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename); a full disk is a
    :class:`~edgekit.errors.DiskFullError` naming ``path`` and the bytes needed."""
    from edgekit.errors import DiskFullError

    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except DiskFullError as exc:
        raise DiskFullError(exc.path, needed=len(data)) from exc.__cause__


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_CONTENT_CACHE: dict[tuple[str, int, int], str] = {}


def cached_sha256_file(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, remembered in this process by (resolved path, size, mtime): data files are hashed
    once per run however many artifacts name them, and again as soon as one changes."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _CONTENT_CACHE:
        _CONTENT_CACHE[key] = sha256_file(p)
    return _CONTENT_CACHE[key]


def content_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the content of a file, or of a folder: every file under it (hidden ones excepted) by
    relative path and content, in sorted order. Each file is streamed once (see :func:`cached_sha256_file`)."""
    p = Path(path)
    if p.is_file():
        return cached_sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if f.is_file() and not any(part.startswith(".") for part in rel.parts):
            h.update(f"{rel.as_posix()}\0{cached_sha256_file(f)}\n".encode())
    return h.hexdigest()


def side_files(path: str | os.PathLike[str]) -> list[Path]:
    """The side files of the model file ``path`` that exist on disk: ONNX external data (``<file>.data``) and,
    for an OpenVINO IR ``.xml``, its ``.bin`` weights."""
    p = Path(path)
    candidates = [Path(str(p) + ".data")]
    if p.suffix == ".xml":
        candidates.append(p.with_suffix(".bin"))
    return [c for c in candidates if c.is_file()]


def file_hashes(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{file name: sha256}`` of every file of the artifact at ``path``: the model file first, then its side
    files (names relative to the artifact's folder)."""
    p = Path(path)
    return {f.name: sha256_file(f) for f in (p, *side_files(p))}


def write_hashed_array(path: str | os.PathLike[str], array: Any) -> None:
    """Save a numpy array as ``.npy`` atomically, then its SHA-256 beside it (``<file>.edgekit.json``), so that
    :func:`read_hashed_array` never trusts a file that changed since."""
    import numpy as np

    target = Path(path)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    atomic_write_json(sidecar_path(target), {"sha256": sha256_file(target), "shape": list(array.shape),
                                             "dtype": str(array.dtype)})


def read_hashed_array(path: str | os.PathLike[str]) -> tuple[Any, str]:
    """``(array, "")`` when ``path`` holds the array :func:`write_hashed_array` saved, with the same hash; else
    ``(None, why)``: missing, no hash recorded, altered (hash differs), or unreadable (truncated)."""
    import numpy as np

    target = Path(path)
    side = sidecar_path(target)
    if not target.exists():
        return None, "not there"
    if not side.exists():
        return None, "no hash was recorded for them"
    try:
        recorded = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(recorded, dict) or recorded.get("sha256") != sha256_file(target):
            return None, "they do not match the hash recorded beside them"
        return np.load(target, allow_pickle=False), ""
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return None, f"they cannot be read ({type(exc).__name__})"


def recipe_key(recipe: Mapping[str, Any]) -> str:
    """A short stable hash of a JSON-able recipe (what produced an artifact, including its inputs)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Artifact:
    """A complete model file (or, for OpenVINO, the ``.xml`` of an ``.xml``/``.bin`` pair) and its recipe.

    ``recipe`` records the stage, its options and the parent's hash; ``notes`` holds what the stage
    decided on its own (e.g. nodes kept in float) so the report can say it. ``sha256`` is the model file's
    hash; ``files`` maps every file of the artifact (model file and side files, see :func:`file_hashes`) to
    its hash (empty until :func:`finish_artifact` records it).
    """

    path: Path
    format: Format
    precision: Precision
    io: IOSpec
    sha256: str
    recipe: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    layout: str = "NCHW"
    settings: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size_bytes(self) -> int:
        """Size on disk, including side files (external data, ``.bin``)."""
        return self.path.stat().st_size + sum(side.stat().st_size for side in side_files(self.path))

    @property
    def key(self) -> str:
        return recipe_key(self.recipe)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format.value,
            "precision": self.precision.value,
            "io": self.io.to_dict(),
            "sha256": self.sha256,
            "recipe": dict(self.recipe),
            "recipe_key": self.key,
            "notes": list(self.notes),
            "layout": self.layout,
            "settings": dict(self.settings),
            "files": dict(self.files),
            "size_bytes": self.size_bytes,
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Artifact:
        return Artifact(
            path=Path(d["path"]),
            format=Format.parse(d["format"]),
            precision=Precision.parse(d["precision"]),
            io=IOSpec.from_dict(d["io"]),
            sha256=str(d["sha256"]),
            recipe=dict(d.get("recipe", {})),
            notes=tuple(d.get("notes", ())),
            layout=str(d.get("layout", "NCHW")),
            settings=dict(d.get("settings", {})),
            files={str(k): str(v) for k, v in dict(d.get("files", {})).items()},
        )


def size_estimate(parent: Artifact | None, precision: Precision) -> int | None:
    """About the bytes an artifact of ``precision`` made from the fp32 artifact ``parent`` takes on disk (its
    size, half for fp16, a quarter for the int8 kinds); None without a parent on disk."""
    share = {Precision.FP32: 1.0, Precision.FP16: 0.5}.get(precision, 0.25)
    return int(parent.size_bytes * share) if parent is not None and parent.path.exists() else None


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def pending_path(path: Path) -> Path:
    """The marker edgekit writes before building ``path`` and removes once its sidecar is written: a model file
    with this marker and no sidecar is edgekit's own interrupted build (rebuilt), never a user's file."""
    return path.with_name(f".{path.name}.edgekit-pending")


#: The sidecar fields a reuse trusts besides the recipe: their digest is recorded (``fields_sha256``), so a sidecar
#: edited by hand (``"precision": "fp16"`` on an int8 model, another layout) is rebuilt, not believed.
_TRUSTED = ("format", "precision", "layout", "io", "settings", "files", "sha256")


def _fields_digest(d: Mapping[str, Any]) -> str:
    return recipe_key({k: d.get(k) for k in _TRUSTED})


def finish_artifact(artifact: Artifact) -> Artifact:
    """Record ``artifact`` as complete by writing its sidecar (after the model file and its side files are in
    place). The hashes of every file of the artifact are recorded (computed here when ``files`` is empty)."""
    if not artifact.files:
        hashes = file_hashes(artifact.path)
        artifact = replace(artifact, files=hashes, sha256=hashes[artifact.path.name])
    record = artifact.to_dict()
    record["fields_sha256"] = _fields_digest(record)
    atomic_write_json(sidecar_path(artifact.path), record)
    return artifact


def reuse_artifact(path: Path, recipe: Mapping[str, Any]) -> Artifact | None:
    """Return the artifact at ``path`` if a complete one made by the same ``recipe`` is there, else None
    (:func:`check_reuse` also says why not)."""
    return check_reuse(path, recipe)[0]


def check_reuse(path: Path, recipe: Mapping[str, Any], io: IOSpec | None = None) -> tuple[Artifact | None, str]:
    """The artifact at ``path`` if a complete one made by the same ``recipe`` is there, else None and why not
    (empty when there is no artifact or no sidecar at all).

    Complete means: the sidecar's recipe key matches, its format and precision are the recipe's, its inputs and
    outputs are ``io`` (when given), its trusted fields are as recorded (:data:`_TRUSTED`), and the artifact's
    files on disk are exactly the ones the sidecar recorded, each with the recorded hash (a changed ``.bin`` or
    external-data file is rebuilt). A sidecar that recorded no file list (older edgekit) only vouches for the
    model file: one with side files on disk is rebuilt."""
    side = sidecar_path(path)
    if not (path.exists() and side.exists()):
        return None, ""
    try:
        data = json.loads(side.read_text())
        art = Artifact.from_dict({**data, "path": str(path)})
    except (ValueError, KeyError, OSError, TypeError, AttributeError):
        return None, "its sidecar is unreadable"
    if art.key != recipe_key(recipe):
        return None, "the recipe changed"
    for name, value in (("format", art.format.value), ("precision", art.precision.value)):
        if name in recipe and recipe[name] != value:
            return None, f"its sidecar says {name} {value!r}, the recipe asks for {recipe[name]!r}"
    if io is not None and art.io != io:
        return None, "its sidecar's inputs/outputs are not the model's"
    if data.get("fields_sha256") != _fields_digest(data):
        return None, "its sidecar was edited (format, precision, layout, io or files differ from what was recorded)"
    recorded = dict(art.files) or {path.name: art.sha256}
    try:
        if file_hashes(path) != recorded or recorded[path.name] != art.sha256:
            return None, "its files changed since they were recorded"
    except OSError:
        return None, "its files could not be read"
    return art, ""


# Leftovers of writes that were killed (SIGKILL, power loss) or that failed where no clean-up ran: only names
# edgekit itself makes are matched, never a user's file. tempfile's random part is 8 of [a-z0-9_].
_RANDOM = r"[a-z0-9_]{8}"
_OURS = r"(?:model\.[A-Za-z0-9.-]+|reference-[0-9a-f]{16}\.npy(?:\.edgekit\.json)?|report\.(?:md|json|html)|feeds\.npz)"
_LEFTOVER_FILE = re.compile(rf"^\.(?:.+{re.escape(TEMP_MARK)}{_RANDOM}|{_OURS}\.{_RANDOM})(?:\.[A-Za-z0-9]+)?$")
_LEFTOVER_DIR = re.compile(rf"^(?:\.model\.[A-Za-z0-9.-]+\.{_RANDOM}|edgekit-(?:optimum|onnx2tf|aeq|quant)-{_RANDOM})$")


def clean_leftovers(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files and folders that earlier, interrupted writes left in ``folder`` (not below
    it): :func:`atomic_path`'s ``.<name>.edgekit-tmp-XXXXXXXX<suffix>`` (and the ``.<name>.XXXXXXXX<suffix>`` of
    older edgekit for its own output names), an IR's ``.model.<precision>.XXXXXXXX/`` save folder, and the
    converters' ``edgekit-optimum-`` / ``edgekit-onnx2tf-`` / ``edgekit-aeq-`` work folders. Only call it with
    the folder locked (:func:`locked_out_dir`): a running write's temporary file looks the same. Returns what
    was removed."""
    removed: list[Path] = []
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry.is_symlink():
                continue  # never follow a link out of the folder
            if entry.is_file() and _LEFTOVER_FILE.match(entry.name):
                entry.unlink()
            elif entry.is_dir() and _LEFTOVER_DIR.match(entry.name):
                shutil.rmtree(entry)
            else:
                continue
        except OSError:
            continue  # not ours to fight over: the next run tries again
        removed.append(entry)
    return removed


#: Room kept below PATH_MAX for the longest path edgekit makes inside an output folder
#: (``artifacts/.model.int8-dynamic.onnx.edgekit.json.edgekit-tmp-XXXXXXXX.json``, converters' work folders).
PATH_ROOM = 200
LOCK_NAME = ".edgekit.lock"
_HELD: set[str] = set()  # the output folders this process holds the lock of


def check_out_dir(path: str | os.PathLike[str], *, where: str = "--out") -> Path:
    """Make sure ``path`` can hold a run's outputs before any work: not empty, not a file, short enough for the
    files edgekit writes inside, creatable and writable (a probe file is written and removed). Each problem is
    one :class:`~edgekit.errors.ConfigError` line naming ``where`` and the path (a full disk:
    :class:`~edgekit.errors.DiskFullError`). Returns the folder, created if needed."""
    from edgekit.errors import ConfigError

    text = os.fspath(path)
    if not str(text).strip():
        raise ConfigError("the output folder is empty", where=where, expected="a folder path", got=text,
                          hint=f"pass {where} DIR (created if missing)")
    p = Path(text).expanduser()
    label = f"{where} {p}"
    resolved = os.path.abspath(p)
    existing = resolved
    while not _is_dir(existing):
        existing = os.path.dirname(existing)
    try:
        path_max = int(os.pathconf(existing, "PC_PATH_MAX"))
        name_max = int(os.pathconf(existing, "PC_NAME_MAX"))
    except (OSError, ValueError):
        path_max, name_max = 4096, 255
    longest = max(len(os.fsencode(part)) for part in Path(resolved).parts)
    if len(os.fsencode(resolved)) + PATH_ROOM > path_max or longest > name_max:
        raise ConfigError("the path is too long for the files edgekit writes inside it", where=where,
                          expected=f"at most {path_max - PATH_ROOM} bytes in all and {name_max} per folder name",
                          got=f"{len(os.fsencode(resolved))} bytes, longest name {longest}",
                          hint=f"choose a shorter {where}")
    if p.exists() and not p.is_dir():
        raise ConfigError("this is a file, not a folder", where=label, expected="a folder (or a path to create)",
                          hint=f"choose another {where}, or move the file away")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".edgekit-write-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        full = as_disk_full(exc, str(p))
        if full is not None:
            raise full from exc
        raise ConfigError(f"cannot write into this folder: {exc.strerror or exc}", where=label,
                          expected="a writable folder", hint=f"choose another {where}, or fix its permissions"
                          ) from exc
    return p


def _remove_if_empty(folder: Path, subdirs: tuple[str, ...], lock: Path) -> None:
    """Remove ``folder`` (which this process created) when it holds nothing but empty ``subdirs`` and the lock."""
    for sub in subdirs:
        with contextlib.suppress(OSError):
            (folder / sub).rmdir()  # only when empty
    with contextlib.suppress(OSError):
        if os.listdir(folder) == [lock.name]:
            lock.unlink()
            folder.rmdir()


def _is_dir(path: str) -> bool:
    try:
        return os.path.isdir(path)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def locked_out_dir(path: str | os.PathLike[str], *, where: str = "--out", subdirs: tuple[str, ...] = ("artifacts",),
                   progress: Callable[[str], None] | None = None) -> Iterator[Path]:
    """Check ``path`` (:func:`check_out_dir`), hold an exclusive lock on ``path/.edgekit.lock`` for the block
    (the file says which process holds it) and remove the leftovers of interrupted writes in ``path`` and its
    ``subdirs`` (:func:`clean_leftovers`; ``progress(message)`` is told what went). A second edgekit process on
    the same folder gets one :class:`~edgekit.errors.ConfigError` line naming the holder's pid. The lock is
    the kernel's (``flock``): a killed holder never leaves a stale lock. Re-entrant within one process (the
    command line locks ``--out`` before the slow source load, then :func:`edgekit.pipeline.run` locks it again)."""
    import fcntl
    import time

    from edgekit.errors import ConfigError

    created = not _is_dir(os.path.abspath(Path(os.fspath(path)).expanduser())) if str(path).strip() else False
    p = check_out_dir(path, where=where)
    key = os.path.realpath(p)
    if key in _HELD:  # this process holds it already
        yield p
        return
    lock = p / LOCK_NAME
    try:
        fh = open(lock, "a+", encoding="utf-8")  # held open for the block: closing it releases the lock
    except OSError as exc:
        raise ConfigError(f"cannot create the lock file: {exc.strerror or exc}", where=str(lock)) from exc
    held = False
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            holder = ""
            for _ in range(20):  # the holder writes its pid right after it takes the lock
                fh.seek(0)
                holder = fh.read().strip()
                if holder:
                    break
                time.sleep(0.05)
            raise ConfigError(f"another edgekit process is using this folder ({holder or 'pid unknown'})",
                              where=f"{where} {p}", hint=f"wait for it to finish, or choose another {where}"
                              ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        _HELD.add(key)
        removed = [r for folder in (p, *(p / s for s in subdirs)) for r in clean_leftovers(folder)]
        if removed and progress is not None:
            progress(f"removed {len(removed)} leftover temporary file(s) of an interrupted run: "
                     + ", ".join(r.name for r in removed[:5]) + (" ..." if len(removed) > 5 else ""))
        yield p
    finally:
        if held:
            _HELD.discard(key)
            with contextlib.suppress(OSError):
                fh.truncate(0)  # while nobody holds the lock it names nobody
        with contextlib.suppress(OSError):
            fh.close()  # closing releases the lock
        if held and created:  # a command that stopped before writing anything leaves no folder behind
            _remove_if_empty(p, subdirs, lock)
