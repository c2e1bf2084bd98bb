"""One answer per target, from an interleaved re-measurement of its finalists.

Each artifact's row was timed on its own, one after the other; a machine that got busier in between shifts one
row's latency and not another's (under load, an fp32 baseline timed while the machine was busy once made an fp16
artifact look 14x faster). So, for every target measured on this machine, the candidates the recommendation
could pick (within the budget and not slower than fp32: :func:`edgekit.report.recommend.refusals`), the fastest
``max_finalists`` of them by their own rows, are loaded together and timed in one process in shuffled rounds: one
turn each per round (a short burst, its last call timed), on the same real held-out input. The pick is the
lowest median; every other finalist gets the median of its per-round ratios to the pick with a bootstrap 95%
interval (:func:`paired_ratio`). A more accurate finalist whose interval reaches within :data:`EQUIVALENCE` of
1.0 is "no measurable difference" in speed and is recommended instead: the budget is a floor, not a goal, and a
speed-up that noise can explain buys nothing.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence

import numpy as np

from edgekit.bench import native_calls
from edgekit.compare import bootstrap_ratio
from edgekit.errors import EdgekitError
from edgekit.executors.base import ExecutorOptions, Feeds
from edgekit.layout import to_layout
from edgekit.machine_load import noise_between, snapshot
from edgekit.registry import get_runtime
from edgekit.report.recommend import describe, refusals, speedups
from edgekit.results import AccuracyBudget, Decision, Finalist, Metrics, Row
from edgekit.runtimes.base import RuntimeOptions, Session, timed_call
from edgekit.targets import Target

Progress = Callable[[str], None]
#: Rounds at least (one call per finalist each), and the bootstrap's resamples.
MIN_ROUNDS = 20
BOOTSTRAP = 2000
#: Calls per candidate per round; the last is timed (see :func:`interleave`).
BURST = 3
#: A speed difference smaller than this share is no difference worth an accuracy loss: two byte-identical models
#: measured 0.5% apart with a tight interval (placement in memory, timer granularity at microseconds).
EQUIVALENCE = 0.02


def paired_ratio(a_ms: Sequence[float], b_ms: Sequence[float], seed: int = 0) -> tuple[float, tuple[float, float]]:
    """``a / b`` as the median of the per-round ratios (rounds paired: both timed in the same round), with a
    bootstrap 95% interval of that median over the rounds."""
    ratios = np.asarray(a_ms, dtype=np.float64) / np.asarray(b_ms, dtype=np.float64)
    rng = np.random.default_rng(seed)
    boots = np.median(ratios[rng.integers(0, len(ratios), size=(BOOTSTRAP, len(ratios)))], axis=1)
    return float(np.median(ratios)), (float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)))


def _accuracy_key(m: Metrics | None) -> tuple[float, float]:
    """Higher is more accurate: accuracy against labels where there are labels, then the mean cosine."""
    if m is None:
        return (float("-inf"), float("-inf"))
    return (m.accuracy if m.accuracy is not None else float("-inf"),
            m.cosine_mean if m.cosine_mean is not None else float("-inf"))


def _more_accurate(a: Metrics | None, b: Metrics | None) -> bool:
    """Whether ``a`` is measurably more accurate than ``b`` (a whole item's worth of accuracy, else 1e-4 cosine)."""
    ka, kb = _accuracy_key(a), _accuracy_key(b)
    if ka[0] != kb[0]:
        return ka[0] > kb[0] + 1e-9
    return ka[1] > kb[1] + 1e-4


def interleave(sessions: Sequence[Session], feeds: Sequence[Sequence[Feeds]], rounds: int, warmup: int,
               max_seconds: float, seed: int = 0, burst: int = BURST) -> list[list[float]]:
    """Time every session on the same input per round, in a shuffled order each round; ``feeds[k]`` are session
    ``k``'s inputs (laid out for its artifact), used in turn. Each turn is ``burst`` back-to-back calls of which
    the last is recorded: the steady-state latency a serving loop sees (a candidate's first call after another
    model ran finds its weights out of the caches: about 2x slower here, for every candidate alike). Warm-up calls
    first. Stops after ``rounds`` rounds or ``max_seconds`` (at least :data:`MIN_ROUNDS` rounds). GC off while
    timing; Ctrl-C between two calls."""
    order = list(range(len(sessions)))
    shuffle = random.Random(seed).shuffle
    samples: list[list[float]] = [[] for _ in sessions]
    with native_calls(defer=True) as check:
        for k, sess in enumerate(sessions):
            for i in range(warmup):
                sess.run(feeds[k][i % len(feeds[k])])
                check()
        gc_was = gc.isenabled()
        gc.disable()
        try:
            deadline = time.monotonic() + max_seconds
            for r in range(rounds):
                shuffle(order)
                for k in order:
                    call = timed_call(sessions[k], feeds[k][r % len(feeds[k])])  # inputs bound off the clock
                    for _ in range(burst - 1):
                        call()
                    t0 = time.perf_counter_ns()
                    call()
                    samples[k].append((time.perf_counter_ns() - t0) / 1e6)
                    check()
                if r + 1 >= MIN_ROUNDS and time.monotonic() > deadline:
                    break
        finally:
            if gc_was:
                gc.enable()
    return samples


def _why(rows: Sequence[Row], finalists: Sequence[Finalist], pick: Finalist, speed: dict[int, float | None],
         swapped_from: Finalist | None, timed: str = "interleaved") -> str:
    head = f"{pick.artifact} on {pick.runtime}: "
    if swapped_from is not None and swapped_from.ratio is not None and swapped_from.interval is not None:
        lo, hi = swapped_from.interval
        head += (f"no measurable difference in speed from the fastest, {swapped_from.artifact} on "
                 f"{swapped_from.runtime} ({swapped_from.median_ms:.3f} vs {pick.median_ms:.3f} ms {timed}; "
                 f"ratio {swapped_from.ratio:.3f} [{lo:.3f}, {hi:.3f}] is within {EQUIVALENCE:.0%} of 1.0), and more "
                 "accurate: recommended. ")
    else:
        head += f"fastest within budget, {timed} median {pick.median_ms:.3f} ms. "
    head += describe(rows[pick.row], speed[pick.row])
    others = [f for f in finalists if f is not pick]
    if not others:
        return head + "; the only candidate within budget"
    runner = min(others, key=lambda f: f.median_ms)
    if runner.ratio is not None and runner.interval is not None:
        lo, hi = runner.interval
        verdict = ("no measurable difference" if lo <= 1.0 + EQUIVALENCE and hi >= 1.0 - EQUIVALENCE else
                   f"{'slower' if runner.ratio > 1 else 'faster'} by {abs(runner.ratio - 1) * 100:.1f}% "
                   f"[{(lo - 1) * 100:+.1f}%, {(hi - 1) * 100:+.1f}%]")
        head += (f"; runner-up {runner.artifact} on {runner.runtime}: {runner.median_ms:.3f} ms, {verdict} "
                 f"(ratio {runner.ratio:.3f} [{lo:.3f}, {hi:.3f}])")
    return head


def decide(rows: Sequence[Row], budget: AccuracyBudget, targets: Sequence[Target], feeds: Sequence[Feeds],
           options: ExecutorOptions, progress: Progress, *, max_finalists: int = 4,
           seed: int = 0, strict_timing: bool = False) -> tuple[Decision, ...]:
    """One :class:`Decision` per target in ``targets`` (those measured on this machine), from the interleaved
    re-measurement of its finalists (see the module docstring)."""
    speed = speedups(rows)
    out: list[Decision] = []
    for target in targets:
        idx = [i for i, r in enumerate(rows) if r.target == target.name and r.status == "measured"]
        why_not = refusals(rows, idx, budget, speed, strict_timing)
        eligible = sorted((i for i in idx if not why_not[i]),
                          key=lambda i: (b.stats.p50_ms if (b := rows[i].bench) else 0.0))[:max_finalists]
        if not eligible:
            out.append(Decision(target.name, None, None, "nothing measured here is within the budget "
                                f"({budget.describe()}) and no slower than fp32"))
            continue
        sessions: list[Session] = []
        laid: list[list[Feeds]] = []
        kept: list[int] = []
        for i in eligible:
            row = rows[i]
            spec = target.runtime(row.runtime)
            threads = options.threads or (spec.threads if spec else None) or options.bench.threads
            try:
                with native_calls():
                    sessions.append(get_runtime(row.runtime).load(row.artifact.path, RuntimeOptions(
                        threads=threads, providers=spec.providers if spec else (), device=spec.device if spec
                        else None)))
            except EdgekitError as exc:  # measured a moment ago; if it cannot load now, say so and go on
                progress(f"finalists of {target.name}: {row.artifact.name} on {row.runtime} left out ({exc})")
                continue
            laid.append([to_layout(f, row.artifact.layout) for f in feeds])
            kept.append(i)
        rounds = max(MIN_ROUNDS, options.bench.min_runs)
        progress(f"finalists of {target.name}: {len(kept)} re-measured interleaved ({rounds} shuffled rounds)")
        before = snapshot()
        samples = interleave(sessions, laid, rounds, options.bench.warmup_runs,
                             max(options.bench.min_seconds * len(kept), 1.0), seed)
        noise = noise_between(before, snapshot(), [x for s in samples for x in s])
        del sessions
        finalists, pick, swapped = _choose(rows, kept, samples, seed, paired_ratio)
        why = _why(rows, finalists, pick, speed, swapped)
        if noise["noisy"]:
            why += (f". The machine was busy meanwhile ({noise['why']}): the ratios are paired per round, so the "
                    "load hit every finalist alike; the absolute times are not this machine's quiet speed")
        out.append(Decision(target.name, pick.artifact, pick.runtime, why, tuple(finalists), len(samples[0]),
                            noise))
    return tuple(out)


Ratio = Callable[[Sequence[float], Sequence[float], int], tuple[float, tuple[float, float]]]


def unpaired_ratio(a_ms: Sequence[float], b_ms: Sequence[float], seed: int = 0) -> tuple[float, tuple[float, float]]:
    """``a / b`` as the ratio of the medians of two sample sets timed apart (not in shared rounds), with a
    bootstrap 95% interval resampling each set on its own: wider than :func:`paired_ratio`'s, and blind to a
    machine that changed between the two."""
    ratio, low, high = bootstrap_ratio(b_ms, a_ms, seed=seed)
    return ratio, (low, high)


def _choose(rows: Sequence[Row], kept: Sequence[int], samples: Sequence[Sequence[float]], seed: int,
            ratio: Ratio) -> tuple[list[Finalist], Finalist, Finalist | None]:
    """The finalists (rows ``kept``, timed ``samples``) with ratios to the pick, the pick (the fastest, or a more
    accurate one with no measurable difference in speed) and the fastest it replaced (None: the fastest)."""
    plain = [Finalist(i, rows[i].artifact.name, rows[i].runtime, float(np.median(samples[k])), tuple(samples[k]))
             for k, i in enumerate(kept)]
    fastest = int(np.argmin([f.median_ms for f in plain]))
    finalists = _rebased(plain, fastest, seed, ratio)
    ties = [k for k, f in enumerate(finalists) if f.interval is not None and f.interval[0] <= 1.0 + EQUIVALENCE
            and _more_accurate(rows[f.row].metrics, rows[finalists[fastest].row].metrics)]
    if not ties:
        return finalists, finalists[fastest], None
    # no measurable difference in speed, more accurate: that one, the others' ratios re-based on it
    chosen = max(ties, key=lambda k: _accuracy_key(rows[finalists[k].row].metrics))
    finalists = _rebased(plain, chosen, seed, ratio)
    return finalists, finalists[chosen], finalists[fastest]


def decide_boards(rows: Sequence[Row], budget: AccuracyBudget, targets: Sequence[Target], *, max_finalists: int = 4,
                  seed: int = 0, strict_timing: bool = False) -> tuple[Decision, ...]:
    """One :class:`Decision` per board target (timed over SSH by the agent) that has measured rows, from those
    rows as the agent timed them: one after another on the board, not interleaved, so each ratio is
    :func:`unpaired_ratio` of the two rows' raw samples (``rounds`` 0). The same finalists, tie rule and reasons
    as :func:`decide`; a board without speed rows (emulated, unreachable) keeps its recommendation lines only."""
    speed = speedups(rows)
    out: list[Decision] = []
    for target in targets:
        idx = [i for i, r in enumerate(rows) if r.target == target.name and r.status == "measured-remote"
               and r.bench is not None and r.bench.samples_ms]
        if not idx:
            continue
        why_not = refusals(rows, idx, budget, speed, strict_timing)
        eligible = sorted((i for i in idx if not why_not[i]),
                          key=lambda i: (b.stats.p50_ms if (b := rows[i].bench) else 0.0))[:max_finalists]
        hosts = ", ".join(sorted({str(rows[i].host) for i in idx}))
        if not eligible:
            out.append(Decision(target.name, None, None, f"nothing measured on {hosts} is within the budget "
                                f"({budget.describe()}) and no slower than fp32"))
            continue
        samples = [list(b.samples_ms) if (b := rows[i].bench) else [] for i in eligible]
        finalists, pick, swapped = _choose(rows, eligible, samples, seed, unpaired_ratio)
        why = _why(rows, finalists, pick, speed, swapped, "board")
        why += (f". Timed on {hosts} by edgekit's agent, one artifact after another (not interleaved): each ratio "
                "compares two rows' own samples, so a board that got busier in between is not corrected for")
        out.append(Decision(target.name, pick.artifact, pick.runtime, why, tuple(finalists), 0))
    return tuple(out)


def _rebased(plain: Sequence[Finalist], pick: int, seed: int, ratio_of: Ratio = paired_ratio) -> list[Finalist]:
    """``plain`` (no ratios) with every finalist but ``plain[pick]`` given its ratio to the pick."""
    out: list[Finalist] = []
    for k, f in enumerate(plain):
        if k == pick:
            out.append(f)
            continue
        ratio, interval = ratio_of(f.samples_ms, plain[pick].samples_ms, seed)
        out.append(Finalist(f.row, f.artifact, f.runtime, f.median_ms, f.samples_ms, ratio, interval))
    return out
