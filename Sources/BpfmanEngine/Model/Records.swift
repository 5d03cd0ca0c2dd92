/// A managed program as recorded in the store (SPEC §6.1 `programs`).
package struct ProgramRecord: Sendable, Hashable {
    /// Kernel program id, the program's only handle.
    package var id: UInt32
    /// Requested function name, untruncated.
    package var name: String
    package var kind: ProgramKind
    package var loadMode: LoadMode
    /// Original location; image credentials removed.
    package var location: BytecodeLocation
    package var metadata: [String: String]
    package var globalData: [String: [UInt8]]
    /// Set only for dependants.
    package var mapOwnerID: UInt32?
    /// The map set the program belongs to: its own id for owners, the owner's for dependants.
    package var mapSetID: UInt32
    /// fentry/fexit function or LSM hook fixed at load.
    package var attachTarget: String?
    /// Names of the PIN_BY_NAME maps this program references in `<rd>/fs/shared`.
    package var sharedMaps: [String]
    /// The `memlock:` line of the program's fdinfo, read once right after the load. The kernel fixes a
    /// program's locked pages when the load returns (`prog->pages` only grows while the verifier rewrites it),
    /// so every later read of fdinfo would show this same number; keeping it saves Get and List an open, read
    /// and close of `/proc/self/fdinfo/<fd>` per program, half of their kernel work. nil for records written
    /// before it was kept (schema 1): those are read live.
    package var bytesMemlock: UInt32?

    package init(
        id: UInt32,
        name: String,
        kind: ProgramKind,
        loadMode: LoadMode,
        location: BytecodeLocation,
        metadata: [String: String],
        globalData: [String: [UInt8]],
        mapOwnerID: UInt32?,
        mapSetID: UInt32,
        attachTarget: String?,
        sharedMaps: [String],
        bytesMemlock: UInt32? = nil
    ) {
        self.id = id
        self.name = name
        self.kind = kind
        self.loadMode = loadMode
        self.location = location
        self.metadata = metadata
        self.globalData = globalData
        self.mapOwnerID = mapOwnerID
        self.mapSetID = mapSetID
        self.attachTarget = attachTarget
        self.sharedMaps = sharedMaps
        self.bytesMemlock = bytesMemlock
    }
}

/// State of a link row (SPEC §6.2): `pending` rows only exist between id allocation and the commit.
package enum LinkState: String, Sendable, Hashable, Codable {
    case pending, active
}

/// One attachment as recorded in the store (SPEC §6.1 `links`).
package struct LinkRecord: Sendable, Hashable {
    /// Daemon-assigned link id (>= 1, never reused).
    package var id: UInt32
    package var programID: UInt32
    package var kind: ProgramKind
    package var state: LinkState
    /// Every request field as given (priority verbatim, proceed_on as requested).
    package var spec: AttachSpec
    /// Network-namespace inode for xdp/tc/tcx, else nil.
    package var nsid: UInt64?
    package var ifindex: UInt32?
    /// `ingress`/`egress` for tc/tcx.
    package var direction: String?
    package var priority: Int32?
    /// Live position on the hook (tc/tcx/xdp), recomputed on every change.
    package var position: Int32?
    /// Dispatcher row for XDP/TC members (owned by the dispatcher code), else nil.
    package var dispatcherID: Int64?
    /// Kernel link id of single links.
    package var kernelLinkID: UInt32?
    /// `<rd>/fs/links/<id>` for single links.
    package var pinPath: String?
    /// Native TC: the cls_bpf filter's handle and netlink priority.
    package var tcHandle: UInt32?
    package var tcPriority: UInt32?
    /// uprobe: the resolved target path.
    package var resolvedTarget: String?

    package init(
        id: UInt32,
        programID: UInt32,
        kind: ProgramKind,
        state: LinkState,
        spec: AttachSpec,
        nsid: UInt64? = nil,
        ifindex: UInt32? = nil,
        direction: String? = nil,
        priority: Int32? = nil,
        position: Int32? = nil,
        dispatcherID: Int64? = nil,
        kernelLinkID: UInt32? = nil,
        pinPath: String? = nil,
        tcHandle: UInt32? = nil,
        tcPriority: UInt32? = nil,
        resolvedTarget: String? = nil
    ) {
        self.id = id
        self.programID = programID
        self.kind = kind
        self.state = state
        self.spec = spec
        self.nsid = nsid
        self.ifindex = ifindex
        self.direction = direction
        self.priority = priority
        self.position = position
        self.dispatcherID = dispatcherID
        self.kernelLinkID = kernelLinkID
        self.pinPath = pinPath
        self.tcHandle = tcHandle
        self.tcPriority = tcPriority
        self.resolvedTarget = resolvedTarget
    }

    package var metadata: [String: String] { spec.metadata }
}

/// `bpfman.v1.ProgramInfo`: a managed program's record plus its current links and map-set view (SPEC §3.8).
package struct ProgramInfo: Sendable, Hashable {
    package var record: ProgramRecord
    /// Current link ids, ascending.
    package var links: [UInt32]
    /// `<rd>/fs/maps/<map set id>`.
    package var mapPinPath: String
    /// Decimal ids of every live member of the map set, ascending.
    package var mapUsedBy: [String]

    package var name: String { record.name }
    package var kind: ProgramKind { record.kind }
    package var metadata: [String: String] { record.metadata }
    package var globalData: [String: [UInt8]] { record.globalData }
    package var mapOwnerID: UInt32? { record.mapOwnerID }
    /// Location as reported: images carry `username`/`password` set to `""` (SPEC §3.8).
    package var bytecode: BytecodeLocation {
        switch record.location {
        case .file: return record.location
        case .image(let image):
            return .image(BytecodeImage(url: image.url, pullPolicy: image.pullPolicy, username: "", password: ""))
        }
    }
}

/// `bpfman.v1.KernelProgramInfo`, read live from the kernel (SPEC §3.8).
package struct KernelProgramInfo: Sendable, Hashable {
    package var id: UInt32
    /// Kernel name (at most 15 characters).
    package var name: String
    /// Managed: the kind's reported number; unmanaged: the kernel's own type.
    package var programType: UInt32
    /// The kernel's actual program type (e.g. 28 for EXT), for Inspect.
    package var kernelProgramType: UInt32
    /// `%Y-%m-%dT%H:%M:%S%z`, local time.
    package var loadedAt: String
    /// 16 lowercase hex digits.
    package var tag: String
    package var gplCompatible: Bool
    package var mapIDs: [UInt32]
    package var btfID: UInt32
    package var bytesXlated: UInt32
    package var jited: Bool
    package var bytesJited: UInt32
    package var bytesMemlock: UInt32
    package var verifiedInsns: UInt32
}

/// One result of Load, Get or List: `info` for managed programs, `kernelInfo` always.
package struct ProgramDetails: Sendable, Hashable {
    package var info: ProgramInfo?
    package var kernelInfo: KernelProgramInfo
}

/// List filters (`bpfman.v1.ListRequest`, SPEC §3.5).
package struct ListFilter: Sendable, Hashable {
    /// Kernel numbering (§4.1); nil = all.
    package var programType: UInt32?
    package var bpfmanProgramsOnly: Bool
    /// AND of key = value pairs; non-empty excludes unmanaged programs.
    package var matchMetadata: [String: String]

    package init(programType: UInt32? = nil, bpfmanProgramsOnly: Bool = false, matchMetadata: [String: String] = [:]) {
        self.programType = programType
        self.bpfmanProgramsOnly = bpfmanProgramsOnly
        self.matchMetadata = matchMetadata
    }
}
