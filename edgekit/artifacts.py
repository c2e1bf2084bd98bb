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
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.types import Format, IOSpec, Precision

SIDECAR_SUFFIX = ".edgekit.json"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it.

    The temporary name keeps ``path``'s suffix (or ``suffix``) so that writers that look at the
    extension still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp",
                               dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the final file the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


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


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def finish_artifact(artifact: Artifact) -> Artifact:
    """Record ``artifact`` as complete by writing its sidecar (after the model file and its side files are in
    place). The hashes of every file of the artifact are recorded (computed here when ``files`` is empty)."""
    if not artifact.files:
        hashes = file_hashes(artifact.path)
        artifact = replace(artifact, files=hashes, sha256=hashes[artifact.path.name])
    atomic_write_json(sidecar_path(artifact.path), artifact.to_dict())
    return artifact


def reuse_artifact(path: Path, recipe: Mapping[str, Any]) -> Artifact | None:
    """Return the artifact at ``path`` if a complete one made by the same ``recipe`` is there, else None.

    Complete means: the sidecar's recipe key matches, and the artifact's files on disk are exactly the ones
    the sidecar recorded, each with the recorded hash (a changed ``.bin`` or external-data file is rebuilt).
    A sidecar that recorded no file list (older edgekit) only vouches for the model file: one with side files
    on disk is rebuilt."""
    side = sidecar_path(path)
    if not (path.exists() and side.exists()):
        return None
    try:
        data = json.loads(side.read_text())
        art = Artifact.from_dict({**data, "path": str(path)})
    except (ValueError, KeyError, OSError):
        return None
    if art.key != recipe_key(recipe):
        return None
    recorded = dict(art.files) or {path.name: art.sha256}
    try:
        if file_hashes(path) != recorded or recorded[path.name] != art.sha256:
            return None
    except OSError:
        return None
    return art
