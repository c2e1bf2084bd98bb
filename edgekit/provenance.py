"""How a run was made, recorded in ``report.json`` under ``provenance``: the exact command line, the edgekit
version and git state (when edgekit runs from a git checkout), every installed library's version, and the hashes
of the model, the calibration data and every artifact.

Best effort like :mod:`edgekit.environment`: a missing ``git``, a tree that is not a checkout, an unreadable
package record leave that part None (or out) and never fail the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.artifacts import Artifact, content_sha256

PACKAGE_DIR = Path(__file__).resolve().parent


def git_state(root: Path | None = None) -> dict[str, Any] | None:
    """``{"commit", "dirty", "root"}`` of the git checkout edgekit runs from (``root``: the folder above the
    package), or None when it is not one (an installed wheel), git is missing or answers nothing in 10 s.
    ``dirty`` is True when tracked files differ from the commit (untracked files are not counted)."""
    top = Path(root) if root is not None else PACKAGE_DIR.parent
    if not (top / ".git").exists():
        return None  # a wheel in a site-packages that happens to lie inside someone's repository is not ours

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(top), *args], capture_output=True, text=True, timeout=10,
                                  check=False)
        except (OSError, subprocess.SubprocessError, ValueError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status), "root": str(top)}


def library_versions() -> dict[str, str]:
    """``{distribution: version}`` of every installed distribution, sorted by name (best effort)."""
    out: dict[str, str] = {}
    try:
        for dist in metadata.distributions():
            name = dist.metadata["Name"] if dist.metadata is not None else None
            if name:
                out.setdefault(str(name), str(dist.version))
    except Exception:  # deliberately best effort: a broken package record must not fail the run
        pass
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def _calibration_sha256(dataset: Any) -> str | None:
    path = getattr(dataset, "path", None)
    if path is None:
        return None
    try:
        return content_sha256(path)
    except OSError:
        return None


def provenance(command: Sequence[str] | None, source: Any, dataset: Any,
               artifacts: Sequence[Artifact]) -> dict[str, Any]:
    """The ``provenance`` record of a run: ``command`` (``sys.argv`` when None), ``edgekit`` (version), ``git``
    (:func:`git_state`), ``python``, ``libraries`` (:func:`library_versions`) and ``hashes``: ``model`` (the
    source's content fingerprint of its weights), ``calibration`` (SHA-256 of the data set's files),
    ``artifacts`` (``{name: {"sha256", "files"}}``, every file of each artifact)."""
    return {
        "command": list(command if command is not None else sys.argv),
        "cwd": os.getcwd(),  # relative paths of the command are relative to it (edgekit reproduce)
        "edgekit": __version__,
        "git": git_state(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "hashes": {
            "model": getattr(source, "fingerprint", None),
            "calibration": _calibration_sha256(dataset),
            "artifacts": {a.name: {"sha256": a.sha256, "files": dict(a.files)} for a in artifacts},
        },
    }
