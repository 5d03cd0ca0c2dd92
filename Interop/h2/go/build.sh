#!/usr/bin/env bash
# Builds a Go program against echo.proto in GOPATH mode with Debian's grpc-go (no network).
# Usage: Interop/h2/go/build.sh OUTPUT_BINARY MAIN_GO_FILE
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$1
main=$2
work=$(mktemp -d /tmp/h2go-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/h2prog"
protoc -I "$here/.." --go_out="$work/src" --go_opt=paths=import \
    --go-grpc_out="$work/src" --go-grpc_opt=paths=import "$here/../echo.proto"
cp "$main" "$work/src/h2prog/main.go"
cd "$work/src/h2prog"
GOPATH="$work:/usr/share/gocode" GO111MODULE=off GOPROXY=off GOFLAGS=-mod=mod GOCACHE="${GOCACHE:-/tmp/h2-gocache}" \
    go build -o "$out" .
