/// The bpfman program kinds (SPEC §0, §4.1). The raw value is the spelling used in records, the CLI and
/// Inspect (`kind`).
package enum ProgramKind: String, Sendable, Hashable, CaseIterable, Codable {
    case xdp, tc, tcx, tracepoint, kprobe, kretprobe, uprobe, uretprobe, fentry, fexit, lsm

    /// The kernel program-type number reported for this kind (`KernelProgramInfo.program_type`, List filter).
    package var reportedKernelType: UInt32 {
        switch self {
        case .xdp: 6
        case .tc, .tcx: 3
        case .tracepoint: 5
        case .kprobe, .kretprobe, .uprobe, .uretprobe: 2
        case .fentry, .fexit: 26
        case .lsm: 29
        }
    }

    /// The API program type (`BpfmanProgramType`) this kind is requested as.
    package var programType: BpfmanProgramType {
        switch self {
        case .xdp: .xdp
        case .tc: .tc
        case .tcx: .tcx
        case .tracepoint: .tracepoint
        case .kprobe, .kretprobe: .kprobe
        case .uprobe, .uretprobe: .uprobe
        case .fentry: .fentry
        case .fexit: .fexit
        case .lsm: .lsm
        }
    }

    /// True for the kinds the dispatcher engineer's `HookAttacher` handles.
    package var usesHookAttacher: Bool { self == .xdp || self == .tc }
}

/// The API's program type enum (`bpfman.v1.BpfmanProgramType`), numbered as on the wire.
package enum BpfmanProgramType: Int32, Sendable, Hashable, CaseIterable, Codable {
    case xdp = 0
    case tc = 1
    case tracepoint = 2
    case kprobe = 3
    case uprobe = 4
    case fentry = 5
    case fexit = 6
    case tcx = 7
    case lsm = 8

    /// Lower-case name used in messages, e.g. "fentry".
    package var name: String {
        switch self {
        case .xdp: "xdp"
        case .tc: "tc"
        case .tracepoint: "tracepoint"
        case .kprobe: "kprobe"
        case .uprobe: "uprobe"
        case .fentry: "fentry"
        case .fexit: "fexit"
        case .tcx: "tcx"
        case .lsm: "lsm"
        }
    }
}

/// How an XDP or TC program was loaded (SPEC §4.3). Other kinds always record `.native`.
package enum LoadMode: String, Sendable, Hashable, Codable {
    /// Loaded as `BPF_PROG_TYPE_EXT` for a dispatcher slot.
    case ext
    /// Loaded as its own type and attached directly.
    case native
}
