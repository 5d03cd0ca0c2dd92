internal import Glibc
internal import SystemCalls

extension ProbedKernelFeatures {
    /// Probes the running kernel; no fd survives.
    package static func probe() -> ProbedKernelFeatures {
        let lsm = Syscalls.readText("/sys/kernel/security/lsm") ?? ""
        var tcx = false
        let loopback = if_nametoindex("lo")
        if loopback != 0, case .failure(let error) = BPF.query(ifindex: loopback, attachType: BPFAttachType.tcxIngress)
        {
            tcx = error.errno != .invalidArgument
        } else if loopback != 0 {
            tcx = true
        }
        return ProbedKernelFeatures(
            btf: Syscalls.exists("/sys/kernel/btf/vmlinux"),
            tcx: tcx,
            kprobe: Syscalls.exists("/sys/bus/event_source/devices/kprobe/type"),
            lsm: lsm.split(whereSeparator: { $0 == "," || $0.isWhitespace }).contains("bpf")
        )
    }
}
