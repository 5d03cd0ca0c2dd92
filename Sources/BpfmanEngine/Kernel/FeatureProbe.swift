internal import Glibc
internal import SystemCalls

extension KernelFeatures {
    /// Probes the running kernel; no fd survives.
    package static func probe() -> KernelFeatures {
        let lsm = Syscalls.readText("/sys/kernel/security/lsm") ?? ""
        var tcx = false
        let loopback = if_nametoindex("lo")
        if loopback != 0, case .failure(let error) = BPF.query(ifindex: loopback, attachType: BPFAttachType.tcxIngress)
        {
            tcx = error.errno != .invalidArgument
        } else if loopback != 0 {
            tcx = true
        }
        return KernelFeatures(
            btf: Syscalls.exists("/sys/kernel/btf/vmlinux"),
            tcx: tcx,
            kprobe: Syscalls.exists("/sys/bus/event_source/devices/kprobe/type"),
            lsm: lsm.split(separator: ",").contains("bpf")
        )
    }
}
