#!/usr/bin/env bash
# Builds Interop/csi/go/kubelet.go in GOPATH mode with Debian's grpc-go (no network), against code generated from
# our proto/csi.proto under the import path Kubernetes uses (github.com/container-storage-interface/spec/lib/go/csi).
# Usage: Interop/csi/go/build.sh OUTPUT_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
proto=$(cd "$here/../../../proto" && pwd)
out=$1
pkg=github.com/container-storage-interface/spec/lib/go/csi
work=$(mktemp -d /tmp/csi-go-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/kubelet"
protoc -I "$proto" -I /usr/include --go_out="$work/src" --go_opt=paths=import --go_opt=Mcsi.proto=$pkg \
    --go-grpc_out="$work/src" --go-grpc_opt=paths=import --go-grpc_opt=Mcsi.proto=$pkg "$proto/csi.proto"
cp "$here/kubelet.go" "$work/src/kubelet/main.go"
cd "$work/src/kubelet"
GOPATH="$work:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOCACHE="${GOCACHE:-/tmp/csi-gocache}" \
    go build -o "$out" .
