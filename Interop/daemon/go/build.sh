#!/usr/bin/env bash
# Builds Interop/daemon/go/agent.go in GOPATH mode with Debian's grpc-go (no network), against code
# generated from our proto/bpfman.proto under the import path the Kubernetes agent uses.
# Usage: Interop/daemon/go/build.sh OUTPUT_BINARY [MAIN_GO_FILE (default agent.go)]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../../proto" && pwd)
out=$1
main=${2:-$here/agent.go}
pkg=github.com/bpfman/bpfman/clients/gobpfman/v1
work=$(mktemp -d /tmp/server-go-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/agent"
protoc -I "$proto" --go_out="$work/src" --go_opt=paths=import --go_opt=Mbpfman.proto=$pkg \
    --go-grpc_out="$work/src" --go-grpc_opt=paths=import --go-grpc_opt=Mbpfman.proto=$pkg "$proto/bpfman.proto"
cp "$main" "$work/src/agent/main.go"
cd "$work/src/agent"
GOPATH="$work:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOCACHE="${GOCACHE:-/tmp/server-gocache}" \
    go build -o "$out" .
