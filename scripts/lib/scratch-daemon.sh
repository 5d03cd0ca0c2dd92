# Sourced by scripts that run `bpfman serve` on a throw-away runtime dir (release-smoke.sh, profile-order.sh).
# scratch_start NAME: makes $work (/tmp/NAME-XXXXXX) and arranges for the exit trap to stop the daemon whose pid
# the caller puts in $daemon, unmount its bpffs and remove $work.
# wait_for_socket PATH: waits up to 60 s for the daemon's socket; non-zero if it never appears.

scratch_start() {
    work=$(mktemp -d "/tmp/$1-XXXXXX")
    daemon=
    trap scratch_cleanup EXIT
}

scratch_cleanup() {
    if [ -n "${daemon:-}" ]; then kill "$daemon" 2>/dev/null || true; fi
    umount -l "$work/rd/fs" 2>/dev/null || true
    rm -rf "$work"
}

wait_for_socket() {
    for _ in $(seq 600); do
        [ -S "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
