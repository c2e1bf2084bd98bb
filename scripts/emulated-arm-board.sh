#!/usr/bin/env bash
# An emulated Arm board for edgekit's SSH executor: an aarch64 Debian rootfs run through qemu-user.
#
#   scripts/emulated-arm-board.sh            set up (once, cached) and run the emulated-board test
#   scripts/emulated-arm-board.sh --setup    only set up; prints the remote-python wrapper's path
#
# What it builds (under $EDGEKIT_ARM_DIR, default runs/.cache/arm64):
#   rootfs/    Debian bookworm arm64 (debootstrap --foreign --variant=minbase --include=python3; the
#              packages are unpacked with dpkg-deb: no arm binary runs during set-up, no binfmt_misc needed)
#   rootfs/opt/edgekit-wheels/   numpy + onnxruntime aarch64 wheels (pip --platform manylinux*_aarch64
#              --only-binary=:all: --target), at the versions pinned in constraints.txt
#   rootfs/proc/cpuinfo          an Arm cpuinfo (4x Cortex-A72): under qemu-user 7.2 the aarch64
#              onnxruntime wheel crashes at start on the host's x86 /proc/cpuinfo; qemu's -L prefix makes
#              the guest read this file instead (design.md section 7)
#   python-aarch64               the "remote Python": qemu-aarch64-static -L rootfs rootfs/usr/bin/python3
# Then it runs tests/executors/test_ssh.py::test_emulated_arm_board_matches_x86 with EDGEKIT_ARM_PYTHON
# set: a real sshd on loopback, the agent pushed over SSH and run under emulation; outputs of the fp32
# artifact must match the x86 run within 1e-4 max-abs. Correctness, not speed (~200-350x slower).
# Needs root for apt-get (qemu-user-static, debootstrap) and network for the first set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${EDGEKIT_ARM_DIR:-$PWD/runs/.cache/arm64}"
ROOTFS="$DIR/rootfs"
MIRROR="${EDGEKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p "$DIR"

need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
    if [ "$(id -u)" != 0 ]; then echo "needs root to apt-get install ${need[*]}" >&2; exit 1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    echo "== debootstrap arm64 rootfs into $ROOTFS (first stage only)"
    rm -rf "$ROOTFS"
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ROOTFS" "$MIRROR"
    echo "== unpacking $(ls "$ROOTFS"/var/cache/apt/archives/*.deb | wc -l) packages"
    for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do
        dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$ROOTFS" --keep-directory-symlink
    done
fi
PYVER="$(basename "$(readlink -f "$ROOTFS/usr/bin/python3")")"   # e.g. python3.11
PYNUM="${PYVER#python}"

if [ ! -d "$ROOTFS/opt/edgekit-wheels/onnxruntime" ]; then
    echo "== aarch64 wheels for Python $PYNUM"
    pins=()
    for p in numpy onnxruntime; do pins+=("$(grep -i "^$p==" constraints.txt || echo "$p")"); done
    "$PY" -m pip install -q --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
        --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 --implementation cp \
        --python-version "$PYNUM" --only-binary=:all: --target "$ROOTFS/opt/edgekit-wheels" "${pins[@]}"
fi

# debootstrap's first stage may leave rootfs/proc as a symlink to the host's /proc: replace it by a folder
# (never write through it)
if [ -L "$ROOTFS/proc" ]; then rm -f "$ROOTFS/proc"; fi
mkdir -p "$ROOTFS/proc"
: > "$ROOTFS/proc/cpuinfo"
for i in 0 1 2 3; do
    cat >> "$ROOTFS/proc/cpuinfo" <<EOF
processor	: $i
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

EOF
done

WRAPPER="$DIR/python-aarch64"
cat > "$WRAPPER" <<EOF
#!/bin/sh
# The emulated board's Python: aarch64 python3 under qemu-user, wheels from /opt/edgekit-wheels in the rootfs.
export PYTHONPATH="\${PYTHONPATH:+\$PYTHONPATH:}/opt/edgekit-wheels"
exec qemu-aarch64-static -L "$ROOTFS" "$ROOTFS/usr/bin/$PYVER" "\$@"
EOF
chmod +x "$WRAPPER"
echo "== emulated python: $("$WRAPPER" -c 'import platform, numpy, onnxruntime; print(platform.machine(), platform.python_version(), "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__)')"
if [ "${1:-}" = "--setup" ]; then echo "$WRAPPER"; exit 0; fi

mkdir -p runs/arm-emulated
EDGEKIT_ARM_PYTHON="$WRAPPER" EDGEKIT_ARM_RESULT="$PWD/runs/arm-emulated/result.json" \
    "$PY" -m pytest -q -p no:cacheprovider "tests/executors/test_ssh.py::test_emulated_arm_board_matches_x86" -rA
echo "result: runs/arm-emulated/result.json"
