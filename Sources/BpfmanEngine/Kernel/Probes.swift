internal import CBPF
internal import Glibc
package import SystemCalls

/// Perf-event based attach points: tracepoints and the kprobe/uprobe PMUs (SPEC §4.11-4.13).
package enum Probes {
    /// tracefs, with the debugfs fallback.
    package static var tracefs: String {
        Syscalls.exists("/sys/kernel/tracing/events") ? "/sys/kernel/tracing" : "/sys/kernel/debug/tracing"
    }

    /// The id of tracepoint `group/name`, or nil when tracefs has no such event.
    package static func tracepointID(group: String, name: String) -> UInt64? {
        Syscalls.readText("\(tracefs)/events/\(group)/\(name)/id").flatMap { UInt64($0) }
    }

    /// Opens a perf event for tracepoint `id`. The corresponding C function is `perf_event_open`.
    package static func openTracepoint(id: UInt64) throws(BPFError) -> OwnedFD {
        switch valueOrErrno("perf_event_open", { cbpf_perf_open_tracepoint(id) }) {
        case .success(let fd): return OwnedFD(taking: fd)
        case .failure(let error): throw error.asBPFError
        }
    }

    /// The dynamic PMU `kprobe` or `uprobe`: its type number and the retprobe config bit.
    package static func pmu(_ name: String) -> (type: UInt32, retprobeBit: UInt64)? {
        let base = "/sys/bus/event_source/devices/\(name)"
        guard let type = Syscalls.readText("\(base)/type").flatMap({ UInt32($0) }) else { return nil }
        // format/retprobe reads "config:<bit>".
        let bit =
            Syscalls.readText("\(base)/format/retprobe").flatMap { text in
                text.split(separator: ":").last.flatMap { UInt64($0) }
            } ?? 0
        return (type, bit)
    }

    /// Opens a kprobe/uprobe perf event on the PMU. `name` is the kernel function (kprobe) or the file path
    /// (uprobe); `offset` is within the function or the file. The corresponding C function is `perf_event_open`.
    package static func openProbe(
        pmu: (type: UInt32, retprobeBit: UInt64),
        retprobe: Bool,
        name: String,
        offset: UInt64,
        pid: Int32
    ) throws(BPFError) -> OwnedFD {
        let config: UInt64 = retprobe ? 1 << pmu.retprobeBit : 0
        switch valueOrErrno("perf_event_open", { cbpf_perf_open_probe(pmu.type, config, name, offset, pid) }) {
        case .success(let fd): return OwnedFD(taking: fd)
        case .failure(let error): throw error.asBPFError
        }
    }
}
