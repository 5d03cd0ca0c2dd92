#!/usr/bin/env bash
# The daemon as a process under hostile load (Interop/daemon/load_test.py): idle and garbage connections, random
# well-formed frames, oversized messages, concurrent callers; prints RSS, descriptors and threads after each phase.
# Usage: scripts/load-test.sh [load_test.py options]; BPFMAN names the executable (default .build/debug/bpfman).
# Needs root (the daemon mounts its bpffs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python Interop/daemon/load_test.py "${BPFMAN:-.build/debug/bpfman}" "$@"
