"""The search side of TFLite int8 with ai-edge-quantizer: each trial re-quantizes the fp32 ``.tflite`` from the same
calibration statistics with a recipe entry per island, and runs on the real LiteRT kernels.

- :class:`TfliteBackend`: the plain :class:`~edgekit.quantization.search.SearchBackend` (an op kept float gets a
  ``no_quantize`` entry; scope "weighted": a dynamic-range int8 entry), and :func:`grow_islands` for scope
  "weighted".
- :class:`TfliteIslands`: the priced :class:`~edgekit.quantization.islands.IslandBackend` of scope "all" (fixes
  ``"int16"``: the op runs 16x8, 16-bit activations and int8 weights, between two requantizing QUANTIZE ops, the
  rest of the model stays int8: integer-only, what NPUs with A16W8 support run; ``"float"``: ``no_quantize``).
  Every trial is timed with the model before it on LiteRT (XNNPACK where it takes the ops), interleaved, 1 thread;
  or, for a build meant for an Arm Ethos-U NPU (``TfliteInt8Options.price_on``), priced by Vela's estimated
  latency of each model compiled for that accelerator (:func:`edgekit.estimators.vela.estimate`): there a 16x8 op
  runs on the NPU for +1% to +18% of the estimate per island (EfficientNet-Lite0/1 on ethos-u55-128,
  benchmarks/results/int8_npu_islands.md), where on XNNPACK it costs +240% of the model.
  Measured on EfficientNet-Lite0 / MobileNetV2 at 1 thread (benchmarks/results/int8_vs_peers.md, "aeq-a16w8"):
  XNNPACK has no 16x8 kernels, so a 16x8 op runs on LiteRT's builtin kernels and splits the XNNPACK partition;
  whole-model 16x8 ran at 0.03-0.04x fp32 speed, so on a CPU target the pricing picks float wherever float reaches
  the aim.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import QuantizationError
from edgekit.formats.tflite_graph import float_io, io_types
from edgekit.quantization.calibration import Feeds
from edgekit.quantization.checks import Check, DecisionBudget, Judge
from edgekit.quantization.islands import MEASURED, interleaved_ms
from edgekit.quantization.search import Ranked, SearchResult

STATIC_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")  # "weighted": static int8 (XNNPACK QS8 kernels)


def model_bytes(result: Any) -> bytes:
    """The quantized model as one flatbuffer with inline buffers."""
    from ai_edge_litert.tools import flatbuffer_utils as fu

    with tempfile.TemporaryDirectory(prefix="edgekit-aeq-") as tmp:
        tmp_file = Path(tmp) / "model.tflite"
        result.export_model(str(tmp_file), overwrite=True)
        model = fu.read_model(str(tmp_file))  # resolves offset buffers into inline data
        return bytes(fu.convert_object_to_bytearray(model))


def quiet_quantize(qt: Any, calibration: Any = None) -> Any:
    """``qt.quantize`` with its progress bars and size report kept off the terminal."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return qt.quantize(calibration) if calibration is not None else qt.quantize()


class TfliteBackend:
    """The search backend of ai-edge-quantizer: an op kept float gets a ``no_quantize`` recipe entry
    (matched on its scope); each trial re-quantizes from the same calibration statistics."""

    def __init__(self, qt: Any, stats: Any, io_kind: str, tmp: Path, scope: str = "all",
                 outputs: Mapping[str, Sequence[str]] | None = None, always_float: Sequence[str] = ()) -> None:
        self._qt, self._stats, self._io, self.tmp, self._scope = qt, stats, io_kind, tmp, scope
        self._outputs = outputs or {}  # op scope -> output tensor names (for the range ranking)
        self._always = list(always_float)  # op scopes float in every build (the output ops)
        self._n = 0

    def build(self, kept_float: Sequence[str], wide: Sequence[str] = ()) -> bytes:
        """The model with the ops of ``kept_float`` (scopes) as islands: float ("all"), dynamic int8 ("weighted");
        the ops of ``wide`` (scope "all") with 16-bit activations (16x8)."""
        self._qt.load_quantization_recipe(int8_recipe(self._scope, [*self._always, *kept_float], wide))
        data = model_bytes(quiet_quantize(self._qt, self._stats))
        return float_io(data) if self._io == "float" and self._scope == "all" else data

    def run(self, model: bytes, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
        self._n += 1  # a new file per trial: LiteRT maps the file it loads
        return run_tflite(model, feeds, self.tmp / f"trial{self._n}.tflite")

    def rank(self, candidates: Sequence[str], judge: Judge) -> list[Ranked] | None:
        """Scope "weighted": by the calibrated range of each op's output (max |x|), widest first: a static op
        requantizes its output per tensor, and outlier channels (a transformer's FFN output: up to ~200 in
        MiniLM) waste that range; free, where the gain ranking re-quantizes a large model once per candidate
        (36 FCs of MiniLM: over 6 minutes). Else None: the gain ranking."""
        if self._scope != "weighted":
            return None

        def widest(scope_name: str) -> float:
            found = [max(abs(float(np.min(st["min"]))), abs(float(np.max(st["max"]))))
                     for t in self._outputs.get(scope_name, ()) if (st := self._stats.get(t)) is not None]
            return max(found, default=0.0)

        return sorted((Ranked(c, widest(c), False, "calibrated output range (max |x|)") for c in candidates),
                      key=lambda r: -r.score)


def grow_islands(backend: TfliteBackend, candidates: Sequence[str], judge: Judge, model: bytes, check: Check,
                 budget: DecisionBudget, limit: int, notes: list[str]) -> SearchResult:
    """Scope "weighted": make the ``k`` widest-range ops dynamic-range int8 islands for ``k`` = 1, 2, 4, ... up to
    ``limit``, until the check on the tuning items meets the aim; the best tried when none does. A handful of
    builds (MiniLM: each re-quantizes 86 MB), where the one-op-at-a-time search took over 5 minutes; an island costs
    no speed on XNNPACK (dynamic and static FCs ran alike), so taking a few more than the minimum is cheap."""
    ranked = backend.rank(candidates, judge) or []
    top = ", ".join(f"{r.name} {r.score:.3g}" for r in ranked[:5])
    notes.append(f"island search: {len(ranked)} weighted ops ranked by calibrated output range (max |x|); top: {top}")
    best = SearchResult(model, (), check)
    k = 1
    while ranked and k <= min(limit, len(ranked)):
        names = tuple(r.name for r in ranked[:k])
        trial = backend.build(names)
        got = judge.check(trial)
        notes.append(f"{k} widest as dynamic-range int8: {got.text()}")
        if budget.improves(got, best.check, 0.0):
            best = SearchResult(trial, names, got)
        if budget.meets(got) or k == min(limit, len(ranked)):
            break
        k = min(2 * k, limit, len(ranked))
    if best.kept:
        notes.append(f"kept {len(best.kept)} ops as dynamic-range int8 islands: {', '.join(best.kept)}")
    return best


def int8_recipe(scope: str, islands: Sequence[str] = (), wide: Sequence[str] = ()) -> list[dict[str, Any]]:
    """ai-edge-quantizer's recipe for an int8 build of ``scope`` with ``islands`` (op scopes, matched on their
    output tensor names): kept float ("all"), or dynamic-range int8 ("weighted"); ``wide`` (scope "all"): ops with
    16-bit activations and int8 weights (16x8; the quantizer puts a requantizing QUANTIZE op on each side). Later
    entries win."""
    from ai_edge_quantizer import qtyping, recipe
    from ai_edge_quantizer.recipe_manager import RecipeManager

    def exact(scope_name: str) -> str:
        return "^" + re.escape(scope_name) + ";"

    if scope == "all":
        a16w8 = recipe.static_wi8_ai16()[0]
        return [*recipe.static_wi8_ai8(), *({**a16w8, "regex": exact(name)} for name in wide),
                *({"regex": exact(name), "operation": "*", "algorithm_key": "no_quantize", "op_config": {}}
                  for name in islands)]
    ops = qtyping.TFLOperationName
    rm = RecipeManager()
    for op in STATIC_OPS:
        rm.add_static_config(regex=".*", operation_name=getattr(ops, op), activation_num_bits=8, weight_num_bits=8)
    rm.add_dynamic_config(regex=".*", operation_name=ops.EMBEDDING_LOOKUP, num_bits=8)  # the tables: size only
    for name in islands:  # the island's own op kind matches its scope; the other kinds match nothing
        for op in STATIC_OPS:
            rm.add_dynamic_config(regex=exact(name), operation_name=getattr(ops, op), num_bits=8)
    entries: list[dict[str, Any]] = rm.get_quantization_recipe()
    return entries


def run_tflite(model: bytes | Path, feeds: Sequence[Feeds], path: Path | None = None) -> list[list[np.ndarray]]:
    """Every output per feed with the real LiteRT kernels (int8 I/O quantized / dequantized)."""
    sess = load_tflite(model, path)
    return [[np.asarray(o, dtype=np.float32) for o in sess.run(f)] for f in feeds]


def load_tflite(model: bytes | Path, path: Path | None = None) -> Any:
    """A LiteRT session of ``model`` at 1 thread; bytes are written to ``path`` first (LiteRT maps the file)."""
    from edgekit.runtimes.base import RuntimeOptions
    from edgekit.runtimes.litert import LiteRTRuntime

    if isinstance(model, bytes):
        assert path is not None
        path.write_bytes(model)
        model = path
    return LiteRTRuntime().load(model, RuntimeOptions(threads=1))


def carry_constants(model: bytes, donor: bytes) -> tuple[bytes, int]:
    """``model`` with each integer constant (int8 weights, int32 biases) that ``donor`` has under the same name, type,
    shape and quantization parameters taken from ``donor``: a search trial re-quantized from the calibration
    statistics gets the weight rounding and bias correction the model it is compared with was given (a trial
    without them lost to it by the cosine they bought, whatever the island did). An op the trial changed (float
    weights, a 16x8 op's int64 bias) keeps its own. Returns (model, constants carried)."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.tools import flatbuffer_utils as fu

    def consts(m: Any) -> dict[bytes, Any]:
        return {t.name: t for t in m.subgraphs[0].tensors if t.type in (s.TensorType.INT8, s.TensorType.INT32)
                and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data)}

    def same_quant(a: Any, b: Any) -> bool:
        qa, qb = a.quantization, b.quantization
        return qa is not None and qb is not None and np.array_equal(np.asarray(qa.scale), np.asarray(qb.scale)) \
            and np.array_equal(np.asarray(qa.zeroPoint), np.asarray(qb.zeroPoint))

    target, source = fu.convert_bytearray_to_object(bytearray(model)), fu.convert_bytearray_to_object(bytearray(donor))
    theirs = consts(source)
    carried = 0
    for name, t in consts(target).items():
        d = theirs.get(name)
        if d is None or d.type != t.type or list(d.shape) != list(t.shape) or not same_quant(t, d):
            continue
        data = source.buffers[d.buffer].data
        if not np.array_equal(target.buffers[t.buffer].data, data):
            target.buffers[t.buffer].data = np.array(data, copy=True)
            carried += 1
    return bytes(fu.convert_object_to_bytearray(target)), carried


class TfliteIslands:
    """:class:`TfliteBackend` (scope "all") as an :class:`~edgekit.quantization.islands.IslandBackend`: fixes
    ``"int16"`` and ``"float"`` (``no_quantize``); the last few builds are kept.

    A 16-bit island on op X runs X **and the ops that make its activation inputs** (``producers``) 16x8: the
    quantizer stores a tensor at its producer's precision and requantizes it for a consumer that wants another,
    so X alone at 16 bits would read an int8 tensor widened to int16 (nothing gained; the producer's other
    consumers read it requantized to int8, as before). Every build carries ``base``'s integer constants where its
    op is unchanged (:func:`carry_constants`): ``base``'s weight rounding and bias correction stay in every trial.

    ``price_on``: "litert" (each trial timed on LiteRT with the model before it, interleaved, 1 thread) or an Ethos-U
    accelerator (:data:`edgekit.estimators.vela.ACCELERATORS`): Vela's estimated latency of each trial compiled
    for it (an estimate of the NPU's cycles; Vela does not estimate ops it leaves to the CPU)."""

    def __init__(self, backend: TfliteBackend, base: bytes, producers: Mapping[str, Sequence[str]],
                 price_on: str = "litert") -> None:
        self._backend = backend
        self._producers = producers
        self._price_on = price_on
        self.pricing = MEASURED if price_on == "litert" else f"Vela's estimate for {price_on}"
        self._base = base
        self._cache: dict[tuple[frozenset[str], frozenset[str]], bytes] = {(frozenset(), frozenset()): base}
        self._n = 0

    def build(self, fixes: Mapping[str, str]) -> bytes:
        wide = {m for n, f in fixes.items() if f == "int16" for m in (n, *self._producers.get(n, ()))}
        key = (frozenset(n for n, f in fixes.items() if f == "float"), frozenset(wide))
        if key not in self._cache:
            if len(self._cache) > 6:
                del self._cache[next(k for k in self._cache if k != (frozenset(), frozenset()))]
            built = carry_constants(self._backend.build(sorted(key[0]), sorted(key[1])), self._base)[0]
            if io_types(built) != io_types(self._base):
                raise QuantizationError(f"a 16-bit island there makes the model's I/O {io_types(built)} (a graph "
                                        "output at 16 bits); the I/O asked for stays")
            self._cache[key] = built
        return self._cache[key]

    def run(self, model: bytes, feeds: Sequence[Feeds]) -> list[list[np.ndarray]]:
        return self._backend.run(model, feeds)

    def _vela(self, path: Path) -> Any:
        from edgekit.estimators.vela import estimate

        return estimate(path, self._price_on)

    def _paths(self, models: Sequence[bytes]) -> list[Path]:
        out = []
        for m in models:
            self._n += 1
            out.append(self._backend.tmp / f"timed{self._n}.tflite")
            out[-1].write_bytes(m)
        return out

    def latency(self, models: Sequence[bytes], feed: Feeds) -> list[float]:
        """Median ms of each model on ``feed`` with LiteRT at 1 thread, interleaved; or Vela's estimated ms of
        each on the ``price_on`` accelerator."""
        if self._price_on != "litert":
            return [self._vela(p).latency_ms for p in self._paths(models)]
        return interleaved_ms([load_tflite(p).bind(feed) for p in self._paths(models)])

    def int16_note(self, model: bytes, nodes: Sequence[str]) -> str:
        """Where the model's ops run: Vela's NPU / CPU placement on the ``price_on`` accelerator, or LiteRT's kernels
        read from the interpreter (XNNPACK has no 16x8 kernels)."""
        (path,) = self._paths([model])
        if self._price_on != "litert":
            est = self._vela(path)
            return (f"16-bit islands ({len(nodes)}: {', '.join(nodes)}): 16x8 ops; Vela places {est.npu_ops} ops on "
                    f"the {self._price_on} NPU and {est.cpu_ops} on the CPU (estimated {est.latency_ms:.3g} ms); "
                    "the latency costs above are Vela's estimates")
        sess = load_tflite(path)
        info = sess.info()
        builtin = info.get("ops_on_builtin_kernels") or {}
        where = ", ".join(f"{n} {op}" for op, n in sorted(builtin.items())) or "none"
        return (f"16-bit islands ({len(nodes)}: {', '.join(nodes)}): 16x8 ops; LiteRT runs "
                f"{sum(builtin.values())} of {info.get('ops_total', '?')} ops on its builtin kernels ({where}), the "
                "rest on XNNPACK; the latency costs above are measured so")
