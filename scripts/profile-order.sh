#!/usr/bin/env bash
# Regenerates packaging/bpfman.order, the list of functions the daemon runs, which the release link hands to
# lld (--symbol-ordering-file, Package.swift) so that they sit together at the start of .text.
#
# Why: the daemon's resident memory is mostly executable text, and the kernel maps text in 64 KiB windows
# around each page the process touches (fault-around). Spread over 13 MB of .text, the few thousand functions
# a daemon runs pull in most of it; packed together they fill about half as many pages (README,
# "BpfmanServer", RSS).
#
# How: run the release daemon under callgrind on a temporary runtime dir, drive it the way the benchmark and
# users do (CLI loads, gets, lists, a tracepoint attach and detach, grpc-go Get/List callers), and keep every
# function of the bpfman executable that ran, sorted by name: what saves pages is that they sit together, not
# their order among themselves (first-seen order measured the same), and sorted output regenerates with small
# diffs. Stale names (code renamed since the profile) are ignored by the linker, so the file only needs
# regenerating when the daemon's hot code changes.
#
# Needs root (it loads programs), valgrind, and go (Interop/daemon/go/build.sh). Usage: scripts/profile-order.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "profile-order: needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "profile-order: needs root (it loads eBPF programs)" >&2; exit 1; }

source "$root/scripts/lib/scratch-daemon.sh"
scratch_start profile-order

(cd "$root" && swift build -c release --static-swift-stdlib --product bpfman >&2)
bpfman="$root/.build/release/bpfman"
bash "$root/scripts/build-fixtures.sh" >/dev/null
"$root/Interop/daemon/go/build.sh" "$work/load" "$root/Interop/daemon/bench/load.go"
object="$root/.build/bpf-fixtures/tracepoint_counter.bpf.o"
printf '[logging]\nlevel = "warn"\n' >"$work/bpfman.toml"

export BPFMAN_SOCKET_PATH="$work/d.sock"
valgrind --tool=callgrind --demangle=no --dump-instr=no --callgrind-out-file="$work/callgrind.out" \
    "$bpfman" serve --runtime-dir "$work/rd" --socket-path "$work/d.sock" --config "$work/bpfman.toml" \
    2>"$work/valgrind.log" &
daemon=$!
wait_for_socket "$work/d.sock" || { cat "$work/valgrind.log" >&2; exit 1; }

for _ in 1 2 3 4 5; do "$bpfman" load file -p "$object" --programs tracepoint:count_kill >/dev/null; done
id=$("$bpfman" list programs -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["kernel_info"]["id"])')
"$bpfman" get program "$id" >/dev/null
"$bpfman" list programs >/dev/null
link=$("$bpfman" attach "$id" tracepoint --tracepoint syscalls/sys_enter_kill -o json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["link_id"])')
"$bpfman" get link "$link" >/dev/null
"$bpfman" list links >/dev/null
"$work/load" -socket "$work/d.sock" -method get -id "$id" -callers 8 -seconds 2 >/dev/null
"$work/load" -socket "$work/d.sock" -method list -id "$id" -callers 8 -seconds 2 >/dev/null
"$bpfman" detach "$link"
"$bpfman" unload "$id"
kill -TERM "$daemon"
wait "$daemon" || true
daemon=

python3 - "$work/callgrind.out" "$bpfman" >"$work/bpfman.order" <<'PY'
import re, subprocess, sys
profile, executable = sys.argv[1], sys.argv[2]
defined = {line.split()[-1] for line in
           subprocess.run(["nm", "--defined-only", executable], capture_output=True, text=True, check=True).stdout.splitlines()}
objects, functions, ran = {}, {}, set()
current = None
# callgrind names each object and function once as "ob=(n) name" / "fn=(n) name", then by "(n)" alone.
for line in open(profile, errors="replace"):
    match = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
    if not match:
        continue
    kind, number, name = match.groups()
    table = objects if kind.endswith("ob") else functions
    if name:
        table[number] = name
    if kind == "ob":
        current = objects.get(number)
    elif kind == "fn" and current and current.endswith("/bpfman"):
        if functions[number] in defined:
            ran.add(functions[number])
print("\n".join(sorted(ran)))
PY
[ -s "$work/bpfman.order" ] || { echo "profile-order: no functions of $bpfman in the profile" >&2; exit 1; }
mv "$work/bpfman.order" "$root/packaging/bpfman.order"
echo "profile-order: $(wc -l <"$root/packaging/bpfman.order") functions written to packaging/bpfman.order" >&2
# SwiftPM does not know the link reads the order file: drop the executable so the next build links it again.
rm -f "$(readlink -f "$bpfman")"
