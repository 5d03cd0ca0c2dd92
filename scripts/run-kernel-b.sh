#!/usr/bin/env bash
# The kernel-B lane: runs the Swift test suites that need Debian's stock kernel (freplace, fentry/fexit,
# kprobes, LSM, XDP/TC dispatchers) inside that kernel, booted with qemu (see ../shared/KERNEL.md).
#
#   bash scripts/run-kernel-b.sh [FILTER [ARG...]]  swift-testing filter regex, default `KernelB` (every
#                                             suite whose name ends in KernelB); ARGs go to the test bundle
#   bash scripts/run-kernel-b.sh --cmd 'CMD'  runs a shell command in the guest instead (debugging)
#
# Steps: (1) the first run resolves `linux-image-amd64` to its versioned package, fetches it with
# `apt-get download` (the lane's only network use), unpacks it with dpkg-deb and runs depmod, all under
# .cache/kernel-b/; later runs reuse that. (2) A busybox initramfs (scripts/kernel-b/init) loads the
# modules of scripts/kernel-b/modules, mounts the host's / read-only over virtio-9p under a tmpfs
# overlay, chroots and runs the test bundle built on the host. (3) qemu (TCG) boots it; the serial
# console is streamed as the test output. (4) The exit status is the one of the guest command, read
# from the marker line the init prints; a missing marker (crash, panic, timeout) is a failure.
#
# Environment:
#   BUILD_DIR=.build          SwiftPM scratch path whose debug test bundle runs in the guest
#   KERNEL_B_NO_BUILD=1       skip the `swift build --build-tests` done first (a no-op right after `make unit`)
#   KERNEL_B_TIMEOUT=600      seconds before the guest is killed and the lane fails
#   KERNEL_B_MEMORY=2048      guest memory in MiB
#   KERNEL_B_REFRESH=1        resolve and download the kernel package again
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

CACHE="$REPO/.cache/kernel-b"
BUILD_DIR=${BUILD_DIR:-.build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$REPO/$BUILD_DIR" ;; esac
TIMEOUT=${KERNEL_B_TIMEOUT:-600}
MEMORY=${KERNEL_B_MEMORY:-2048}
MARKER="KERNEL-B-LANE-EXIT"

say() { echo "kernel-b: $*" >&2; }
die() { say "$*"; exit 1; }

mode=test
filter=KernelB
extra=()
case "${1:-}" in
    --cmd)
        [ $# -ge 2 ] || die "usage: $0 --cmd 'COMMAND'"
        mode=cmd
        command=$2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *)
        filter=$1
        shift
        extra=("$@")   # further arguments go to the test bundle as they are, e.g. --skip REGEX
        ;;
esac

[ "$(id -u)" = 0 ] || die "must run as root (qemu reads the whole host filesystem over 9p)"
for tool in qemu-system-x86_64 depmod cpio gzip dpkg-deb apt-get flock timeout; do
    command -v "$tool" >/dev/null || die "$tool missing: run scripts/setup.sh"
done
applets=$(/bin/busybox --list 2>/dev/null || true)
grep -qx insmod <<<"$applets" || die "static busybox missing: run scripts/setup.sh"

start=$(date +%s.%N)
elapsed() { awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }'; }

# ---- (1) the kernel, fetched once -----------------------------------------------------------------
mkdir -p "$CACHE"
# Several lanes may start at once in one checkout: the first fetch is done under a lock.
exec 9>"$CACHE/.lock"
flock 9
current="$CACHE/current"   # names the unpacked kernel version once it is complete
if [ -n "${KERNEL_B_REFRESH:-}" ] || [ ! -s "$current" ] || [ ! -e "$CACHE/$(cat "$current")/.ready" ]; then
    resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'; }
    # Fetches and unpacks $1 into .cache/kernel-b/<version>; fails when the mirror no longer has it.
    fetch() {
        local package=$1 version=${1#linux-image-}
        local dir="$CACHE/$version"
        [ -e "$dir/.ready" ] && return 0
        say "fetching $package"
        rm -rf "$dir"
        mkdir -p "$dir/deb" "$dir/root"
        (cd "$dir/deb" && apt-get download -q -o APT::Sandbox::User=root "$package" >&2) || return 1
        dpkg-deb -x "$dir"/deb/*.deb "$dir/root"
        rm -rf "$dir/deb"
        depmod -b "$dir/root" "$version"
        touch "$dir/.ready"
    }
    package=$(resolve || true)
    if [ -z "$package" ] || ! fetch "$package"; then
        # Missing or stale apt lists (a fresh CI image): refresh them once and try again.
        say "refreshing apt lists (apt-get update)"
        apt-get update -qq
        package=$(resolve || true)
        [ -n "$package" ] || die "cannot resolve linux-image-amd64 with apt-cache depends"
        fetch "$package" || die "cannot download $package"
    fi
    version=${package#linux-image-}
    echo "$version" >"$current"
fi
exec 9>&-
version=$(cat "$current")
kroot="$CACHE/$version/root"
vmlinuz="$kroot/boot/vmlinuz-$version"
moddir="$kroot/lib/modules/$version"
[ -r "$vmlinuz" ] && [ -r "$moddir/modules.dep" ] || die "incomplete kernel in $CACHE/$version; rerun with KERNEL_B_REFRESH=1"

# ---- the guest command ------------------------------------------------------------------------------
if [ "$mode" = test ]; then
    bundle="$BUILD_DIR/debug/swift-bpfmanPackageTests.xctest"
    if [ -z "${KERNEL_B_NO_BUILD:-}" ]; then
        say "building the test bundle in $BUILD_DIR"
        swift build --build-tests --scratch-path "$BUILD_DIR" >&2
    fi
    [ -x "$bundle" ] || die "no test bundle at $bundle: run swift build --build-tests --scratch-path $BUILD_DIR"
    # The guest could compile fixtures itself, but clang under TCG is slow: compile them here.
    bash scripts/build-fixtures.sh >&2
    command="$(printf '%q ' "$bundle" --testing-library swift-testing --filter "$filter" ${extra[@]+"${extra[@]}"})"
    # Likewise the daemon stress test's grpc-go client (DaemonTools.goStress), when Go is installed.
    stress="$BUILD_DIR/kernel-b-go-stress"
    if command -v go >/dev/null && Interop/daemon/go/build.sh "$stress" Interop/daemon/go/stress.go >&2; then
        command="BPFMAN_TEST_GO_STRESS=$(printf '%q' "$stress") $command"
    fi
fi

# ---- (2) the initramfs --------------------------------------------------------------------------------
work=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

initdir="$work/initramfs"
mkdir -p "$initdir"/{bin,modules,proc,sys,dev,host,rw,newroot}
cp /bin/busybox "$initdir/bin/busybox"
cp scripts/kernel-b/init "$initdir/init"
chmod 0755 "$initdir/init"

# Each listed module after its dependencies, in modules.dep order: a module's line lists what it needs
# so that the last entry is loaded first. Names compare with '-' and '_' alike, as modprobe does.
wanted=$(sed 's/#.*//' scripts/kernel-b/modules | awk 'NF { print $1 }')
order=$(awk -v wanted="$wanted" '
    function name(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/-/, "_", p); return p }
    function add(m,   i, n, d) {
        if (m in seen) return
        if (!(m in file)) { print "no module " m " in modules.dep"; exit 1 }
        n = split(deps[m], d, " ")
        for (i = n; i >= 1; i--) add(name(d[i]))
        seen[m] = 1
        print file[m]
    }
    {
        f = $1; sub(/:$/, "", f); m = name(f)
        file[m] = f; deps[m] = ""
        for (i = 2; i <= NF; i++) deps[m] = deps[m] " " $i
    }
    END {
        n = split(wanted, w, "\n")
        for (i = 1; i <= n; i++) { gsub(/-/, "_", w[i]); add(w[i]) }
    }
' "$moddir/modules.dep") || die "module resolution failed: $order"
for f in $order; do
    case "$f" in *.ko) ;; *) die "compressed module $f: the static busybox insmod wants plain .ko files" ;; esac
    cp "$moddir/$f" "$initdir/modules/"
    basename "$f" .ko >>"$initdir/modules.order"
done
{
    echo "cd $(printf '%q' "$REPO") || exit 126"
    echo "$command"
} >"$initdir/lane-cmd"
(cd "$initdir" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

# ---- (3) boot ----------------------------------------------------------------------------------------
log="$work/console.log"
say "kernel $version, modules: $(tr '\n' ' ' <"$initdir/modules.order")"
say "guest command: $command"
say "booting (qemu TCG, ${MEMORY} MiB, timeout ${TIMEOUT}s); serial console follows"
qemu_args=(
    -accel tcg -cpu max -m "$MEMORY" -smp 2
    -display none -vga none -monitor none -serial stdio -no-reboot -net none
    -kernel "$vmlinuz" -initrd "$work/initrd.gz"
    # bpfman.lane=kernel-b marks the lane for TestKernel.isKernelBLane; kept off the end of the line,
    # whose trailing newline in /proc/cmdline would stick to it.
    -append "console=ttyS0 bpfman.lane=kernel-b lsm=lockdown,bpf panic=-1 quiet loglevel=3"
    -fsdev local,id=host,path=/,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-pci,fsdev=host,mount_tag=host
)
set +e
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 "${qemu_args[@]}" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$log"
qemu_status=${PIPESTATUS[0]}
set -e
cp "$log" "$CACHE/last-run.log" 2>/dev/null || true

# ---- (4) the verdict ---------------------------------------------------------------------------------
status=$(sed -n "s/^.*$MARKER status=\([0-9]*\).*$/\1/p" "$log" | tail -1)
took=$(elapsed)
if [ -z "$status" ]; then
    if [ "$qemu_status" = 124 ] || [ "$qemu_status" = 137 ]; then
        die "FAILED: timed out after ${TIMEOUT}s without the exit marker ($took s; log in $CACHE/last-run.log)"
    fi
    die "FAILED: no exit marker on the console (qemu exit $qemu_status, $took s; log in $CACHE/last-run.log)"
fi
if [ "$status" != 0 ]; then
    die "FAILED: the guest command exited with status $status ($took s; log in $CACHE/last-run.log)"
fi
if [ "$mode" = test ] && grep -q 'needs kernel B' "$log"; then
    die "FAILED: tests were skipped as 'needs kernel B' inside the lane: the guest was not recognised ($took s)"
fi
if [ "$mode" = test ] && grep -q 'Test run with 0 tests' "$log"; then
    die "FAILED: the filter '$filter' selected no tests ($took s)"
fi
say "passed in $took s (kernel $version)"
