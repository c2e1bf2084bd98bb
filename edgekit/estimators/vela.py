"""Arm Ethos-U estimates: ``ethos-u-vela`` compiles a full-integer int8 ``.tflite`` and its summary CSV
gives the estimated latency, inferences/s, NPU cycles, SRAM, flash and DRAM use (where the weights live
depends on the system config: flash on U55, DRAM on the U65/U85 defaults); its log gives how many ops
run on the NPU and which fall back to the CPU. These are compiler estimates, never measurements.

A target's ``[estimate]`` table names the ``accelerator`` (``ethos-u55-128`` ...) and optionally the
Vela ``system_config``/``memory_mode`` and ``timeout_s`` (default 600 s; a compile that takes longer is a
failed row); ``sram_kb``/``flash_kb``/``memory_mb`` (DRAM) budgets make non-fitting artifacts reported as
such, with the numbers. Registered as the ``ethos-u-vela`` estimator (:class:`VelaEstimator`).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.errors import ConfigError, MissingDependencyError, RuntimeAdapterError
from edgekit.estimators.base import Estimate, estimate_bench, memory_budgets
from edgekit.results import BenchResult, Metrics, Row
from edgekit.targets import Target

ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
                "ethos-u65-512", "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024",
                "ethos-u85-2048")
RUNTIME_NAME = "ethos-u-vela"
DEFAULT_TIMEOUT_S = 600.0
_ESTIMATE_KEYS = ("accelerator", "system_config", "memory_mode", "timeout_s")


@dataclass(frozen=True)
class VelaEstimate:
    """One Vela compile: estimated latency and memory, and where the ops were placed."""

    accelerator: str
    system_config: str
    latency_ms: float
    inferences_per_second: float
    cycles_npu: float
    cycles_total: float
    sram_kib: float
    flash_kib: float
    dram_kib: float
    weights_in: str
    npu_ops: int
    cpu_ops: int
    cpu_op_messages: tuple[str, ...] = ()
    summary: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"accelerator": self.accelerator, "system_config": self.system_config,
                "latency_ms": self.latency_ms, "inferences_per_second": self.inferences_per_second,
                "cycles_npu": self.cycles_npu, "cycles_total": self.cycles_total, "sram_kib": self.sram_kib,
                "flash_kib": self.flash_kib, "dram_kib": self.dram_kib, "weights_in": self.weights_in,
                "npu_ops": self.npu_ops, "cpu_ops": self.cpu_ops,
                "cpu_op_messages": list(self.cpu_op_messages)}


def vela_command() -> list[str]:
    exe = shutil.which("vela") or str(Path(sys.executable).with_name("vela"))
    if not Path(exe).exists():
        raise MissingDependencyError("ethos-u-vela is not installed", where=RUNTIME_NAME,
                                     hint="pip install 'edgekit[ethos-u]'")
    return [exe]


def check_int8(path: Path) -> None:
    """Raise with a hint unless ``path`` is a quantized (int8) ``.tflite``: Ethos-U runs only int8/int16."""
    from edgekit.runtimes.litert import check_tflite_file

    check_tflite_file(path)
    from ai_edge_litert import schema_py_generated as s

    model = s.Model.GetRootAs(bytearray(Path(path).read_bytes()), 0)
    sg = model.Subgraphs(0)
    ints = {s.TensorType.INT8, s.TensorType.UINT8, s.TensorType.INT16}
    n_int = sum(1 for i in range(sg.TensorsLength()) if sg.Tensors(i).Type() in ints)
    if n_int == 0:
        raise RuntimeAdapterError("Ethos-U needs a full-integer int8 model; this .tflite is float", where=str(path),
                                  expected="int8 weights and activations", got="float tensors only",
                                  hint="build the int8 TFLite artifact (--formats tflite --precisions int8)")


def _int(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else 0


def estimate(path: Path, accelerator: str, *, system_config: str | None = None,
             memory_mode: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> VelaEstimate:
    """Compile ``path`` with Vela for ``accelerator`` and parse its summary CSV and op placement; a compile
    that fails or runs past ``timeout_s`` raises :class:`RuntimeAdapterError`."""
    if accelerator not in ACCELERATORS:
        raise ConfigError("unknown Ethos-U accelerator", where="[estimate].accelerator",
                          expected=", ".join(ACCELERATORS), got=accelerator)
    check_int8(path)
    cmd = [*vela_command(), str(Path(path).resolve()), "--accelerator-config", accelerator]
    if system_config:
        cmd += ["--system-config", system_config]
    if memory_mode:
        cmd += ["--memory-mode", memory_mode]
    with tempfile.TemporaryDirectory(prefix="edgekit-vela-") as tmp:
        try:
            proc = subprocess.run([*cmd, "--output-dir", tmp], capture_output=True, text=True, timeout=timeout_s,
                                  cwd=tmp, check=False)
        except subprocess.TimeoutExpired as exc:  # subprocess.run has killed it: one failed row, not a crash
            raise RuntimeAdapterError(f"vela did not finish within {timeout_s:g} s", where=str(path),
                                      hint="raise timeout_s in the target's [estimate] table, or check the "
                                           "model (a large one compiles slowly)") from exc
        log = proc.stdout + proc.stderr
        if proc.returncode != 0:
            tail = " / ".join(line for line in log.strip().splitlines()[-3:])
            raise RuntimeAdapterError(f"vela failed ({proc.returncode}): {tail}"[:400], where=str(path),
                                      hint="Vela compiles only int8/int16 TFLite models with supported ops")
        csvs = sorted(Path(tmp).glob("*_summary_*.csv"))
        if not csvs:
            raise RuntimeAdapterError("vela wrote no summary CSV", where=str(path))
        with open(csvs[0], newline="") as fh:
            row = next(csv.DictReader(fh))
    cpu_msgs = tuple(dict.fromkeys(line.strip() for line in log.splitlines()
                                   if "placing on cpu" in line.lower() or "not supported on the npu" in line.lower()))
    return VelaEstimate(
        accelerator=accelerator, system_config=row.get("system_config", ""),
        latency_ms=1000.0 * float(row["inference_time"]), inferences_per_second=float(row["inferences_per_second"]),
        cycles_npu=float(row["cycles_npu"]), cycles_total=float(row.get("cycles_total", 0.0)),
        sram_kib=float(row["sram_memory_used"]),
        flash_kib=float(row.get("off_chip_flash_memory_used", 0.0)) + float(row.get("on_chip_flash_memory_used", 0.0)),
        dram_kib=float(row.get("dram_memory_used", 0.0)), weights_in=row.get("weights_storage_area", ""),
        npu_ops=_int(r"NPU operators\s*=\s*(\d+)", log), cpu_ops=_int(r"CPU operators\s*=\s*(\d+)", log),
        cpu_op_messages=cpu_msgs, summary=dict(row))


def fit_problems(est: VelaEstimate, target: Target) -> list[str]:
    """Why the compiled model does not fit the target's declared SRAM / flash budgets (empty: it fits)."""
    out = []
    if target.sram_kb is not None and est.sram_kib > target.sram_kb:
        out.append(f"SRAM {est.sram_kib:.0f} KiB > budget {target.sram_kb} KiB")
    if target.flash_kb is not None and est.flash_kib > target.flash_kb:
        out.append(f"flash {est.flash_kib:.0f} KiB > budget {target.flash_kb} KiB")
    if target.memory_mb is not None and est.dram_kib > 1024 * target.memory_mb:
        out.append(f"DRAM {est.dram_kib:.0f} KiB > budget {1024 * target.memory_mb} KiB")
    return out


def to_estimate(est: VelaEstimate, target: Target) -> Estimate:
    """The Vela compile as the estimator protocol's :class:`~edgekit.estimators.base.Estimate` for ``target``."""
    return Estimate(estimator=RUNTIME_NAME, accelerator=est.accelerator, latency_ms=est.latency_ms,
                    inferences_per_second=est.inferences_per_second,
                    memory_kib={"SRAM": est.sram_kib, "flash": est.flash_kib, "DRAM": est.dram_kib},
                    accelerator_ops=est.npu_ops, cpu_ops=est.cpu_ops, cpu_op_messages=est.cpu_op_messages,
                    fit_problems=tuple(fit_problems(est, target)), budgets=memory_budgets(target),
                    details=est.to_dict())


def as_bench(est: VelaEstimate, target: Target) -> BenchResult:
    """The estimate in the report's latency record (n=1, no samples measured) plus its details."""
    return estimate_bench(to_estimate(est, target))


def settings(target: Target) -> dict[str, Any]:
    """The target's ``[estimate]`` table, checked (unknown keys, accelerator, time-out), ``timeout_s`` filled in."""
    where = f"{target.source or target.name}:estimate"
    cfg = target.extra.get("estimate", {})
    if not isinstance(cfg, dict):
        raise ConfigError("[estimate] must be a table", where=where, got=cfg)
    unknown = sorted(set(cfg) - set(_ESTIMATE_KEYS))
    if unknown:
        raise ConfigError("unknown key", where=f"{where}.{unknown[0]}",
                          expected="one of " + ", ".join(_ESTIMATE_KEYS), got=unknown[0])
    if not isinstance(cfg.get("accelerator"), str):
        raise ConfigError("the Ethos-U accelerator is missing", where=f"{where}.accelerator",
                          expected=", ".join(ACCELERATORS), got=cfg.get("accelerator"))
    timeout = cfg.get("timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigError("bad time-out", where=f"{where}.timeout_s", expected="a number of seconds > 0", got=timeout)
    return {**cfg, "timeout_s": float(timeout)}


class VelaEstimator:
    """The ``ethos-u-vela`` estimator: compiles a full-integer int8 ``.tflite`` for the target's Ethos-U."""

    def estimate(self, artifact: Artifact, target: Target, progress: Callable[[str], None]) -> Estimate:
        """Compile ``artifact`` with the target's ``[estimate]`` settings (see the module docstring)."""
        cfg = settings(target)
        progress(f"  vela {cfg['accelerator']} {artifact.path.name}")
        est = estimate(artifact.path, cfg["accelerator"], system_config=cfg.get("system_config"),
                       memory_mode=cfg.get("memory_mode"), timeout_s=cfg["timeout_s"])
        return to_estimate(est, target)


def estimate_rows(target: Target, artifacts: Sequence[Artifact], metrics: Mapping[str, Metrics],
                  progress: Callable[[str], None]) -> list[Row]:
    """The rows of one estimate target: the ``estimate`` executor over its planned jobs (a convenience; the
    pipeline goes through :func:`edgekit.executors.base.get_executor` like for every access kind)."""
    from edgekit.executors.base import ExecutorOptions, get_executor, plan_jobs

    result = get_executor("estimate").run(plan_jobs(target, artifacts, metrics), (), ExecutorOptions(), progress)
    return list(result.rows)
