#!/usr/bin/env bash
# Image benchmark (issue 18, its speed part): the release daemon (`make release`'s build) against the tools and
# builds it is measured by, both sides in the same run, one Markdown table on stdout (details on stderr).
#  a. A cold pull (policy Always) of a 4 MiB bytecode image from Debian's docker-registry on 127.0.0.1 through
#     the daemon's PullBytecode, against `skopeo copy docker://... oci:DIR:TAG` of the same image; median and
#     p90 of N each, taken in turns. The daemon side twice: the RPC alone (grpc-go, client.go) and
#     `bpfman image pull -p Always` as a process (its start included, as skopeo's is).
#  b. Load of the tracepoint fixture from the cached image (IfNotPresent) against Load of the same object from
#     its file, same program, alternating; each Load timed alone, the Unload after it untimed. Target: image
#     Load p50 at most 1.2x file Load p50.
#  c. Start-up to a connectable socket and RSS right after start-up (median of 5 starts each, alternating) of the
#     release build of HEAD and of 5272e85 (before any image code was linked), each built in this run from a
#     git worktree in /tmp into its own scratch path (.build-bench, .build-bench-old). The issue's rule: if
#     libcurl/libarchive/libcrypto add more than 2 MiB of RSS or 2 ms of start-up, the fetch moves to a helper.
# The image: one gzip tar layer of about 4 MiB (seeded random padding, then the BPF object last, so the daemon
# inflates all of it), written as an OCI layout by make_image.py, the same bytes every run.
# Needs root (bpffs, BPF loads). Takes under a minute once both builds are cached (worktree.sh keeps the
# worktrees' mtimes stable so the builds are incremental); the first run builds both from scratch, 5-6 minutes
# each on this VM.
# Usage: Interop/images/bench/run.sh [pulls (default 21)] [load rounds (default 51)]
#   BENCH_OLD_COMMIT (default 5272e85) and BENCH_NEW_COMMIT (default HEAD) choose the two builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
here="$root/Interop/images/bench"
pulls=${1:-21}
loads=${2:-51}
old_commit=$(git -C "$root" rev-parse --short "${BENCH_OLD_COMMIT:-5272e85}")
new_commit=$(git -C "$root" rev-parse --short "${BENCH_NEW_COMMIT:-HEAD}")
# Fixed worktree paths: SwiftPM's incremental build keys on them. One run at a time.
old_tree=/tmp/bpfman-bench-old
new_tree=/tmp/bpfman-bench-head
exec 9>/tmp/bpfman-image-bench.lock
flock -n 9 || { echo "run.sh: another image benchmark is running" >&2; exit 1; }

work=$(mktemp -d /tmp/img-bench-XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    umount -l "$work/rd/fs" 2>/dev/null || true
    for d in "$work"/start-*/fs; do umount -l "$d" 2>/dev/null || true; done
    rm -rf "$work"
    for t in "$old_tree" "$new_tree"; do
        git -C "$root" worktree remove --force "$t" 2>/dev/null || rm -rf "$t"
    done
    git -C "$root" worktree prune
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- builds: each commit from its own worktree into its own scratch path, as `make release` builds ----------
build() {  # build COMMIT TREE SCRATCH NAME
    bash "$here/worktree.sh" "$1" "$2"
    echo "building $4 ($1, release, --static-swift-stdlib) ..." >&2
    local t0=$SECONDS
    (cd "$2" && swift build -c release --static-swift-stdlib --product bpfman --scratch-path "$3" >&2)
    # Commits between 7ac351f and the one-executable change ship the fetcher as its own bpfman-image beside bpfman;
    # later ones run bpfman itself as the fetcher.
    if [ -d "$2/Sources/bpfman-image" ]; then
        (cd "$2" && swift build -c release --static-swift-stdlib --product bpfman-image --scratch-path "$3" >&2)
    fi
    echo "built $4 in $((SECONDS - t0)) s" >&2
    mkdir -p "$work/$4"
    cp "$3/release/bpfman" "$work/$4/bpfman"
    if [ -x "$3/release/bpfman-image" ] && [ -d "$2/Sources/bpfman-image" ]; then
        cp "$3/release/bpfman-image" "$work/$4/bpfman-image"
    fi
    # The XDP/TC dispatcher objects of that commit, so start-up includes its freplace probe as shipped (a
    # commit that embeds them in the executable has no scripts/build-bpf.sh and needs none).
    if [ -f "$2/scripts/build-bpf.sh" ]; then
        bash "$2/scripts/build-bpf.sh" "$work/$4/bpf" >&2
    fi
}
build "$old_commit" "$old_tree" "$root/.build-bench-old" old
build "$new_commit" "$new_tree" "$root/.build-bench" new
old_bin="$work/old/bpfman"
new_bin="$work/new/bpfman"
old_bpf=$([ -d "$work/old/bpf" ] && echo "$work/old/bpf" || true)
new_bpf=$([ -d "$work/new/bpf" ] && echo "$work/new/bpf" || true)
# The fixture as scripts/build-fixtures.sh compiles it, from the worktree's fixed path: its debug info records the
# directory, so the object (and the image's digests) are the same every run.
(cd "$new_tree" && clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu \
    -c Tests/Fixtures/bpf/tracepoint_counter.bpf.c -o "$work/tracepoint_counter.bpf.o")
object="$work/tracepoint_counter.bpf.o"
"$root/Interop/daemon/go/build.sh" "$work/client" "$here/client.go"
for t in "$old_tree" "$new_tree"; do git -C "$root" worktree remove --force "$t"; done

load_start=$(cut -d' ' -f1 /proc/loadavg)
# --- c. start-up and RSS, old and new taking turns (first, on a quiet machine) --------------------------------
printf '[logging]\nlevel = "warn"\n' >"$work/quiet.toml"
starts=$(python3 "$here/startup.py" "$work" "$work/quiet.toml" 5 "old=$old_bin:$old_bpf" "new=$new_bin:$new_bpf")
echo "$starts" >&2
field() { sed -E "s/.*[ ^]$1=([0-9.]+).*/\1/" <<<" $2"; }
old_start=$(grep '^old ' <<<"$starts")
new_start=$(grep '^new ' <<<"$starts")

# --- the registry and the image ------------------------------------------------------------------------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry/storage
http:
  addr: 127.0.0.1:$port
  secret: bpfman-bench
EOF
timeout --kill-after=5 900 docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 & pids+=($!)
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" || { cat "$work/registry/log" >&2; exit 1; }
made=$(python3 "$here/make_image.py" "$work/layout" v1 "$object" '{"count_kill":"tracepoint"}' $((4 << 20)) 18)
echo "image: $made" >&2
layer_bytes=$(field layer "$made")
image="127.0.0.1:$port/bench/tracepoint:v1"
skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://$image"

# --- the daemon (release build of the new commit) ------------------------------------------------------------
# info, so that its own "pulled image ... elapsed=" lines can be read back.
printf '[logging]\nlevel = "info"\n' >"$work/info.toml"
env ${new_bpf:+BPFMAN_BPF_DIR="$new_bpf"} "$new_bin" serve --runtime-dir "$work/rd" --socket-path "$work/d.sock" \
    --image-cache-dir "$work/cache" --config "$work/info.toml" 2>"$work/daemon.log" & pids+=($!)
daemon=$!
for _ in $(seq 300); do [ -S "$work/d.sock" ] && break; sleep 0.1; done
[ -S "$work/d.sock" ] || { cat "$work/daemon.log" >&2; exit 1; }
export BPFMAN_SOCKET_PATH="$work/d.sock"
rss() { awk '/^VmRSS/ {print $2}' "/proc/$daemon/status"; }
rss_started=$(rss)

# --- a. cold pulls, in turns ----------------------------------------------------------------------------------
now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
skopeo_pull() {
    rm -rf "$work/skopeo-out"
    local t0; t0=$(now_us)
    skopeo --insecure-policy copy --quiet --src-tls-verify=false "docker://$image" "oci:$work/skopeo-out:v1"
    echo $(($(now_us) - t0))
}
cli_pull() {
    local t0; t0=$(now_us)
    "$new_bin" image pull -i "$image" -p Always >/dev/null
    echo $(($(now_us) - t0))
}
rpc_pull() { field us "$("$work/client" -socket "$work/d.sock" -method pull -url "$image" -policy 0)"; }
# The first pull of the daemon's life and skopeo's first run, apart: one-time costs (libcurl's and OpenSSL's
# global initialisation, cold page cache of the binaries).
first_rpc=$(rpc_pull)
first_skopeo=$(skopeo_pull)
rpc=() cli=() sko=()
for i in $(seq "$pulls"); do
    rpc+=("$(rpc_pull)")
    cli+=("$(cli_pull)")
    sko+=("$(skopeo_pull)")
done
rss_pulled=$(rss)
echo "pull µs, RPC: ${rpc[*]}" >&2
echo "pull µs, CLI: ${cli[*]}" >&2
echo "pull µs, skopeo: ${sko[*]}" >&2
# The daemon's own account of each pull (ImageStore's "pulled image" line), for the RPC's overhead around it.
own=$(grep -o 'elapsed=[0-9.]* *[a-z]*' "$work/daemon.log" | awk '{ v = $1; sub("elapsed=", "", v); u = $2;
    if (u == "seconds") v *= 1e6; else if (u == "milliseconds") v *= 1e3; print int(v) }' | tail -n "$((2 * pulls))")
stats() {  # median and p90 (nearest rank) of µs values on stdin, as "p50 p90" in ms
    sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- -"; exit }
        i90 = int((NR * 9 + 9) / 10); printf "%.1f %.1f\n", v[int((NR + 1) / 2)] / 1000, v[i90] / 1000 }'
}
read -r rpc50 rpc90 <<<"$(printf '%s\n' "${rpc[@]}" | stats)"
read -r cli50 cli90 <<<"$(printf '%s\n' "${cli[@]}" | stats)"
read -r sko50 sko90 <<<"$(printf '%s\n' "${sko[@]}" | stats)"
read -r own50 own90 <<<"$(stats <<<"$own")"

# --- b. Load from the cached image against Load from the file ------------------------------------------------
loaded=$("$work/client" -socket "$work/d.sock" -method load-both -url "$image" -policy 1 -object "$object" -n "$loads")
echo "$loaded" >&2
file_line=$(grep '^file ' <<<"$loaded")
image_line=$(grep '^image ' <<<"$loaded")
rss_end=$(rss)
pulled_after=$(grep -c 'pulled image' "$work/daemon.log" || true)
echo "daemon pulls logged: $pulled_after (expected $((2 * pulls + 1)): the Loads from the cache must pull nothing)" >&2

# --- the table ------------------------------------------------------------------------------------------------
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v <= t ? "met" : "missed") }'; }
f50=$(field p50us "$file_line"); f90=$(field p90us "$file_line")
i50=$(field p50us "$image_line"); i90=$(field p90us "$image_line")
load_ratio=$(awk -v a="$i50" -v b="$f50" 'BEGIN { printf "%.3f", a / b }')
old_rss=$(field rss_kib "$old_start"); new_rss=$(field rss_kib "$new_start")
old_ms=$(field startup_ms "$old_start"); new_ms=$(field startup_ms "$new_start")
drss=$((new_rss - old_rss))
dms=$(awk -v a="$new_ms" -v b="$old_ms" 'BEGIN { printf "%.1f", a - b }')
old_min=$(field min_ms "$old_start"); new_min=$(field min_ms "$new_start")
dmin=$(awk -v a="$new_min" -v b="$old_min" 'BEGIN { printf "%+.1f", a - b }')
layer_mib=$(awk -v b="$layer_bytes" 'BEGIN { printf "%.2f", b / 1048576 }')

echo "| measure | bpfman ($new_commit, release) | against | ratio / difference | target | |"
echo "|---|---:|---:|---:|---|---|"
echo "| a. cold pull, ${layer_mib} MiB layer, policy Always: PullBytecode RPC alone (grpc-go), p50 / p90 of $pulls | $rpc50 / $rpc90 ms | skopeo copy to oci: (process) $sko50 / $sko90 ms | $(ratio "$rpc50" "$sko50") | none set | |"
echo "| a. the same as \`bpfman image pull -p Always\` (process, start included) | $cli50 / $cli90 ms | skopeo $sko50 / $sko90 ms | $(ratio "$cli50" "$sko50") | none set | |"
echo "| a. of the RPC, the daemon's own pull (its log's elapsed), p50 / p90 | $own50 / $own90 ms | | | | |"
echo "| a. first pull of the daemon's life / skopeo's first run (one-time costs included) | $(ms "$first_rpc") ms | $(ms "$first_skopeo") ms | $(ratio "$first_rpc" "$first_skopeo") | | |"
echo "| b. Load p50, cached image (IfNotPresent) vs file, $loads each | $(ms "$i50") ms | file $(ms "$f50") ms | $(ratio "$i50" "$f50") | ≤ 1.2x | $(verdict "$load_ratio" 1.2) |"
echo "| b. Load p90, same runs | $(ms "$i90") ms | file $(ms "$f90") ms | $(ratio "$i90" "$f90") | | |"
echo "| c. RSS right after start-up (VmRSS 200 ms after the socket answers, median of 5) | $(mib "$new_rss") ($new_rss KiB) | $old_commit: $(mib "$old_rss") ($old_rss KiB) | $(awk -v k="$drss" 'BEGIN { printf "%+.1f MiB", k / 1024 }') | ≤ +2 MiB | $(verdict "$drss" 2048) |"
echo "| c. of which file-backed / anonymous | $(mib "$(field file_kib "$new_start")") / $(mib "$(field anon_kib "$new_start")") | $(mib "$(field file_kib "$old_start")") / $(mib "$(field anon_kib "$old_start")") | | | |"
echo "| c. shared objects mapped | $(field libs "$new_start") | $(field libs "$old_start") | | | |"
echo "| c. start-up to a connectable socket (median of 5) | $new_ms ms | $old_commit: $old_ms ms | $(awk -v d="$dms" 'BEGIN { printf "%+.1f", d }') ms | ≤ +2 ms | $(verdict "$dms" 2) |"
echo "| c. the fastest of the 5 starts | $new_min ms | $old_commit: $old_min ms | $dmin ms | | |"
echo "| daemon RSS: started / after the $((2 * pulls + 1)) pulls / after the Loads | $(mib "$rss_started") / $(mib "$rss_pulled") / $(mib "$rss_end") | | | | |"
echo "| load average (1 min) when the measurements began / ended (2 cores; above ~1 means other work shared them) | $load_start / $(cut -d' ' -f1 /proc/loadavg) | | | | |"
