"""What a run's outcome means for automation: the targets left without an artifact within the budget, and the
exit status (:mod:`edgekit.exit_codes`) the command returns and :func:`edgekit.exit_status` gives Python users.

The rule: a target is met when at least one of its runtimes has a recommended artifact
(:func:`edgekit.report.recommend.recommend` gives one answer per target and runtime). A target where nothing was
measured (not available, failed) has no recommendation, so it is not met either. A target that is only ever
estimated (a compiler estimate such as Vela's for an Ethos-U: nothing runs there, and an estimate is never
recommended on its own word) is left out of the rule: it would make every run with an NPU estimate exit 3.
A target validated on an emulated board or NPU only (``validated-remote`` rows, nothing measured: accuracy on its
kernels, no speed) is met when one of its artifacts is within the budget on those kernels (other artifacts may
have failed there, as on any target).
A regression against the baseline (``--baseline`` with ``--fail-on``)
gives 4, and wins over 3.
"""

from __future__ import annotations

from edgekit.exit_codes import EXIT_NOTHING_WITHIN_BUDGET, EXIT_OK, EXIT_REGRESSION
from edgekit.results import RunResult


def unmet_targets(result: RunResult) -> tuple[str, ...]:
    """One line per target of the run without a recommended artifact, saying why; empty when every target has
    one. Targets are those of the run's rows, in first-seen order."""
    targets = list(dict.fromkeys(r.target for r in result.rows))
    out: list[str] = []
    for target in targets:
        mine = [r for r in result.rows if r.target == target]
        if all(r.is_estimate for r in mine):
            continue  # estimates only: never recommended, so never "met" (see the module docstring)
        validated = [r for r in mine if r.status == "validated-remote"]
        if validated and not any(r.status.startswith("measured") for r in mine):
            if any(not result.budget.metrics_failures(r.metrics) for r in validated):
                continue
            out.append(f"{target}: no artifact within the budget on its kernels (emulated: {validated[0].runtime})")
            continue
        recs = [r for r in result.recommendations if r.target == target]
        if any(r.artifact is not None for r in recs):
            continue
        if recs:
            runtimes = ", ".join(r.runtime for r in recs)
            out.append(f"{target}: no artifact within the budget on {runtimes} (see its recommendation's "
                       "'not chosen' lines)")
        else:
            statuses = ", ".join(sorted({r.status for r in result.rows if r.target == target}))
            out.append(f"{target}: nothing was measured there ({statuses}), so nothing is recommended")
    return tuple(out)


def exit_status(result: RunResult) -> int:
    """The exit status ``edgekit run`` returns for ``result``: 4 when the comparison with the baseline breached
    its gate, else 3 when some target has no artifact within the budget (:func:`unmet_targets`), else 0."""
    if result.baseline is not None and result.baseline.regressed:
        return EXIT_REGRESSION
    return EXIT_NOTHING_WITHIN_BUDGET if unmet_targets(result) else EXIT_OK
