"""``edgekit calibration check DATA``: a thin layer over :func:`edgekit.calibration_check.check_calibration`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgekit.exit_codes import EXIT_OK

EXIT_NOT_READY = 3

CHECK_HELP = """\
Says whether a calibration set is large and varied enough before a run: how the calibration split divides into
items that set the int8 ranges and tuning items that judge the quantizer's decisions, repeated items, items that
are in both the calibration and the eval split, eval classes the calibration split never shows, and, with --model
(an .onnx file), how much each activation's min-max range moves between two random halves of the calibration items.

exit status:
  0  ready (no warning)
  2  bad input (one 'edgekit: error:' line)
  3  checked, with warnings: the set is not ready"""


def add_calibration_command(sub: Any) -> None:
    """Register ``edgekit calibration check`` on the command's subparsers."""
    from edgekit.cli_checks import _shapes

    p = sub.add_parser("calibration", help="check a calibration set before a run (size, repeats, leaks, classes, "
                                           "activation range stability)")
    inner = p.add_subparsers(dest="calibration_command", required=True)
    c = inner.add_parser("check", help="check a calibration set", description=CHECK_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("data", metavar="DATA", help="bundled set name (digits, photos, sentences) or a folder / .npz / "
                                                 ".txt as --calibration takes it")
    c.add_argument("--model", help="an .onnx file: also check how stable its activation ranges are")
    c.add_argument("--input-shape", action="append", metavar="[NAME=]1,3,H,W", help="input shape (repeatable)")
    c.add_argument("--mean", help="image normalisation mean, 0..1 units")
    c.add_argument("--std", help="image normalisation std, 0..1 units")
    c.add_argument("--json", action="store_true", help="print the findings as JSON")

    def run(args: argparse.Namespace) -> int:
        from edgekit.calibration_check import check_calibration
        from edgekit.cli_checks import _numbers

        pre = {k: _numbers(v, f"--{k}") for k in ("mean", "std") if (v := getattr(args, k))}
        opts: dict[str, Any] = {"input_shapes": _shapes(args.input_shape), "preprocess": pre or None}
        result = check_calibration(args.data, args.model, source_options=opts)
        if args.json:
            print(json.dumps({"dataset": result.dataset, "ready": result.ready,
                              "findings": [f.__dict__ for f in result.findings]}, indent=2))
        else:
            print(result.text())
        return EXIT_OK if result.ready else EXIT_NOT_READY

    c.set_defaults(func=run)
