#!/usr/bin/env bash
# Our proto/bpfman.proto and proto/csi.proto must define the same contract as the upstream files
# in reference-proto/: same packages, services, messages, fields, numbers, types, labels and options.
# protoc's descriptor sets carry no comments without --include_source_info, so the sets must be
# byte-identical. Skips (exit 0, with a reason) when protoc is not installed.
# Usage: scripts/check-proto-contract.sh [reference-dir]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ref=${1:-${REFERENCE_PROTO:-$root/../shared/reference-proto}}
if ! command -v protoc >/dev/null; then
    echo "check-proto-contract: skipped: protoc not installed (apt protobuf-compiler)"
    exit 0
fi
if [[ ! -d $ref ]]; then
    echo "check-proto-contract: skipped: no reference protos at $ref"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for f in bpfman.proto csi.proto; do
    protoc -I "$root/proto" -I /usr/include --descriptor_set_out="$tmp/ours.pb" "$f"
    protoc -I "$ref" -I /usr/include --descriptor_set_out="$tmp/theirs.pb" "$f"
    if cmp -s "$tmp/ours.pb" "$tmp/theirs.pb"; then
        echo "check-proto-contract: $f matches the reference"
    else
        echo "check-proto-contract: $f differs from $ref/$f (descriptor sets are not identical)"
        status=1
    fi
done
exit $status
