#!/usr/bin/env bash
# The daemon as it ships (`make release`: static Swift runtime, lld, packaging/bpfman.order) on a real kernel.
# The release `bpfman` is copied ALONE into an empty directory (no bpf/ beside it: the XDP/TC dispatchers are
# embedded, SPEC §1.10) and run from there: `bpfman serve` on a temporary runtime dir, then its own CLI
#  - loads a tracepoint program, attaches it, lists it, detaches and unloads it;
#  - attaches an XDP and a TC program to a veth in a private netns and checks the kernel has them (`ip link`,
#    `tc filter`), then detaches both and checks they are gone (native mode on kernel A; dispatcher mode where
#    freplace works, then the interface runs the dispatcher);
#  - attaches a uprobe with `container_pid` (SPEC §4.14), which the daemon resolves by running its own executable
#    as the `bpfman-ns` helper (nothing is copied beside it for that);
# and SIGTERM ends the daemon with exit status 0. The test suites run the debug build; this is what catches a
# release link that builds but does not run, or a release binary that needs files beside it. Needs root (bpffs,
# program loads, netns); without it, says so and exits 0 without having run.
# Usage: scripts/release-smoke.sh   (after `make release` and scripts/build-fixtures.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
    echo "release-smoke: skipped: needs root to mount bpffs and load programs"
    exit 0
fi
release="$root/.build/release"
fixtures="$root/.build/bpf-fixtures"
object="$fixtures/tracepoint_counter.bpf.o"
for built in "$release/bpfman" "$object" "$fixtures/xdp_counter.bpf.o" \
    "$fixtures/tc_counter.bpf.o" "$fixtures/uprobe_counter.bpf.o"; do
    [ -e "$built" ] || { echo "release-smoke: $built missing: run make release fixtures" >&2; exit 1; }
done
source "$root/scripts/lib/scratch-daemon.sh"
scratch_start release-smoke
ns=release-smoke-$$
trap 'ip netns del "$ns" 2>/dev/null || true; scratch_cleanup' EXIT
fail() {
    echo "release-smoke: FAILED: $*" >&2
    [ -f "$work/daemon.log" ] && tail -20 "$work/daemon.log" >&2
    exit 1
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# The release binary alone: nothing beside it, no override in the environment.
mkdir "$work/bin"
cp "$release/bpfman" "$work/bin/bpfman"
bpfman="$work/bin/bpfman"
unset BPFMAN_NS_PATH

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

# XDP and TC on a veth in a private netns: what a release binary without bpf/ beside it could not do before
# ("xdp attachment is not available: this engine was started without the dispatcher").
mode=$(sed -n 's/.*XDP\/TC attach mode: \([a-z]*\).*/\1/p' "$work/daemon.log" | head -1)
[ -n "$mode" ] || fail "no 'XDP/TC attach mode' line in the daemon's log"
ip netns add "$ns"
ip -n "$ns" link add rs0 type veth peer name rs1
ip -n "$ns" link set rs0 up
ip -n "$ns" link set rs1 up
netns="/var/run/netns/$ns"
xdp_id=$("$bpfman" load file -p "$fixtures/xdp_counter.bpf.o" --programs xdp:xdp_count_pass -o json |
    json 'd[0]["kernel_info"]["id"]') || fail "load xdp"
xdp_link=$("$bpfman" attach "$xdp_id" xdp --iface rs0 --netns "$netns" --priority 50 -o json |
    json 'd["link_id"]') || fail "attach xdp ($mode mode)"
on_iface=$(ip -n "$ns" -j -d link show dev rs0 | json 'd[0].get("xdp", {}).get("prog", {}).get("id", 0)')
[ "$on_iface" != 0 ] || fail "no XDP program on rs0 after attach"
if [ "$mode" = native ]; then
    [ "$on_iface" = "$xdp_id" ] || fail "rs0 runs XDP program $on_iface, not $xdp_id (native mode)"
else
    grep -q xdp_dispatcher <<<"$(bpftool prog show id "$on_iface")" \
        || fail "rs0 runs program $on_iface, not a dispatcher"
fi
tc_id=$("$bpfman" load file -p "$fixtures/tc_counter.bpf.o" --programs tc:tc_count_ok -o json |
    json 'd[0]["kernel_info"]["id"]') || fail "load tc"
tc_link=$("$bpfman" attach "$tc_id" tc --direction ingress --iface rs0 --netns "$netns" --priority 50 -o json |
    json 'd["link_id"]') || fail "attach tc ($mode mode)"
filters=$(ip netns exec "$ns" tc filter show dev rs0 ingress)
if [ "$mode" = native ]; then
    grep -q "id $tc_id " <<<"$filters" || fail "no filter of program $tc_id on rs0 ingress: $filters"
else
    grep -q "tc_dispatcher" <<<"$filters" || fail "no dispatcher filter on rs0 ingress: $filters"
fi
"$bpfman" detach "$xdp_link" || fail "detach xdp"
"$bpfman" detach "$tc_link" || fail "detach tc"
[ "$(ip -n "$ns" -j -d link show dev rs0 | json '"xdp" in d[0]')" = False ] || fail "XDP still on rs0 after detach"
[ -z "$(ip netns exec "$ns" tc filter show dev rs0 ingress)" ] || fail "filters left on rs0 ingress after detach"
"$bpfman" unload "$xdp_id" || fail "unload xdp"
"$bpfman" unload "$tc_id" || fail "unload tc"

# bpfman run as bpfman-ns (/proc/self/exe, argv[0] "bpfman-ns"): a uprobe on libc's getpid through this shell's
# mount namespace (container_pid = our pid). The release binary must still be single-threaded when it calls setns.
up_id=$("$bpfman" load file -p "$fixtures/uprobe_counter.bpf.o" --programs uprobe:count_call -o json |
    json 'd[0]["kernel_info"]["id"]') || fail "load uprobe"
up_link=$("$bpfman" attach "$up_id" uprobe --target libc --fn-name getpid --container-pid $$ --output json |
    json 'd["link_id"]') || fail "attach uprobe with --container-pid (bpfman-ns)"
grep -q "prog $up_id" <<<"$(bpftool link show)" || fail "no kernel link of program $up_id after the uprobe attach"
"$bpfman" detach "$up_link" || fail "detach uprobe"
"$bpfman" unload "$up_id" || fail "unload uprobe"

kill -TERM "$daemon"
status=0
wait "$daemon" || status=$?
daemon=
[ "$status" = 0 ] || fail "daemon exited with status $status after SIGTERM"

# `make install`'s step into a scratch DESTDIR: the executable, the man page it was generated with (Go-era verbs
# included, readable by man), and the completions in the order users type `attach <id> <kind>`.
DESTDIR="$work/dest" PREFIX=/usr bash "$root/scripts/install.sh" >/dev/null || fail "scripts/install.sh"
installed="$work/dest/usr"
"$installed/sbin/bpfman" --version | grep -q '^bpfman ' || fail "installed bpfman does not run"
grep -q '^\.Dt BPFMAN 8' "$installed/share/man/man8/bpfman.8" || fail "installed man page has no .Dt BPFMAN 8 (mdoc)"
grep -q 'generate-build-args' "$installed/share/man/man8/bpfman.8" || fail "man page lacks the Go-era image verbs"
if command -v man >/dev/null; then
    MANWIDTH=100 man -l "$installed/share/man/man8/bpfman.8" 2>/dev/null | grep -q 'bpfman attach' ||
        fail "man cannot render the installed man page"
fi
grep -q 'unparsed_words\[0\]}" == attach' "$installed/share/bash-completion/completions/bpfman" ||
    fail "bash completion lacks the attach <id> <kind> order"
grep -q 'program_ids' "$installed/share/zsh/vendor-completions/_bpfman" || fail "zsh completion lacks program ids"
grep -q '__bpfman_attach_wants_program_id' "$installed/share/fish/vendor_completions.d/bpfman.fish" ||
    fail "fish completion lacks program ids"

echo "release-smoke: passed with bpfman alone in $work/bin (tracepoint program $id attached as link $link," \
    "listed, detached, unloaded; XDP $xdp_id and TC $tc_id attached in $mode mode and seen by the kernel," \
    "detached, unloaded; uprobe $up_id attached through bpfman run as bpfman-ns; installed with its man page" \
    "and completions)"
