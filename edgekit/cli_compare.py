"""``edgekit compare RUN_A RUN_B`` and the automation part of ``edgekit run`` (``--baseline``, ``--fail-on``, the
exit status): a thin layer over :func:`edgekit.compare.compare_runs` and :func:`edgekit.outcome.exit_status`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from edgekit.comparison import FAIL_ON_EXAMPLE, Comparison
from edgekit.exit_codes import EXIT_CODES_HELP, EXIT_OK, EXIT_REGRESSION
from edgekit.report.values import jsonable

_EXAMPLE = FAIL_ON_EXAMPLE.replace("%", "%%")  # argparse formats help strings with %

COMPARE_HELP = f"""\
RUN_A is the baseline, RUN_B the run judged (each an --out folder or its report.json). Per artifact x target x
runtime in both: B/A of the p50 latency with a 95% bootstrap interval over the raw samples, and the accuracy
deltas B - A (task accuracy points, mean cosine, top-1 agreement points, every per-output metric in --json).
Rows in only one run are listed as added / removed. Runs recorded on different machines (CPU model or ISA
flags) are compared with a loud warning.

--fail-on {FAIL_ON_EXAMPLE} makes it a gate: a row breaches when its latency interval's lower bound is above
1.05, or it lost more than 0.5 accuracy points (also: cosine=-0.001, top1=-1). The interval covers the
sampling within each run, not the drift between two sessions on a busy machine: gate latency on a quiet one.

exit status:
  0  compared (and, with --fail-on, no row breached)
  2  bad input: a folder without report.json, a malformed --fail-on (one 'edgekit: error:' line)
  4  some row breached --fail-on"""


def add_baseline_args(p: argparse.ArgumentParser) -> None:
    """``edgekit run``'s ``--baseline`` and ``--fail-on``, and its exit statuses in the help's epilog."""
    p.add_argument("--baseline", metavar="RUN_A", help="a previous run (--out folder or report.json) to compare "
                   "this one with, as 'edgekit compare RUN_A THIS' does; written into the report")
    p.add_argument("--fail-on", metavar="GATE", help=f"with --baseline: exit 4 on a regression, e.g. "
                   f"{_EXAMPLE} (see 'edgekit compare --help')")
    p.add_argument("--strict-timing", action="store_true", help="recommend nothing from a row timed while other "
                   "processes kept the machine busy (its noise record says so); such a target exits 3")
    p.add_argument("--replace-report", action="store_true", help="replace the report already in --out; by default a "
                   "run adds its targets to it (the other targets' rows are kept when the model, data and budget are "
                   "the same)")
    p.epilog = EXIT_CODES_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run_options(args: argparse.Namespace, opts: Any) -> Any:
    """``opts`` (:class:`edgekit.pipeline.RunOptions`) with the baseline, the gate and the command line."""
    return replace(opts, baseline=getattr(args, "baseline", None), fail_on=getattr(args, "fail_on", None),
                   strict_timing=bool(getattr(args, "strict_timing", False)),
                   merge_report=not getattr(args, "replace_report", False),
                   command=tuple(getattr(args, "command_line", None) or sys.argv))


def print_comparison(c: Comparison, *, file: Any = None) -> None:
    """The comparison as an aligned text table, with its warnings first (also on stderr: they must be seen)."""
    out = file or sys.stdout
    for w in c.warnings:
        print(f"edgekit: {w}", file=sys.stderr)
    print(f"A: {c.a}\nB: {c.b}", file=out)
    for w in c.warnings:
        print(w, file=out)
    head, body = c.table()
    widths = [max(len(str(r[i])) for r in (head, *body)) for i in range(len(head))]
    for r in (head, ["-" * w for w in widths], *body):
        print("  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip(), file=out)
    for line in c.summary_lines():
        print(line, file=out)


def finish_run(result: Any, out_dir: str) -> int:
    """After ``edgekit run``: the comparison with the baseline, the targets left without an artifact within the
    budget, and the exit status (:func:`edgekit.outcome.exit_status`)."""
    from edgekit.outcome import exit_status, unmet_targets

    if result.baseline is not None:
        print_comparison(result.baseline)
    for line in unmet_targets(result):
        print(f"NOT WITHIN BUDGET: {line}")
    code = int(exit_status(result))
    if code != EXIT_OK:
        print(f"exit status {code} (see 'edgekit run --help'); report: {out_dir}")
    return code


def _cmd_compare(args: argparse.Namespace) -> int:
    from edgekit.compare import compare_runs

    c = compare_runs(args.run_a, args.run_b, fail_on=args.fail_on)
    if args.json:
        for w in c.warnings:
            print(f"edgekit: {w}", file=sys.stderr)
        print(json.dumps(jsonable(c.to_dict()), indent=2))
    else:
        print_comparison(c)
    return EXIT_REGRESSION if c.regressed else EXIT_OK


def add_compare_command(sub: Any) -> None:
    """Register ``edgekit compare`` on the command's subparsers."""
    p = sub.add_parser("compare", help="compare two runs (latency ratios with intervals, accuracy deltas); "
                       "--fail-on makes it a CI gate", description=COMPARE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a", metavar="RUN_A", help="the baseline run (--out folder or report.json)")
    p.add_argument("run_b", metavar="RUN_B", help="the run judged against it")
    p.add_argument("--fail-on", metavar="GATE", help=f"exit 4 when a row breaches, e.g. {_EXAMPLE}")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=_cmd_compare)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from edgekit.reproduce import reproduce

    status, differs, report = reproduce(args.run, args.out, args.run_main)
    print(f"reproduced into {report.parent} (exit {status}); compared with {args.run} in its report")
    print("how the runs were made differs in:" if differs else "made the same way in every recorded respect "
          "(command, edgekit, git, Python, libraries, hashes, machine)")
    for line in differs:
        print(f"  {line}")
    return status


def add_reproduce_command(sub: Any, run_main: Any) -> None:
    """Register ``edgekit reproduce`` on the command's subparsers; ``run_main``: the CLI's ``main`` (runs the
    recorded command)."""
    p = sub.add_parser("reproduce", help="run a recorded 'edgekit run' again from its report.json, compared with "
                       "it, and say what differs in how the two were made")
    p.add_argument("run", metavar="RUN", help="the run to reproduce (--out folder or report.json)")
    p.add_argument("--out", help="where the new run goes (default: RUN-reproduced beside it)")
    p.set_defaults(func=_cmd_reproduce, run_main=run_main)


def command_line(argv: Sequence[str] | None) -> list[str]:
    """The command line to record: ``sys.argv`` when run as a program, ``["edgekit", *argv]`` when called."""
    return list(sys.argv) if argv is None else ["edgekit", *argv]
