"""Checks of the ``edgekit`` command's options before any work: parsing of list and shape options, numeric ranges,
options a command does not use (never silently ignored), and the one-line error for a user's mistake."""

from __future__ import annotations

import argparse
import errno
import math
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from edgekit.errors import ConfigError, EdgekitError, SourceRunError, as_disk_full


def _shapes(values: Sequence[str] | None) -> dict[str, tuple[int, ...]] | None:
    from edgekit.sources.base import parse_shape

    if not values:
        return None
    out: dict[str, tuple[int, ...]] = {}
    for v in values:
        name, sep, dims = v.rpartition("=")
        out[name if sep else "input"] = parse_shape(dims, where=f"--input-shape {v}")
    return out


def _numbers(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError("not a list of numbers", where=flag, expected="1 or 3 comma-separated numbers, "
                          "e.g. 0.485,0.456,0.406", got=text) from None


def _csv(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else ()


# Which commands use each option that _add_run_args gives them all; any other command refuses it when given
# (an option is never silently ignored). Options not listed here are not checked.
_USED_BY: dict[str, frozenset[str]] = {
    "formats": frozenset({"run", "export", "quantize"}), "precisions": frozenset({"run"}),
    "target": frozenset({"run", "quantize", "bench", "doctor"}), "threads": frozenset({"run", "bench"}),
    "max_drop": frozenset({"run", "quantize"}), "min_cosine": frozenset({"run", "quantize"}),
    "calibration_limit": frozenset({"run", "quantize"}), "eval_limit": frozenset({"run", "validate"}),
    "min_runs": frozenset({"run", "bench"}), "min_seconds": frozenset({"run", "bench"}),
    "warmup": frozenset({"run", "bench"}), "no_memory": frozenset({"run", "bench"}),
    "int8_preset": frozenset({"run", "quantize"}), "exclude_nodes": frozenset({"run", "quantize"}),
    "opset": frozenset({"run", "export", "quantize"}), "static_batch": frozenset({"run", "export", "quantize"}),
    "budget_rule": frozenset({"run", "quantize"}), "max_flip_rate": frozenset({"run"}),
    "output_kind": frozenset({"run", "validate"}),
    **{k: frozenset({"run"}) for k in ("min_iou", "min_detection_match", "max_sequence_error", "metric")},
    "exclude_op_types": frozenset({"run", "quantize"}),
    "state": frozenset({"run", "export", "quantize", "validate"}),
    **{k: frozenset({"run", "bench", "doctor"}) for k in ("host", "inventory", "ssh_key", "ssh_known_hosts",
                                                         "remote_python", "remote_tmp",
                                                         "insecure_no_host_key_check")},
    **{k: frozenset({"run"}) for k in ("farm", "farm_tag", "farm_place", "farm_boards", "farm_wait")},
}
_INSTEAD = {("export", "precisions"): "export builds fp32 only: use 'edgekit quantize --precision P' or "
                                      "'edgekit run --precisions ...'",
            ("quantize", "precisions"): "quantize makes one precision: use --precision"}


def _refuse_unused(args: argparse.Namespace,
                   add_run_args: Callable[[argparse.ArgumentParser], None]) -> None:
    """Raise :class:`ConfigError` naming the first option given to a command that does not use it."""
    probe = argparse.ArgumentParser(add_help=False)
    add_run_args(probe)
    defaults = vars(probe.parse_args([]))
    for dest, users in _USED_BY.items():
        if args.command in users or dest not in defaults or getattr(args, dest, defaults[dest]) == defaults[dest]:
            continue  # used here, or not an option of this command, or not given
        flag = "--" + dest.replace("_", "-")
        raise ConfigError(f"{flag} does not apply to 'edgekit {args.command}'", where=flag,
                          expected=f"used by: {', '.join(sorted(users))}", got=getattr(args, dest),
                          hint=_INSTEAD.get((args.command, dest), f"drop {flag}"))


#: Numeric options and their allowed ranges (lowest, highest or None), checked before any work: a value out of
#: range was silently used (``--threads 0`` ran with the runtime's default, ``--threads -3`` too).
_RANGES: dict[str, tuple[float, float | None]] = {
    "threads": (1, 4096), "calibration_limit": (1, None), "eval_limit": (1, None), "min_runs": (1, None),
    "warmup": (0, None), "min_seconds": (0, 86400), "max_length": (1, None), "opset": (1, None),
}


def _check_ranges(args: argparse.Namespace) -> None:
    """Raise :class:`ConfigError` naming the first numeric option given out of its range (:data:`_RANGES`)."""
    for dest, (low, high) in _RANGES.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        kind = "an integer" if isinstance(value, int) else "a number"
        span = f"{kind} >= {low:g}" if high is None else f"{kind} from {low:g} to {high:g}"
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            raise ConfigError("out of range", where="--" + dest.replace("_", "-"), expected=span, got=value)


#: What the file system may refuse, printed as one line naming the file (not a traceback).
_FILE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR})


def _user_error(exc: BaseException, data: str | None = None) -> EdgekitError | None:
    """The one-line error for ``exc``: a full disk wherever it was hit (also inside a library's error), a file
    the system refused, an edgekit error; None for anything else (a bug: its traceback is shown)."""
    full = as_disk_full(exc)
    if full is not None:
        return full
    if isinstance(exc, SourceRunError) and data:  # the source failed on the user's data: name the data too
        exc.where = f"{data}: {exc.where}" if exc.where else data
    if isinstance(exc, EdgekitError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _FILE_ERRNOS:
        return ConfigError(exc.strerror or type(exc).__name__, where=str(exc.filename) if exc.filename else None,
                           hint="check the path and its permissions, or choose another --out")
    return None


def _given(args: argparse.Namespace, dest: str) -> Any:
    return getattr(args, dest, None)


def _refuse(flag: str, message: str, got: Any, expected: str, hint: str) -> NoReturn:
    raise ConfigError(message, where=flag, expected=expected, got=got, hint=hint)


def refuse_misapplied(args: argparse.Namespace) -> None:
    """Raise :class:`ConfigError` for an option value that would be silently ignored or misread: an empty
    ``--model``/``--calibration``/``--target``/list, torch-export options on an ``.onnx`` model, ``--mean``/``--std``
    with ``.npz`` tensors, ``--int8-preset`` where no int8 is built, ``targets list NAME``."""
    for dest in ("model", "calibration", "artifact"):  # (--out has its own check)
        value = _given(args, dest)
        if isinstance(value, str) and not value.strip():  # Path("") is the current folder
            _refuse("--" + dest, "empty value", value, "a path or name", f"give --{dest} a value")
    targets = _given(args, "target")
    for value in [targets] if isinstance(targets, str) else targets or ():
        if not value.strip():
            _refuse("--target", "empty value", value, "a target name or .toml path", "edgekit targets list")
    for dest in ("formats", "precisions", "precision"):
        value = _given(args, dest)
        if value is not None and not _csv(value):
            _refuse("--" + dest, "empty list", value, "one or more comma-separated names",
                    f"drop --{dest} for the default, or name at least one")
    model = _given(args, "model") or ""
    kind = next((k for k in (".onnx", ".tflite", ".xml") if model.lower().endswith(k)), None)
    if kind is not None:  # a model file is used as it is: nothing exports it again
        for dest, given in (("checkpoint", _given(args, "checkpoint")), ("opset", _given(args, "opset")),
                            ("static_batch", _given(args, "static_batch"))):
            if given:
                flag = "--" + dest.replace("_", "-")
                _refuse(flag, f"{flag} does not apply to a {kind} model (it is not exported again)", given,
                        "a file.py:factory or Hugging Face model", f"drop {flag}, or re-export the model yourself")
    calibration = _given(args, "calibration") or ""
    for dest in ("mean", "std"):
        value = _given(args, dest)
        if not value:
            continue
        if any(not math.isfinite(x) for x in _numbers(value, "--" + dest)):
            _refuse("--" + dest, "not a finite number", value, "1 or 3 finite numbers", "e.g. 0.485,0.456,0.406")
        if calibration.lower().endswith(".npz"):
            _refuse("--" + dest, f"--{dest} does not apply to .npz tensors (they are fed as stored)", value,
                    "image data (a bundled set or a folder of images)",
                    f"drop --{dest}, or normalise the tensors in {calibration}")
    _refuse_preset(args)
    _refuse_conflicts(args)
    if _given(args, "command") == "targets" and _given(args, "action") == "list" and _given(args, "name"):
        _refuse("edgekit targets list", "'list' takes no name", args.name, "edgekit targets list",
                f"edgekit targets show {args.name}")


def _refuse_conflicts(args: argparse.Namespace) -> None:
    """A name listed twice, a budget option the chosen ``--budget-rule`` never applies, ``quantize --precision
    fp32``, and a ``quantize --precision`` that one of ``--formats`` does not have (found before any build)."""
    for dest in ("formats", "precisions"):
        names = [n.lower() for n in _csv(_given(args, dest))]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            _refuse("--" + dest, "a name given twice", _given(args, dest), "each name once",
                    f"drop the second {twice[0]}")
    if _given(args, "budget_rule") == "cosine" and _given(args, "max_drop") not in (None, 1.0):
        _refuse("--max-drop", "--budget-rule cosine never applies --max-drop", args.max_drop,
                "--budget-rule both or accuracy with --max-drop", "drop --max-drop, or choose --budget-rule both")
    precision = _given(args, "precision")
    if _given(args, "command") != "quantize" or not isinstance(precision, str):
        return
    if precision.strip().lower() == "fp32":
        _refuse("--precision", "fp32 is not a quantized precision", precision, "fp16, int8, int8-dynamic, "
                "int8-weights or bf16", "edgekit export builds the fp32 artifacts")
    from edgekit.errors import MissingDependencyError
    from edgekit.registry import get_format
    from edgekit.types import Precision

    try:
        wanted = Precision(precision.strip().lower())
    except ValueError:
        return  # the command's own parsing names the allowed values
    for fmt in _csv(_given(args, "formats")) or ("onnx",):
        try:
            adapter = get_format(fmt.lower())
        except (MissingDependencyError, EdgekitError):
            continue  # an unknown or missing format: its own error comes with the build
        if wanted not in adapter.precisions:
            _refuse("--precision", f"the {fmt} format has no {wanted.value}", precision,
                    ", ".join(p.value for p in adapter.precisions if p.value != "fp32"),
                    adapter.precision_hint(wanted) or f"drop {fmt} from --formats")


def _refuse_preset(args: argparse.Namespace) -> None:
    preset = _given(args, "int8_preset")
    if not preset:
        return
    if args.command == "quantize":
        builds = [str(_given(args, "precision") or "")]
    else:
        builds = list(_csv(_given(args, "precisions"))) or ["int8"]  # the default precisions include int8
    if "int8" not in [b.strip().lower() for b in builds]:
        _refuse("--int8-preset", "--int8-preset applies to static int8 only, and no int8 is built", preset,
                "--precisions with int8", "drop --int8-preset, or add int8 to the precisions")


def refuse_max_length(max_length: int | None, source: Any) -> None:
    """``--max-length`` sets a text model's token length: refused for a model that takes no tokenized text."""
    if max_length is not None and getattr(source.preprocess, "max_length", None) is None:
        _refuse("--max-length", "--max-length applies to text models only (it sets the token length)", max_length,
                "a Hugging Face text model", f"drop --max-length: {source.name} takes no tokenized text")


def add_task_args(p: argparse.ArgumentParser) -> None:
    """The options of task-aware validation (budget rules of the output kinds, the user's metrics) and the ONNX
    int8 op-type exclusions; ``edgekit run``'s other options are in :mod:`edgekit.cli`."""
    p.add_argument("--min-iou", type=float, default=0.9, help="accuracy budget: min IoU of a dense map's "
                   "thresholded maps (0.9)")
    p.add_argument("--min-detection-match", type=float, default=0.9, help="accuracy budget: min recall and "
                   "precision of a detection output against the source's detections (0.9)")
    p.add_argument("--max-sequence-error", type=float, default=0.02, help="accuracy budget: max character error "
                   "rate of a sequence output's decoded sequences (0.02)")
    p.add_argument("--max-relative-error", type=float, default=0.05, help="accuracy budget: max relative error "
                   "||candidate - source|| / ||source|| of a regression output (0.05)")
    p.add_argument("--metric", action="append", metavar="OUTPUT=FILE.py:FUNCTION", help="your own metric of an "
                   "output: FUNCTION(reference, candidate) returns a dict of named floats (repeatable)")
    p.add_argument("--exclude-op-types", help="comma list of op types kept in float in ONNX static int8")


def task_budget(args: argparse.Namespace) -> dict[str, float]:
    """The budget rules of :func:`add_task_args` as :class:`~edgekit.results.AccuracyBudget` fields."""
    return {k: getattr(args, k) for k in ("min_iou", "min_detection_match", "max_sequence_error",
                                          "max_relative_error")
            if getattr(args, k, None) is not None}
