#!/usr/bin/env bash
# Compiles the daemon's own eBPF objects, bpf/NAME.bpf.c -> OUT/NAME.bpf.o (default OUT: .build/bpf),
# with clang -target bpf. The daemon finds them next to its executable (../bpf from .build/debug) or via
# $BPFMAN_BPF_DIR. Objects are rebuilt only when older than their source; they are never committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.build/bpf}
mkdir -p "$out"
for src in bpf/*.bpf.c; do
    name=$(basename "$src" .bpf.c)
    obj="$out/$name.bpf.o"
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ]; then
        clang -O2 -g -Wall -target bpf -I/usr/include/x86_64-linux-gnu -c "$src" -o "$obj.tmp.$$"
        mv "$obj.tmp.$$" "$obj"
    fi
done
