"""Rockchip RKNPU2 (RK3588 / RK3576 / RK3566) through rknn-toolkit2's x86 simulator, in its own virtualenv (the
``rknn`` toolchain, :mod:`edgekit.toolchains`: its pins conflict with edgekit's stack).

The simulator runs only a model built in the same session, so the runtime works in batches (:meth:`emulate`): one
worker call builds the ``.rknn`` for the platform from the ONNX artifact (fp32 runs in fp16; a QDQ int8 artifact
keeps edgekit's int8 parameters), writes it beside the artifact (``<artifact>.<platform>.rknn``, what the board
loads with rknn-toolkit-lite2) and runs every held-out item. ``load``/``run`` exist for the Runtime protocol: each
``run`` is a whole build (seconds), so nothing times it; speed needs a board.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import toolchains
from edgekit.artifacts import atomic_path
from edgekit.errors import ConfigError, RuntimeAdapterError, first_line
from edgekit.runtimes.base import RuntimeOptions, load_outputs, save_items
from edgekit.runtimes.ort import graph_input_names

#: The platforms targets may name (rknn-toolkit2 2.5.0's RKNPU2 platforms that edgekit ships targets for).
PLATFORMS = ("rk3588", "rk3576", "rk3566", "rk3568", "rk3562")


def _platform(options: RuntimeOptions) -> str:
    if options.device not in PLATFORMS:
        raise ConfigError("unknown Rockchip platform for the rknn-sim runtime", where="runtime rknn-sim: device",
                          expected=", ".join(PLATFORMS), got=options.device)
    return str(options.device)


def rknn_path(path: Path, platform: str) -> Path:
    """Where the ``.rknn`` built from ``path`` for ``platform`` is written."""
    return Path(path).with_name(f"{Path(path).stem}.{platform}.rknn")


class RknnSimRuntime:
    """ONNX artifacts built and run by rknn-toolkit2 for a Rockchip NPU (its x86 simulator)."""

    name = "rknn-sim"
    formats = frozenset({"onnx"})

    def versions(self) -> dict[str, str]:
        tc = toolchains.get("rknn")
        return {"rknn-toolkit2": toolchains.pinned(tc, "rknn-toolkit2"), "toolchain": f"{tc.name}-{tc.key}"}

    def numerics(self, options: RuntimeOptions, precision: str) -> str:
        """Whose numerics the simulator computes (the emulate executor's ``accuracy_from``)."""
        version = toolchains.pinned(toolchains.get("rknn"), "rknn-toolkit2")
        return (f"RKNN simulator for {_platform(options)} on this x86_64 machine (rknn-toolkit2 {version})"
                + ("; float layers run in fp16" if precision in ("fp32", "fp16") else "; edgekit's int8 (QDQ) "
                   "parameters as RKNN reads them"))

    def emulate(self, path: Path, options: RuntimeOptions, feeds: Sequence[Mapping[str, np.ndarray]],
                progress: Callable[[str], None]) -> tuple[list[list[np.ndarray]], str]:
        """Build ``path`` for ``options.device``, write the ``.rknn`` beside it, and run ``feeds`` on the simulator:
        the outputs per feed (model order) and one line saying what was written."""
        path = Path(path).resolve()  # the worker runs in a folder of its own
        names = graph_input_names(path)
        platform = _platform(options)
        missing = [n for n in names if feeds and n not in feeds[0]]
        if missing:
            raise RuntimeAdapterError("inputs missing for the model", where=str(path), expected=", ".join(names),
                                      got=sorted(feeds[0]) if feeds else [])
        dest = rknn_path(path, platform)
        with tempfile.TemporaryDirectory(prefix="edgekit-rknn-") as tmp:
            inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
            save_items(inputs, feeds, names)
            progress(f"  rknn-toolkit2: build {Path(path).name} for {platform} and run {len(feeds)} items "
                     "on its simulator")
            with atomic_path(dest) as staged:
                answer = toolchains.call(toolchains.get("rknn"), {
                    "op": "simulate", "model": str(path), "platform": platform, "inputs": str(inputs),
                    "input_names": names, "outputs": str(outputs), "export": str(staged)})
            result = load_outputs(outputs, len(feeds))
        note = (f"{dest.name} ({answer['rknn_bytes'] / 1e6:.2f} MB, built in {answer['build_s']:.1f} s) for "
                f"{platform}: load it on the board with rknn-toolkit-lite2")
        return result, note

    def load(self, path: Path, options: RuntimeOptions) -> RknnSession:
        names = graph_input_names(path)
        _platform(options)
        toolchains.require(toolchains.get("rknn"))
        return RknnSession(self, Path(path), options, tuple(names))


class RknnSession:
    """One artifact on the simulator; each :meth:`run` is a whole build and run (use :meth:`RknnSimRuntime.emulate`
    for many items)."""

    def __init__(self, runtime: RknnSimRuntime, path: Path, options: RuntimeOptions,
                 input_names: tuple[str, ...]) -> None:
        self._runtime = runtime
        self._path = path
        self._options = options
        self.input_names = input_names

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            outputs, _ = self._runtime.emulate(self._path, self._options, [feeds], lambda _m: None)
        except (KeyError, ValueError) as exc:
            raise RuntimeAdapterError(f"rknn-sim could not run the model: {first_line(exc)}",
                                      where=str(self._path)) from exc
        return outputs[0]

    def info(self) -> dict[str, Any]:
        return {"platform": self._options.device, "simulator": True, "toolchain": "rknn"}
