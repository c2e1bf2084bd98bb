"""Per-layer errors of an OpenVINO int8 IR (NNCF) against its fp32 IR: :func:`openvino_layer_errors`.

Ops are matched by friendly name (NNCF keeps them), inner outputs added with ``Model.add_outputs``. Unlike the ONNX
path, the int8 IR runs with the real OpenVINO CPU kernels, which fuse a quantized convolution with what follows it,
and an added output can change that fusion (see :func:`openvino_layer_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from edgekit.errors import ConfigError, RuntimeAdapterError, first_line, not_found_hint, require
from edgekit.layer_errors import Feeds, LayerReport, Stats, check_feeds, finish_report

_OV_WEIGHTED = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                          "GroupConvolutionBackpropData", "MatMul"})
_OV_DECOMPRESS = frozenset({"Convert", "Multiply", "Subtract", "Reshape", "Transpose", "Unsqueeze"})
_OV_SKIP = frozenset({"Parameter", "Result", "Constant"})
_OV_ELTWISE = frozenset({"Add", "Subtract", "Multiply", "Divide", "Maximum", "Minimum"})


def _ov_key(op: Any, port: int) -> str:
    name = str(op.get_friendly_name())
    return name if port == 0 else f"{name}:{port}"


def _ov_quantized_input(out: Any, depth: int = 0) -> bool:
    """Whether a value reaches its consumer through a FakeQuantize or from an integer constant (NNCF's int8
    weights: ``Constant(i8) -> Convert -> Multiply``), looking back through weight decompression ops."""
    op = out.get_node()
    kind = op.get_type_name()
    if kind == "FakeQuantize":
        return True
    if kind == "Constant":
        return bool(op.get_element_type().is_integral())
    if kind not in _OV_DECOMPRESS or depth > 6:
        return False
    return any(_ov_quantized_input(i.get_source_output(), depth + 1) for i in op.inputs())


def _ov_float_ops(model: Any, const: set[str]) -> dict[str, bool]:
    """Op friendly name -> whether the int8 IR computes it in float: a weighted op whose weight is not quantized; any
    other op when no input comes from a FakeQuantize or from an op that does not run in float (a Relu after a
    quantized Convolution is part of the int8 computation). ``const``: ops computed from constants alone."""
    flags: dict[str, bool] = {}
    for op in model.get_ordered_ops():
        name = str(op.get_friendly_name())
        ins = [i.get_source_output() for i in op.inputs()]
        if op.get_type_name() in _OV_WEIGHTED and len(ins) > 1 and (
                str(ins[1].get_node().get_friendly_name()) in const or _ov_quantized_input(ins[1])):
            flags[name] = not _ov_quantized_input(ins[1])
            continue
        srcs = [s.get_node() for s in ins if str(s.get_node().get_friendly_name()) not in const]
        flags[name] = op.get_type_name() != "FakeQuantize" and all(
            s.get_type_name() != "FakeQuantize" and flags.get(str(s.get_friendly_name()), True) for s in srcs)
    return flags


def _ov_constant_ops(model: Any) -> set[str]:
    """Friendly names of the ops computed from constants alone (shape arithmetic, weight decompression)."""
    const: set[str] = set()
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        srcs = [i.get_source_output().get_node() for i in op.inputs()]
        if kind == "Constant" or (kind not in _OV_SKIP and srcs
                                  and all(str(s.get_friendly_name()) in const for s in srcs)):
            const.add(str(op.get_friendly_name()))
    return const


def _ov_is_model_output(out: Any) -> bool:
    return any(i.get_node().get_type_name() == "Result" for i in out.get_target_inputs())


def _ov_feeds_eltwise(out: Any, const: set[str]) -> bool:
    """Whether ``out`` feeds an elementwise op of two computed values (a residual Add): OpenVINO 2026.4 computed such
    an Add differently once its int8 input was also a model output (EfficientNet-Lite0 logits off by 5%)."""
    for target in out.get_target_inputs():
        op = target.get_node()
        if op.get_type_name() in _OV_ELTWISE and sum(
                str(i.get_source_output().get_node().get_friendly_name()) not in const for i in op.inputs()) > 1:
            return True
    return False


class _OvPair(NamedTuple):
    key: str  # the fp32 op's friendly name (``name:K`` for output K > 0)
    op: Any  # the fp32 op
    port: int
    int8_op: str  # the int8 op read: the same op, or the FakeQuantize after that port
    int8_port: int


class _OvProbe:
    """Both IRs compiled for the CPU (f32 inference precision, 1 thread) with some inner outputs added, and a guard:
    the probed models' own outputs must equal the unprobed ones', item by item."""

    CONFIG: ClassVar[dict[str, Any]] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": 1,
                                        "INFERENCE_PRECISION_HINT": "f32"}

    def __init__(self, core: Any, paths: tuple[Path, Path], items: Sequence[dict[str, np.ndarray]]) -> None:
        self.core, self.paths, self.items = core, paths, items
        plain = [self._compile(i, [])[0] for i in (0, 1)]
        self.base = [[self._run(i, c, f, range(len(c.outputs))) for f in items] for i, c in enumerate(plain)]

    def _read(self, i: int) -> Any:
        return self.core.read_model(str(self.paths[i]))

    def _compile(self, i: int, ports: Sequence[tuple[str, int]]) -> tuple[Any, list[int]]:
        """Model ``i`` (0: fp32, 1: int8) compiled with the (op, port) outputs added, and their output indices."""
        model = self._read(i)
        ops = {str(o.get_friendly_name()): o for o in model.get_ordered_ops()}
        try:
            added = model.add_outputs([ops[name].output(k) for name, k in ports]) if ports else []
            index = [next(j for j, o in enumerate(model.outputs) if o == a) for a in added]
            return self.core.compile_model(model, "CPU", self.CONFIG), index
        except Exception as exc:
            raise RuntimeAdapterError(f"OpenVINO cannot compile the model with its inner tensors as outputs: "
                                      f"{first_line(exc, 240)}", where=str(self.paths[i]),
                                      hint="check that the IR runs in OpenVINO") from exc

    def _run(self, i: int, compiled: Any, feed: Mapping[str, np.ndarray], at: Sequence[int]) -> list[np.ndarray]:
        """Outputs ``at`` of compiled model ``i`` on one feed."""
        from edgekit.runtimes.openvino import port_name

        try:
            res = compiled({port_name(p): feed[port_name(p)] for p in compiled.inputs}).to_tuple()
        except Exception as exc:
            raise RuntimeAdapterError(f"OpenVINO cannot run the model: {first_line(exc, 240)}",
                                      where=str(self.paths[i]),
                                      hint="the feeds must be the model's inputs (the calibration "
                                           "preprocessing)") from exc
        return [np.asarray(res[j]) for j in at]

    def measure(self, chunk: Sequence[_OvPair], stats: Stats) -> list[str]:
        """Add the chunk's stats; return the keys left out: a chunk whose probes change a model's own outputs is
        split until the probes that do are alone."""
        compiled = [self._compile(0, [(str(p.op.get_friendly_name()), p.port) for p in chunk]),
                    self._compile(1, [(p.int8_op, p.int8_port) for p in chunk])]
        trial = Stats()
        for n, feed in enumerate(self.items):
            got = [self._run(i, c, feed, [*range(len(self.base[i][n])), *at]) for i, (c, at) in enumerate(compiled)]
            own = [g[:len(self.base[i][n])] for i, g in enumerate(got)]
            if not all(_same(a, b) for i in (0, 1) for a, b in zip(own[i], self.base[i][n], strict=True)):
                if len(chunk) == 1:
                    return [chunk[0].key]
                half = len(chunk) // 2
                return self.measure(chunk[:half], stats) + self.measure(chunk[half:], stats)
            m = len(self.base[0][n]), len(self.base[1][n])
            for j, p in enumerate(chunk):
                trial.add(p.key, got[0][m[0] + j], got[1][m[1] + j])
        stats.merge(trial)
        return []


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to float reordering noise."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = float(np.max(np.abs(b64), initial=0.0)) + 1e-12
    return a64.shape == b64.shape and bool(np.all(np.abs(a64 - b64) <= 1e-5 * scale))


def openvino_layer_errors(fp32_xml: Path, int8_xml: Path, feeds: Sequence[Feeds], *,
                          max_tensors: int = 200, kept_float: Sequence[str] = ()) -> LayerReport:
    """Compare the output of every float op of the fp32 IR with the int8 IR's op of the same friendly name (NNCF keeps
    them; the FakeQuantize ``X/fq_output_K`` after port K of op ``X``, what X's consumers read, is preferred) on
    ``feeds`` (4-8 calibration items, one item per feed). ``tensor`` and ``node`` are the op's friendly name
    (``name:K`` for output K > 0).

    Unlike :func:`~edgekit.layer_errors.onnx_layer_errors`, the int8 IR runs with the real OpenVINO CPU kernels
    (f32 inference precision, 1 thread), which fuse a quantized convolution with what follows: OpenVINO 2026.4
    computed a wrong int8 model (zero logits) when the output of a quantized Convolution before its Relu was added as
    a model output, and changed the logits of EfficientNet-Lite0 by up to 5% for an input of a residual Add. So only
    what the int8 IR has in float is read -- the FakeQuantize outputs, the ops it computes in float, the model
    outputs -- and not the inputs of a residual Add (an int8 Convolution's error shows at the FakeQuantize after its
    bias / activation; a residual block's at the next one read). Every probed compile is still checked: its own
    outputs must equal the unprobed model's, else the probes are split until the culprits are alone, left out and
    named in the note. At most ``max_tensors`` outputs are added per compile. Raises
    :class:`~edgekit.errors.RuntimeAdapterError` when an IR cannot be read, compiled or run.
    """
    if not isinstance(max_tensors, int) or max_tensors < 1:
        raise ConfigError("too few tensors per run", where="max_tensors", expected="an integer >= 1", got=max_tensors)
    ov = require("openvino", "openvino", "per-layer errors of OpenVINO models")
    from edgekit.runtimes.openvino import telemetry_off

    telemetry_off()
    where = str(int8_xml)
    items = check_feeds(feeds, where)
    core = ov.Core()
    models = []
    for path in (Path(fp32_xml), Path(int8_xml)):
        if not path.is_file():
            raise RuntimeAdapterError("model file not found", where=str(path), hint=not_found_hint(path))
        try:
            models.append(core.read_model(str(path)))
        except Exception as exc:
            raise RuntimeAdapterError(f"not a readable OpenVINO IR: {first_line(exc, 240)}", where=str(path),
                                      hint="pass the fp32 and int8 .xml files of one run") from exc
    fp32, int8 = models
    const = _ov_constant_ops(fp32)
    int8_ops = {str(op.get_friendly_name()): op for op in int8.get_ordered_ops()}
    int8_const = _ov_constant_ops(int8)
    flags = _ov_float_ops(int8, int8_const)
    pairs: list[_OvPair] = []
    for op in fp32.get_ordered_ops():
        name = str(op.get_friendly_name())
        twin = int8_ops.get(name)
        if op.get_type_name() in _OV_SKIP or name in const or twin is None \
                or twin.get_type_name() != op.get_type_name():
            continue
        for k, out in enumerate(op.outputs()):
            if not out.get_element_type().is_real() or k >= len(twin.outputs()):
                continue
            fq = f"{name}/fq_output_{k}"
            if fq in int8_ops:
                if _ov_feeds_eltwise(int8_ops[fq].output(0), int8_const):
                    continue
                pairs.append(_OvPair(_ov_key(op, k), op, k, fq, 0))
            elif flags[name] or _ov_is_model_output(twin.output(k)):  # not inside a fused int8 computation
                pairs.append(_OvPair(_ov_key(op, k), op, k, name, k))
    probe = _OvProbe(core, (Path(fp32_xml), Path(int8_xml)), items)
    stats = Stats()
    left_out: list[str] = []
    for start in range(0, len(pairs), max_tensors):
        left_out += probe.measure(pairs[start:start + max_tensors], stats)
    names = set(kept_float)
    order = [(p.key, str(p.op.get_type_name()), str(p.op.get_friendly_name()),
              str(p.op.get_friendly_name()) in names or flags[str(p.op.get_friendly_name())])
             for p in pairs]
    ups: dict[str, list[str]] = {}
    for op in fp32.get_ordered_ops():
        srcs = [i.get_source_output() for i in op.inputs()]
        keys = ["" if s.get_node().get_type_name() == "Parameter" else _ov_key(s.get_node(), s.get_index())
                for s in srcs if str(s.get_node().get_friendly_name()) not in const]
        for k in range(len(op.outputs())):
            ups[_ov_key(op, k)] = keys
    note = (f"left out {len(left_out)} tensor(s) whose probing changed OpenVINO's results: "
            f"{', '.join(left_out[:10])}" if left_out else None)
    return finish_report(where, len(items), order, stats, lambda t: ups.get(t, []), note)

