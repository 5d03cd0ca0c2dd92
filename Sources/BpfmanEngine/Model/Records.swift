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
    /// The program's `KernelProgramInfo` facts, read from the kernel once when it was loaded (SPEC §3.8). nil for
    /// a record written before they were kept (schema 1 and 2) until start-up reconciliation fills them in: Get
    /// and List read such a record's program live.
    package var kernelFacts: KernelProgramFacts?
    /// Inode number of the program's pin `fs/prog_<id>` when the engine made it (at Load, or when start-up
    /// reconciliation re-pinned the program). The liveness check of Get and List compares the pin's current
    /// inode with this one (`ProgramPins`); nil for records written before it was kept.
    package var pinInode: UInt64?

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
        kernelFacts: KernelProgramFacts? = nil,
        pinInode: UInt64? = nil
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
        self.kernelFacts = kernelFacts
        self.pinInode = pinInode
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

/// What the kernel says of a program that never changes while its id lives (SPEC §3.8): everything
/// `KernelProgramInfo` reports except the id and the reported type. Read with `BPF_OBJ_GET_INFO_BY_FD` and the
/// fd's `memlock:` line, once at Load for a managed program (kept in its record) and on every answer for an
/// unmanaged one.
package struct KernelProgramFacts: Sendable, Hashable {
    /// Kernel name (at most 15 characters).
    package var name: String
    /// The kernel's own program type (e.g. 28 for EXT).
    package var kernelType: UInt32
    /// `load_time`: nanoseconds since boot.
    package var loadTime: UInt64
    /// 16 lowercase hex digits.
    package var tag: String
    package var gplCompatible: Bool
    package var mapIDs: [UInt32]
    package var btfID: UInt32
    package var bytesXlated: UInt32
    package var bytesJited: UInt32
    package var bytesMemlock: UInt32
    package var verifiedInsns: UInt32
    /// `loadedAt` text for `loadTime` as formatted when these facts were made, and the Unix second it stands for:
    /// an answer reuses the text while boot time + `loadTime` still falls in that second (see `LoadTimeClock`).
    /// Derived, never stored.
    package var loadedAt: LoadedAtText

    package init(
        name: String,
        kernelType: UInt32,
        loadTime: UInt64,
        tag: String,
        gplCompatible: Bool,
        mapIDs: [UInt32],
        btfID: UInt32,
        bytesXlated: UInt32,
        bytesJited: UInt32,
        bytesMemlock: UInt32,
        verifiedInsns: UInt32,
        clock: LoadTimeClock = LoadTimeClock()
    ) {
        self.name = name
        self.kernelType = kernelType
        self.loadTime = loadTime
        self.tag = tag
        self.gplCompatible = gplCompatible
        self.mapIDs = mapIDs
        self.btfID = btfID
        self.bytesXlated = bytesXlated
        self.bytesJited = bytesJited
        self.bytesMemlock = bytesMemlock
        self.verifiedInsns = verifiedInsns
        self.loadedAt = clock.text(loadTime)
    }
}

/// A formatted `loaded_at` and the Unix second it was formatted for. Equal whenever the seconds are (the text
/// is a function of the second in a process whose time zone is set once).
package struct LoadedAtText: Sendable, Hashable {
    package var second: Int64
    package var text: String

    package static func == (a: Self, b: Self) -> Bool { a.second == b.second }
    package func hash(into hasher: inout Hasher) { hasher.combine(second) }
}

/// `bpfman.v1.KernelProgramInfo` (SPEC §3.8): a managed program's recorded facts or an unmanaged one's live read.
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

    /// The answer for program `id` from its facts; `clock` gives boot time for `loadedAt`.
    package init(id: UInt32, facts: KernelProgramFacts, reportedType: UInt32?, clock: LoadTimeClock) {
        self.id = id
        name = facts.name
        programType = reportedType ?? facts.kernelType
        kernelProgramType = facts.kernelType
        loadedAt = clock.text(facts.loadTime, reusing: facts.loadedAt)
        tag = facts.tag
        gplCompatible = facts.gplCompatible
        mapIDs = facts.mapIDs
        btfID = facts.btfID
        bytesXlated = facts.bytesXlated
        jited = facts.bytesJited > 0
        bytesJited = facts.bytesJited
        bytesMemlock = facts.bytesMemlock
        verifiedInsns = facts.verifiedInsns
    }
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
