#!/usr/bin/env bash
# Enforces the module graph of README.md / STYLE.md: each Swift module may import only the
# modules on its allow-list, and every import in Sources/ states its access level.
# SwiftPM does not police system-library (C) modules, so this script does.
# Usage: scripts/check-imports.sh [repo-root]   (exit 1 and one line per violation on failure)
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

# module -> modules it may import (besides the standard library). The daemon's modules take FoundationEssentials,
# never Foundation: Foundation loads ICU (megabytes of RSS, tens of milliseconds of start-up).
declare -A allow=(
    [Proto]=""
    [SystemCalls]="Glibc"
    [ProtoGen]="Foundation Glibc"
    [protocat]="Proto Foundation Glibc"
    [H2Transport]="SystemCalls CNghttp2 Logging Glibc Synchronization Dispatch"
    [BpfmanEngine]="SystemCalls CBPF CSQLite Logging Glibc Synchronization Dispatch FoundationEssentials"
    [BpfmanImages]="SystemCalls CLinux CLazyCrypto Logging Glibc Synchronization Dispatch FoundationEssentials"
    [BpfmanSigstore]="BpfmanImages COpenSSL Glibc FoundationEssentials"
    [BpfmanImageFetch]="BpfmanImages BpfmanSigstore SystemCalls CCurl CArchive CLinux Glibc Synchronization FoundationEssentials"
    [BpfmanServer]="Proto H2Transport BpfmanEngine BpfmanImages SystemCalls Logging ArgumentParser Glibc Synchronization Dispatch FoundationEssentials"
    [bpfman]="BpfmanServer BpfmanImageFetch BpfmanEngine ArgumentParser Logging"
    [bpfman-engine-bench]="BpfmanEngine CBPF Glibc Foundation Logging"
    [h2-echo-server]="H2Transport Glibc Logging"
)

status=0
fail() { echo "check-imports: $*"; status=1; }

for dir in Sources/*/; do
    module=$(basename "$dir")
    # C system-library targets have no Swift sources.
    compgen -G "$dir*.modulemap" >/dev/null && continue
    if [[ ! -v "allow[$module]" ]]; then
        fail "$module: module not in the graph; add it to scripts/check-imports.sh"
        continue
    fi
    while IFS= read -r hit; do
        file=${hit%%:*}; rest=${hit#*:}; line=${rest%%:*}; text=${rest#*:}
        # "[@attr ]* [access ]import [kind ]Name[.Sub]"
        words=$(sed -E 's/@[A-Za-z_]+(\([^)]*\))?//g' <<<"$text")
        read -r -a w <<<"$words"
        i=0; level=""
        case "${w[0]:-}" in public|package|internal|fileprivate|private) level=${w[0]}; i=1 ;; esac
        [[ "${w[$i]:-}" == import ]] || continue
        i=$((i + 1))
        case "${w[$i]:-}" in struct|class|enum|protocol|func|var|let|typealias) i=$((i + 1)) ;; esac
        name=${w[$i]%%.*}
        [[ -n "$level" ]] || fail "$file:$line: bare 'import $name' (say its access level)"
        if [[ " ${allow[$module]} " != *" $name "* ]]; then
            fail "$file:$line: $module may not import $name"
        fi
        if [[ $module == BpfmanEngine && $name == CSQLite && $file != Sources/BpfmanEngine/Store/* ]]; then
            fail "$file:$line: CSQLite is imported only under Sources/BpfmanEngine/Store/"
        fi
    done < <(grep -rnE '^[[:space:]]*(@[A-Za-z_]+(\([^)]*\))?[[:space:]]+)*((public|package|internal|fileprivate|private)[[:space:]]+)?import[[:space:]]' "$dir" --include='*.swift' | sed -E 's/:[[:space:]]+/:/' || true)
done

if ((status == 0)); then echo "check-imports: module graph OK"; fi
exit $status
