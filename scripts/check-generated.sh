#!/usr/bin/env bash
# Regenerates Sources/Proto/Generated into a temp dir with ProtoGen and fails on any difference.
# Usage: scripts/check-generated.sh [--fix]   (--fix rewrites the checked-in files instead)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=${PROTO_SCRATCH:-.build-proto}
swift build --scratch-path "$scratch" --product ProtoGen >/dev/null
gen="$scratch/debug/ProtoGen"
if [[ ${1:-} == --fix ]]; then
    "$gen" --out Sources/Proto/Generated
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$gen" --out "$tmp" >/dev/null
if ! diff -ru Sources/Proto/Generated "$tmp"; then
    echo "check-generated: Sources/Proto/Generated is stale; run scripts/check-generated.sh --fix" >&2
    exit 1
fi
echo "check-generated: generated code is fresh"
