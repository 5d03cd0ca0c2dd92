#!/usr/bin/env bash
# Builds the container image bpfman-operator deploys as the daemon (SPEC §1.10), without a container engine:
# an OCI archive at .build/bpfman-image.tar (or $1), tagged bpfman:<version> (localhost/bpfman:<version> once
# loaded), from the release build (`make release`: the one executable, bpfman) and this machine's Debian
# shared libraries. scripts/oci-image.py writes it; see there for what goes in and how it stays reproducible.
#
# Load it with `podman load -i .build/bpfman-image.tar`, or `skopeo copy oci-archive:.build/bpfman-image.tar
# containers-storage:localhost/bpfman:<version>`, or push it with `skopeo copy oci-archive:.build/bpfman-image.tar
# docker://REGISTRY/bpfman:<version>` (README, "Kubernetes").
#
# Environment:
#   BIN_DIR            where the release executables are; default: the release build's bin path
#   SOURCE_DATE_EPOCH  the time of every entry and of the config; default: the commit's time
set -euo pipefail
cd "$(dirname "$0")/.."

output=${1:-.build/bpfman-image.tar}
bin_dir=${BIN_DIR:-$(swift build -c release --static-swift-stdlib --show-bin-path)}

executables=()
for name in bpfman; do
    [ -x "$bin_dir/$name" ] || { echo "build-image: no $bin_dir/$name; run 'make release' first" >&2; exit 1; }
    executables+=(--executable "$bin_dir/$name")
done
version=$("$bin_dir/bpfman" version | awk '{ print $NF }')
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Uncommitted changes are in the binaries but not in the revision: say so in the label.
if [ "$revision" != unknown ] && ! git diff --quiet HEAD -- 2>/dev/null; then revision="$revision-dirty"; fi
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# libcurl as the fetcher uses it (HTTP(S), OpenSSL), built from Debian's source of the installed version, instead
# of Debian's build and the 26 libraries it links for protocols bpfman never speaks.
libcurl=$(bash scripts/build-libcurl.sh)

args=(build --output "$output" --version "$version" --revision "$revision" --epoch "$epoch" "${executables[@]}"
    --replace-library "libcurl.so.4=$libcurl")

# Smoke test: the unpacked image must run its executables by themselves (every library found, the loader
# included) when this machine lets us chroot. The Swift runtime reads its arguments from /proc/self/cmdline,
# so the chroot gets a /proc of its own, in mount and pid namespaces that vanish with it.
stage=""
if [ "$(id -u)" = 0 ]; then
    stage=$(mktemp -d /tmp/bpfman-image-root.XXXXXX)
    trap 'rm -rf "$stage"' EXIT
    args+=(--stage "$stage")
fi

mkdir -p "$(dirname "$output")"
start=$(date +%s.%N)
python3 scripts/oci-image.py "${args[@]}"
if [ -n "$stage" ]; then
    mkdir -p "$stage/proc"
    in_image=(env -i "$(command -v unshare)" --mount --pid --fork --mount-proc="$stage/proc"
        "$(command -v chroot)" "$stage")
    got=$("${in_image[@]}" /usr/sbin/bpfman version | awk '{ print $NF }') || got=""
    [ "$got" = "$version" ] || { echo "build-image: the image's bpfman says '$got', not '$version'" >&2; exit 1; }
    # bpfman under the helpers' names (the image's symlinks): what each answers a request it cannot use shows that
    # the name reaches the right code.
    got=$("${in_image[@]}" /usr/sbin/bpfman-ns 2>&1 </dev/null || true)
    [[ $got == usage:* ]] || { echo "build-image: the image cannot run bpfman-ns: $got" >&2; exit 1; }
    got=$("${in_image[@]}" /usr/sbin/bpfman-image 2>&1 </dev/null || true)
    [[ $got == *'"failure"'* ]] || { echo "build-image: the image cannot run bpfman-image: $got" >&2; exit 1; }
fi
awk -v s="$start" -v e="$(date +%s.%N)" -v o="$output" -v v="$version" \
    'BEGIN { printf "build-image: %s, bpfman:%s, %.1f s\n", o, v, e - s }'
