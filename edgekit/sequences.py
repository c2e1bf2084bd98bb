"""Stateful / streaming models: outputs that feed inputs from one step to the next (``--state OUT->IN``).

A :class:`StateLink` ``stateN->state`` says that the model's output ``stateN`` at one step is its input ``state``
at the next. The data are then sequences of steps, in order: a ``.npz`` of tensors (one array per model input,
item axis first) with a ``split`` array (:mod:`edgekit.data.readers.tensors`):

* the items of a split are consecutive steps. An optional ``sequence`` array (one integer id per item) delimits
  sequences, whose steps must be consecutive; without it, each split is one sequence. (The parity split, image
  and text data, and folders of item files are refused: their order is not a stream's.)
* the value of a linked input in the data at the first step of a sequence is its initial state; its values at
  the other steps are not used (the model's own state is). Without an array for that input in the data, every
  sequence starts from zeros, and the input's shape must then be fixed (``--input-shape state=2,1,128``).

:func:`with_state` checks the links against the model (a one-line :class:`~edgekit.errors.ConfigError` naming
``--state`` and the names available), then runs the source over every sequence of the calibration and held-out
splits, step by step, feeding its own state outputs back, and returns a :class:`SequenceDataset`: the same data
whose linked inputs hold, at every step, the state the source carried to it. Everything that feeds single
steps reads it: the export checks, int8 calibration (its ranges see the states streaming use sees), the
reference outputs (the source's own rollout), the cross-runtime comparison and the benchmark (one step = one
inference). Its description (links, initial states, sequence counts) is part of the data's identity, so the
recipe of an int8 artifact and the reference cache record the links; fp32 and fp16 recipes do not (the links
do not change those artifacts).

:func:`validate_sequences` runs an artifact over each held-out sequence in order, feeding ITS OWN state outputs
back (its drift accumulates as it would in streaming use), compares every step's outputs with the source's
(state outputs included) and the linked states at the sequence ends apart
(:class:`~edgekit.results.SequenceMetrics`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgekit.artifacts import Artifact
from edgekit.data import Dataset
from edgekit.data.readers import Item, NpzTensors
from edgekit.data.readers.tensors import ItemSpec
from edgekit.data.splits import Split
from edgekit.errors import CalibrationError, ConfigError, RuntimeAdapterError
from edgekit.layout import to_layout
from edgekit.metrics import collect, compare, compare_output
from edgekit.registry import get_runtime, reference_runtime
from edgekit.results import Metrics, SequenceMetrics
from edgekit.runtimes.base import RuntimeOptions
from edgekit.sources.base import ModelSource
from edgekit.types import IOSpec, TensorSpec

FLAG = "--state"
Progress = Callable[[str], None]
ROLLED: tuple[Split, ...] = ("calibration", "eval")
"""The splits the source is rolled over (the train split is never used by a run)."""


@dataclass(frozen=True)
class StateLink:
    """The model's ``output`` at one step is its ``input`` at the next (CLI ``--state OUTPUT->INPUT``)."""

    output: str
    input: str

    def __str__(self) -> str:
        return f"{self.output}->{self.input}"

    @staticmethod
    def parse(text: str, where: str = FLAG) -> StateLink:
        """``"stateN->state"`` as a link; anything else is a :class:`ConfigError` naming ``where``."""
        out, sep, inp = str(text).partition("->")
        if not sep or not out.strip() or not inp.strip() or "->" in inp:
            raise ConfigError("expected OUTPUT->INPUT", where=where, got=text,
                              expected="a model output, '->', the model input it feeds at the next step "
                                       "(e.g. stateN->state)")
        return StateLink(out.strip(), inp.strip())


def parse_state_links(values: Iterable[StateLink | str], where: str = FLAG) -> tuple[StateLink, ...]:
    """``--state`` values (or links) as links; one input fed by two links, or one output linked twice, is an error."""
    links = tuple(v if isinstance(v, StateLink) else StateLink.parse(v, where) for v in values)
    for attr in ("input", "output"):
        names = [getattr(link, attr) for link in links]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice is not None:
            raise ConfigError(f"the {attr} {twice!r} is in two state links", where=where,
                              got=", ".join(map(str, links)), hint="one link per state: OUTPUT->INPUT")
    return links


def _spec_text(t: TensorSpec) -> str:
    return f"{t.name} {t.dtype}[{', '.join(map(str, t.shape))}]"


def _fixed(d: Any) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and d > 0 else None


def check_links(links: Sequence[StateLink], io: IOSpec, where: str = FLAG) -> None:
    """Each link names an output and an input of the model with the same dtype and shape (dims fixed on both
    sides must agree); else a one-line :class:`ConfigError` naming the link and the names available."""
    outs = {t.name: t for t in io.outputs}
    ins = {t.name: t for t in io.inputs}
    for link in links:
        at = f"{where} {link}"
        if link.output not in outs:
            raise ConfigError(f"the model has no output {link.output!r}", where=at, got=link.output,
                              expected="one of its outputs: " + ", ".join(map(_spec_text, io.outputs)))
        if link.input not in ins:
            raise ConfigError(f"the model has no input {link.input!r}", where=at, got=link.input,
                              expected="one of its inputs: " + ", ".join(map(_spec_text, io.inputs)))
        o, i = outs[link.output], ins[link.input]
        same_shape = len(o.shape) == len(i.shape) and all(
            _fixed(a) is None or _fixed(b) is None or _fixed(a) == _fixed(b) for a, b in zip(o.shape, i.shape,
                                                                                            strict=True))
        if o.dtype != i.dtype or not same_shape:
            raise ConfigError("the state output and the input it feeds differ in dtype or shape", where=at,
                              expected=_spec_text(i), got=_spec_text(o),
                              hint="link an output to the input of the same dtype and shape; outputs: " +
                                   ", ".join(map(_spec_text, io.outputs)))


def _npz_reader(ds: Dataset, links: Sequence[StateLink]) -> NpzTensors:
    """The data's reader, if its items are steps in order (a named ``.npz`` with a ``split`` array)."""
    reader = ds._reader
    at = f"{FLAG} {', '.join(map(str, links))}"
    if not isinstance(reader, NpzTensors) or not reader.named:
        raise ConfigError("state links need the steps of sequences in order: a .npz of tensors", where=at,
                          expected="a .npz with one array per model input (item axis first), a 'split' array and "
                                   "optionally a 'sequence' array (one id per item)",
                          got=f"{ds.kind} data {ds.path}", hint="store the steps in order in one .npz")
    if reader.parity_split:
        raise ConfigError("state links need a 'split' array in the .npz", where=at,
                          expected=f"'split' (one name per item) in {ds.path}", got="no 'split' array",
                          hint="without it items alternate between calibration and eval, which cuts every "
                               "stream in two interleaved halves; e.g. split = first steps calibration, last eval")
    return reader


def _starts(ids: np.ndarray | None, n: int, where: str) -> tuple[int, ...]:
    """The first item of each sequence among ``n`` items with sequence ``ids`` (None: one sequence)."""
    if n == 0:
        return ()
    if ids is None:
        return (0,)
    ids = ids[:n]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(ids) != 0) + 1]).astype(int)
    seen: set[int] = set()
    for s in starts.tolist():
        if int(ids[s]) in seen:
            raise CalibrationError("the steps of a sequence must be consecutive", where=where,
                                   expected="each sequence id in one run of consecutive items",
                                   got=f"sequence {int(ids[s])} again at item {s} after other sequences",
                                   hint="sort the items by sequence, steps in order")
        seen.add(int(ids[s]))
    return tuple(starts.tolist())


@dataclass(frozen=True)
class _RolledReader:
    """The data's items with each linked input replaced by the state the source carried to that step."""

    base: NpzTensors
    states: Mapping[Split, Mapping[str, np.ndarray]]  # split -> input -> (steps, *state shape)

    def count(self, split: Split) -> int:
        arrays = self.states.get(split)
        return int(next(iter(arrays.values())).shape[0]) if arrays else 0

    def labels(self, split: Split) -> np.ndarray | None:
        labels = self.base.labels(split)
        return None if labels is None else labels[:self.count(split)]

    def item_spec(self) -> dict[Split, ItemSpec]:
        return {s: {**arrays, **{k: (tuple(v.shape[1:]), v.dtype) for k, v in self.states[s].items()}}
                for s, arrays in self.base.item_spec().items() if s in self.states}

    def items(self, split: Split) -> Generator[Item, None, None]:
        n, states = self.count(split), self.states.get(split, {})
        with contextlib.closing(self.base.items(split)) as items:
            for i, (where, raw) in enumerate(items):
                if i >= n:
                    return
                yield where, {**raw, **{k: v[i] for k, v in states.items()}}


@dataclass(frozen=True)
class SequenceDataset(Dataset):
    """A data set of sequences for a stateful model (:func:`with_state`): ``links``, the first item of each
    sequence per split (``starts``), and where each linked input's initial state comes from (``initial``:
    ``"data"`` or ``"zeros"``). Its linked inputs hold the source's own state at every step."""

    links: tuple[StateLink, ...] = ()
    starts: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    initial: Mapping[str, str] = field(default_factory=dict)

    def spans(self, split: Split, n: int | None = None) -> list[tuple[int, int]]:
        """``(first, end)`` item ranges of the sequences among the first ``n`` items of ``split``."""
        n = self.count(split) if n is None else min(n, self.count(split))
        firsts = [s for s in self.starts.get(split, ()) if s < n]
        return list(zip(firsts, [*firsts[1:], n], strict=True))

    def describe(self) -> dict[str, Any]:
        seqs = {s: {"sequences": len(self.spans(s)), "steps": self.count(s)} for s in ROLLED}
        return {**super().describe(), "state": {
            "links": [str(link) for link in self.links], "initial_state": dict(self.initial), **seqs,
            "rule": "steps in item order; sequences by the 'sequence' array (else one per split); linked inputs "
                    "carry the source's own state (validation: each artifact's own)"}}


def _zeros(spec: TensorSpec, link: StateLink) -> np.ndarray:
    dims = [_fixed(d) for d in spec.shape]
    if any(d is None for d in dims):
        example = ",".join(str(d or 1) for d in dims)
        raise ConfigError("no initial state in the data, and the input's shape is not fixed", where=f"{FLAG} {link}",
                          expected=f"an array {spec.name!r} in the data (each sequence's initial state), or a fixed "
                                   "shape", got=_spec_text(spec),
                          hint=f"--input-shape {spec.name}={example}, or store {spec.name}=... in the .npz")
    return np.zeros([int(d) for d in dims if d is not None], dtype=np.dtype(spec.dtype))


def _state_of(outs: Sequence[np.ndarray], index: int, like: np.ndarray, link: StateLink, where: str,
              nhwc: bool = False) -> np.ndarray:
    """The state output ``link.output`` (output ``index`` in the source's order) among a call's ``outs``, in the
    shape and dtype of the input it feeds (``like``): by position, else the one output of that shape (converters
    may reorder outputs), else that map in NHWC."""
    order = [index, *[j for j in range(len(outs)) if j != index]]
    for j in order:
        if j < len(outs) and np.shape(outs[j]) == like.shape:
            return np.asarray(outs[j]).astype(like.dtype, copy=False)
    if nhwc and like.ndim == 4:
        want = (like.shape[0], *like.shape[2:], like.shape[1])
        for j in order:
            if j < len(outs) and np.shape(outs[j]) == want:
                return np.moveaxis(np.asarray(outs[j]), -1, 1).astype(like.dtype)
    raise RuntimeAdapterError(f"no output has the shape of the state input {link.input!r}", where=where,
                              expected=f"{link.output} {list(like.shape)} (--state {link})",
                              got=[list(np.shape(o)) for o in outs])


def _rollout(source: ModelSource, ds: Dataset, io: IOSpec, split: Split, n: int, starts: tuple[int, ...],
             links: Sequence[StateLink], zeros: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The state the source carried to each of the first ``n`` steps of ``split``, per linked input."""
    names = source.io.output_names
    fed: dict[str, list[np.ndarray]] = {link.input: [] for link in links}
    first, carried = set(starts), dict[str, np.ndarray]()
    for i, feed in enumerate(ds.batches(split, io, source.preprocess, batch_size=1, limit=n)):  # type: ignore[arg-type]
        if i in first:  # the data's state at a sequence start (zeros where the data has none)
            carried = {link.input: feed.get(link.input, zeros.get(link.input)) for link in links}  # type: ignore[misc]
        feed = {**feed, **carried}
        outs = source.run_reference(feed)
        for link in links:
            fed[link.input].append(carried[link.input])
            carried[link.input] = _state_of(outs, names.index(link.output), carried[link.input], link,
                                            f"{source.name} output {link.output!r}")
    return {k: np.stack(v) for k, v in fed.items()}


def with_state(ds: Dataset, source: ModelSource, links: Iterable[StateLink | str], *,
               calibration_limit: int | None = None, eval_limit: int | None = None,
               progress: Progress | None = None) -> Dataset:
    """``ds`` as a :class:`SequenceDataset` for ``links`` (see the module docstring): the source rolled over the
    first ``calibration_limit`` / ``eval_limit`` steps of the calibration / held-out splits. Without links,
    ``ds`` itself."""
    links = parse_state_links(links)
    if not links:
        return ds
    if isinstance(ds, SequenceDataset) and ds.links == links:
        return ds
    check_links(links, source.io)
    reader = _npz_reader(ds, links)
    arrays = set().union(*(spec.keys() for spec in reader.item_spec().values()))
    specs = {t.name: t for t in source.io.inputs}
    zeros = {link.input: _zeros(specs[link.input], link) for link in links if link.input not in arrays}
    io = replace(source.io, inputs=tuple(t for t in source.io.inputs if t.name not in zeros))
    starts: dict[str, tuple[int, ...]] = {}
    states: dict[Split, dict[str, np.ndarray]] = {}
    for split, limit in zip(ROLLED, (calibration_limit, eval_limit), strict=True):
        n = min(ds.count(split), limit or 10**9)
        starts[split] = _starts(reader.sequence_ids(split), n, f"{ds.path}:sequence ({split} split)")
        if n == 0:
            continue
        if progress is not None:
            progress(f"state rollout of the source ({', '.join(map(str, links))}) over {len(starts[split])} "
                     f"sequence(s), {n} steps of the {split} split")
        states[split] = _rollout(source, ds, io, split, n, starts[split], links, zeros)
    initial = {link.input: "zeros" if link.input in zeros else "data" for link in links}
    return SequenceDataset(ds.name, ds.kind, ds.path, ds.manifest, _RolledReader(reader, states), links=links,
                           starts=starts, initial=initial)


def validate_sequences(source: ModelSource, artifact: Artifact, ds: SequenceDataset, *,
                       reference: Mapping[str, np.ndarray], limit: int | None = None, threads: int | None = None,
                       output_kinds: Mapping[str, str] | None = None) -> Metrics:
    """Run ``artifact`` over each held-out sequence of ``ds`` in order, feeding its own state outputs back from the
    second step of a sequence on, and compare every step's outputs with the source's rollout (``reference``:
    :func:`edgekit.validation.reference_outputs` on ``ds``); the metrics carry the sequence counts and the drift
    of the linked states at the sequence ends (``Metrics.sequence``)."""
    sess = get_runtime(reference_runtime(artifact.format.value)).load(artifact.path, RuntimeOptions(threads=threads))
    n = min(ds.count("eval"), limit or 10**9)
    spans = ds.spans("eval", n)
    first, last = {a for a, _ in spans}, {b - 1 for _, b in spans}
    names = source.io.output_names
    steps: list[tuple[dict[str, np.ndarray], list[np.ndarray]]] = []
    carried: dict[str, np.ndarray] = {}
    ends: dict[str, list[np.ndarray]] = {link.output: [] for link in ds.links}
    for i, feed in enumerate(ds.batches("eval", source.io, source.preprocess, batch_size=1, limit=n)):  # type: ignore[arg-type]
        feed = feed if i in first else {**feed, **carried}
        outs = sess.run(to_layout(feed, artifact.layout))
        carried = {link.input: _state_of(outs, names.index(link.output), feed[link.input], link,
                                         f"{artifact.name} output {link.output!r}", artifact.layout == "NHWC")
                   for link in ds.links}
        for link in ds.links:
            if i in last:
                ends[link.output].append(carried[link.input])
        steps.append((feed, outs))
    got = collect(steps, source.task, names)
    labels = ds.labels("eval")
    m = compare(reference, got, task=source.task, labels=labels[:n] if labels is not None else None,
                kinds=output_kinds)
    kinds = {o.name: o.kind for o in m.outputs}
    idx = [b - 1 for _, b in spans]
    end_states = tuple(
        compare_output(link.output, kinds[link.output], reference[link.output][idx],
                       np.stack(ends[link.output]).reshape(reference[link.output][idx].shape))
        for link in ds.links)
    return replace(m, sequence=SequenceMetrics(links=tuple(map(str, ds.links)), sequences=len(spans), steps=n,
                                               longest=max((b - a for a, b in spans), default=0),
                                               end_states=end_states))
