/// What the running kernel supports, probed once when the `Engine` starts (SPEC §4.3 `kernel_features`).
package struct KernelFeatures: Sendable, Hashable {
    /// `/sys/kernel/btf/vmlinux` exists.
    package var btf: Bool
    /// `BPF_PROG_QUERY` with attach type 46 (TCX ingress) on `lo` does not answer EINVAL.
    package var tcx: Bool
    /// `/sys/bus/event_source/devices/kprobe/type` exists.
    package var kprobe: Bool
    /// `bpf` is listed in `/sys/kernel/security/lsm`.
    package var lsm: Bool

    /// `kernel_features` as Inspect reports them (`freplace` comes from the dispatcher's probe).
    package var asDictionary: [String: Bool] { ["btf": btf, "tcx": tcx, "kprobe": kprobe, "lsm": lsm] }
}
