"""Where the built-in catalogue is: the target files and the bundled calibration/evaluation sets.

The repo keeps one copy of each, as the top-level folders ``targets/`` and ``calibration/``. An
editable checkout reads them there; a built wheel carries them as ``edgekit/_data/<name>`` (copied by
the build step in ``setup.py``), which is looked at first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED = ("targets", "calibration")  # setup.py copies these folders into the wheel

Bundled = Literal["targets", "calibration"]


def bundled_dir(name: Bundled) -> Path:
    """The folder of the bundled ``name``: the wheel's ``edgekit/_data/<name>`` if present, else the
    checkout's ``<repo>/<name>`` (returned even when missing, so that callers can say where they looked)."""
    installed = PACKAGE_DIR / "_data" / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name
