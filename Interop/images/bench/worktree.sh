#!/usr/bin/env bash
# Checks COMMIT out as a detached git worktree at DIR (replacing one left there), with every file's mtime set to
# the time of the last commit that changed it, and every directory's to COMMIT's time. A worktree made again at
# the same DIR then looks unchanged to SwiftPM, so a build into the same --scratch-path is incremental (a fresh
# checkout's mtimes would rebuild everything: 2-6 minutes of release build on this VM).
# Usage: Interop/images/bench/worktree.sh COMMIT DIR     (remove with: git worktree remove --force DIR)
set -euo pipefail
commit=$1
dir=$2
root=$(cd "$(dirname "$0")/../../.." && pwd)
if [ -e "$dir" ]; then git -C "$root" worktree remove --force "$dir" 2>/dev/null || rm -rf "$dir"; fi
git -C "$root" worktree prune
git -C "$root" worktree add --detach --quiet "$dir" "$commit"
# One pass over the history: the first time a path appears (newest first) is its last change.
git -C "$dir" log --format='@%ct' --name-only HEAD | awk '
    /^@/ { t = substr($0, 2); next }
    NF && !($0 in seen) { seen[$0] = 1; print t "\t" $0 }' |
    while IFS=$'\t' read -r t path; do
        [ -e "$dir/$path" ] && touch -h -d "@$t" "$dir/$path"
    done
committed=$(git -C "$dir" log -1 --format=%ct HEAD)
find "$dir" -path "$dir/.git" -prune -o -type d -exec touch -h -d "@$committed" {} +
