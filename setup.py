"""Build step: put the repo's ``targets/`` and ``calibration/`` inside the package of a built wheel.

The repo keeps one copy of each (top-level folders, read directly by an editable checkout); a built
wheel carries them as ``edgekit/_data/targets`` and ``edgekit/_data/calibration`` (where
:mod:`edgekit.resources` looks first). Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLED = ("targets", "calibration")  # keep in step with edgekit.resources.BUNDLED
SKIP = ("__pycache__", "*.pyc", ".*", "*~")  # caches and editor files are never data


class BuildPyWithData(build_py):
    """``build_py`` that also copies the bundled folders into ``<build_lib>/edgekit/_data/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repo's folders in place
        for name in BUNDLED:
            src = ROOT / name
            if not (src.is_dir() and any(src.iterdir())):
                raise SystemExit(f"edgekit build: {src} is missing or empty; build from a full checkout "
                                 "(or an sdist, which carries it through MANIFEST.in)")
            dst = Path(self.build_lib) / "edgekit" / "_data" / name
            if dst.exists():
                shutil.rmtree(dst)  # no stale files from an earlier build
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*SKIP))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        """The package's files plus the copied data (so ``install`` and ``--record`` list them)."""
        data = [str(p) for name in BUNDLED
                for p in (Path(self.build_lib) / "edgekit" / "_data" / name).rglob("*") if p.is_file()]
        return [*super().get_outputs(include_bytecode), *data]


setup(cmdclass={"build_py": BuildPyWithData})
