"""The metric functions, one implementation each: cosine similarity (:func:`row_cosine` per item,
:func:`cosine` of two whole arrays), token pooling (:func:`pool_tokens`), gathering every output of a model
over the held-out items (:func:`collect`) and :func:`compare` for the held-out validation. Everything else
(the export checks in :mod:`edgekit.formats.base`, the quantizers' checks in :mod:`edgekit.quantization.checks`,
the benchmarks) calls these.

Cosine conventions: two all-zero vectors agree (1.0); a zero vector against a nonzero one does not (0.0),
so an int8 model that collapsed to zeros never scores as a match.

Every output is compared, with the metrics that fit its kind (:data:`~edgekit.results.OUTPUT_KINDS`, chosen
by :func:`infer_kind` unless the user names it): one score per item is a ``binary`` output (flip rate at a
threshold, never a cosine); a map per item (two or more axes) is ``dense`` (per-element error, IoU of the
thresholded maps, never an argmax over the flattened map); per-step class distributions ``[N, T, C]`` are a
``sequence`` (decoded and compared as text); boxes ``[N, K, 4]`` named so, beside a scores output of ``[N, K]``
or ``[N, K, C]``, are a ``detection`` (boxes matched by IoU at the source's operating point); a vector per item is
``classification``, ``embedding`` or ``regression`` by the task, the output's name, and its values. For feature
extraction with an ``attention_mask`` input, token outputs are mean-pooled over real tokens first (the sentence
embedding users actually consume). The user says what an output is with ``--output-kind NAME=KIND[:PAIR][@VALUE]``
(:class:`~edgekit.metrics_kinds.KindSpec`) and adds metrics of their own with ``--metric``
(:mod:`edgekit.metrics_user`). The task metrics themselves live in :mod:`edgekit.metrics_kinds`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from edgekit.errors import ConfigError, RuntimeAdapterError
from edgekit.metrics_kinds import (
    SPEC_HELP,
    SPEC_SYNTAX,
    KindSpec,
    dense_iou,
    match_detections,
    sequence_metrics,
    split_detections,
)
from edgekit.metrics_user import UserMetric, check_outputs
from edgekit.results import OUTPUT_KINDS, CrossRuntime, Metrics, OutputMetrics
from edgekit.types import Task

Outputs = dict[str, np.ndarray]
"""Output name -> that output over every item, item axis first (as :func:`collect` returns it)."""

_NAME_HINTS = (  # a vector output's kind from its name, tried in order (whole words or name parts)
    ("regression", re.compile(r"box|bbox|regress|(^|[_.\-/])(reg|loc|kps|deltas?)($|[_.\-/\d])|landmark|offset|"
                              r"coord|keypoint|point", re.I)),
    ("embedding", re.compile(r"embed|feature|feat($|[_.\-/\d])|pool|descriptor|hidden|vector", re.I)),
    ("classification", re.compile(r"logit|prob|softmax|score|cls|class|label", re.I)),
)
_BOXES = re.compile(r"box|bbox|(^|[_.\-/])(loc|det|dets|detections)($|[_.\-/\d])", re.I)
_SCORES = re.compile(r"score|conf|prob|cls|class|logit", re.I)


def pool_tokens(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of a (B, S, H) output over the real tokens of a (B, S) ``attention_mask``: (B, H)."""
    m = mask.astype(np.float32)[..., None]
    pooled: np.ndarray = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled


def item_rows(out: np.ndarray, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
    """One row per batch item of ``out``; a (B, S, H) token output with a matching ``attention_mask``
    input is mean-pooled over the real tokens first (padding positions carry no meaning)."""
    x = np.asarray(out, dtype=np.float32)
    mask = feeds.get("attention_mask")
    if x.ndim == 3 and mask is not None and np.shape(mask) == x.shape[:2]:
        x = pool_tokens(x, np.asarray(mask))
    return x.reshape(x.shape[0] if x.ndim > 1 else 1, -1)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of two (N, D) arrays: 1.0 where both rows are all zeros, 0.0 where
    exactly one is (a collapsed output is not a match)."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    num = np.sum(a64 * b64, axis=1)
    den = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    both_zero = ~np.any(a64, axis=1) & ~np.any(b64, axis=1)
    out: np.ndarray = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.where(both_zero, 1.0, 0.0))
    return out


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays flattened (conventions of :func:`row_cosine`)."""
    return float(row_cosine(np.reshape(a, (1, -1)), np.reshape(b, (1, -1)))[0])


# --- gathering outputs over the held-out items -------------------------------------------------------------

def feed_items(feeds: Mapping[str, np.ndarray]) -> int:
    """How many items one call's ``feeds`` hold: the smallest leading dimension of the inputs that have one
    (inputs fed whole, such as a scalar or a recurrent state, only come in calls of one item)."""
    dims = [int(np.shape(v)[0]) for v in feeds.values() if np.ndim(v) >= 1 and np.shape(v)[0] >= 1]
    return min(dims) if dims else 1


def item_outputs(outputs: Sequence[np.ndarray], feeds: Mapping[str, np.ndarray], task: Task,
                 names: Sequence[str] = ()) -> Outputs:
    """One call's outputs by name (``names`` in output order; ``output_<i>`` beyond them), item axis first: an
    output whose leading axis is not the call's item count (a state ``[2, 1, 128]``, a scalar) is one item."""
    batch = feed_items(feeds)
    mask = feeds.get("attention_mask")
    out: Outputs = {}
    for i, raw in enumerate(outputs):
        name = names[i] if i < len(names) else f"output_{i}"
        x = np.asarray(raw)
        x = x.astype(np.float32) if x.dtype != np.float32 else x
        if task is Task.FEATURE_EXTRACTION and x.ndim == 3 and mask is not None and np.shape(mask) == x.shape[:2]:
            x = pool_tokens(x, np.asarray(mask))
        if x.ndim == 0 or x.shape[0] != batch:
            if batch != 1:
                raise RuntimeAdapterError("an output has no item axis in a batched call", where=f"output {name!r}",
                                          expected=f"leading dimension {batch}", got=list(x.shape),
                                          hint="feed one item per call (batch_size=1)")
            x = x[None]
        out[name] = x
    return out


def collect(run: Iterable[tuple[Mapping[str, np.ndarray], Sequence[np.ndarray]]], task: Task,
            names: Sequence[str] = ()) -> Outputs:
    """Every output of (feeds, outputs) pairs, stacked over the items: ``{name: (N, ...)}`` in output order."""
    parts: dict[str, list[np.ndarray]] = {}
    for feeds, outs in run:
        for name, x in item_outputs(outs, feeds, task, names).items():
            parts.setdefault(name, []).append(x)
    out: Outputs = {}
    for name, xs in parts.items():
        if len({x.shape[1:] for x in xs}) > 1:
            raise RuntimeAdapterError("an output's shape changes from item to item", where=f"output {name!r}",
                                      expected="one shape per item",
                                      got=sorted({str(list(x.shape[1:])) for x in xs})[:4],
                                      hint="fix the model's dynamic dims (--input-shape) so every item has the same "
                                           "output shape")
        out[name] = np.concatenate(xs, axis=0)
    return out


def n_items(outputs: Mapping[str, np.ndarray]) -> int:
    """The number of items in :func:`collect`'s result."""
    return int(next(iter(outputs.values())).shape[0]) if outputs else 0


# --- what each output means ---------------------------------------------------------------------------------

def threshold_for(reference: np.ndarray) -> float:
    """The decision threshold of a score or map: 0.5 for probabilities (values in [0, 1]), else 0."""
    if reference.size and float(np.min(reference)) >= 0.0 and float(np.max(reference)) <= 1.0:
        return 0.5
    return 0.0


def _is_distribution(rows: np.ndarray) -> bool:
    return bool(rows.size and np.min(rows) >= 0.0 and np.max(rows) <= 1.0
                and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def infer_kind(name: str, reference: np.ndarray, task: Task, n_outputs: int) -> str:
    """The kind of one output from its shape over the items (``(N, ...)``), the task, its name and values.

    One value per item: ``binary``. A map per item (two or more axes): ``dense``. A vector per item: an
    ``embedding`` for feature extraction, ``classification`` for a classification task; otherwise by name
    (``box``/``landmark``/``offset``... regression, ``embed``/``feature``... embedding, ``logits``/``prob``/
    ``score``... classification), then by value (rows that are probability distributions: classification),
    and last ``classification`` for a model's only output, ``regression`` for one of several."""
    item = reference.shape[1:]
    if math.prod(item) == 1:
        return "binary"
    if len(item) == 2 and item[1] > 2 and _is_distribution(reference.reshape(-1, item[1])):
        return "sequence"
    if len(item) >= 2:
        return "dense"
    if task is Task.FEATURE_EXTRACTION:
        return "embedding"
    if task.is_classification:
        return "classification"
    for kind, pattern in _NAME_HINTS:
        if pattern.search(name):
            return kind
    if _is_distribution(reference.reshape(reference.shape[0], -1)):
        return "classification"
    return "classification" if n_outputs == 1 else "regression"


def _paired_scores(name: str, reference: Mapping[str, np.ndarray]) -> str | None:
    """The scores output beside boxes ``[N, K, 4]`` called ``name`` (a box name; scores ``[N, K]``/``[N, K, C]``
    with a score name), or None."""
    boxes = reference[name]
    if boxes.ndim != 3 or boxes.shape[2] != 4 or boxes.shape[1] < 2 or not _BOXES.search(name):
        return None
    return next((other for other, a in reference.items() if other != name and _SCORES.search(other)
                 and a.shape[:2] == boxes.shape[:2] and a.ndim in (2, 3)), None)


def output_specs(reference: Mapping[str, np.ndarray], task: Task,
                 given: Mapping[str, str] | None = None) -> dict[str, KindSpec]:
    """What every output is: ``given`` (the user's ``KIND[:PAIR][@VALUE]``, checked) over :func:`infer_kind`;
    boxes with a scores output beside them are a detection, and the scores then binary decisions at the same
    threshold (never a top-1 over the boxes) unless the user says otherwise."""
    specs: dict[str, KindSpec] = {}
    for name, text in dict(given or {}).items():
        where = f"output_kinds[{name!r}] (--output-kind)"
        if name not in reference:
            raise ConfigError("no output of that name", where=where, expected=", ".join(reference), got=name)
        if text.strip().partition("@")[0].partition(":")[0].strip() not in OUTPUT_KINDS:
            raise ConfigError("unknown output kind", where=where, expected=" | ".join(OUTPUT_KINDS), got=text)
        specs[name] = spec = KindSpec.parse(text, where)
        _check_spec(name, spec, reference)
    for name, ref in reference.items():
        if name in specs:
            continue
        pair = _paired_scores(name, reference)
        specs[name] = KindSpec("detection", pair) if pair else KindSpec(infer_kind(name, ref, task, len(reference)))
    for spec in list(specs.values()):
        if spec.kind == "detection" and spec.pair and spec.pair not in (given or {}):
            specs[spec.pair] = KindSpec("binary", value=spec.value)
    return {name: specs[name] for name in reference}


def output_kinds(reference: Mapping[str, np.ndarray], task: Task,
                 given: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kind of every output (:func:`output_specs` without the pairs and values)."""
    return {name: spec.kind for name, spec in output_specs(reference, task, given).items()}


def _check_spec(name: str, spec: KindSpec, reference: Mapping[str, np.ndarray]) -> None:
    """Refuse a kind the output's shape cannot carry (an argmax over a flattened map, a cosine of one value)."""
    kind = spec.kind
    item = reference[name].shape[1:]
    if kind == "detection":
        pair = reference.get(spec.pair) if spec.pair else None
        if spec.pair and pair is None:
            raise ConfigError("no output of that name to pair the boxes with", where=f"output {name!r} (detection)",
                              expected=", ".join(n for n in reference if n != name), got=spec.pair)
        if len(item) != 2 or item[1] < (4 if pair is not None else 5) or \
                (pair is not None and pair.shape[:2] != reference[name].shape[:2]):
            raise ConfigError("detection needs decoded boxes per item", where=f"output {name!r}",
                              expected="boxes [N, K, 4] (x1, y1, x2, y2) with :SCORES naming a [N, K] or [N, K, C] "
                                       "output, or [N, K, 5+] with the score in column 4",
                              got=f"one item {list(item)}" + (f", scores {list(pair.shape[1:])}"
                                                              if pair is not None else ""))
    if kind == "sequence" and (len(item) != 2 or item[1] < 2):
        raise ConfigError("sequence needs per-step class scores", where=f"output {name!r}",
                          expected="shape [N, T, C] with C > 1", got=f"one item {list(item)}")
    if kind == "classification" and (len(item) != 1 or item[0] < 2):
        raise ConfigError("classification needs a vector of class scores per item", where=f"output {name!r}",
                          expected="shape [N, C] with C > 1", got=f"one item {list(item)}",
                          hint="an argmax over a flattened map means nothing: use dense, sequence or binary")
    if kind in ("embedding", "dense") and math.prod(item) < 2:
        raise ConfigError(f"{kind} needs more than one value per item", where=f"output {name!r}",
                          got=f"one item {list(item)}", hint="a single score is binary (or regression)")


# --- comparing ----------------------------------------------------------------------------------------------

def compare_output(name: str, kind: str, ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None = None, *,
                   value: float | None = None, pair: tuple[np.ndarray, np.ndarray] | None = None,
                   user: Sequence[UserMetric] = ()) -> OutputMetrics:
    """The metrics of one output that fit its ``kind`` (see :class:`~edgekit.results.OutputMetrics`);
    ``labels`` (one per item) give accuracy for a classification or a one-score binary output. ``value``: the
    threshold of a binary score, dense map or detection (default: from the values), the blank class of a sequence
    (default 0); ``pair``: a detection's scores (source's, candidate's); ``user``: the user's metrics of it."""
    n = ref.shape[0]
    r64, c64 = ref.astype(np.float64).reshape(n, -1), cand.astype(np.float64).reshape(n, -1)
    diff = np.abs(r64 - c64)
    values: dict[str, float | None] = {}
    if kind in ("classification", "embedding", "dense") and r64.shape[1] > 1:
        cos = row_cosine(r64, c64)
        values.update(cosine_mean=float(np.mean(cos)), cosine_min=float(np.min(cos)))
    if kind == "classification":
        r_top, c_top = r64.argmax(axis=1), c64.argmax(axis=1)
        values["top1_agreement"] = float(np.mean(r_top == c_top))
        if r64.shape[1] > 5:
            c_top5 = np.argsort(-c64, axis=1)[:, :5]
            values["top5_agreement"] = float(np.mean(np.any(c_top5 == r_top[:, None], axis=1)))
        if labels is not None:
            values.update(accuracy=float(np.mean(c_top == labels)), source_accuracy=float(np.mean(r_top == labels)))
    elif kind in ("binary", "dense"):
        t = threshold_for(ref) if value is None else value
        values["threshold"] = t
        if kind == "binary":
            values["flip_rate"] = float(np.mean((r64 > t) != (c64 > t)))
            if labels is not None and r64.shape[1] == 1:
                values.update(accuracy=float(np.mean((c64[:, 0] > t) == (labels > 0))),
                              source_accuracy=float(np.mean((r64[:, 0] > t) == (labels > 0))))
        else:
            values["iou"] = dense_iou(ref, cand, t)
    elif kind == "regression":
        norm = float(np.linalg.norm(r64))
        err = float(np.linalg.norm(r64 - c64))
        values["relative_error"] = err / norm if norm > 0 else (0.0 if err == 0 else math.inf)
    elif kind == "detection":
        r = split_detections(ref, pair[0] if pair else None)
        c = split_detections(cand, pair[1] if pair else None)
        values["threshold"] = t = threshold_for(r[1]) if value is None else value
        values.update(match_detections(r, c, t))
    elif kind == "sequence":
        values.update(sequence_metrics(ref, cand, 0 if value is None else int(value)))
    return OutputMetrics(name=name, kind=kind, shape=tuple(int(d) for d in ref.shape[1:]),
                         max_abs=float(diff.max()) if diff.size else 0.0,
                         mean_abs=float(diff.mean()) if diff.size else 0.0,
                         user=tuple(pair_ for m in user for pair_ in m(ref, cand)), **values)  # type: ignore[arg-type]


def _labelled_output(reference: Mapping[str, np.ndarray], kinds: Mapping[str, str],
                     labels: np.ndarray | None) -> str | None:
    """The output the labels are about: the first classification output whose classes cover them, else the
    first one-score binary output when the labels are 0/1."""
    if labels is None or not len(labels):
        return None
    lo, hi = int(np.min(labels)), int(np.max(labels))
    for name, ref in reference.items():
        if kinds[name] == "classification" and len(labels) == ref.shape[0] and lo >= 0 and hi < ref.shape[1]:
            return name
    for name, ref in reference.items():
        if kinds[name] == "binary" and len(labels) == ref.shape[0] and math.prod(ref.shape[1:]) == 1 \
                and lo >= 0 and hi <= 1:
            return name
    return None


def _match(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> Outputs:
    """The candidate's outputs under the reference's names: by position, else the one output of the same
    shape (converters may reorder outputs), else the same map in the other layout (NHWC vs NCHW)."""
    cands = list(candidate.values())
    if len(cands) < len(reference):
        raise RuntimeAdapterError("the artifact has fewer outputs than the source", where="outputs",
                                  expected=", ".join(reference), got=f"{len(cands)} outputs")
    used: set[int] = set()
    out: Outputs = {}
    for i, (name, ref) in enumerate(reference.items()):
        order = [i, *[j for j in range(len(cands)) if j != i]]
        j = next((j for j in order if j not in used and cands[j].shape == ref.shape), None)
        if j is None and ref.ndim == 4:
            j = next((j for j in order if j not in used and cands[j].shape == (ref.shape[0], *ref.shape[2:],
                                                                            ref.shape[1])), None)
            if j is not None:
                used.add(j)
                out[name] = np.moveaxis(cands[j], -1, 1)
                continue
        if j is None:
            raise RuntimeAdapterError("an output of the artifact does not have the source's shape",
                                      where=f"output {name!r}", expected=str(list(ref.shape)),
                                      got=[list(c.shape) for c in cands])
        used.add(j)
        out[name] = cands[j]
    return out


def compare(reference: np.ndarray | Mapping[str, np.ndarray], candidate: np.ndarray | Mapping[str, np.ndarray], *,
            classification: bool | None = None, task: Task = Task.GENERIC, labels: np.ndarray | None = None,
            kinds: Mapping[str, str] | None = None, user_metrics: Sequence[UserMetric] = ()) -> Metrics:
    """Metrics of every output: ``reference`` / ``candidate`` as :func:`collect` returns them (one array is one
    output). Each output's kind is ``kinds[name]`` (``KIND[:PAIR][@VALUE]``) or :func:`output_specs`'s
    (``classification=True`` makes a vector output a classification, ``False`` an embedding); ``labels`` (one
    integer per item) give accuracy on the output they are about; ``user_metrics`` add the user's own. The
    headline fields summarise the outputs (see :class:`Metrics`)."""
    ref = dict(reference) if isinstance(reference, Mapping) else {"output": np.asarray(reference)}
    got = _match(ref, dict(candidate) if isinstance(candidate, Mapping) else {"output": np.asarray(candidate)})
    if classification is not None and task is Task.GENERIC:
        task = Task.IMAGE_CLASSIFICATION if classification else Task.FEATURE_EXTRACTION
    specs = output_specs(ref, task, kinds)
    check_outputs(user_metrics, ref)
    kind_of = {name: spec.kind for name, spec in specs.items()}
    y = np.asarray(labels).astype(np.int64) if labels is not None else None
    labelled = _labelled_output(ref, kind_of, y)
    outs = tuple(compare_output(name, kind_of[name], r, got[name], y if name == labelled else None,
                                value=specs[name].value,
                                pair=(ref[p], got[p]) if (p := specs[name].pair) else None,
                                user=[m for m in user_metrics if m.output == name])
                 for name, r in ref.items())
    coss = [o for o in outs if o.cosine_mean is not None]
    first_cls = next((o for o in outs if o.kind == "classification"), None)
    lab = next((o for o in outs if o.name == labelled), None)
    return Metrics(
        n=n_items(ref),
        cosine_mean=min(o.cosine_mean for o in coss if o.cosine_mean is not None) if coss else None,
        cosine_min=min(o.cosine_min for o in coss if o.cosine_min is not None) if coss else None,
        max_abs=max((o.max_abs for o in outs), default=0.0), mean_abs=max((o.mean_abs for o in outs), default=0.0),
        top1_agreement=first_cls.top1_agreement if first_cls else None,
        top5_agreement=first_cls.top5_agreement if first_cls else None,
        accuracy=lab.accuracy if lab else None, source_accuracy=lab.source_accuracy if lab else None, outputs=outs)


def cross_runtime_agreement(artifact: str, reference_runtime: str, other_runtime: str,
                            reference: np.ndarray | Mapping[str, np.ndarray],
                            other: np.ndarray | Mapping[str, np.ndarray], *, classification: bool | None = None,
                            task: Task = Task.GENERIC, kinds: Mapping[str, str] | None = None, atol: float = 1e-3,
                            rtol: float = 1e-3, min_cosine: float = 0.9999) -> CrossRuntime:
    """Disagreement of two runtimes on one artifact: ``other``'s outputs against ``reference``'s.

    Flagged (``within_tolerance=False``) when max-abs exceeds ``atol + rtol * max|reference|`` (over every
    output) or the minimum per-item cosine (of the outputs a cosine fits) falls below ``min_cosine`` (the fp32
    export tolerance by default).
    """
    m = compare(reference, other, classification=classification, task=task, kinds=kinds)
    arrays = list(reference.values()) if isinstance(reference, Mapping) else [np.asarray(reference)]
    peak = max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0)
    limit = atol + rtol * peak
    ok = m.max_abs <= limit and (m.cosine_min is None or m.cosine_min >= min_cosine)
    return CrossRuntime(artifact, reference_runtime, other_runtime, m,
                        {"max_abs": limit, "min_cosine": min_cosine, "atol": atol, "rtol": rtol}, ok)


def pack_outputs(outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """:func:`collect`'s result as one structured array (one field per output, one record per item), which
    ``np.save`` writes without pickles; :func:`unpack_outputs` reverses it."""
    n = n_items(outputs)
    packed = np.zeros(n, dtype=np.dtype([(name, a.dtype, a.shape[1:]) for name, a in outputs.items()]))
    for name, a in outputs.items():
        packed[name] = a
    return packed


def unpack_outputs(packed: np.ndarray) -> Outputs:
    """The outputs :func:`pack_outputs` packed, by name in output order."""
    names = packed.dtype.names or ()
    return {name: np.ascontiguousarray(packed[name]) for name in names}


def parse_output_kinds(pairs: Iterable[str], where: str = "--output-kind") -> dict[str, str]:
    """``NAME=KIND[:PAIR][@VALUE]`` strings (the CLI's ``--output-kind``; :class:`KindSpec`) as ``{name: spec}``;
    a malformed one or an unknown kind is a :class:`ConfigError` naming it."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, kind = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"expected {SPEC_SYNTAX}", where=where, got=pair, expected=SPEC_HELP)
        if name.strip() in out:
            raise ConfigError("an output's kind given twice", where=where, got=pair,
                              expected=f"one {where} per output ({name.strip()}={out[name.strip()]} came first)",
                              hint="keep one of them")
        try:
            out[name.strip()] = KindSpec.parse(kind, where).text()
        except ConfigError:
            raise ConfigError(f"expected {SPEC_SYNTAX}", where=where, got=pair, expected=SPEC_HELP) from None
    return out
