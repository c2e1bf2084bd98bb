"""Calibration data for the quantizers: the ranges / tuning split, streaming feeds, peak memory.

Decisions are taken on data the decision was not tuned on. :func:`split_calibration` divides the
calibration split of a data set in two, seeded and disjoint:

* the **ranges** items (``CalibrationSplit.ranges()``, streamed) set the quantization ranges (ORT calibrator,
  NNCF statistics, ai-edge-quantizer min/max);
* the **tuning** items (``CalibrationSplit.tuning``, held in memory: a few dozen) are the only items every
  check and search decision of a quantizer is taken on (:mod:`edgekit.quantization.checks`,
  :mod:`edgekit.quantization.search`), with a margin on the run's budget.

The held-out (eval) split is never seen here. How many items each side got is recorded in every int8
artifact's settings (``calibration_split``) and notes.

:class:`FeedStream` pulls validated feeds one at a time (no NaN/Inf, the model's input names), so a
calibrator that takes them in chunks (:class:`ChunkReader`, ORT's ``get_next`` reader) never holds more than
a chunk; :class:`PeakRss` samples the process's resident memory while that runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.errors import CalibrationError, ConfigError, require

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class TuningOptions:
    """How the calibration split is divided, and how far inside the budget search decisions aim.

    Tuning items: ``share`` of the calibration split, at most ``max_items`` and ``max_bytes`` of inputs,
    picked with ``seed``; fewer than ``min_items`` is no tuning subset at all (every item sets ranges, and
    the quantizers say that nothing was checked). ``margin``: the share of the budget's slack the search
    keeps in reserve on tuning items, e.g. ``min_cosine`` 0.99 and margin 0.25 aim at cosine 0.9925, and
    ``max_drop`` 1.0 pt at 0.75 pt (:class:`~edgekit.quantization.checks.DecisionBudget`).
    """

    share: float = 0.25
    max_items: int = 64
    min_items: int = 4
    max_bytes: int = 64 << 20
    seed: int = 0
    margin: float = 0.25

    def __post_init__(self) -> None:
        if not (isinstance(self.share, (int, float)) and 0.0 <= self.share < 1.0):
            raise ConfigError("must be a number in [0, 1)", where="tuning.share", got=self.share)
        for key in ("max_items", "min_items", "max_bytes", "seed"):
            val = getattr(self, key)
            if not isinstance(val, int) or val < 0:
                raise ConfigError("must be an integer >= 0", where=f"tuning.{key}", got=val)
        if not (isinstance(self.margin, (int, float)) and 0.0 <= self.margin < 1.0):
            raise ConfigError("must be a number in [0, 1)", where="tuning.margin", got=self.margin)


@dataclass(frozen=True)
class CalibrationSplit:
    """The calibration split, divided: ``ranges()`` streams the items that set the ranges, ``tuning`` holds
    the disjoint seeded subset decisions are taken on (``tuning_labels``: their labels, if any)."""

    ranges: Callable[[], Iterator[Feeds]]
    tuning: tuple[Feeds, ...]
    total: int
    tuning_indices: tuple[int, ...] = ()
    tuning_labels: np.ndarray | None = None
    seed: int = 0

    @property
    def ranges_items(self) -> int:
        """How many items the ranges stream holds."""
        return self.total - len(self.tuning)

    def describe(self, ranges_used: int | None = None) -> dict[str, Any]:
        """What an artifact records: items used for ranges (``ranges_used``: fewer when a quantizer caps
        them) and for tuning, the seed, and whether the tuning items carry labels."""
        used = self.ranges_items if ranges_used is None else ranges_used
        return {"calibration_items": used + len(self.tuning), "ranges_items": used,
                "tuning_items": len(self.tuning), "tuning_seed": self.seed,
                "tuning_labelled": self.tuning_labels is not None, "split_of": self.total}

    def note(self, ranges_used: int | None = None) -> str:
        """The split as one sentence for the artifact's notes."""
        d = self.describe(ranges_used)
        capped = f" (of {self.ranges_items} available)" if d["ranges_items"] != self.ranges_items else ""
        if not self.tuning:
            return (f"calibration split: {d['ranges_items']} items set the ranges{capped}; no tuning items "
                    f"({self.total} calibration items are too few to set some aside): no check, no search")
        labelled = ", labelled" if self.tuning_labels is not None else ""
        return (f"calibration split ({self.total} items): {d['ranges_items']} set the ranges{capped}; "
                f"{d['tuning_items']} others (seed {self.seed}{labelled}) are the tuning items every check and "
                "search decision is taken on; held-out items are never used here")


def _count(make: Callable[[], Iterator[Feeds]]) -> int:
    return sum(1 for _ in make())


def _feed_bytes(feed: Mapping[str, Any]) -> int:
    return sum(int(np.asarray(v).nbytes) for v in feed.values())


def split_calibration(make: Callable[[], Iterator[Feeds]], options: TuningOptions = TuningOptions(), *,
                      total: int | None = None, labels: np.ndarray | None = None) -> CalibrationSplit:
    """Split the calibration feeds of ``make()`` (a fresh iterator per call, one item per feed) into ranges
    and tuning items (see the module docstring). ``total``: how many feeds ``make()`` yields (counted with
    one pass when not given); ``labels``: the labels of those feeds in stream order, if any."""
    n = _count(make) if total is None else int(total)
    first = next(iter(make()), None) if n else None
    fit = options.max_bytes // max(_feed_bytes(first), 1) if first is not None else 0
    k = min(options.max_items, int(options.share * n), fit)
    if k < max(options.min_items, 1):
        return CalibrationSplit(ranges=make, tuning=(), total=n, seed=options.seed)
    chosen = tuple(sorted(int(i) for i in np.random.default_rng(options.seed).choice(n, size=k, replace=False)))
    wanted = set(chosen)
    tuning: list[Feeds] = []
    for i, feed in enumerate(make()):
        if i in wanted:
            tuning.append({name: np.asarray(v) for name, v in feed.items()})
            if len(tuning) == k:
                break
    if len(tuning) < k:
        raise CalibrationError("the calibration data yielded fewer items than counted", where="calibration",
                               expected=f"{n} items", got=f"item {len(tuning)} of {k} tuning items missing",
                               hint="the calibration iterator must yield the same items on every pass")

    def ranges() -> Iterator[Feeds]:
        return (feed for i, feed in enumerate(make()) if i not in wanted)

    tuning_labels = None
    if labels is not None and len(labels) >= n:
        tuning_labels = np.asarray(labels)[list(chosen)]
    return CalibrationSplit(ranges=ranges, tuning=tuple(tuning), total=n, tuning_indices=chosen,
                            tuning_labels=tuning_labels, seed=options.seed)


# ------------------------------------------------------------------------------------------ streaming


def check_feed(feed: Mapping[str, Any], inputs: Mapping[str, Any], where: str, what: str) -> Feeds:
    """Validate one feed against the model's input names: numeric arrays, no NaN/Inf."""
    if not isinstance(feed, Mapping):
        raise CalibrationError(f"{what} is not a dict of input name -> array", where=where, got=type(feed).__name__)
    missing = [n for n in inputs if n not in feed]
    extra = [n for n in feed if n not in inputs]
    if missing or extra:
        raise CalibrationError(f"{what} does not match the model's inputs", where=where,
                               expected=", ".join(inputs), got=", ".join(map(str, feed)),
                               hint="the calibration data must be preprocessed for this model")
    out: Feeds = {}
    for name, value in feed.items():
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = "NaN" if np.isnan(arr).any() else "Inf"
            raise CalibrationError(f"{what} input {name!r} contains {bad}", where=where,
                                   hint="fix the data or its preprocessing (e.g. a zero std)")
        if arr.dtype.kind not in "fiub":
            raise CalibrationError(f"{what} input {name!r} is not numeric", where=where, got=str(arr.dtype))
        out[name] = arr
    return out


def items_in(feed: Mapping[str, np.ndarray]) -> int:
    """Batch items in one feed (its first input's leading dimension)."""
    first = next(iter(feed.values()))
    return int(first.shape[0]) if first.ndim else 1


class FeedStream:
    """Pulls validated feeds one at a time from an iterator, up to ``limit`` items; ``push_back`` returns
    one feed to the stream."""

    def __init__(self, it: Iterator[Mapping[str, Any]], inputs: Mapping[str, Any], where: str,
                 limit: int | None) -> None:
        self._it = it
        self._inputs = inputs
        self._where = where
        self._limit = limit
        self.items = 0
        self.feeds = 0
        self.done = False
        self._pushed: list[Feeds] = []

    def push_back(self, feed: Feeds) -> None:
        """Return ``feed`` to the stream: the next :meth:`next_feed` yields it again."""
        self._pushed.append(feed)

    def next_feed(self) -> Feeds | None:
        """The next validated feed, or None at the end of the data (or the limit)."""
        if self._pushed:
            return self._pushed.pop()
        if self.done or (self._limit is not None and self.items >= self._limit):
            self.done = True
            return None
        try:
            raw = next(self._it)
        except StopIteration:
            self.done = True
            return None
        feed = check_feed(raw, self._inputs, self._where, f"calibration item {self.feeds}")
        self.feeds += 1
        self.items += items_in(feed)
        return feed


class ChunkReader:
    """A calibration data reader (duck-typed ``get_next``, as ONNX Runtime wants) over at most ``size``
    feeds of a :class:`FeedStream`."""

    def __init__(self, source: FeedStream, size: int) -> None:
        self._source = source
        self._left = size

    def get_next(self) -> Feeds | None:
        if self._left <= 0:
            return None
        self._left -= 1
        return self._source.next_feed()


class PeakRss:
    """Samples this process's RSS every 10 ms on a thread; ``peak_mb`` is the largest sample."""

    def __init__(self) -> None:
        psutil = require("psutil", None, "measuring calibration memory")
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._peak = 0
        self._baseline = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self._peak = max(self._peak, int(self._proc.memory_info().rss))
            if self._stop.wait(0.01):
                return

    def __enter__(self) -> PeakRss:
        self._peak = self._baseline = int(self._proc.memory_info().rss)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, int(self._proc.memory_info().rss))

    @property
    def peak_mb(self) -> float:
        return self._peak / 2**20

    @property
    def increase_mb(self) -> float:
        """Peak minus the RSS when sampling started: what the sampled work itself added."""
        return (self._peak - self._baseline) / 2**20
