"""Arm Ethos-U estimates: ``ethos-u-vela`` compiles a full-integer int8 ``.tflite`` and its summary CSV
gives the estimated latency, inferences/s, NPU cycles, SRAM, flash and DRAM use (where the weights live
depends on the system config: flash on U55, DRAM on the U65/U85 defaults); its log gives how many ops
run on the NPU and which fall back to the CPU. These are compiler estimates, never measurements.

A target's ``[estimate]`` table names the ``accelerator`` (``ethos-u55-128`` ...) and optionally the
Vela ``system_config``/``memory_mode``; ``sram_kb``/``flash_kb``/``memory_mb`` (DRAM) budgets make non-fitting artifacts
reported as such, with the numbers.
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.artifacts import Artifact
from edgekit.errors import ConfigError, EdgekitError, MissingDependencyError, RuntimeAdapterError
from edgekit.results import BenchResult, LatencyStats, Metrics, Row
from edgekit.targets import Target
from edgekit.types import Format

ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
                "ethos-u65-512", "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024",
                "ethos-u85-2048")
RUNTIME_NAME = "ethos-u-vela"


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


def _vela_command() -> list[str]:
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
             memory_mode: str | None = None, timeout_s: float = 600.0) -> VelaEstimate:
    """Compile ``path`` with Vela for ``accelerator`` and parse its summary CSV and op placement."""
    if accelerator not in ACCELERATORS:
        raise ConfigError("unknown Ethos-U accelerator", where="[estimate].accelerator",
                          expected=", ".join(ACCELERATORS), got=accelerator)
    check_int8(path)
    cmd = [*_vela_command(), str(Path(path).resolve()), "--accelerator-config", accelerator]
    if system_config:
        cmd += ["--system-config", system_config]
    if memory_mode:
        cmd += ["--memory-mode", memory_mode]
    with tempfile.TemporaryDirectory(prefix="edgekit-vela-") as tmp:
        proc = subprocess.run([*cmd, "--output-dir", tmp], capture_output=True, text=True, timeout=timeout_s,
                              cwd=tmp, check=False)
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


def as_bench(est: VelaEstimate, target: Target) -> BenchResult:
    """The estimate in the report's latency record (n=1, no samples measured) plus its details."""
    ms = est.latency_ms
    stats = LatencyStats(n=1, p50_ms=ms, p90_ms=ms, p99_ms=ms, mean_ms=ms, stdev_ms=0.0, min_ms=ms, max_ms=ms)
    problems = fit_problems(est, target)
    info = {"kind": "compiler estimate (ethos-u-vela)", **est.to_dict(), "fits": not problems,
            "fit_problems": problems, "sram_budget_kb": target.sram_kb, "flash_budget_kb": target.flash_kb,
            "dram_budget_mb": target.memory_mb,
            "ops_on_cpu": est.cpu_ops, "delegates": [f"NPU {est.accelerator}"] + (["CPU"] if est.cpu_ops else [])}
    return BenchResult(runtime=RUNTIME_NAME, threads=None, load_ms=0.0, first_inference_ms=ms, warmup_ms=(),
                       samples_ms=(), stats=stats,
                       memory={"sram_kib": est.sram_kib, "flash_kib": est.flash_kib, "dram_kib": est.dram_kib},
                       session_info=info)


def estimate_rows(target: Target, artifacts: Sequence[Artifact], metrics: dict[str, Metrics],
                  progress: Callable[[str], None]) -> list[Row]:
    """Rows with status "estimated" for every TFLite artifact the target's precisions allow."""
    est_cfg = dict(target.extra.get("estimate", {}))
    accelerator = str(est_cfg.get("accelerator", ""))
    rows: list[Row] = []
    for spec in target.runtimes:
        if spec.name != RUNTIME_NAME:
            continue
        for art in artifacts:
            if art.format is not Format.TFLITE or art.precision not in spec.precisions:
                continue
            m = metrics.get(art.name)
            try:
                progress(f"estimate {art.name} on {target.name} (vela, {accelerator})")
                est = estimate(art.path, accelerator, system_config=est_cfg.get("system_config"),
                               memory_mode=est_cfg.get("memory_mode"))
            except MissingDependencyError as exc:
                rows.append(Row(art, target.name, spec.name, "not-available", m, reason=str(exc)))
                continue
            except EdgekitError as exc:
                rows.append(Row(art, target.name, spec.name, "failed", m, reason=str(exc)))
                continue
            bench = as_bench(est, target)
            reasons = []
            if est.cpu_ops:
                reasons.append(f"{est.cpu_ops} op(s) placed on the CPU")
            if bench.session_info["fit_problems"]:
                reasons.append("does not fit: " + "; ".join(bench.session_info["fit_problems"]))
            rows.append(Row(art, target.name, spec.name, "estimated", m, bench,
                            reason="; ".join(reasons) or None))
    return rows
