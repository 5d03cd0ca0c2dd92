#!/usr/bin/env bash
# The daemon as it ships (`make release`: static Swift runtime, lld, packaging/bpfman.order) on a real kernel:
# `bpfman serve` on a temporary runtime dir, then its own CLI loads a tracepoint program, attaches it, lists it,
# detaches and unloads it, and SIGTERM ends the daemon with exit status 0. The test suites run the debug build;
# this is what catches a release link that builds but does not run. Needs root (bpffs, program loads); without
# it, says so and exits 0 without having run.
# Usage: scripts/release-smoke.sh   (after `make release` and scripts/build-fixtures.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "release-smoke: skipped: needs root to mount bpffs and load programs"
    exit 0
fi
bpfman="$root/.build/release/bpfman"
object="$root/.build/bpf-fixtures/tracepoint_counter.bpf.o"
source "$root/scripts/lib/scratch-daemon.sh"
scratch_start release-smoke
fail() {
    echo "release-smoke: FAILED: $*" >&2
    [ -f "$work/daemon.log" ] && tail -20 "$work/daemon.log" >&2
    exit 1
}

"$bpfman" serve --runtime-dir "$work/rd" --socket-path "$work/bpfman.sock" >"$work/daemon.log" 2>&1 &
daemon=$!
wait_for_socket "$work/bpfman.sock" || fail "no socket after 60 s"
export BPFMAN_SOCKET_PATH="$work/bpfman.sock"

loaded=$("$bpfman" load file -p "$object" --programs tracepoint:count_kill -o json) || fail "load"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["kernel_info"]["id"])' <<<"$loaded")
bpftool prog show id "$id" >/dev/null 2>&1 || fail "program $id is not in the kernel after load"
attached=$("$bpfman" attach "$id" tracepoint --tracepoint syscalls/sys_enter_kill -o json) || fail "attach"
link=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["link_id"])' <<<"$attached")
"$bpfman" list programs | grep -q "^$id " || fail "list programs does not show $id"
"$bpfman" detach "$link" || fail "detach"
"$bpfman" unload "$id" || fail "unload"
bpftool prog show id "$id" >/dev/null 2>&1 && fail "program $id is still in the kernel after unload"

kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=
[ "$status" = 0 ] || fail "daemon exited with status $status after SIGTERM"
echo "release-smoke: passed (program $id loaded, attached as link $link, listed, detached, unloaded)"
