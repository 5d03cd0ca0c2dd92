#!/usr/bin/env bash
# Transport benchmark: grpc-go load generator against h2-echo-server (H2Transport) and a grpc-go
# server with the same trivial unary method, over Unix sockets, same run, alternating.
# Prints a Markdown table: throughput, p50/p99 latency, server CPU time per call, RSS.
# Usage: Interop/bench/run.sh [seconds-per-run (default 3)] [rounds (default 2)]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-3}
rounds=${2:-2}
work=$(mktemp -d /tmp/h2bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

echo "building (release) ..." >&2
(cd "$root" && swift build -c release --scratch-path .build-bench --product h2-echo-server >&2)
swift_bin="$root/.build-bench/release/h2-echo-server"
"$root/Interop/h2/go/build.sh" "$work/goserver" "$root/Interop/bench/goserver.go"
"$root/Interop/h2/go/build.sh" "$work/loadgen" "$root/Interop/bench/loadgen.go"

wait_for() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }
"$swift_bin" --unix "$work/swift.sock" >/dev/null & pids+=($!); swift_pid=$!
"$work/goserver" -socket "$work/go.sock" >/dev/null & pids+=($!); go_pid=$!
wait_for "$work/swift.sock"; wait_for "$work/go.sock"
sleep 1

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick_hz=$(getconf CLK_TCK)
declare -A idle=([swift]=$(rss_kib "$swift_pid") [go]=$(rss_kib "$go_pid"))
declare -A pid=([swift]=$swift_pid [go]=$go_pid)
declare -A calls rate p50 p99 cpu
for c in 1 8 64; do
    for r in $(seq "$rounds"); do
        for s in swift go; do
            before=$(cpu_ticks "${pid[$s]}")
            line=$("$work/loadgen" -socket "$work/$s.sock" -callers "$c" -seconds "$seconds")
            after=$(cpu_ticks "${pid[$s]}")
            echo "$s c=$c round=$r: $line" >&2
            eval "$(sed -E 's/([a-z0-9]+)=([0-9.]+)/local_\1=\2;/g' <<<"$line")"
            k="$s,$c"
            calls[$k]=$(( ${calls[$k]:-0} + local_calls ))
            cpu[$k]=$(( ${cpu[$k]:-0} + after - before ))
            rate[$k]="${rate[$k]:-} $local_rate"
            p50[$k]="${p50[$k]:-} $local_p50us"
            p99[$k]="${p99[$k]:-} $local_p99us"
        done
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "| callers | server | calls/s | p50 µs | p99 µs | CPU µs/call | ratio calls/s (swift/go) |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for c in 1 8 64; do
    sr=$(median <<<"${rate[swift,$c]}"); gr=$(median <<<"${rate[go,$c]}")
    for s in swift go; do
        k="$s,$c"
        r=$(median <<<"${rate[$k]}")
        cpc=$(awk -v t="${cpu[$k]}" -v n="${calls[$k]}" -v hz="$tick_hz" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
        ratio=""; [ "$s" = swift ] && ratio=$(awk -v a="$sr" -v b="$gr" 'BEGIN {printf "%.2fx", a / b}')
        echo "| $c | $s | $r | $(median <<<"${p50[$k]}") | $(median <<<"${p99[$k]}") | $cpc | $ratio |"
    done
done
echo
echo "| server | idle RSS MiB | peak RSS MiB |"
echo "|---|---:|---:|"
for s in swift go; do
    awk -v i="${idle[$s]}" -v h="$(hwm_kib "${pid[$s]}")" -v s="$s" 'BEGIN {printf "| %s | %.1f | %.1f |\n", s, i / 1024, h / 1024}'
done
