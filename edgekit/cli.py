"""The ``edgekit`` command: a thin argument layer over :mod:`edgekit.api`.

Every :class:`~edgekit.errors.EdgekitError` is printed on one line and exits with status 2, and so is a full
disk (:class:`~edgekit.errors.DiskFullError`, whichever library hit it) or a file the system refused (permission,
read-only, name too long); ``--debug`` shows the traceback instead. Ctrl-C ends with one "interrupted" line and
status 130. Numeric options are checked against their range, and ``--out`` (created, writable, not another
process's: it is locked for the command) before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.cli_calibration import add_calibration_command
from edgekit.cli_checks import (
    _check_ranges,
    _csv,
    _numbers,
    _refuse_unused,
    _shapes,
    _user_error,
    add_task_args,
    refuse_max_length,
    refuse_misapplied,
    task_budget,
)
from edgekit.cli_compare import (
    add_baseline_args,
    add_compare_command,
    add_reproduce_command,
    command_line,
    finish_run,
    run_options,
)
from edgekit.cli_farm import add_farm_args, farm_options
from edgekit.cli_toolchains import add_toolchains_command
from edgekit.errors import ConfigError, EdgekitError, UnknownNameError, first_line
from edgekit.interrupts import (
    Terminated,
    ignore_further,
    restore_handlers,
    restore_terminate,
    terminate_as_interrupt,
)

EXIT_USER_ERROR = 2


def _preprocess(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--mean``/``--std`` as preprocessing options; the source honours them or refuses them by name."""
    pre: dict[str, Any] = {}
    if getattr(args, "mean", None):
        pre["mean"] = _numbers(args.mean, "--mean")
    if getattr(args, "std", None):
        pre["std"] = _numbers(args.std, "--std")
    return pre or None


def _source(args: argparse.Namespace) -> Any:
    from edgekit.api import load_source

    src = load_source(args.model, checkpoint=args.checkpoint, input_shapes=_shapes(args.input_shape),
                      task=args.task, preprocess=_preprocess(args),
                      max_length=64 if args.max_length is None else args.max_length,
                      trust_remote_code=args.trust_remote_code)
    refuse_max_length(args.max_length, src)
    return src


def _options(args: argparse.Namespace) -> Any:
    from edgekit.bench import BenchOptions
    from edgekit.formats.base import FormatOptions
    from edgekit.formats.onnx import OnnxOptions
    from edgekit.metrics import parse_output_kinds
    from edgekit.metrics_user import load_user_metrics
    from edgekit.pipeline import RunOptions
    from edgekit.quantization.onnx import StaticInt8Options
    from edgekit.results import AccuracyBudget
    from edgekit.sequences import parse_state_links
    from edgekit.types import Format, Precision

    opts = RunOptions()
    if getattr(args, "formats", None):
        opts = replace(opts, formats=tuple(Format.parse(f, where="--formats") for f in _csv(args.formats)))
    if getattr(args, "precisions", None):
        opts = replace(opts, precisions=tuple(Precision.parse(p, where="--precisions")
                                              for p in _csv(args.precisions)))
    if getattr(args, "target", None):
        opts = replace(opts, targets=tuple(args.target))
    budget = AccuracyBudget(max_drop_points=getattr(args, "max_drop", 1.0),
                            min_cosine=getattr(args, "min_cosine", 0.99),
                            governs=getattr(args, "budget_rule", None) or "both",
                            max_flip_rate=getattr(args, "max_flip_rate", 0.01), **task_budget(args))
    bench = BenchOptions(min_runs=getattr(args, "min_runs", 50), min_seconds=getattr(args, "min_seconds", 3.0),
                         warmup_runs=getattr(args, "warmup", 10), memory_pass=not getattr(args, "no_memory", False))
    static = StaticInt8Options(calibration_limit=getattr(args, "calibration_limit", None))
    if getattr(args, "exclude_nodes", None):
        static = replace(static, nodes_to_exclude=_csv(args.exclude_nodes))
    if getattr(args, "exclude_op_types", None):
        static = replace(static, op_types_to_exclude=_csv(args.exclude_op_types))
    if getattr(args, "int8_preset", None):
        static = replace(static, preset=args.int8_preset)
    hosts = _hosts(args)
    if hosts:  # inventory targets join the run
        extra = tuple(dict.fromkeys(h.target for h in hosts if h.target and h.target not in opts.targets))
        opts = replace(opts, targets=opts.targets + extra, hosts=hosts)
    if getattr(args, "farm", None) or getattr(args, "farm_tag", None) or getattr(args, "farm_place", None):
        from edgekit.executors.hosts import HostSpec

        opts = replace(opts, farm=farm_options(args, _ssh_flags(HostSpec("farm"), args)))
    return replace(opts, budget=budget, bench=bench, threads=getattr(args, "threads", None),
                   output_kinds=parse_output_kinds(getattr(args, "output_kind", None) or ()),
                   user_metrics=load_user_metrics(getattr(args, "metric", None) or ()),
                   state=parse_state_links(getattr(args, "state", None) or ()),
                   calibration_limit=getattr(args, "calibration_limit", None),
                   eval_limit=getattr(args, "eval_limit", None),
                   format_options=FormatOptions(OnnxOptions(opset=getattr(args, "opset", None),
                                                            dynamic_batch=not getattr(args, "static_batch", False),
                                                            static_int8=static)))


def _hosts(args: argparse.Namespace) -> tuple[Any, ...]:
    """Boards from ``--host`` (any ssh target) and ``--inventory`` (host -> target), with the SSH flags."""
    from edgekit.executors.hosts import load_inventory, parse_host

    hosts = [parse_host(h) for h in getattr(args, "host", None) or ()]
    if getattr(args, "inventory", None):
        hosts += list(load_inventory(Path(args.inventory)))
    return tuple(_ssh_flags(h, args) for h in hosts)


def _ssh_flags(h: Any, args: argparse.Namespace) -> Any:
    """``h`` (a HostSpec) with the run's SSH flags: key, Python, known_hosts, temp folder, host key checking."""
    from edgekit.executors.hosts import check_private_key

    if getattr(args, "ssh_key", None):
        h = replace(h, key=check_private_key(Path(args.ssh_key).expanduser(), "--ssh-key"))
    if getattr(args, "remote_python", None):
        h = replace(h, python=args.remote_python)
    if getattr(args, "ssh_known_hosts", None):
        h = replace(h, known_hosts=Path(args.ssh_known_hosts).expanduser())
    if getattr(args, "remote_tmp", None):
        h = replace(h, remote_tmp=args.remote_tmp)
    if getattr(args, "insecure_no_host_key_check", False):
        h = replace(h, verify_host_key=False)
    return h


def _add_ssh_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", action="append", metavar="USER@HOST:PORT",
                   help="board for the run's ssh targets (repeatable)")
    p.add_argument("--inventory", help="TOML file of [[host]] address/target entries (see edgekit.executors.ssh)")
    p.add_argument("--ssh-key", help="private key file for the boards (default: ssh agent / ~/.ssh keys)")
    p.add_argument("--ssh-known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    p.add_argument("--remote-python", help="Python on the boards (default python3)")
    p.add_argument("--remote-tmp", help="folder on the boards for per-run temp dirs (default: $TMPDIR or /tmp)")
    p.add_argument("--insecure-no-host-key-check", action="store_true",
                   help="do NOT verify the boards' host keys (recorded in the report)")


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="file.py:factory, a Hugging Face directory, or an .onnx file")
    p.add_argument("--checkpoint", help=".safetensors or .pt/.pth state_dict for a file.py:factory model")
    p.add_argument("--input-shape", action="append", metavar="[NAME=]1,3,H,W", help="input shape (repeatable)")
    p.add_argument("--task", help="image-classification | text-classification | feature-extraction | generic")
    p.add_argument("--mean", help="image normalisation mean, 0..1 units, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", help="image normalisation std, 0..1 units")
    p.add_argument("--max-length", type=int, help="token sequence length for text models (default 64)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let a Hugging Face folder run its own Python code (auto_map); refused without it. "
                        "Only for code you trust: it runs with your rights (recorded in the report)")
    p.add_argument("--calibration", required=True,
                   help="bundled set name (digits, photos, sentences), folder of images, .npz or .txt")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    from edgekit.results import BUDGET_RULES

    p.add_argument("--target", action="append", help="target name or .toml path (repeatable); default local-cpu")
    p.add_argument("--formats", help="comma list of onnx,openvino,tflite; run: default every installed format; "
                                     "export/quantize: default onnx")
    p.add_argument("--precisions", help="comma list of fp32,fp16,int8,int8-dynamic,int8-weights (OpenVINO's "
                                        "weight-only int8),bf16 (OpenVINO on AVX-512 BF16 / AMX CPUs); default "
                                        "depends on the task and the targets")
    p.add_argument("--threads", type=int, help="threads for validation and benchmarks (default: the target's)")
    p.add_argument("--max-drop", type=float, default=1.0, help="accuracy budget: max points lost (default 1.0)")
    p.add_argument("--min-cosine", type=float, default=0.99, help="accuracy budget: min mean cosine (0.99)")
    p.add_argument("--budget-rule", choices=BUDGET_RULES, default="both",
                   help="which budget governs: both (default: cosine always, accuracy where labels exist), "
                        "accuracy (--max-drop alone where labels exist), cosine (--min-cosine alone)")
    p.add_argument("--max-flip-rate", type=float, default=0.01, help="accuracy budget: max share of a binary "
                   "score's decisions that may flip (0.01)")
    p.add_argument("--output-kind", action="append", metavar="NAME=KIND[:PAIR][@VALUE]", help="what an output is "
                   "where the guess is wrong: classification|embedding|binary|dense|regression|detection|sequence; "
                   "@VALUE a score threshold or a sequence's blank class; detection:SCORES (repeatable)")
    add_task_args(p)
    p.add_argument("--state", action="append", metavar="OUT->IN", help="output OUT feeds input IN at the next step "
                   "(repeatable): data and validation are sequences in order (edgekit.sequences)")
    p.add_argument("--calibration-limit", type=int, help="use at most N calibration items")
    p.add_argument("--eval-limit", type=int, help="validate on at most N held-out items")
    p.add_argument("--min-runs", type=int, default=50)
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--no-memory", action="store_true", help="skip the separate peak-memory pass")
    p.add_argument("--int8-preset", help="auto | avx2 | vnni | arm64 | generic | ort-default")
    p.add_argument("--exclude-nodes", help="comma list of node names kept in float in static int8")
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 17 for torch)")
    p.add_argument("--static-batch", action="store_true", help="export with a fixed batch of 1")
    _add_ssh_args(p)


def _cmd_run(args: argparse.Namespace) -> int:
    from edgekit.artifacts import locked_out_dir
    from edgekit.pipeline import run, stderr_progress
    from edgekit.preflight import check_report_owner

    with locked_out_dir(args.out, where="--out", progress=stderr_progress) as out:  # before any work
        check_report_owner(out)
        opts = run_options(args, _options(args))  # option mistakes (a bad --ssh-key) before the slow source load
        result = run(_source(args), args.calibration, out, opts)
    decided = {d.target for d in result.decisions}
    for d in result.decisions:  # one answer per target measured here (interleaved finalists)
        print(f"{d.target}: {d.artifact or 'nothing'}" + (f" on {d.runtime}" if d.runtime else "") + f" - {d.reason}")
    for rec in result.recommendations:  # the other targets (boards, emulated boards): per runtime
        if rec.target not in decided:
            print(f"{rec.target}/{rec.runtime}: {rec.artifact or 'nothing'} - {rec.reason}")
    print(f"report: {Path(args.out) / 'report.md'}")
    return finish_run(result, args.out)  # 0, 3 (a target without an artifact within budget), 4 (a regression)


def _export_formats(args: argparse.Namespace, opts: Any) -> tuple[Any, list[Any]]:
    """Export the fp32 artifact of every format in ``--formats`` (default: onnx), ONNX first: the converted
    formats start from it when it is among them (as in ``edgekit run``)."""
    from edgekit.api import export
    from edgekit.pipeline import canonical_first, stderr_progress
    from edgekit.preflight import check_same_model
    from edgekit.registry import is_canonical_format
    from edgekit.types import Format

    src = _source(args)
    check_same_model(Path(args.out), src, Path(args.out), stderr_progress)  # another model's artifacts in --out
    formats = canonical_first(opts.formats or (Format.ONNX,))
    out: list[Any] = []
    canonical = None
    for fmt in formats:
        art = export(src, args.out, fmt=fmt, calibration=args.calibration, options=opts, canonical=canonical)
        if is_canonical_format(fmt.value):
            canonical = art
        out.append(art)
    return src, out


def _cmd_export(args: argparse.Namespace) -> int:
    from edgekit.artifacts import locked_out_dir
    from edgekit.bench import native_calls
    from edgekit.pipeline import stderr_progress

    with locked_out_dir(args.out, where="--out", subdirs=(), progress=stderr_progress), native_calls():
        _, arts = _export_formats(args, _options(args))
    for art in arts:
        print(art.path)
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from edgekit.api import quantize
    from edgekit.artifacts import locked_out_dir
    from edgekit.bench import native_calls
    from edgekit.pipeline import stderr_progress

    with locked_out_dir(args.out, where="--out", subdirs=(), progress=stderr_progress), native_calls():
        opts = _options(args)
        src, fp32s = _export_formats(args, opts)
        target = args.target[0] if args.target else "local-cpu"
        arts = [quantize(src, fp32, args.precision, calibration=args.calibration, out_dir=args.out, target=target,
                         options=opts) for fp32 in fp32s]
    for art in arts:
        print(art.path)
        for note in art.notes:
            print(f"  {note}")
    return 0


def _artifact(path: str, source: Any) -> Any:
    from edgekit.artifacts import Artifact, sha256_file, sidecar_path
    from edgekit.sources.files import check_onnx_file
    from edgekit.types import Format, Precision

    p = Path(path)
    side = sidecar_path(p)
    if p.suffix == ".xml" and p.exists() and not p.with_suffix(".bin").exists():
        raise ConfigError("the OpenVINO IR's weights file is missing", where=str(p.with_suffix(".bin")),
                          expected=f"{p.with_suffix('.bin').name} beside {p.name}",
                          hint="copy the .bin with the .xml, or rebuild the artifact")
    if side.exists():
        try:
            data = json.loads(side.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return Artifact.from_dict({**data, "path": str(p)})
        except (ValueError, KeyError, TypeError, AttributeError, EdgekitError) as exc:
            raise ConfigError("the sidecar beside the artifact is not the record edgekit writes", where=str(side),
                              expected="the JSON object edgekit wrote with the artifact",
                              got=f"{type(exc).__name__}: {first_line(exc, 80)}",
                              hint=f"delete it to use {p.name} as a plain ONNX file, or rebuild the artifact"
                              ) from exc
    if p.suffix != ".onnx":
        raise ConfigError("unsupported artifact", where=str(p), got=p.suffix,
                          expected="an .onnx file, or an artifact edgekit built (its .edgekit.json sidecar beside it)")
    check_onnx_file(p)
    return Artifact(p, Format.ONNX, Precision.FP32, source.io, sha256_file(p), notes=("precision not recorded",))


def _cmd_validate(args: argparse.Namespace) -> int:
    from edgekit.api import validate
    from edgekit.bench import native_calls
    from edgekit.metrics import parse_output_kinds
    from edgekit.sequences import parse_state_links

    src = _source(args)
    with native_calls():  # the runtime runs in this thread: see edgekit.bench.native_calls
        metrics = validate(src, _artifact(args.artifact, src), calibration=args.calibration, limit=args.eval_limit,
                           output_kinds=parse_output_kinds(args.output_kind or ()),
                           state=parse_state_links(args.state or ()))
    print(json.dumps(metrics.to_dict(), indent=2))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from edgekit.api import benchmark

    src = _source(args)
    target = args.target[0] if args.target else "local-cpu"
    res = benchmark(_artifact(args.artifact, src), target=target, source=src, calibration=args.calibration,
                    options=_options(args))
    s = res.stats
    print(f"{Path(args.artifact).name} on {target}/{res.runtime} threads={res.threads}: n={s.n} "
          f"p50={s.p50_ms:.3f} ms p90={s.p90_ms:.3f} ms p99={s.p99_ms:.3f} ms mean={s.mean_ms:.3f}±{s.stdev_ms:.3f} "
          f"load={res.load_ms:.1f} ms first={res.first_inference_ms:.2f} ms peak_rss={res.peak_rss_mb} MB")
    return 0


def _cmd_targets(args: argparse.Namespace) -> int:
    from edgekit.targets import list_targets, load_target

    if args.action == "list":
        for t in list_targets():
            print(f"{t.name:24} {t.access:9} {t.arch:8} {', '.join(r.name for r in t.runtimes):28} {t.description}")
        return 0
    if not args.name:
        raise ConfigError("which target?", where="edgekit targets show", expected="a target name")
    try:
        t = load_target(args.name)
    except UnknownNameError as exc:  # named as the user typed it: a positional name, not --target
        exc.where = f"edgekit targets show {args.name}"
        raise
    print(json.dumps({"name": t.name, "description": t.description, "access": t.access, "arch": t.arch,
                      "isa": list(t.isa), "int8_preset": t.int8_preset, "memory_mb": t.memory_mb,
                      "source": str(t.source),
                      "runtimes": [{"name": r.name, "threads": r.threads, "providers": list(r.providers),
                                    "device": r.device, "precisions": [p.value for p in r.precisions]}
                                   for r in t.runtimes]}, indent=2))
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from edgekit.doctor import doctor_report
    from edgekit.preflight import uses_hosts
    from edgekit.targets import load_target

    chosen = load_target(args.target) if args.target else None  # an unknown --target is an error, here too
    if getattr(args, "host", None) or getattr(args, "inventory", None):
        from edgekit.executors.ssh import doctor_remote

        target = chosen or load_target("generic-aarch64-linux")
        ok = True
        for h in _hosts(args):
            text, good = doctor_remote(h, [r.name for r in target.runtimes])
            print(text)
            ok = ok and good
        return 0 if ok else 1
    if chosen is not None and uses_hosts(chosen):
        raise ConfigError("this target runs on a board: doctor checks it there", where=f"--target {chosen.name}",
                          expected="--host USER@HOST:PORT (or --inventory) with it",
                          hint=f"edgekit doctor --target {chosen.name} --host pi@192.168.1.20:22")
    from edgekit.bench import native_calls

    with native_calls():  # it asks OpenVINO for its devices in this thread: see edgekit.bench.native_calls
        text, ok = doctor_report()
    print(text)
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgekit", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="export, quantize, validate, benchmark and report")
    _add_source_args(p)
    _add_run_args(p)
    p.add_argument("--out", required=True, help="run folder (re-running reuses complete artifacts)")
    add_baseline_args(p)  # --baseline, --fail-on, and the exit statuses in the epilog
    add_farm_args(p)  # --farm labgrid://HOST:PORT
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("export", help="export the fp32 model of each --formats (default onnx; numerically checked)")
    _add_source_args(p)
    _add_run_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_export)
    p = sub.add_parser("quantize", help="export, then make one quantized variant")
    _add_source_args(p)
    _add_run_args(p)
    p.add_argument("--precision", required=True, help="fp16 | int8 | int8-dynamic (ONNX, TFLite) | "
                                                      "int8-weights | bf16 (OpenVINO)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_quantize)
    p = sub.add_parser("validate", help="compare an artifact with its source on held-out items")
    _add_source_args(p)
    _add_run_args(p)
    p.add_argument("--artifact", required=True)
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("bench", help="benchmark an artifact on a target")
    _add_source_args(p)
    _add_run_args(p)
    p.add_argument("--artifact", required=True)
    p.set_defaults(func=_cmd_bench)
    p = sub.add_parser("targets", help="list or show targets")
    p.add_argument("action", choices=["list", "show"])
    p.add_argument("name", nargs="?")
    p.set_defaults(func=_cmd_targets)
    p = sub.add_parser("doctor", help="which formats/runtimes are usable here (or on --host), and why not")
    p.add_argument("--target", help="with --host: the target whose runtimes to check on the board")
    _add_ssh_args(p)
    p.set_defaults(func=_cmd_doctor)
    add_compare_command(sub)
    add_reproduce_command(sub, main)
    add_calibration_command(sub)
    add_toolchains_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for user errors, 130 after Ctrl-C)."""
    from edgekit.sources.huggingface import go_offline

    go_offline()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = command_line(argv)  # recorded in report.json (edgekit.provenance)
    previous, ignored = terminate_as_interrupt(), None
    try:
        _refuse_unused(args, _add_run_args)
        refuse_misapplied(args)
        _check_ranges(args)
        return int(args.func(args))
    except KeyboardInterrupt as exc:
        ignored = ignore_further()
        how, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        print(f"edgekit: {how}; re-run the same command to resume (complete artifacts are reused)", file=sys.stderr)
        return code
    except Exception as exc:
        error = _user_error(exc, getattr(args, "calibration", None))
        if error is None:
            raise
        if args.debug:
            traceback.print_exc()
        print(f"edgekit: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        if ignored is not None and argv is None:
            pass  # the command is ending after an interruption: stay deaf to a second one until the exit
        else:  # called from a program (tests) or not interrupted: its handlers back
            restore_handlers(ignored)
            restore_terminate(previous)


if __name__ == "__main__":
    sys.exit(main())
