import Foundation

/// What the kernel running the tests can do, probed once. Kernel tests gate on these with
/// `.enabled(if:_:)` so a test that cannot run is reported as skipped, with the reason printed.
///
/// Two kernels run the suites (see ../shared/KERNEL.md): kernel A is the machine's own (no freplace,
/// fentry/fexit, LSM or kprobes); kernel B is Debian's stock kernel booted under qemu by
/// `scripts/run-kernel-b.sh`, which marks its command line with `bpfman.lane=kernel-b`.
public enum TestKernel {
    /// True when running as root on a kernel with the bpf(2) syscall and bpffs.
    public static let canUseBPF: Bool = {
        geteuid() == 0 && FileManager.default.fileExists(atPath: "/sys/fs/bpf")
            && FileManager.default.fileExists(atPath: "/sys/kernel/btf/vmlinux")
    }()

    /// True inside the qemu kernel-B lane.
    public static let isKernelBLane: Bool = {
        let cmdline = (try? String(contentsOfFile: "/proc/cmdline", encoding: .utf8)) ?? ""
        return cmdline.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("bpfman.lane=kernel-b")
    }()

    /// True when kprobes are compiled in (kernel B; not kernel A).
    public static let hasKprobes: Bool = FileManager.default.fileExists(
        atPath: "/sys/bus/event_source/devices/kprobe/type"
    )

    /// True when the BPF LSM is active (kernel B booted with `lsm=...,bpf`).
    public static let hasBPFLSM: Bool = {
        let lsm = (try? String(contentsOfFile: "/sys/kernel/security/lsm", encoding: .utf8)) ?? ""
        return lsm.split(separator: ",").contains("bpf")
    }()

    /// The reason printed for tests that need kernel B while running elsewhere.
    public static let needsKernelB =
        "needs kernel B (freplace, fentry/fexit, kprobes or LSM); runs in scripts/run-kernel-b.sh"

    /// The reason printed for kernel tests when not root or without BPF.
    public static let needsRootAndBPF = "needs root and a kernel with BPF, bpffs and BTF"
}
