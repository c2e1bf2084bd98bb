#!/usr/bin/env bash
# An emulated Arm board for edgekit's SSH executor: an aarch64 Debian rootfs run through qemu-user, as close
# to a Raspberry Pi 5 (4x Cortex-A76, ARMv8.2-A with dot product and fp16, no i8mm) as qemu-user allows.
#
#   scripts/emulated-arm-board.sh --setup    set up (once, cached); progress on stderr, the wrapper's path on stdout
#   scripts/emulated-arm-board.sh            set up, then run the emulated-board tests (result JSON in runs/arm-emulated/)
#
# The board lives OUTSIDE the checkout, so every clone on this machine shares it:
#   ${EDGEKIT_ARM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgekit-dev/arm64}
#     rootfs/    Debian bookworm arm64 (what Raspberry Pi OS 12 is built on; Python 3.11): debootstrap --foreign
#                --variant=minbase --include=python3, unpacked with dpkg-deb (no arm binary runs during set-up,
#                no binfmt_misc needed)
#     rootfs/opt/edgekit-wheels/   numpy, onnxruntime, ai-edge-litert aarch64 wheels and their dependencies
#                (pip --platform manylinux*_aarch64 --only-binary=:all: --target -c constraints.txt)
#     rootfs/proc/cpuinfo          a Raspberry Pi 5 cpuinfo (4x Cortex-A76, part 0xd0b, its Features line): under
#                qemu-user 7.2 the aarch64 wheels crash at start on the host's x86 /proc/cpuinfo; qemu's -L prefix
#                makes the guest read this file instead (design.md section 7). Also rootfs/sys/devices/system/cpu
#                {online,possible,present} = 0-3 and rootfs/proc/device-tree/model, which say "emulated".
#     python-aarch64   the "remote Python": qemu-aarch64-static -cpu cortex-a76 -L rootfs rootfs/usr/bin/python3.11.
#                -cpu sets the HWCAP bits the kernels are picked from (ORT's MLAS, XNNPACK): dot product on, i8mm off,
#                as on a Pi 5. qemu-user's default CPU (max) offers i8mm, SVE2 and SME: under qemu 7.2 LiteRT's int8
#                outputs were then garbage (same argmax as x86 on 2 of 16 items), and right again with sme=off.
#                The cpuinfo must agree with -cpu: with this A76 cpuinfo and -cpu cortex-a72 both runtimes die
#                with SIGILL at their first inference (they also read the CPU from /proc/cpuinfo).
#     board.json       what the board's Python saw at set-up (HWCAP, wheels' versions: scripts/arm_board_probe.py)
#     stamp            the recipe (this script's sha256, the -cpu model) and the constraints.txt pin of every
#                      package in the rootfs: any change rebuilds the board
# It is built in a temp dir next to it and renamed into place, under a lock: an interrupted set-up leaves only
# a temp dir, removed and redone by the next call. A current board is reused in about a second.
# Correctness, not speed: emulated code runs hundreds of times slower than the host; never report its timings.
# Needs root for apt-get (qemu-user-static, debootstrap) and network (Debian mirror, PyPI) for the first set-up;
# any failure is an error (exit 1), never a board half set up. Remove the folder to start afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
DIR="${EDGEKIT_ARM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/edgekit-dev/arm64}"
MIRROR="${EDGEKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PY="${EDGEKIT_HOST_PYTHON:-$REPO/.venv/bin/python}"   # this machine's Python with pip (make setup's venv)
[ -x "$PY" ] || PY=python3
WHEELS=(numpy onnxruntime ai-edge-litert)
CPU=cortex-a76   # Raspberry Pi 5: BCM2712, 4x Cortex-A76 r4p1
log() { echo "arm-board: $*" >&2; }
die() { echo "arm-board: ERROR: $*" >&2; exit 1; }

need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v debootstrap >/dev/null || need+=(debootstrap)
if ((${#need[@]})); then
    [ "$(id -u)" = 0 ] || die "needs ${need[*]}: sudo apt-get install -y --no-install-recommends ${need[*]} (make system-deps as root)"
    log "apt-get install ${need[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# no fallback: -cpu max is no Pi 5 (i8mm, SVE, SME: see above), and the cpuinfo below is a Cortex-A76's
grep -qw "$CPU" <<<"$(qemu-aarch64-static -cpu help)" \
    || die "this qemu-aarch64-static ($(qemu-aarch64-static --version | head -n1)) has no -cpu $CPU (Debian 12's 7.2 has)"

# "name==version" from constraints.txt for each package name given (PEP 503 normalized), "name (unpinned)" if none
pins() {
    "$PY" - "$REPO/constraints.txt" "$@" <<'EOF'
import re, sys
norm = lambda s: re.sub(r"[-_.]+", "-", s).lower()
pinned = {}
for line in open(sys.argv[1]):
    name, sep, version = line.split("#")[0].strip().partition("==")
    if sep:
        pinned[norm(name)] = version.strip()
for name in sorted({norm(n) for n in sys.argv[2:]}):
    print(f"pin {name}=={pinned[name]}" if name in pinned else f"pin {name} (unpinned)")
EOF
}
recipe() { echo "recipe $(sha256sum "$REPO/scripts/emulated-arm-board.sh" | cut -d' ' -f1) cpu $CPU"; }
# The stamp a board built now would get, for the packages a board holds (its stamp's, else the three wheels)
wanted_stamp() {  # $1: an existing stamp file or ""
    local names=("${WHEELS[@]}")
    if [ -n "${1:-}" ] && [ -f "$1" ]; then mapfile -t names < <(awk '$1 == "pin" {sub(/(==| ).*/, "", $2); print $2}' "$1"); fi
    recipe
    pins "${names[@]}"
}
current() { [ -x "$DIR/python-aarch64" ] && [ -f "$DIR/stamp" ] && [ "$(wanted_stamp "$DIR/stamp")" = "$(cat "$DIR/stamp")" ]; }

if ! current; then
    mkdir -p "$(dirname "$DIR")"
    exec 9>"$DIR.lock"
    flock 9   # another clone may be building the same board: wait for it, then look again
    if ! current; then
        [ -d "$DIR" ] && log "board at $DIR is out of date (recipe or pins changed): rebuilding"
        rm -rf "$DIR".tmp.* "$DIR".old.*   # left by an interrupted set-up (we hold the lock: nobody else writes)
        TMP="$DIR.tmp.$$"
        trap 'rm -rf "$TMP"' EXIT
        ROOTFS="$TMP/rootfs"
        t0=$SECONDS
        log "debootstrap arm64 bookworm (first stage only) into $TMP"
        mkdir -p "$TMP"
        if ! debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$ROOTFS" "$MIRROR" \
                > "$TMP/debootstrap.log" 2>&1; then
            tail -n 15 "$TMP/debootstrap.log" >&2
            die "debootstrap failed (network? mirror $MIRROR: set EDGEKIT_DEBIAN_MIRROR to another)"
        fi
        log "unpacking $(ls "$ROOTFS"/var/cache/apt/archives/*.deb | wc -l) packages"
        for deb in "$ROOTFS"/var/cache/apt/archives/*.deb; do
            dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$ROOTFS" --keep-directory-symlink
        done
        rm -f "$ROOTFS"/var/cache/apt/archives/*.deb
        PYVER="$(basename "$(readlink -f "$ROOTFS/usr/bin/python3")")"   # python3.11
        [ -x "$ROOTFS/usr/bin/$PYVER" ] || die "no python3 in the rootfs"
        mapfile -t reqs < <(pins "${WHEELS[@]}" | awk '{print $2}')
        log "aarch64 wheels for Python ${PYVER#python}: ${reqs[*]} (+ dependencies, pinned by constraints.txt)"
        "$PY" -m pip install -q --disable-pip-version-check --platform manylinux2014_aarch64 \
            --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux_2_28_aarch64 \
            --implementation cp --python-version "${PYVER#python}" --only-binary=:all: -c "$REPO/constraints.txt" \
            --target "$ROOTFS/opt/edgekit-wheels" "${reqs[@]}" >&2 || die "pip could not fetch the aarch64 wheels"
        rm -rf "$ROOTFS/opt/edgekit-wheels/bin"

        # debootstrap's first stage may leave rootfs/proc as a symlink to the host's /proc: never write through it
        [ -L "$ROOTFS/proc" ] && rm -f "$ROOTFS/proc"
        mkdir -p "$ROOTFS/proc/device-tree" "$ROOTFS/sys/devices/system/cpu"
        : > "$ROOTFS/proc/cpuinfo"
        for i in 0 1 2 3; do   # a Raspberry Pi 5's /proc/cpuinfo (Raspberry Pi OS, 64-bit kernel)
            cat >> "$ROOTFS/proc/cpuinfo" <<EOF
processor	: $i
BogoMIPS	: 108.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x4
CPU part	: 0xd0b
CPU revision	: 1

EOF
        done
        printf 'Revision\t: c04170\nModel\t\t: Raspberry Pi 5 Model B (emulated: qemu-aarch64 -cpu %s)\n' "$CPU" \
            >> "$ROOTFS/proc/cpuinfo"
        printf 'Raspberry Pi 5 Model B (emulated: qemu-aarch64 -cpu %s)\0' "$CPU" > "$ROOTFS/proc/device-tree/model"
        for f in online possible present; do echo 0-3 > "$ROOTFS/sys/devices/system/cpu/$f"; done

        cat > "$TMP/python-aarch64" <<EOF
#!/bin/sh
# The emulated board's Python (made by edgekit's scripts/emulated-arm-board.sh): aarch64 $PYVER under
# qemu-user as a Cortex-A76 (Raspberry Pi 5), the rootfs next to this file, wheels from /opt/edgekit-wheels.
here="\$(cd "\$(dirname "\$0")" && pwd -P)"
export PYTHONPATH="\${PYTHONPATH:+\$PYTHONPATH:}/opt/edgekit-wheels"
exec qemu-aarch64-static -cpu $CPU -L "\$here/rootfs" "\$here/rootfs/usr/bin/$PYVER" "\$@"
EOF
        chmod +x "$TMP/python-aarch64"
        log "checking the board's Python (imports under emulation take a while)"
        "$TMP/python-aarch64" "$REPO/scripts/arm_board_probe.py" > "$TMP/board.json" \
            || die "the emulated Python failed: see above"
        "$PY" - "$TMP/board.json" <<'EOF' >&2 || die "the board is not usable: see above"
import json, sys
b = json.load(open(sys.argv[1]))
bad = {k: v for k, v in b["versions"].items() if str(v).startswith("error")}
if b["litert_interpreter_import"] != "ok":
    bad["ai_edge_litert.interpreter"] = b["litert_interpreter_import"]
print(f"arm-board: {b['machine']} Python {b['python']}, {b['versions']}; HWCAP: dotprod={b['dotprod']} "
      f"i8mm={b['i8mm']} fp16={b['fp16_arith']} ({' '.join(b['hwcap_names'] + b['hwcap2_names'])})")
sys.exit(f"arm-board: not importable under emulation: {bad}" if bad else 0)
EOF
        names=()
        for d in "$ROOTFS"/opt/edgekit-wheels/*.dist-info; do n="$(basename "$d" .dist-info)"; names+=("${n%-*}"); done
        { recipe; pins "${names[@]}"; } > "$TMP/stamp"
        [ -e "$DIR" ] && mv "$DIR" "$DIR.old.$$"
        mv "$TMP" "$DIR"
        trap - EXIT
        rm -rf "$DIR.old.$$"
        log "board ready in $((SECONDS - t0)) s: $DIR"
    fi
    flock -u 9
fi
if [ "${1:-}" = "--setup" ]; then echo "$DIR/python-aarch64"; exit 0; fi

mkdir -p runs/arm-emulated
EDGEKIT_ARM_PYTHON="$DIR/python-aarch64" EDGEKIT_ARM_RESULT="$PWD/runs/arm-emulated/result.json" \
    "$PY" -m pytest -q -p no:cacheprovider tests/executors/test_arm_board.py -rA
echo "result: runs/arm-emulated/result.json"
