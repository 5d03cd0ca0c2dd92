#!/usr/bin/env bash
# What signature checking costs a pull (README, "Image signatures"): the release bpfman (`make release`) pulls one
# 4 MiB image with policy Always through the CLI, `pulls` times each, under three configs, in two rounds, printed
# side by side: verification off; on (the default) with an unsigned image (the `.sig` tag, the referrers API and the
# tag-schema index are asked for and are absent); on with a referrer bundle that is verified (made by
# Interop/images/sigstore_forge.py with a test trust root). Debian's docker-registry on 127.0.0.1. Run as root.
# Usage: Interop/images/bench/signatures.sh [pulls (21)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
pulls=${1:-21}
bin=$root/.build/release/bpfman
object=$root/.build/bpf-fixtures/tracepoint_counter.bpf.o
[ -x "$bin" ] || { echo "signatures.sh: build it first: make release" >&2; exit 1; }
[ -f "$object" ] || { echo "signatures.sh: build the fixtures first: make fixtures" >&2; exit 1; }
work=$(mktemp -d /tmp/bpfman-sigbench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for mount in $(grep -o "$work/[^ ]*/fs" /proc/mounts || true); do umount "$mount" || true; done
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n  secret: bpfman-bench\n' \
    "$work/registry/storage" "$port" >"$work/registry/config.yml"
timeout --kill-after=5 900 docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break; sleep 0.1; done
python3 "$here/make_image.py" "$work/layout" v1 "$object" '{"count_kill":"tracepoint"}' $((4 << 20)) 18 >/dev/null
for repo in unsigned signed; do
    skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$work/layout:v1" "docker://127.0.0.1:$port/$repo:v1"
done
digest=$(skopeo --insecure-policy inspect --tls-verify=false --raw "docker://127.0.0.1:$port/signed:v1" | sha256sum | cut -c1-64)
python3 "$here/../sigstore_forge.py" root "$work/trust"
python3 "$here/../sigstore_forge.py" sign-image --root "$work/trust" --digest "sha256:$digest" --format bundle \
    --registry "127.0.0.1:$port" --repository signed

measure() {  # CONFIG REPOSITORY LABEL
    printf '[logging]\nlevel = "warn"\n%b' "$1" >"$work/config.toml"
    local rd=$work/rd-$RANDOM
    rm -rf "$work/cache"
    SIGSTORE_ROOT_FILE="$work/trust/trusted_root.json" "$bin" serve --runtime-dir "$rd" --socket-path "$work/d.sock" \
        --image-cache-dir "$work/cache" --config "$work/config.toml" 2>"$work/daemon.log" &
    local daemon=$!
    for _ in $(seq 300); do [ -S "$work/d.sock" ] && break; sleep 0.05; done
    export BPFMAN_SOCKET_PATH=$work/d.sock
    "$bin" image pull -i "127.0.0.1:$port/$2:v1" -p Always >/dev/null  # the daemon's first pull, apart
    local times=()
    for _ in $(seq "$pulls"); do
        local t0=${EPOCHREALTIME/./}
        "$bin" image pull -i "127.0.0.1:$port/$2:v1" -p Always >/dev/null
        times+=($((${EPOCHREALTIME/./} - t0)))
    done
    kill "$daemon"; wait "$daemon" 2>/dev/null || true
    rm -f "$work/d.sock"; umount "$rd/fs" 2>/dev/null || true
    printf '%s\n' "${times[@]}" | sort -n | awk -v label="$3" '{ v[NR] = $1 } END {
        printf "%-44s p50 %6.1f ms   p90 %6.1f ms\n", label, v[int((NR + 1) / 2)] / 1000, v[int((NR * 9 + 9) / 10)] / 1000 }'
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $pulls pulls each"
for _ in 1 2; do
    measure '[signing]\nverify_enabled = false\n' unsigned "verification off"
    measure '' unsigned "verification on, unsigned image (lookups)"
    measure '[signing]\nallow_unsigned = false\n' signed "verification on, referrer bundle verified"
done
