/// What to attach a program to (`bpfman.v1.AttachInfo`): one case per oneof variant, fields as on the wire.
/// `position` fields of requests are output-only and therefore absent; `metadata` is the link's metadata.
package enum AttachSpec: Sendable, Hashable, Codable {
    case xdp(XDPAttach)
    case tc(TCAttach)
    case tcx(TCXAttach)
    case tracepoint(TracepointAttach)
    case kprobe(KprobeAttach)
    case uprobe(UprobeAttach)
    case fentry(metadata: [String: String])
    case fexit(metadata: [String: String])
    case lsm(metadata: [String: String])

    /// The variant's name in messages: `xdp`, `tc`, `tcx`, `tracepoint`, `kprobe`, `uprobe`, `fentry`, `fexit`, `lsm`.
    package var variantName: String {
        switch self {
        case .xdp: "xdp"
        case .tc: "tc"
        case .tcx: "tcx"
        case .tracepoint: "tracepoint"
        case .kprobe: "kprobe"
        case .uprobe: "uprobe"
        case .fentry: "fentry"
        case .fexit: "fexit"
        case .lsm: "lsm"
        }
    }

    /// Program kinds this variant accepts (SPEC §3.3).
    package var acceptedKinds: [ProgramKind] {
        switch self {
        case .xdp: [.xdp]
        case .tc: [.tc]
        case .tcx: [.tcx]
        case .tracepoint: [.tracepoint]
        case .kprobe: [.kprobe, .kretprobe]
        case .uprobe: [.uprobe, .uretprobe]
        case .fentry: [.fentry]
        case .fexit: [.fexit]
        case .lsm: [.lsm]
        }
    }

    /// The link metadata carried by the request.
    package var metadata: [String: String] {
        switch self {
        case .xdp(let a): a.metadata
        case .tc(let a): a.metadata
        case .tcx(let a): a.metadata
        case .tracepoint(let a): a.metadata
        case .kprobe(let a): a.metadata
        case .uprobe(let a): a.metadata
        case .fentry(let m), .fexit(let m), .lsm(let m): m
        }
    }
}

/// `bpfman.v1.XDPAttachInfo` (handled by the dispatcher engineer's `HookAttacher`).
package struct XDPAttach: Sendable, Hashable, Codable {
    package var priority: Int32
    package var iface: String
    package var proceedOn: [Int32]
    package var netns: String?
    package var metadata: [String: String]

    package init(
        priority: Int32,
        iface: String,
        proceedOn: [Int32] = [],
        netns: String? = nil,
        metadata: [String: String] = [:]
    ) {
        self.priority = priority
        self.iface = iface
        self.proceedOn = proceedOn
        self.netns = netns
        self.metadata = metadata
    }
}

/// `bpfman.v1.TCAttachInfo` (handled by the dispatcher engineer's `HookAttacher`).
package struct TCAttach: Sendable, Hashable, Codable {
    package var priority: Int32
    package var iface: String
    package var direction: String
    package var proceedOn: [Int32]
    package var netns: String?
    package var metadata: [String: String]

    package init(
        priority: Int32,
        iface: String,
        direction: String,
        proceedOn: [Int32] = [],
        netns: String? = nil,
        metadata: [String: String] = [:]
    ) {
        self.priority = priority
        self.iface = iface
        self.direction = direction
        self.proceedOn = proceedOn
        self.netns = netns
        self.metadata = metadata
    }
}

/// `bpfman.v1.TCXAttachInfo`.
package struct TCXAttach: Sendable, Hashable, Codable {
    package var priority: Int32
    package var iface: String
    package var direction: String
    package var netns: String?
    package var metadata: [String: String]

    package init(
        priority: Int32,
        iface: String,
        direction: String,
        netns: String? = nil,
        metadata: [String: String] = [:]
    ) {
        self.priority = priority
        self.iface = iface
        self.direction = direction
        self.netns = netns
        self.metadata = metadata
    }
}

/// `bpfman.v1.TracepointAttachInfo`: `group/name`.
package struct TracepointAttach: Sendable, Hashable, Codable {
    package var tracepoint: String
    package var metadata: [String: String]

    package init(tracepoint: String, metadata: [String: String] = [:]) {
        self.tracepoint = tracepoint
        self.metadata = metadata
    }
}

/// `bpfman.v1.KprobeAttachInfo`.
package struct KprobeAttach: Sendable, Hashable, Codable {
    package var fnName: String
    package var offset: UInt64
    /// Accepted and ignored (SPEC §4.12).
    package var containerPid: Int32?
    package var metadata: [String: String]

    package init(fnName: String, offset: UInt64 = 0, containerPid: Int32? = nil, metadata: [String: String] = [:]) {
        self.fnName = fnName
        self.offset = offset
        self.containerPid = containerPid
        self.metadata = metadata
    }
}

/// `bpfman.v1.UprobeAttachInfo`.
package struct UprobeAttach: Sendable, Hashable, Codable {
    /// `nil` or empty: probe at `offset` as a file offset.
    package var fnName: String?
    package var offset: UInt64
    /// A path (contains `/`) or a library name resolved through `/etc/ld.so.cache` (SPEC §4.13).
    package var target: String
    package var pid: Int32?
    package var containerPid: Int32?
    package var metadata: [String: String]

    package init(
        fnName: String? = nil,
        offset: UInt64 = 0,
        target: String,
        pid: Int32? = nil,
        containerPid: Int32? = nil,
        metadata: [String: String] = [:]
    ) {
        self.fnName = fnName
        self.offset = offset
        self.target = target
        self.pid = pid
        self.containerPid = containerPid
        self.metadata = metadata
    }
}
