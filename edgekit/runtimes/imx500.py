"""Sony IMX500 (the NPU inside the Raspberry Pi AI Camera) through Sony's own toolchain, in its own virtualenv (the
``imx500`` toolchain, :mod:`edgekit.toolchains`: model-compression-toolkit + imx500-converter, whose pins conflict
with edgekit's stack).

The IMX500 takes only a model quantized by Sony's model-compression-toolkit (MCT) and compiled by its converter, so
this runtime quantizes each fp32 ONNX artifact itself, in one batch (:meth:`emulate`): one worker call runs MCT's
post-training quantization for the IMX500 with the run's calibration items, runs the held-out items on MCT's
quantized model with onnxruntime (MCT's fake-quant numerics: a simulation of the camera's int8, not the camera),
and compiles that model with ``imxconv-pt``: ``packerOut.zip`` (what ``imx500-package`` on the Raspberry Pi turns
into the camera's ``.rpk``) and the converter's memory report (bytes used of the chip's 8 MB, fits or not) are
written beside the artifact, the report and the compiled network's layers also in a sidecar
``<artifact>.imx500.json``. No speed: only the camera gives one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import toolchains
from edgekit.artifacts import atomic_path, atomic_write_json
from edgekit.errors import ConfigError, RuntimeAdapterError
from edgekit.runtimes.base import RuntimeOptions, load_outputs, save_items
from edgekit.runtimes.ort import graph_input_names

#: The devices targets may name (the sensor; MCT's target platform capabilities "imx500", v1).
DEVICES = ("imx500",)


def _device(options: RuntimeOptions) -> str:
    if (options.device or "imx500") not in DEVICES:
        raise ConfigError("unknown device for the mct-imx500 runtime", where="runtime mct-imx500: device",
                          expected=", ".join(DEVICES), got=options.device)
    return "imx500"


def packer_path(path: Path) -> Path:
    """Where the ``packerOut.zip`` built from ``path`` is written."""
    return Path(path).with_name(f"{Path(path).stem}.imx500-packerOut.zip")


def sidecar_path(path: Path) -> Path:
    """Where the memory report, layers and versions of the IMX500 build of ``path`` are written."""
    return Path(path).with_name(f"{Path(path).stem}.imx500.json")


def memory_line(memory: Mapping[str, Any]) -> str:
    """``"4.10 of 8.39 MB on the chip (49%): fits"`` from the converter's report (bytes)."""
    used, avail = memory["used_bytes"], memory["available_bytes"]
    return (f"{used / 1e6:.2f} of {avail / 1e6:.2f} MB on the chip ({100 * used / avail:.0f}%): "
            + ("fits" if memory["fits"] else "does NOT fit (the camera cannot load it)"))


class Imx500Runtime:
    """fp32 ONNX artifacts quantized by MCT for the IMX500 and compiled by Sony's converter; accuracy on MCT's
    fake-quant simulation (onnxruntime), memory fit from the converter."""

    name = "mct-imx500"
    formats = frozenset({"onnx"})
    needs_calibration = True  # the emulate executor passes the run's calibration items to emulate()

    def versions(self) -> dict[str, str]:
        tc = toolchains.get("imx500")
        return {"model-compression-toolkit": toolchains.pinned(tc, "model-compression-toolkit"),
                "imx500-converter": toolchains.pinned(tc, "imx500-converter"), "toolchain": f"{tc.name}-{tc.key}"}

    def numerics(self, options: RuntimeOptions, precision: str) -> str:
        """Whose numerics computed the accuracy (the emulate executor's ``accuracy_from``)."""
        tc = toolchains.get("imx500")
        return (f"MCT fake-quant simulation on onnxruntime of the int8 model that MCT "
                f"{toolchains.pinned(tc, 'model-compression-toolkit')} built for the {_device(options).upper()} "
                f"(post-training quantization on the run's calibration items), not the camera")

    def emulate(self, path: Path, options: RuntimeOptions, feeds: Sequence[Mapping[str, np.ndarray]],
                progress: Callable[[str], None],
                calibration: Sequence[Mapping[str, np.ndarray]] = ()) -> tuple[list[list[np.ndarray]], str]:
        """Quantize ``path`` with MCT on ``calibration``, run ``feeds`` on the quantized model, compile it with the
        converter (``packerOut.zip`` and the sidecar beside ``path``): the outputs per feed (model order) and one
        line saying what was written and how much of the chip's memory it takes."""
        path = Path(path).resolve()  # the worker runs in a folder of its own
        names = graph_input_names(path)
        _device(options)
        toolchains.require(toolchains.get("imx500"))
        if not calibration:
            raise RuntimeAdapterError("MCT's post-training quantization needs the run's calibration items, and "
                                      "none were given", where=str(path), hint="pass --calibration")
        for what, items in (("held-out", feeds), ("calibration", calibration)):
            missing = [n for n in names if items and n not in items[0]]
            if missing:
                raise RuntimeAdapterError(f"inputs missing from the {what} items", where=str(path),
                                          expected=", ".join(names), got=sorted(items[0]))
        dest, side = packer_path(path), sidecar_path(path)
        with tempfile.TemporaryDirectory(prefix="edgekit-imx500-") as tmp:
            inputs, calib, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "calibration.npz", Path(tmp) / "out.npz"
            for file, items in ((inputs, feeds), (calib, calibration)):
                save_items(file, items, names)
            progress(f"  MCT: quantize {path.name} for the IMX500 on {len(calibration)} calibration items, run "
                     f"{len(feeds)} held-out items, compile with imxconv-pt (Java; a minute or more)")
            answer = toolchains.call(toolchains.get("imx500"), {
                "op": "quantize_convert", "model": str(path), "calibration": str(calib), "inputs": str(inputs),
                "input_names": names, "outputs": str(outputs), "workdir": tmp,
                "threads": min(os.cpu_count() or 1, 4)})
            result = load_outputs(outputs, len(feeds))
            record = {"artifact": path.name, "device": "imx500", "packer": dest.name,
                      "memory": answer["memory"], "layers_on_imx500": answer["layers"],
                      "calibration_items": answer["calibration_items"], "held_out_items": answer["items"],
                      "fp32_check_max_abs": answer["fp32_check_max_abs"], "ptq_s": answer["ptq_s"],
                      "convert_s": answer["convert_s"], "versions": answer["versions"],
                      "accuracy_from": self.numerics(options, "int8")}
            with atomic_path(dest) as staged:
                shutil.copyfile(answer["packer"], staged)
            atomic_write_json(side, record)
        layers = sum(answer["layers"].values())
        note = (f"MCT int8 for the IMX500: {dest.name} ({dest.stat().st_size / 1e6:.2f} MB; "
                f"{memory_line(answer['memory'])}; all {layers} compiled layers on the IMX500; quantized in "
                f"{answer['ptq_s']:.0f} s, compiled in {answer['convert_s']:.0f} s; {side.name}): turn it into the "
                "camera's .rpk with imx500-package on the Raspberry Pi")
        return result, note

    def load(self, path: Path, options: RuntimeOptions) -> Any:
        """Never a session: the file is checked (a missing or non-ONNX file is named), then the error says why."""
        graph_input_names(path)
        raise RuntimeAdapterError("the mct-imx500 runtime quantizes and compiles the model for each batch of items: "
                                  "it runs only through the emulate executor", where=str(path),
                                  hint="use a target with access = \"emulate\" (rpi-ai-camera)")
