"""What the emulated Arm board's kernels see: run with the board's Python (``python-aarch64 arm_board_probe.py``).

Prints one JSON object: the machine, the HWCAP / HWCAP2 bits (``getauxval``; qemu-user derives them from its
``-cpu`` model, and ONNX Runtime's MLAS and XNNPACK pick their int8 kernels from them: ``asimddp`` = the sdot/udot
kernels, ``i8mm`` = the smmla/ummla ones), the CPU model of /proc/cpuinfo, and the wheels' versions.
Standard library only, so it also runs where a wheel is missing (that wheel's entry then says why).
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import sys

AT_HWCAP, AT_HWCAP2 = 16, 26
# arch/arm64/include/uapi/asm/hwcap.h (Linux 6.x), bit = index
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop "
         "sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 "
          "i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme sme_i16i64 sme_f64f64 sme_i8i32 sme_f16f32 sme_b16f32 "
          "sme_f32f32 sme_fa64 wfxt ebf16 sve_ebf16").split()


def _bits(value: int, names: list[str]) -> list[str]:
    return [name for i, name in enumerate(names) if value >> i & 1] + [
        f"bit{i}" for i in range(len(names), 64) if value >> i & 1]


def main() -> int:
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    hw, hw2 = int(libc.getauxval(AT_HWCAP)), int(libc.getauxval(AT_HWCAP2))
    cpuinfo = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpuinfo = fh.read()
    except OSError:
        pass
    lines = cpuinfo.split("\n\n")[0].splitlines()  # the first processor's block
    first = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    info: dict[str, object] = {
        "machine": platform.machine(), "python": platform.python_version(),
        "hwcap": hex(hw), "hwcap2": hex(hw2), "hwcap_names": _bits(hw, HWCAP), "hwcap2_names": _bits(hw2, HWCAP2),
        "cpuinfo_part": first.get("CPU part", ""), "cpuinfo_features": first.get("Features", "").split(),
        "cpuinfo_processors": cpuinfo.count("processor\t:"), "os_cpu_count": os.cpu_count(),
    }
    names = set(info["hwcap_names"]) | set(info["hwcap2_names"])  # type: ignore[call-overload]
    info["dotprod"], info["i8mm"], info["fp16_arith"] = "asimddp" in names, "i8mm" in names, "asimdhp" in names
    versions: dict[str, str] = {}
    for module in ("numpy", "onnxruntime", "ai_edge_litert"):
        try:
            mod = __import__(module)
            from importlib import metadata

            versions[module] = getattr(mod, "__version__", None) or metadata.version(module.replace("_", "-"))
        except Exception as exc:  # report, do not fail: the set-up decides what is required
            versions[module] = f"error: {type(exc).__name__}: {exc}"
    try:
        from ai_edge_litert.interpreter import Interpreter  # noqa: F401

        info["litert_interpreter_import"] = "ok"
    except Exception as exc:
        info["litert_interpreter_import"] = f"error: {type(exc).__name__}: {exc}"
    info["versions"] = versions
    json.dump(info, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
