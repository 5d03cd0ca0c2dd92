/// What the running kernel supports, probed once when the `Engine` starts (SPEC §4.3 `kernel_features`): the one
/// source of these facts; Inspect/Status reports them (`reported(freplace:)`). Not to be confused with
/// `KernelProgramFacts` / `KernelProgramInfo`, what the kernel says of one program.
package struct ProbedKernelFeatures: Sendable, Hashable {
    /// `/sys/kernel/btf/vmlinux` exists.
    package var btf: Bool
    /// `BPF_PROG_QUERY` with attach type 46 (TCX ingress) on `lo` does not answer EINVAL.
    package var tcx: Bool
    /// `/sys/bus/event_source/devices/kprobe/type` exists.
    package var kprobe: Bool
    /// `bpf` is listed in `/sys/kernel/security/lsm`.
    package var lsm: Bool

    /// `kernel_features` as Inspect/Status reports them (SPEC §3.9), with `freplace` from the dispatcher's probe.
    package func reported(freplace: Bool) -> [String: Bool] {
        ["btf": btf, "freplace": freplace, "tcx": tcx, "kprobe": kprobe, "lsm": lsm]
    }
}
