"""Vendor toolchains whose pins conflict with edgekit's stack, each in its own virtualenv that edgekit manages.

A toolchain is a pinned, hashed requirements file shipped in this package (``<name>.txt``) and a worker script
(``<name>_worker.py``) that runs inside its virtualenv and imports nothing of edgekit. :func:`install` creates
the virtualenv from the requirements (``pip --no-deps --require-hashes``: exactly those files) in a temporary
folder and moves it into place when its import check passes, so a cut-off install leaves nothing half-made; the
folder's name carries the hash of the requirements file, so a changed file means a new install, never a stale one.
:func:`call` runs the worker with a typed JSON request (a file) and reads its JSON answer (a file: vendor tools
print to the process's stdout and stderr from C++); a failure is a :class:`~edgekit.errors.ToolchainError` naming
the toolchain, with the worker's own message.

Where: ``$EDGEKIT_TOOLCHAINS_DIR``, else ``$XDG_CACHE_HOME/edgekit/toolchains``, else ``~/.cache/edgekit/toolchains``.
``edgekit toolchains list|install NAME`` and ``edgekit doctor`` use this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import MissingDependencyError, ToolchainError

HERE = Path(__file__).resolve().parent
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Toolchain:
    """One vendor toolchain: its requirements file, worker script, the modules its import check imports, the
    machines its wheels exist for (``platform.machine()`` values), and the packages of its requirements that exist
    only as source archives (built by pip; every other one is a wheel)."""

    name: str
    description: str
    check_import: str
    machines: tuple[str, ...]
    sdists: tuple[str, ...] = ()

    @property
    def requirements(self) -> Path:
        return HERE / f"{self.name}.txt"

    @property
    def worker(self) -> Path:
        return HERE / f"{self.name}_worker.py"

    @property
    def key(self) -> str:
        """The first 12 hex digits of the requirements file's SHA-256 (the install folder's suffix)."""
        return hashlib.sha256(self.requirements.read_bytes()).hexdigest()[:12]


TOOLCHAINS: dict[str, Toolchain] = {t.name: t for t in (
    Toolchain("rknn", "Rockchip rknn-toolkit2 2.5.0: ONNX -> .rknn for RK3588/RK3576/RK3566 NPUs, x86 simulator",
              "rknn.api", ("x86_64",)),
    Toolchain("imx500", "Sony model-compression-toolkit 2.5.1 + imx500-converter 3.19.2: PTQ for the IMX500 (Raspberry "
              "Pi AI Camera), packerOut.zip and its memory report (needs Java)",
              "model_compression_toolkit, mct_quantizers, onnx2torch, uni.pytorch", ("x86_64",), ("stringcase",)),
)}


def get(name: str) -> Toolchain:
    """The toolchain ``name``; :class:`ToolchainError` listing the known ones otherwise."""
    if name not in TOOLCHAINS:
        raise ToolchainError("unknown toolchain", where=name, expected=", ".join(TOOLCHAINS), got=name)
    return TOOLCHAINS[name]


def root() -> Path:
    """The folder the toolchains' virtualenvs live in (see the module docstring)."""
    if os.environ.get("EDGEKIT_TOOLCHAINS_DIR"):
        return Path(os.environ["EDGEKIT_TOOLCHAINS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edgekit" / "toolchains"


def venv_dir(tc: Toolchain) -> Path:
    return root() / f"{tc.name}-{tc.key}"


def python(tc: Toolchain) -> Path:
    return venv_dir(tc) / "bin" / "python"


def unusable(tc: Toolchain) -> str | None:
    """Why ``tc`` cannot be used here (not installed, or no wheels for this machine), or None when it can."""
    if platform.machine() not in tc.machines:
        return f"the {tc.name} toolchain's wheels exist for {', '.join(tc.machines)} only, not {platform.machine()}"
    if not (venv_dir(tc) / ".edgekit-ready").exists():
        return f"not installed ({venv_dir(tc)} missing)"
    return None


def require(tc: Toolchain) -> None:
    """Raise :class:`MissingDependencyError` (hint: the install command) when ``tc`` cannot be used here."""
    why = unusable(tc)
    if why:
        raise MissingDependencyError(f"the {tc.name} toolchain is not usable: {why}", where=tc.name,
                                     hint=f"edgekit toolchains install {tc.name}")


def pinned(tc: Toolchain, package: str) -> str:
    """The version ``tc``'s requirements file pins ``package`` to ("?" when it does not name it)."""
    for line in tc.requirements.read_text().splitlines():
        name, sep, rest = line.partition("==")
        if sep and name.strip().lower() == package.lower():
            return rest.split()[0]
    return "?"


def install(tc: Toolchain, progress: Progress) -> Path:
    """Create ``tc``'s virtualenv (a no-op when it is in place); its folder. :class:`ToolchainError` with pip's last
    lines when pip fails, or when the import check fails."""
    final = venv_dir(tc)
    if (final / ".edgekit-ready").exists():
        progress(f"toolchain {tc.name}: already installed at {final}")
        return final
    if platform.machine() not in tc.machines:
        raise ToolchainError(f"the {tc.name} toolchain cannot be installed on this machine", where=tc.name,
                             expected=", ".join(tc.machines), got=platform.machine())
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{tc.name}-", dir=final.parent) as tmp:
        venv = Path(tmp) / "venv"
        progress(f"toolchain {tc.name}: creating a virtualenv ({tc.requirements.name}, {tc.key})")
        _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tc, "venv")
        _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
              "--require-hashes", "--only-binary=:all:", *(f"--no-binary={p}" for p in tc.sdists), "--no-input", "-q",
              "-r", str(tc.requirements)], tc, "pip")
        _run([str(venv / "bin" / "python"), "-c", f"import {tc.check_import}"], tc, "import check",
             env={"TQDM_DISABLE": "1"})
        (venv / ".edgekit-ready").write_text(json.dumps({"requirements": tc.key, "python": sys.version}))
        # moved into place: `bin/python file.py` and `bin/python -m module` keep working (all edgekit runs in it);
        # its console scripts (bin/imxconv-pt, ...) name the temporary folder in their #! line and do not
        os.replace(venv, final)
    progress(f"toolchain {tc.name}: installed at {final}")
    return final


def _run(argv: list[str], tc: Toolchain, step: str, env: Mapping[str, str] | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ToolchainError(f"installing the {tc.name} toolchain failed at {step}: {tail}", where=str(tc.requirements),
                             hint="pip needs PyPI (and the machine's torch wheel) reachable at install time")


def call(tc: Toolchain, request: Mapping[str, Any], timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run ``tc``'s worker on ``request`` (JSON-able) in its virtualenv; the worker's answer. Raises
    :class:`MissingDependencyError` when the toolchain is not installed, :class:`ToolchainError` when the worker
    fails or times out, or answers with ``{"error": ...}``."""
    require(tc)
    with tempfile.TemporaryDirectory(prefix=f"edgekit-{tc.name}-") as tmp:
        req, ans = Path(tmp) / "request.json", Path(tmp) / "answer.json"
        req.write_text(json.dumps({**request, "answer": str(ans)}))
        try:
            proc = subprocess.run([str(python(tc)), str(tc.worker), str(req)], capture_output=True, text=True,
                                  timeout=timeout_s, cwd=tmp, env={**os.environ, "TQDM_DISABLE": "1"})
        except subprocess.TimeoutExpired as exc:
            raise ToolchainError(f"the {tc.name} toolchain did not answer within {timeout_s:.0f} s", where=tc.name,
                                 hint="a larger model needs longer; or the tool hangs") from exc
        if not ans.exists():
            step = Path(f"{ans}.step")
            during = f" during {step.read_text().strip()}" if step.exists() else ""
            how = f"was killed by {_signal_name(-proc.returncode)}" if proc.returncode < 0 \
                else f"exited with {proc.returncode}"
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise ToolchainError(f"the {tc.name} toolchain {how}{during} without an answer"
                                 + (f" (its last output: {tail})" if tail else ""),
                                 where=str(request.get("model") or tc.name),
                                 hint="a crash inside the vendor tool on this model: report it to the vendor with "
                                      "the model; other artifacts and targets are unaffected")
        answer: dict[str, Any] = json.loads(ans.read_text())
    if "error" in answer:
        raise ToolchainError(f"{tc.name}: {answer['error']}", where=str(answer.get("where") or tc.name),
                             hint=answer.get("hint"))
    return answer


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def status() -> list[tuple[str, bool, str]]:
    """(name, usable, detail) of every toolchain, for ``edgekit doctor``."""
    rows = []
    for tc in TOOLCHAINS.values():
        why = unusable(tc)
        rows.append((tc.name, why is None, f"{why}; edgekit toolchains install {tc.name}" if why
                     else f"{venv_dir(tc)} ({tc.description})"))
    return rows


def remove(tc: Toolchain) -> bool:
    """Remove ``tc``'s virtualenv; whether there was one."""
    if venv_dir(tc).exists():
        shutil.rmtree(venv_dir(tc))
        return True
    return False
