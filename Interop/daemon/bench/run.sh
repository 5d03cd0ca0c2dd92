#!/usr/bin/env bash
# Daemon benchmark (issue 8): grpc-go load generator against `bpfman serve` (release build as `make release`) and against an
# empty grpc-go server answering the same methods (the floor), same kind of Unix socket, same run. A second grpc-go
# server (the mirror) answers every call with the daemon's own Get and List answers, fetched once: what a gRPC
# daemon that had the real answer ready would cost, the client's decoding of it included.
# Get and List(bpfman_programs_only) p50/p99 and throughput with 1 and 8 callers at 20 and 100 managed
# programs; Get while other callers List; daemon RSS with 20 and 1000 programs; start-up to a connectable socket with an empty store.
# Beside List, the kernel reads SPEC §3.8 requires of it, timed alone in C (reads.c). Last, this run's numbers
# next to those INTEROP.md quotes for the reference daemon (upstream's Go bpfman), with an empty store's List,
# a Get of an id that does not exist and a TCX Load+Attach measured for that comparison.
# Needs root (it loads tracepoint programs). Prints a Markdown table.
# Usage: Interop/daemon/bench/run.sh [seconds-per-run (default 3)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here="$root/Interop/daemon/bench"
seconds=${1:-3}
work=$(mktemp -d /tmp/srv-bench-XXXXXX)
pids=()
declare -A list1 reads daemon_runs
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
clang -O2 -o "$work/reads" "$here/reads.c" -lbpf
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

echo "| programs | method | callers | bpfman calls/s | floor calls/s | mirror calls/s | bpfman p50 µs | floor p50 µs | mirror p50 µs | bpfman p99 µs | floor p99 µs | p50 ratio | throughput ratio | mirror p50 ratio | mirror throughput ratio |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in 20 100; do
    load_to "$n"
    [ "$n" = 20 ] && rss20=$(rss)
    id=$(first_id)
    if [ -n "${mirror:-}" ]; then kill "$mirror"; wait "$mirror" 2>/dev/null || true; fi
    rm -f "$work/m.sock"
    "$work/floor" -socket "$work/m.sock" -mirror "$work/d.sock" -id "$id" & pids+=($!); mirror=$!
    need_socket "$work/m.sock"
    for method in get list; do
        for callers in 1 8; do
            d=$(run "$work/d.sock" "$method" "$id" "$callers")
            f=$(run "$work/f.sock" "$method" "$id" "$callers")
            m=$(run "$work/m.sock" "$method" "$id" "$callers")
            echo "$n $method c=$callers bpfman: $d | floor: $f | mirror: $m" >&2
            daemon_runs["$n $method $callers"]=$d
            [ "$method$callers" = list1 ] && list1["$n"]="$(field p50us "$d") $(field p50us "$f") $(field p50us "$m")"
            awk -v n="$n" -v m="$method" -v c="$callers" \
                -v dr="$(field rate "$d")" -v fr="$(field rate "$f")" -v mr="$(field rate "$m")" \
                -v d50="$(field p50us "$d")" -v f50="$(field p50us "$f")" -v m50="$(field p50us "$m")" \
                -v d99="$(field p99us "$d")" -v f99="$(field p99us "$f")" \
                'BEGIN { printf "| %d | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %.2fx | %.2fx | %.2fx | %.2fx |\n", n, m, c, dr, fr, mr, d50, f50, m50, d99, f99, d50 / f50, dr / fr, m50 / f50, mr / fr }'
        done
    done
    # shellcheck disable=SC2046 # one argument per id
    reads["$n"]=$("$work/reads" 2000 $(managed_ids))
    echo "$n SPEC §3.8 reads alone: ${reads[$n]}" >&2
done
# What SPEC §3.8 alone costs a List: its kernel reads of the same programs, done by a C program with nothing
# else around them (reads.c), added to the mirror's p50 (a server that answers the real List with no work).
echo
echo "| List, 1 caller | bpfman p50 µs | floor p50 µs | mirror p50 µs | SPEC §3.8 reads alone (C) p50 µs | bpfman / floor | (mirror + reads) / floor |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for n in 20 100; do
    read -r d50 f50 m50 <<<"${list1[$n]}"
    r50=$(field p50us "${reads[$n]}")
    awk -v n="$n" -v d="$d50" -v f="$f50" -v m="$m50" -v r="$r50" \
        'BEGIN { printf "| %d programs | %d | %d | %d | %.1f | %.2fx | %.2fx |\n", n, d, f, m, r, d / f, (m + r) / f }'
done
# Reads do not queue behind each other: Get (one caller) while two other callers List the 100 programs in a
# loop, the daemon next to the mirror (whose List answer is the daemon's, ready-made).
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
echo
echo "| 100 programs, Get while 2 callers List | bpfman p50 µs | bpfman p99 µs | mirror p50 µs | mirror p99 µs |"
echo "|---|---:|---:|---:|---:|"
echo "| Get, 1 caller | $(field p50us "$d") | $(field p99us "$d") | $(field p50us "$m") | $(field p99us "$m") |"
load_to 1000
rss1000=$(rss)
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
