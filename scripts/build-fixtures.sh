#!/usr/bin/env bash
# Compiles every eBPF fixture Tests/Fixtures/bpf/NAME.bpf.c into .build/bpf-fixtures/NAME.bpf.o
# with clang -target bpf (the Swift toolchain's clang). Objects are rebuilt only when older than
# their source; the tests compile on demand too, so this is an ahead-of-time convenience.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.build/bpf-fixtures
mkdir -p "$out"
for src in Tests/Fixtures/bpf/*.bpf.c; do
    name=$(basename "$src" .bpf.c)
    obj="$out/$name.bpf.o"
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ]; then
        clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$src" -o "$obj.tmp"
        mv "$obj.tmp" "$obj"
    fi
done
echo "fixtures: $(ls "$out"/*.bpf.o | wc -l) objects in $out"
