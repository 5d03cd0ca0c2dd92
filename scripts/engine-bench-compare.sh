#!/usr/bin/env bash
# The engine benchmark (Sources/bpfman-engine-bench), an older revision against this checkout in one run: both
# built as release binaries (the older one from `git archive` into .build-baseline/<rev>, kept for later runs), then run
# alternately, old first, ROUNDS times each on the same fixtures, each run on a fresh runtime directory of its own.
# Prints each run's List, Get and Load lines and its peak RSS, labelled, so that the two builds are compared under
# the same load.
# Needs root and the fixtures (`make fixtures`).
# Usage: scripts/engine-bench-compare.sh BASELINE_REV [rounds (3)] [iterations (30)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:?usage: $0 BASELINE_REV [rounds] [iterations]}
rounds=${2:-3}
iterations=${3:-30}
# A plain copy of that revision (no worktree to register), kept for the next run under .build-baseline/.
old="$root/.build-baseline/$(git -C "$root" rev-parse --short "$rev")"
if [ ! -d "$old" ]; then
    mkdir -p "$old"
    git -C "$root" archive "$rev" | tar -x -C "$old"
fi
echo "building $rev and this checkout (release) ..." >&2
(cd "$old" && swift build -c release --static-swift-stdlib --product bpfman-engine-bench >&2)
(cd "$root" && swift build -c release --static-swift-stdlib --product bpfman-engine-bench >&2)
echo "old: $rev ($(git -C "$root" rev-parse --short "$rev")), new: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+changes')"
for round in $(seq "$rounds"); do
    for which in old new; do
        if [ "$which" = old ]; then binary="$old/.build/release/bpfman-engine-bench"; else binary="$root/.build/release/bpfman-engine-bench"; fi
        # Peak RSS of the whole run (its largest moment is the 1000 managed programs listed), from the kernel's
        # accounting of the finished child.
        python3 - "$binary" "$iterations" "$root/.build/bpf-fixtures" <<'PY' \
            | grep -E 'List, |Get, one|right after a commit|load\+pin|ratio|engine /|peak RSS' | sed "s/^/$which #$round: /"
import resource, subprocess, sys
binary, iterations, objects = sys.argv[1:4]
sys.stdout.flush()
subprocess.run([binary, "--iterations", iterations, "--objects", objects], check=True)
print(f"peak RSS of the run: {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.1f} MiB", flush=True)
PY
    done
done
