#!/usr/bin/env bash
# Installs what `make release` built: the one executable, its man page (bpfman.8, generated from the command
# definitions) and its bash, zsh and fish completion scripts (written by the executable itself), under
# $DESTDIR$PREFIX (PREFIX defaults to /usr/local; a distribution package sets DESTDIR and PREFIX=/usr).
# Usage: scripts/install.sh   (`make install` runs it after `make release`; release-smoke.sh into a scratch DESTDIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
release="$root/.build/release"
prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}$prefix
for built in "$release/bpfman" "$release/bpfman.8"; do
    [ -e "$built" ] || { echo "install: $built missing: run make release" >&2; exit 1; }
done
install -D -m 755 "$release/bpfman" "$dest/sbin/bpfman"
install -D -m 644 "$release/bpfman.8" "$dest/share/man/man8/bpfman.8"
completions=$(mktemp -d)
trap 'rm -rf "$completions"' EXIT
for shell in bash zsh fish; do
    "$release/bpfman" --generate-completion-script "$shell" >"$completions/$shell"
done
install -D -m 644 "$completions/bash" "$dest/share/bash-completion/completions/bpfman"
install -D -m 644 "$completions/zsh" "$dest/share/zsh/vendor-completions/_bpfman"
install -D -m 644 "$completions/fish" "$dest/share/fish/vendor_completions.d/bpfman.fish"
echo "install: bpfman, bpfman.8 and the bash, zsh and fish completions under $dest"
