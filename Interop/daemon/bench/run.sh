#!/usr/bin/env bash
# Daemon benchmark (issues 8 and 24): grpc-go load generator against `bpfman serve` (release build as `make release`)
# and, in the same run on the same kind of Unix socket, two grpc-go servers: the floor (empty Get and List answers)
# and the mirror (every call answered with the daemon's own Get and List answers, fetched once: what a gRPC daemon
# that had the real answer ready would cost, the client's decoding of it included).
# Get and List(bpfman_programs_only) p50/p99 and throughput with 1 and 8 callers at 20 and 100 managed programs,
# List with 1000; Get while other callers List; then issue 24's targets against the mirror; daemon RSS with 20 and
# 1000 programs; start-up to a connectable socket with an empty store. Last, this run's numbers next to those
# INTEROP.md quotes for the reference daemon (upstream's Go bpfman), with an empty store's List, a Get of an id
# that does not exist and a TCX Load+Attach measured for that comparison.
# With BASELINE=<git rev>, the daemon of that revision is built too (from `git archive`, in .build-baseline/<rev>,
# kept for later runs) and its RSS with 20 and 1000 programs measured next to this one's, each on a fresh daemon.
# Needs root (it loads tracepoint programs). Prints Markdown tables.
# Usage: [BASELINE=rev] Interop/daemon/bench/run.sh [seconds-per-run (default 3)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here="$root/Interop/daemon/bench"
seconds=${1:-3}
work=$(mktemp -d /tmp/srv-bench-XXXXXX)
pids=()
declare -A daemon_runs mirror_runs
veth=bnch$$
cleanup() {
    ip link del "${veth}a" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.5
    umount -l "$work/rd/fs" 2>/dev/null || true
    umount -l "$work/rd-empty/fs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "building (release) ..." >&2
(cd "$root" && swift build -c release --static-swift-stdlib --product bpfman >&2)  # as `make release` ships it
bpfman="$root/.build/release/bpfman"
source "$root/scripts/lib/scratch-daemon.sh"  # wait_for_socket (this script has its own clean-up trap)
need_socket() { wait_for_socket "$1" || { echo "run.sh: no socket at $1" >&2; exit 1; }; }
"$root/Interop/daemon/go/build.sh" "$work/floor" "$here/floor.go"
"$root/Interop/daemon/go/build.sh" "$work/load" "$here/load.go"
object=$(ls "$root"/.build/bpf-fixtures/tracepoint_counter.bpf.o 2>/dev/null || true)
if [ -z "$object" ]; then
    mkdir -p "$work/obj"
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$root/Tests/Fixtures/bpf/tracepoint_counter.bpf.c" -o "$work/obj/tp.o"
    object="$work/obj/tp.o"
fi
printf '[logging]\nlevel = "warn"\n' >"$work/bpfman.toml"

# Start-up to a connectable socket, empty store (median of 5).
startups=()
for i in 1 2 3 4 5; do
    ms=$(python3 - "$bpfman" "$work" <<'PY'
import os, socket, subprocess, sys, time
bpfman, work = sys.argv[1], sys.argv[2]
sock = f"{work}/start{os.getpid()}.sock"
rd = f"{work}/start-rd-{os.getpid()}"
t0 = time.monotonic()
p = subprocess.Popen([bpfman, "serve", "--runtime-dir", rd, "--socket-path", sock, "--config", f"{work}/bpfman.toml"])
while True:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sock); break
    except OSError:
        time.sleep(0.0005)
    finally:
        s.close()
print(f"{(time.monotonic() - t0) * 1000:.1f}")
p.terminate(); p.wait()
subprocess.call(["umount", "-l", f"{rd}/fs"])
PY
)
    startups+=("$ms")
done
startup=$(printf '%s\n' "${startups[@]}" | sort -n | sed -n 3p)

"$bpfman" serve --runtime-dir "$work/rd" --socket-path "$work/d.sock" --config "$work/bpfman.toml" & pids+=($!); daemon=$!
"$work/floor" -socket "$work/f.sock" & pids+=($!)
need_socket "$work/d.sock"
need_socket "$work/f.sock"
export BPFMAN_SOCKET_PATH="$work/d.sock"
load_to() {
    local have
    have=$("$bpfman" list programs -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    for _ in $(seq $((have + 1)) "$1"); do
        "$bpfman" load file -p "$object" --programs tracepoint:count_kill >/dev/null
    done
}
# `list programs` lists managed programs only, in ascending id.
managed_ids() { "$bpfman" list programs -o json | python3 -c 'import json,sys; print(*[p["kernel_info"]["id"] for p in json.load(sys.stdin)])'; }
first_id() { managed_ids | cut -d' ' -f1; }
rss() { awk '/^VmRSS/ {print $2}' "/proc/$daemon/status"; }
run() { "$work/load" -socket "$1" -method "$2" -id "${3:-1}" -callers "$4" -seconds "$seconds"; }
field() { sed -E "s/.*$1=([0-9.]+).*/\1/" <<<"$2"; }

# For the comparison with the reference daemon at the end, a daemon of its own with an empty store (so that
# the RSS measured below is not that of a daemon that has also attached TCX links): List, Get of an id that
# does not exist (NOT_FOUND), and a TCX program's Load+Attach (Detach and Unload follow each, untimed) on a veth.
"$bpfman" serve --runtime-dir "$work/rd-empty" --socket-path "$work/e.sock" --config "$work/bpfman.toml" &
pids+=($!); empty_daemon=$!
need_socket "$work/e.sock"
empty_list=$(run "$work/e.sock" list 1 1)
unknown_get=$(run "$work/e.sock" get-unknown 4000000000 1)
ip link add "${veth}a" type veth peer name "${veth}b"
ip link set "${veth}a" up
tcx_object="$root/.build/bpf-fixtures/tcx_counter.bpf.o"
if [ ! -f "$tcx_object" ]; then
    tcx_object="$work/tcx.o"
    clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$root/Tests/Fixtures/bpf/tcx_counter.bpf.c" -o "$tcx_object"
fi
tcx=$("$work/load" -socket "$work/e.sock" -method tcx -object "$tcx_object" -fn tcx_count -iface "${veth}a" \
    -callers 1 -seconds "$seconds")
ip link del "${veth}a"
kill "$empty_daemon"; wait "$empty_daemon" 2>/dev/null || true
umount -l "$work/rd-empty/fs"
echo "empty store: List $empty_list | Get unknown id $unknown_get | TCX Load+Attach $tcx" >&2

echo "| programs | method | callers | bpfman calls/s | floor calls/s | mirror calls/s | bpfman p50 µs | floor p50 µs | mirror p50 µs | bpfman p99 µs | floor p99 µs | p50 ratio | throughput ratio | mirror p50 ratio | mirror throughput ratio | bpfman / mirror p50 | bpfman / mirror calls/s |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
# (Re)starts the mirror on the daemon's current answers: Get of the first managed program, List of all of them.
start_mirror() {
    if [ -n "${mirror:-}" ]; then kill "$mirror"; wait "$mirror" 2>/dev/null || true; fi
    rm -f "$work/m.sock"
    "$work/floor" -socket "$work/m.sock" -mirror "$work/d.sock" -id "$id" & pids+=($!); mirror=$!
    need_socket "$work/m.sock"
}
# One row: the daemon, the floor and the mirror, one after the other, same method and callers.
row() {
    local n=$1 method=$2 callers=$3 d f m
    d=$(run "$work/d.sock" "$method" "$id" "$callers")
    f=$(run "$work/f.sock" "$method" "$id" "$callers")
    m=$(run "$work/m.sock" "$method" "$id" "$callers")
    echo "$n $method c=$callers bpfman: $d | floor: $f | mirror: $m" >&2
    daemon_runs["$n $method $callers"]=$d
    mirror_runs["$n $method $callers"]=$m
    awk -v n="$n" -v m="$method" -v c="$callers" \
        -v dr="$(field rate "$d")" -v fr="$(field rate "$f")" -v mr="$(field rate "$m")" \
        -v d50="$(field p50us "$d")" -v f50="$(field p50us "$f")" -v m50="$(field p50us "$m")" \
        -v d99="$(field p99us "$d")" -v f99="$(field p99us "$f")" \
        'BEGIN { printf "| %d | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx | %.2fx |\n", n, m, c, dr, fr, mr, d50, f50, m50, d99, f99, d50 / f50, dr / fr, m50 / f50, mr / fr, d50 / m50, dr / mr }'
}
for n in 20 100; do
    load_to "$n"
    [ "$n" = 20 ] && rss20=$(rss)
    id=$(first_id)
    start_mirror
    for method in get list; do
        for callers in 1 8; do row "$n" "$method" "$callers"; done
    done
    if [ "$n" = 100 ]; then
        # Reads do not queue behind each other: Get (one caller) while two other callers List the 100 programs
        # in a loop, the daemon next to the mirror (whose List answer is the daemon's, ready-made).
        under_list() {
            "$work/load" -socket "$1" -method list -callers 2 -seconds $((seconds + 1)) >/dev/null &
            local lister=$!
            sleep 0.3
            run "$1" get "$id" 1
            wait "$lister"
        }
        d=$(under_list "$work/d.sock")
        m=$(under_list "$work/m.sock")
        echo "100 get c=1 under 2 listing callers bpfman: $d | mirror: $m" >&2
        under_list_row="| Get, 1 caller | $(field p50us "$d") | $(field p99us "$d") | $(field p50us "$m") | $(field p99us "$m") |"
    fi
done
load_to 1000
rss1000=$(rss)
id=$(first_id)
start_mirror
row 1000 list 1
echo
echo "| 100 programs, Get while 2 callers List | bpfman p50 µs | bpfman p99 µs | mirror p50 µs | mirror p99 µs |"
echo "|---|---:|---:|---:|---:|"
echo "$under_list_row"
# The targets of issue 24, from the rows above.
echo
echo "| target (issue 24) | bpfman | mirror | ratio | met |"
echo "|---|---:|---:|---:|---|"
target() {  # label, key, field (p50us|rate), comparison (le: bpfman <= mirror; ge: bpfman >= mirror)
    awk -v l="$1" -v d="$(field "$3" "${daemon_runs[$2]}")" -v m="$(field "$3" "${mirror_runs[$2]}")" -v op="$4" \
        -v u="$([ "$3" = rate ] && echo " calls/s" || echo " µs")" \
        'BEGIN { ok = (op == "le") ? d <= m : d >= m; printf "| %s | %d%s | %d%s | %.2fx | %s |\n", l, d, u, m, u, d / m, ok ? "yes" : "no" }'
}
target "Get p50, 20 programs, 1 caller: at most 1.0x the mirror" "20 get 1" p50us le
target "List(20) p50, 1 caller: at most 1.0x the mirror" "20 list 1" p50us le
target "List(20) calls/s, 8 callers: at least the mirror's" "20 list 8" rate ge
awk -v d="$(field p50us "${daemon_runs[1000 list 1]}")" -v m="$(field p50us "${mirror_runs[1000 list 1]}")" \
    'BEGIN { printf "| List(1000) p50, 1 caller: under 2 ms | %d µs | %d µs | %.2fx | %s |\n", d, m, d / m, d < 2000 ? "yes" : "no" }'
echo
echo "| measure | value |"
echo "|---|---:|"
echo "| start-up to connectable socket (empty store, median of 5) | ${startup} ms |"
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB (%d KiB)", k / 1024, k }'; }
echo "| daemon RSS, 20 programs | $(mib "$rss20") |"
echo "| daemon RSS, 1000 programs | $(mib "$rss1000") |"
# The release link orders the daemon's functions by packaging/bpfman.order (Package.swift); a profile gone stale
# (functions renamed since scripts/profile-order.sh ran) shows here as fewer names found, and in RSS.
ordered=$(nm --defined-only "$bpfman" | awk 'NR == FNR { want[$1] = 1; next } ($NF in want) { n++; delete want[$NF] } END { print n + 0 }' "$root/packaging/bpfman.order" -)
echo "| packaging/bpfman.order names found in the binary | $ordered of $(wc -l <"$root/packaging/bpfman.order") |"

# The reference daemon's numbers (INTEROP.md: upstream's Go bpfman, measured on this machine kind), next to
# this run's. They cannot be measured here (it is not installed), so they are quoted, not re-measured.
k() { awk -v v="$1" 'BEGIN { printf "%.1fk", v / 1000 }'; }
echo
echo "| against the reference daemon | Go bpfman (INTEROP.md) | bpfman (this run) |"
echo "|---|---:|---:|"
echo "| List p50, no programs | 566 µs | $(field p50us "$empty_list") µs |"
echo "| List p50, 20 programs | 3.66 ms | $(field p50us "${daemon_runs[20 list 1]}") µs |"
echo "| Get p50, an id that does not exist | 225 µs | $(field p50us "$unknown_get") µs |"
echo "| Get/s, 8 callers (this run: one of 20 managed programs) | 12.4k | $(k "$(field rate "${daemon_runs[20 get 8]}")") |"
echo "| List(20)/s, 8 callers | 0.5k | $(k "$(field rate "${daemon_runs[20 list 8]}")") |"
echo "| TCX Load+Attach p50 | 15 ms | $(awk -v u="$(field p50us "$tcx")" 'BEGIN { printf "%.1f", u / 1000 }') ms |"
echo "| RSS (this run: 20 / 1000 programs) | 65-73 MiB | $(mib "$rss20") / $(mib "$rss1000") |"
echo "| start-up to a connectable socket | 35-44 ms | ${startup} ms |"

# Old against new: the RSS of BASELINE's daemon and of this one, each fresh, with 20 and then 1000 programs.
if [ -n "${BASELINE:-}" ]; then
    # A plain copy of that revision (no worktree to register), kept for the next run under .build-baseline/.
    old_tree="$root/.build-baseline/$(git -C "$root" rev-parse --short "$BASELINE")"
    if [ ! -d "$old_tree" ]; then
        mkdir -p "$old_tree"
        git -C "$root" archive "$BASELINE" | tar -x -C "$old_tree"
    fi
    (cd "$old_tree" && swift build -c release --static-swift-stdlib --product bpfman >&2)
    fresh_rss() {  # binary, tag: prints "rss20 rss1000" in KiB
        local binary=$1 tag=$2 pid
        "$binary" serve --runtime-dir "$work/rd-$tag" --socket-path "$work/$tag.sock" --config "$work/bpfman.toml" &
        pid=$!
        pids+=("$pid")
        need_socket "$work/$tag.sock"
        local r20 r1000
        BPFMAN_SOCKET_PATH="$work/$tag.sock" load_to 20
        r20=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        BPFMAN_SOCKET_PATH="$work/$tag.sock" load_to 1000
        r1000=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
        # Unload everything (the kernel keeps ids while pins exist); the directory goes with the work dir.
        for p in $(BPFMAN_SOCKET_PATH="$work/$tag.sock" managed_ids); do
            BPFMAN_SOCKET_PATH="$work/$tag.sock" "$bpfman" unload "$p" >/dev/null
        done
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        umount -l "$work/rd-$tag/fs" 2>/dev/null || true
        echo "$r20 $r1000"
    }
    # Our own daemon's programs first, so that the two fresh daemons do not share the machine with 1000 more.
    for p in $(managed_ids); do "$bpfman" unload "$p" >/dev/null; done
    read -r old20 old1000 <<<"$(fresh_rss "$old_tree/.build/release/bpfman" old)"
    read -r new20 new1000 <<<"$(fresh_rss "$bpfman" new)"
    echo
    echo "| daemon RSS, fresh daemon | $BASELINE | this build |"
    echo "|---|---:|---:|"
    echo "| 20 programs | $(mib "$old20") | $(mib "$new20") |"
    echo "| 1000 programs | $(mib "$old1000") | $(mib "$new1000") |"
fi
