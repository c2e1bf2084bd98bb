"""OpenVINO runtime adapter: loads OpenVINO IR (``.xml`` + ``.bin``) and ``.onnx`` files on CPU, GPU,
NPU or AUTO, and says where the model actually ran (``EXECUTION_DEVICES``) and whether that differs from
the device asked for (the silent CPU fallback users most often miss).

Telemetry: importing this module switches OpenVINO's and NNCF's telemetry off before either package is
imported (by default both send usage data and write a client id under ``~/intel/``); edgekit writes
nothing there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ConfigError, DeviceUnavailableError, RuntimeAdapterError, require
from edgekit.runtimes.base import RuntimeOptions

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
CPU_PRECISIONS = ("f32", "bf16", "f16", "default")


def telemetry_off() -> None:
    """Make ``openvino_telemetry`` decline consent: no data is sent, nothing is written under ``~/intel``.

    Both OpenVINO's converter and NNCF (at import) create a ``Telemetry`` object that, when no consent
    file exists, counts as consent and writes a client id. Declining in the checker stops both.
    """
    try:
        from openvino_telemetry.utils import opt_in_checker
    except ImportError:  # no telemetry package: nothing is sent
        return
    checker = opt_in_checker.OptInChecker
    if getattr(checker, "_edgekit_off", False):
        return

    def declined(self: Any, enable_opt_in_dialog: bool, disable_in_ci: bool = False) -> Any:
        return opt_in_checker.ConsentCheckResult.DECLINED

    checker.check = declined
    checker._edgekit_off = True


telemetry_off()


@dataclass(frozen=True)
class OpenVinoConfig:
    """How OpenVINO compiles a model beyond :class:`RuntimeOptions`.

    ``hint``: ``LATENCY`` (default: single-stream benchmarks) or ``THROUGHPUT``; ``streams``: number of
    inference streams (None: the hint decides); ``cache_dir``: OpenVINO's compiled-model cache (speeds
    up later compiles on GPU/NPU; None: no cache). ``cpu_precision``: the CPU plugin's
    ``INFERENCE_PRECISION_HINT``; ``f32`` by default so that an fp32 artifact runs in fp32 (on CPUs with
    AVX-512 BF16 or AMX the plugin otherwise runs it in bf16: on this machine, an AMD EPYC with
    avx512_bf16, the digits EfficientNet-Lite0 logits then moved by up to 0.45 where the fp32 tolerance is
    ~0.01); ``default`` leaves the plugin's choice. GPU and NPU keep their own defaults (f16).
    """

    hint: str = "LATENCY"
    streams: int | None = None
    cache_dir: Path | None = None
    cpu_precision: str = "f32"

    def __post_init__(self) -> None:
        if self.hint not in HINTS:
            raise ConfigError("unknown OpenVINO performance hint", where="openvino.hint",
                              expected=", ".join(HINTS), got=self.hint)
        if self.cpu_precision not in CPU_PRECISIONS:
            raise ConfigError("unknown CPU inference precision", where="openvino.cpu_precision",
                              expected=", ".join(CPU_PRECISIONS), got=self.cpu_precision)
        if self.streams is not None and self.streams < 1:
            raise ConfigError("bad stream count", where="openvino.streams", expected="a positive integer",
                              got=self.streams)


_NOISE = ("Exception from", "Check '", "FrontEnd API failed", "Model wasn't fully converted", "Summary:")


def ov_message(exc: BaseException) -> str:
    """One line from an OpenVINO exception: its informative lines (source locations and banners dropped)."""
    lines = [ln.strip().lstrip("-").strip() for ln in str(exc).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(_NOISE)]
    text = "; ".join(useful) if useful else (lines[0] if lines and lines[0] else type(exc).__name__)
    return text[:300]



def _check_xml(path: Path) -> None:
    """Raise a clear error if ``path`` is not well-formed IR XML (checked before blaming a missing ``.bin``)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, UnicodeDecodeError) as exc:
        raise RuntimeAdapterError(f"OpenVINO IR .xml is corrupt: {ov_message(exc)}", where=str(path),
                                  hint="the file is truncated or not an IR: rebuild the artifact") from exc
    if root.tag != "net":
        raise RuntimeAdapterError("OpenVINO IR .xml is corrupt: no <net> root element", where=str(path),
                                  got=root.tag, hint="rebuild the artifact")


def read_model(core: Any, path: Path) -> Any:
    """``core.read_model`` with edgekit errors: missing file / missing ``.bin`` / corrupt ``.xml`` or ``.onnx``."""
    path = Path(path)
    if not path.exists():
        raise RuntimeAdapterError("model file missing", where=str(path), hint="build the artifact first")
    if path.suffix == ".xml":
        weights = path.with_suffix(".bin")
        if not weights.exists():
            _check_xml(path)
            raise RuntimeAdapterError("OpenVINO IR weights file missing", where=str(weights),
                                      expected=f"{weights.name} next to {path.name}",
                                      hint="an IR is two files (.xml graph + .bin weights): copy both, or rebuild")
    elif path.suffix != ".onnx":
        raise RuntimeAdapterError("not a file OpenVINO loads", where=str(path), expected=".xml (IR) or .onnx",
                                  got=path.suffix)
    try:
        return core.read_model(str(path))
    except Exception as exc:
        raise RuntimeAdapterError(f"OpenVINO cannot read the model (corrupt file?): {ov_message(exc)}",
                                  where=str(path),
                                  hint="the file is corrupt or truncated, or holds an op this OpenVINO "
                                       "version does not support: rebuild it") from exc


#: Where an IR records the CPU inference precision it was built for (OpenVINO reads ``runtime_options`` from the
#: model's rt_info at compile time, so a plain OpenVINO user gets the same precision): edgekit's bf16 artifacts.
RT_PRECISION = ("runtime_options", "INFERENCE_PRECISION_HINT")
#: The CPU plugin's OPTIMIZATION_CAPABILITIES entry each recorded precision needs.
NEEDS_CAPABILITY = {"bf16": "BF16", "f16": "FP16"}


def recorded_precision(model: Any) -> str | None:
    """The CPU inference precision an IR records for itself (``bf16``), or None (run as the runtime says)."""
    try:
        return str(model.get_rt_info(list(RT_PRECISION)).astype(str)) if model.has_rt_info(list(RT_PRECISION)) \
            else None
    except Exception:
        return None


def cpu_capabilities() -> tuple[str, ...]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES on this machine (``BF16`` where AVX-512 BF16 / AMX exist)."""
    ov = require("openvino", "openvino", "the OpenVINO runtime")
    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def available_devices() -> tuple[str, ...]:
    """Devices OpenVINO sees on this machine (``CPU``, ``GPU.0``, ``NPU`` ...)."""
    ov = require("openvino", "openvino", "the OpenVINO runtime")
    return tuple(ov.Core().available_devices)


def port_name(port: Any) -> str:
    """The name users feed: the model input's own name (an ONNX graph input keeps it as the Parameter's
    friendly name; a port may carry extra tensor names, e.g. of a Cast merged into it)."""
    names = set(port.get_names())
    friendly = str(port.get_node().get_friendly_name())
    return friendly if friendly in names else str(port.get_any_name())


def ov_shape(shape: tuple[int, ...]) -> Any:
    """An ``openvino.PartialShape`` of a numpy shape."""
    ov = require("openvino", "openvino", "the OpenVINO runtime")
    return ov.PartialShape(list(shape))


class OpenVinoSession:
    """A compiled OpenVINO model behind the Session protocol."""

    def __init__(self, compiled: Any, requested: str, facts: dict[str, Any]) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.input_names = tuple(port_name(p) for p in compiled.inputs)
        self._shapes = [p.get_partial_shape() for p in compiled.inputs]
        self._requested = requested
        self._facts = facts
        self._bound: list[np.ndarray] = []

    def bind(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
        """Set ``feeds`` as the request's input tensors (shared with the arrays, no copy per call) and return the
        bare native inference, outputs left in the request (see :func:`edgekit.runtimes.base.timed_call`)."""
        self._check(feeds)
        ov = require("openvino", "openvino", "the OpenVINO runtime")
        # private copies: the request shares them, and a later run() writes its feeds into the bound tensors
        self._bound = [np.array(feeds[n], order="C", copy=True) for n in self.input_names]
        try:
            for i, x in enumerate(self._bound):
                self._request.set_input_tensor(i, ov.Tensor(x, shared_memory=True))
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise RuntimeAdapterError(f"OpenVINO refused the inputs: {ov_message(exc)}",
                                      hint="check input names, shapes and dtypes") from exc
        request = self._request

        def call() -> None:
            request.start_async()
            request.wait()
        return call

    def _check(self, feeds: Mapping[str, np.ndarray]) -> None:
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise RuntimeAdapterError("inputs missing for the model", expected=", ".join(self.input_names),
                                      got=sorted(feeds), hint="the data does not provide every model input")
        for name, shape in zip(self.input_names, self._shapes, strict=True):
            got = np.shape(feeds[name])
            if not shape.compatible(ov_shape(got)):
                raise RuntimeAdapterError("input shape does not fit the model", where=f"input {name!r}",
                                          expected=str(shape), got=list(got),
                                          hint="check the preprocessing (size, channels, layout)")

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        call = self.bind(feeds)  # one input path for run and the timed call (infer(dict) after bind cost 1.3 ms)
        try:
            call()
            return [np.array(self._request.get_output_tensor(i).data, copy=True)
                    for i in range(len(self._compiled.outputs))]
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise RuntimeAdapterError(f"OpenVINO failed to run the model: {ov_message(exc)}",
                                      hint="check input names, shapes and dtypes") from exc

    def info(self) -> dict[str, Any]:
        try:
            used = [str(d) for d in self._compiled.get_property("EXECUTION_DEVICES")]
        except Exception:  # pragma: no cover - every device plugin answers this property
            used = []
        base = self._requested.split(":")[-1].split(",")[0].split(".")[0]
        fallback = [] if self._requested == "AUTO" or any(d.split(".")[0] == base for d in used) else used
        out = dict(self._facts)
        out.update({"execution_devices": used, "requested_device": self._requested, "fallback": fallback})
        for key, prop in (("performance_hint", "PERFORMANCE_HINT"), ("streams", "NUM_STREAMS"),
                          ("inference_threads", "INFERENCE_NUM_THREADS"),
                          ("inference_precision", "INFERENCE_PRECISION_HINT")):
            try:
                out[key] = str(self._compiled.get_property(prop))
            except Exception:  # not every device exposes every property
                pass
        return out


class OpenVinoRuntime:
    """Loads ``.xml`` IR and ``.onnx`` with OpenVINO on ``RuntimeOptions.device`` (default CPU).

    ``load`` records ``read_ms`` and ``compile_ms`` in ``info()`` (the first inference is timed apart by
    the benchmark); an absent device raises :class:`DeviceUnavailableError`, an unknown name
    :class:`ConfigError`.
    """

    name = "openvino"
    formats = frozenset({"openvino", "onnx"})

    def __init__(self, config: OpenVinoConfig | None = None) -> None:
        self.config = config or OpenVinoConfig()

    def versions(self) -> dict[str, str]:
        ov = require("openvino", "openvino", "the OpenVINO runtime")
        return {"openvino": str(ov.get_version())}

    def _device(self, requested: str, available: tuple[str, ...], where: str) -> str:
        parts = requested.split(":", 1)
        names = parts[1].split(",") if len(parts) == 2 and parts[0] in ("AUTO", "MULTI", "HETERO") else [requested]
        for name in names:
            if name.split(".")[0] not in DEVICES:
                raise ConfigError("unknown OpenVINO device", where=where, expected=", ".join(DEVICES), got=name,
                                  hint="OpenVINO devices are CPU, GPU, NPU (GPU.0, GPU.1 for several) or AUTO")
        if requested == "AUTO":
            return requested
        absent = [n for n in names if n not in available and not (n in ("GPU",) and any(
            a.startswith("GPU.") for a in available))]
        if len(absent) == len(names):
            raise DeviceUnavailableError("OpenVINO device not present on this machine", where=where,
                                         expected="one of: " + ", ".join(available), got=requested,
                                         hint="install the device's driver (GPU: intel-opencl-icd; NPU: the "
                                              "intel NPU driver) or benchmark on the CPU target")
        return requested

    def load(self, path: Path, options: RuntimeOptions) -> OpenVinoSession:
        ov = require("openvino", "openvino", "the OpenVINO runtime")
        core = ov.Core()
        requested = (options.device or "CPU").upper()
        device = self._device(requested, tuple(core.available_devices), f"device {options.device or 'CPU'}")
        t0 = time.perf_counter_ns()
        model = read_model(core, Path(path))
        read_ms = (time.perf_counter_ns() - t0) / 1e6
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.config.hint}
        if options.threads and device.startswith(("CPU", "AUTO")):
            config["INFERENCE_NUM_THREADS"] = int(options.threads)
        own = recorded_precision(model)
        if device == "CPU" and own is not None:  # the artifact's own precision (bf16): never quietly run in f32
            need = NEEDS_CAPABILITY.get(own)
            caps = tuple(str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            if need is not None and need not in caps:
                raise DeviceUnavailableError(
                    f"this CPU cannot run {own}: OpenVINO's CPU plugin reports no {need} capability "
                    f"(it has {', '.join(caps)})", where=str(path),
                    hint=f"{own} needs AVX-512 BF16 or AMX on x86; use the fp32/int8 artifacts here")
            config["INFERENCE_PRECISION_HINT"] = own
        elif device == "CPU" and self.config.cpu_precision != "default":
            config["INFERENCE_PRECISION_HINT"] = self.config.cpu_precision
        if self.config.streams is not None:
            config["NUM_STREAMS"] = int(self.config.streams)
        if self.config.cache_dir is not None:
            Path(self.config.cache_dir).mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(self.config.cache_dir)
        t1 = time.perf_counter_ns()
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise RuntimeAdapterError(f"OpenVINO cannot compile the model for {device}: {ov_message(exc)}",
                                      where=str(path),
                                      hint="an op may be unsupported on this device: try CPU, or AUTO") from exc
        compile_ms = (time.perf_counter_ns() - t1) / 1e6
        facts = {"read_ms": read_ms, "compile_ms": compile_ms, "config": {k: str(v) for k, v in config.items()},
                 "available_devices": list(core.available_devices)}
        return OpenVinoSession(compiled, device, facts)
