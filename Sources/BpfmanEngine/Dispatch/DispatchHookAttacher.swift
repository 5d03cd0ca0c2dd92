internal import Glibc
internal import Logging
internal import SystemCalls

/// The engine's `HookAttacher`: XDP and TC attachments in dispatcher mode (SPEC §4.4-4.8) or native mode
/// (SPEC §4.9), chosen once at start-up (SPEC §4.3).
///
/// Create it with `make(paths:setting:objects:libxdpDirectory:xdpModes:)` and pass it to `Engine(hookAttacher:)`.
/// It keeps no kernel state between calls: dispatcher state lives in the `dispatchers` table and the member
/// links' rows, and every call rebuilds its `DispatcherState` from them.
package final class DispatchHookAttacher: HookAttacher {
    /// `[engine] attach_mode` (SPEC §1.8).
    package enum ModeSetting: String, Sendable, CaseIterable {
        case auto
        case dispatcher
        case native
    }

    package let loadMode: LoadMode
    /// Why this mode: the probe's outcome or the config key (for `Inspect.Status`'s `attach_mode_reason`).
    package let modeReason: String
    /// Whether the freplace probe succeeded (`kernel_features["freplace"]`); nil when not probed.
    package let freplaceSupported: Bool?
    let kernel: DispatcherKernel
    /// `[interfaces.<if>] xdp_mode`; interfaces not listed use `drv` (falling back to `skb`).
    let xdpModes: [String: XDPMode]

    init(
        loadMode: LoadMode,
        modeReason: String,
        freplaceSupported: Bool?,
        kernel: DispatcherKernel,
        xdpModes: [String: XDPMode]
    ) {
        self.loadMode = loadMode
        self.modeReason = modeReason
        self.freplaceSupported = freplaceSupported
        self.kernel = kernel
        self.xdpModes = xdpModes
    }

    /// Decides the attach mode: probes freplace unless `setting` is `.native` (SPEC §4.3). The test
    /// dispatchers are pinned by `reconcile`, which the Engine runs at start-up once bpffs is mounted.
    ///
    /// - Parameters:
    ///   - objects: the dispatcher objects, by default the ones built into the executable; only dispatcher
    ///     mode and the probe use them.
    ///   - libxdpDirectory: libxdp's bpffs (`$LIBXDP_BPFFS` or `/sys/fs/bpf`) for `xdp-loader status`.
    /// - Throws: `.internal` when `setting` is `.dispatcher` and the probe fails.
    package static func make(
        paths: BpfmanPaths,
        setting: ModeSetting = .auto,
        objects: DispatcherObjects = .embedded,
        libxdpDirectory: String? = "/sys/fs/bpf",
        xdpModes: [String: XDPMode] = [:]
    ) throws(EngineError) -> DispatchHookAttacher {
        let kernel = DispatcherKernel(
            paths: DispatcherPaths(fsRoot: paths.bpffs),
            objects: objects,
            libxdpDirectory: libxdpDirectory
        )
        var mode: LoadMode = .native
        var reason = "attach_mode = native in the configuration"
        var probed: Bool?
        if setting != .native {
            // The probe fails on every kernel that refuses freplace; its reason is in the mode line, so
            // libbpf's own account of the failed load is kept to debug level.
            if let failure = LibbpfLog.quietly({ kernel.probeFreplace() }) {
                probed = false
                reason = "freplace probe failed: \(failure.message)"
                if setting == .dispatcher {
                    throw .internal("attach_mode = dispatcher but this kernel refuses freplace: \(failure.message)")
                }
            } else {
                probed = true
                mode = .ext
                reason =
                    setting == .dispatcher
                    ? "attach_mode = dispatcher in the configuration" : "freplace probe succeeded"
            }
        }
        return DispatchHookAttacher(
            loadMode: mode,
            modeReason: reason,
            freplaceSupported: probed,
            kernel: kernel,
            xdpModes: xdpModes
        )
    }

    /// The attacher of a daemon's start-up (SPEC §1.3, §4.3), from the configuration's spellings:
    /// `attachMode` is `[engine] attach_mode` (`auto`, `dispatcher`, `native`), `xdpModes` the
    /// `[interfaces.<if>] xdp_mode` values (`skb`, `drv`, `hw`); other spellings read as the defaults.
    /// Its `status` says what was chosen and why.
    /// - Throws: `.internal` when `attachMode` is `dispatcher` and the kernel refuses freplace.
    package static func forDaemon(
        paths: BpfmanPaths,
        attachMode: String,
        xdpModes: [String: String]
    ) throws(EngineError) -> DispatchHookAttacher {
        try make(
            paths: paths,
            setting: ModeSetting(rawValue: attachMode) ?? .auto,
            xdpModes: xdpModes.compactMapValues { XDPMode(rawValue: $0) }
        )
    }

    /// The attach mode chosen at start-up, as `Inspect.Status` and the start-up log report it.
    package var status: AttachModeStatus {
        AttachModeStatus(
            mode: loadMode == .ext ? "dispatcher" : "native",
            reason: modeReason,
            freplace: freplaceSupported
        )
    }

    package func testDispatcherPin(for kind: ProgramKind) -> String? {
        guard loadMode == .ext else { return nil }
        switch kind {
        case .xdp: return kernel.paths.testDispatcher(.xdp)
        case .tc: return kernel.paths.testDispatcher(.tc)
        default: return nil
        }
    }

    // MARK: - Attach

    package func attach(
        linkID: UInt32,
        program: ProgramRecord,
        spec: AttachSpec,
        context: HookContext
    )
        throws(EngineError)
    {
        guard program.loadMode == loadMode else {
            throw .failedPrecondition(
                "program \(program.id) was loaded for \(program.loadMode.rawValue) attachment but the daemon runs in "
                    + "\(loadMode == .ext ? "dispatcher" : "native") mode"
            )
        }
        let request = try mapDispatchError { () throws(DispatchError) in try HookRequest(spec) }
        if loadMode == .ext {
            try attachToDispatcher(linkID: linkID, program: program, request: request, spec: spec, context: context)
        } else {
            try attachNatively(linkID: linkID, program: program, request: request, spec: spec, context: context)
        }
        context.logger.info(
            "attached",
            metadata: ["link_id": "\(linkID)", "program_id": "\(program.id)", "iface": "\(request.iface)"]
        )
    }

    private func attachToDispatcher(
        linkID: UInt32,
        program: ProgramRecord,
        request: HookRequest,
        spec: AttachSpec,
        context: HookContext
    ) throws(EngineError) {
        let hook = try mapDispatchError { () throws(DispatchError) in
            try DispatcherKernel.hook(kind: request.kind, iface: request.iface, netns: request.netns)
        }
        let previousID = try recordID(of: hook, context: context)
        let previous = try state(of: hook, context: context)
        let member = DispatcherMember(
            linkID: linkID,
            programID: program.id,
            programName: program.name,
            priority: request.priority,
            proceedOn: request.proceedOn
        )
        let next = try mapDispatchError { () throws(DispatchError) in
            try kernel.attach(
                member,
                hook: hook,
                iface: request.iface,
                netns: request.netns,
                previous: previous,
                xdpMode: xdpModes[request.iface] ?? .drv
            )
        }
        do {
            try record(next, previousID: previousID, newLink: (linkID, program, spec), context: context)
        } catch {
            // Records unchanged: put the old revision back in charge, or remove the new dispatcher.
            if let previous {
                _ = try? kernel.build(
                    hook: hook,
                    iface: previous.iface,
                    netns: previous.netns,
                    previous: next,
                    members: previous.members,
                    xdpMode: previous.xdpMode ?? .drv
                )
            } else {
                try? kernel.teardown(next)
            }
            throw error
        }
        if let previous { kernel.removeRevision(of: previous) }
    }

    private func attachNatively(
        linkID: UInt32,
        program: ProgramRecord,
        request: HookRequest,
        spec: AttachSpec,
        context: HookContext
    ) throws(EngineError) {
        let ifindex = try mapDispatchError { () throws(DispatchError) in
            try DispatcherKernel.hook(kind: request.kind, iface: request.iface, netns: request.netns).ifindex
        }
        let siblings = try mapStoreError { () throws(SQLiteError) in try context.store.allLinks() }.filter {
            $0.state == .active && $0.kind == program.kind && $0.nsid == request.netns.nsid && $0.ifindex == ifindex
                && $0.dispatcherID == nil && (request.direction == nil || $0.direction == request.direction?.rawValue)
        }
        var link = LinkRecord(
            id: linkID,
            programID: program.id,
            kind: program.kind,
            state: .active,
            spec: spec,
            nsid: request.netns.nsid,
            ifindex: ifindex,
            direction: request.direction?.rawValue,
            priority: request.priority
        )
        if let direction = request.direction {
            guard siblings.count < SlotPlanner.slotCount else {
                throw .failedPrecondition(
                    "no free dispatcher slots on \(request.iface) tc \(direction.rawValue) (all 10 occupied)"
                )
            }
            let filter = try mapDispatchError { () throws(DispatchError) in
                try NativeTC.attach(
                    netns: request.netns,
                    iface: request.iface,
                    direction: direction,
                    priority: request.priority,
                    programPin: context.paths.programPin(program.id)
                )
            }
            link.tcHandle = filter.handle
            link.tcPriority = UInt32(filter.priority)
            do {
                try mapStoreError { () throws(SQLiteError) in
                    try context.store.transaction { () throws(SQLiteError) in try context.store.activateLink(link) }
                }
            } catch {
                try? NativeTC.detach(netns: request.netns, filter: filter)
                throw error
            }
            try? recomputeNativeTCPositions(
                netns: request.netns,
                ifindex: ifindex,
                direction: direction,
                context: context
            )
        } else {
            if let existing = siblings.first {
                let message = NativeXDP.secondProgramError(
                    iface: request.iface,
                    programID: existing.programID,
                    linkID: existing.id
                )
                throw .failedPrecondition(message.message)
            }
            let pin = context.paths.linkPin(linkID)
            let attached = try mapDispatchError { () throws(DispatchError) in
                try NativeXDP.attach(
                    netns: request.netns,
                    iface: request.iface,
                    programPin: context.paths.programPin(program.id),
                    mode: xdpModes[request.iface] ?? .drv,
                    linkPin: pin
                )
            }
            link.position = 0
            link.kernelLinkID = attached.kernelLinkID
            link.pinPath = pin
            do {
                try mapStoreError { () throws(SQLiteError) in
                    try context.store.transaction { () throws(SQLiteError) in try context.store.activateLink(link) }
                }
            } catch {
                try? NativeXDP.detach(linkPin: pin)
                throw error
            }
        }
    }

    // MARK: - Detach

    package func detach(_ link: LinkRecord, context: HookContext) throws(EngineError) {
        if let dispatcherID = link.dispatcherID {
            try detachFromDispatcher(link, dispatcherID: dispatcherID, context: context)
            return
        }
        // Native: record first, then the kernel (SPEC §6.2).
        try mapStoreError { () throws(SQLiteError) in
            try context.store.transaction { () throws(SQLiteError) in try context.store.deleteLink(link.id) }
        }
        let netns = Self.netnsRecord(of: link)
        if link.kind == .tc, let handle = link.tcHandle, let priority = link.tcPriority, let ifindex = link.ifindex,
            let direction = link.direction.flatMap(TCDirection.init(rawValue:))
        {
            let filter = TCFilterHandle(
                ifindex: ifindex,
                direction: direction,
                priority: UInt16(truncatingIfNeeded: priority),
                handle: handle
            )
            try mapDispatchError { () throws(DispatchError) in try NativeTC.detach(netns: netns, filter: filter) }
            if netns.path.map({ access($0, F_OK) == 0 }) ?? true {
                try? recomputeNativeTCPositions(netns: netns, ifindex: ifindex, direction: direction, context: context)
            }
        } else {
            try mapDispatchError { () throws(DispatchError) in
                try NativeXDP.detach(linkPin: link.pinPath ?? context.paths.linkPin(link.id))
            }
        }
    }

    private func detachFromDispatcher(
        _ link: LinkRecord,
        dispatcherID: Int64,
        context: HookContext
    )
        throws(EngineError)
    {
        guard
            let record = try mapStoreError({ () throws(SQLiteError) in try context.store.dispatcher(id: dispatcherID) }
            ),
            let state = try state(of: record, context: context)
        else {
            try mapStoreError { () throws(SQLiteError) in try context.store.deleteLink(link.id) }
            return
        }
        let outcome = try mapDispatchError { () throws(DispatchError) in try kernel.detach(linkID: link.id, from: state)
        }
        switch outcome {
        case .notAMember:
            try mapStoreError { () throws(SQLiteError) in try context.store.deleteLink(link.id) }
        case .tornDown(let dropped):
            try mapStoreError { () throws(SQLiteError) in
                try context.store.transaction { () throws(SQLiteError) in
                    for id in Set(dropped + [link.id]) { try context.store.deleteLink(id) }
                    for member in state.members where !dropped.contains(member.linkID) && member.linkID != link.id {
                        try context.store.deleteLink(member.linkID)
                    }
                    try context.store.deleteDispatcher(dispatcherID)
                }
            }
        case .rebuilt(let next):
            try mapStoreError { () throws(SQLiteError) in
                try context.store.transaction { () throws(SQLiteError) in
                    try context.store.deleteLink(link.id)
                    try writeDispatcher(next, id: dispatcherID, context: context)
                }
            }
            kernel.removeRevision(of: state)
        }
    }

    // MARK: - Reconcile

    package func reconcile(context: HookContext) throws(EngineError) {
        let records = try mapStoreError { () throws(SQLiteError) in try context.store.allDispatchers() }
        var keep: Set<String> = []
        for record in records {
            guard let kind = Self.hookKind(record) else { continue }
            let hook = DispatcherHook(kind: kind, nsid: record.nsid, ifindex: record.ifindex)
            if let path = record.netns, access(path, F_OK) != 0 {
                // The namespace is gone, and with it the hook: drop the dispatcher and its members.
                let members = try mapStoreError { () throws(SQLiteError) in try context.store.allLinks() }
                    .filter { $0.dispatcherID == record.id }
                try mapStoreError { () throws(SQLiteError) in
                    try context.store.transaction { () throws(SQLiteError) in
                        for member in members { try context.store.deleteLink(member.id) }
                        try context.store.deleteDispatcher(record.id)
                    }
                }
                if let state = try? state(of: record, context: context) { try? kernel.teardown(state) }
                continue
            }
            var revision = record.revision
            if let state = try state(of: record, context: context), !isConsistent(state) {
                revision = try rebuildRecorded(state, recordID: record.id, context: context) ?? revision
            }
            keep.insert(hook.stem + "_\(revision)")
            if kind == .xdp { keep.insert(hook.stem + "_link") }
        }
        // Orphans: revision directories and `_link` pins without a record (SPEC §6.3 step 5).
        for kind in DispatcherHook.Kind.allCases {
            let directory = kernel.paths.kindDirectory(kind)
            for entry in Syscalls.listDirectory(directory) where !keep.contains(entry) {
                guard DispatcherPaths.parse(entry: entry, kind: kind) != nil else { continue }
                let path = "\(directory)/\(entry)"
                if entry.hasSuffix("_link") { DispatchBPF.remove(path) } else { DispatcherKernel.removeTree(path) }
            }
        }
        if loadMode == .ext {
            try mapDispatchError { () throws(DispatchError) in try kernel.installTestDispatchers() }
        }
    }

    /// SPEC §6.3 step 4: the recorded revision directory holds exactly `dispatcher` and one `link_<pos>` per
    /// recorded member, and the interface's XDP link / TC filter runs the recorded dispatcher.
    private func isConsistent(_ state: DispatcherState) -> Bool {
        let expected = Set(["dispatcher"] + state.members.indices.map { "link_\($0)" })
        guard Set(Syscalls.listDirectory(state.pinDirectory(kernel.paths))) == expected, !state.members.isEmpty else {
            return false
        }
        switch state.hook.kind {
        case .xdp:
            guard let link = try? DispatchBPF.open(pin: kernel.paths.xdpLink(state.hook)),
                let info = try? DispatchBPF.linkInfo(link.rawValue)
            else { return false }
            return info.programID == state.programID
        case .tcIngress, .tcEgress:
            let direction: TCDirection = state.hook.kind == .tcIngress ? .ingress : .egress
            let filters = try? state.netns.run { () throws(DispatchError) -> [TCObject] in
                try TCNetlink.filters(ifindex: state.hook.ifindex, parent: direction.parent)
            }
            return filters?.contains {
                $0.kind == "bpf" && $0.priority == DispatcherState.tcFilterPriority && $0.handle == state.tcHandle
            } ?? false
        }
    }

    /// Rebuilds a dispatcher from its recorded members (or removes it when none are left) and records the
    /// result. Returns the new revision, or nil when the dispatcher was removed.
    private func rebuildRecorded(
        _ state: DispatcherState,
        recordID: Int64,
        context: HookContext
    )
        throws(EngineError) -> UInt32?
    {
        context.logger.info(
            "rebuilding dispatcher that does not match its records",
            metadata: ["hook": "\(state.hook)", "revision": "\(state.revision)"]
        )
        if state.members.isEmpty {
            try? kernel.teardown(state)
            try mapStoreError { () throws(SQLiteError) in try context.store.deleteDispatcher(recordID) }
            return nil
        }
        let next = try mapDispatchError { () throws(DispatchError) in
            try kernel.build(
                hook: state.hook,
                iface: state.iface,
                netns: state.netns,
                previous: state,
                members: state.members,
                xdpMode: state.xdpMode ?? .drv
            )
        }
        try mapStoreError { () throws(SQLiteError) in
            try context.store.transaction { () throws(SQLiteError) in
                try writeDispatcher(next, id: recordID, context: context)
            }
        }
        kernel.removeRevision(of: state)
        return next.revision
    }

    // MARK: - Inspection

    /// Every recorded dispatcher with its live member positions (`Inspect.ListDispatchers`), optionally
    /// only those on interface `iface`.
    package func dispatchers(iface: String? = nil, context: HookContext) throws(EngineError) -> [DispatcherState] {
        var result: [DispatcherState] = []
        for record in try mapStoreError({ () throws(SQLiteError) in try context.store.allDispatchers() })
        where iface == nil || record.iface == iface {
            if let state = try state(of: record, context: context) { result.append(state) }
        }
        return result
    }

    // MARK: - Records

    /// The recorded state of `hook`, if it has a dispatcher.
    private func state(of hook: DispatcherHook, context: HookContext) throws(EngineError) -> DispatcherState? {
        let direction = hook.kind == .tcIngress ? "ingress" : hook.kind == .tcEgress ? "egress" : ""
        let record = try mapStoreError { () throws(SQLiteError) in
            try context.store.dispatcher(
                kind: hook.kind == .xdp ? "xdp" : "tc",
                nsid: hook.nsid,
                ifindex: hook.ifindex,
                direction: direction
            )
        }
        guard let record else { return nil }
        return try state(of: record, context: context)
    }

    private func recordID(of hook: DispatcherHook, context: HookContext) throws(EngineError) -> Int64? {
        let direction = hook.kind == .tcIngress ? "ingress" : hook.kind == .tcEgress ? "egress" : ""
        return try mapStoreError { () throws(SQLiteError) in
            try context.store.dispatcher(
                kind: hook.kind == .xdp ? "xdp" : "tc",
                nsid: hook.nsid,
                ifindex: hook.ifindex,
                direction: direction
            )
        }?.id
    }

    /// Rebuilds a `DispatcherState` from a `dispatchers` row and its member links (by position).
    private func state(of record: DispatcherRecord, context: HookContext) throws(EngineError) -> DispatcherState? {
        guard let kind = Self.hookKind(record) else { return nil }
        let links = try mapStoreError { () throws(SQLiteError) in try context.store.allLinks() }
            .filter { $0.dispatcherID == record.id && $0.state == .active }
            .sorted { ($0.position ?? 0) < ($1.position ?? 0) }
        var members: [DispatcherMember] = []
        for link in links {
            let name =
                try mapStoreError { () throws(SQLiteError) in try context.store.program(link.programID) }?.name ?? ""
            let codes: [Int32]
            switch link.spec {
            case .xdp(let a): codes = a.proceedOn
            case .tc(let a): codes = a.proceedOn
            default: codes = []
            }
            let proceedOn =
                (try? ProceedOn(family: kind.family, codes: codes))
                ?? (try! ProceedOn(family: kind.family, codes: []))
            members.append(
                DispatcherMember(
                    linkID: link.id,
                    programID: link.programID,
                    programName: name,
                    priority: link.priority ?? 0,
                    proceedOn: proceedOn
                )
            )
        }
        return DispatcherState(
            hook: DispatcherHook(kind: kind, nsid: record.nsid, ifindex: record.ifindex),
            iface: record.iface,
            netns: NetworkNamespace(path: record.netns, nsid: record.nsid),
            revision: record.revision,
            programID: record.kernelProgramID ?? 0,
            tcHandle: record.tcHandle,
            xdpMode: record.xdpFlags.flatMap { flags in XDPMode.allCases.first { $0.flags == flags } },
            members: members,
            memberKernelLinkIDs: links.map { $0.kernelLinkID ?? 0 }
        )
    }

    /// Commits a rebuilt dispatcher: its row, the new link (if any) and every member's slot (SPEC §6.2).
    private func record(
        _ state: DispatcherState,
        previousID: Int64?,
        newLink: (UInt32, ProgramRecord, AttachSpec),
        context: HookContext
    ) throws(EngineError) {
        try mapStoreError { () throws(SQLiteError) in
            try context.store.transaction { () throws(SQLiteError) in
                let id = try writeDispatcher(state, id: previousID, context: context)
                let (linkID, program, spec) = newLink
                let position = state.planner.position(of: linkID) ?? 0
                let link = LinkRecord(
                    id: linkID,
                    programID: program.id,
                    kind: program.kind,
                    state: .active,
                    spec: spec,
                    nsid: state.hook.nsid,
                    ifindex: state.hook.ifindex,
                    direction: Self.direction(of: state.hook),
                    priority: state.members[position].priority,
                    position: Int32(position),
                    dispatcherID: id,
                    kernelLinkID: state.memberKernelLinkIDs[position],
                    pinPath: kernel.paths.memberLink(state.hook, revision: state.revision, position: position)
                )
                try context.store.activateLink(link)
            }
        }
    }

    /// Writes the dispatcher row and every member's position, pin and kernel link id; returns the row id.
    @discardableResult
    private func writeDispatcher(
        _ state: DispatcherState,
        id: Int64?,
        context: HookContext
    ) throws(SQLiteError)
        -> Int64
    {
        let row = DispatcherRecord(
            id: id ?? 0,
            kind: state.hook.kind == .xdp ? "xdp" : "tc",
            nsid: state.hook.nsid,
            ifindex: state.hook.ifindex,
            iface: state.iface,
            netns: state.netns.path,
            direction: Self.direction(of: state.hook) ?? "",
            revision: state.revision,
            kernelProgramID: state.programID,
            tcHandle: state.tcHandle,
            xdpFlags: state.xdpMode?.flags
        )
        let rowID = try context.store.saveDispatcher(row)
        for (position, member) in state.members.enumerated() {
            try context.store.updateMember(
                link: member.linkID,
                position: Int32(position),
                pinPath: kernel.paths.memberLink(state.hook, revision: state.revision, position: position),
                kernelLinkID: state.memberKernelLinkIDs[position]
            )
        }
        return rowID
    }

    private func recomputeNativeTCPositions(
        netns: NetworkNamespace,
        ifindex: UInt32,
        direction: TCDirection,
        context: HookContext
    ) throws(EngineError) {
        let links = try mapStoreError { () throws(SQLiteError) in try context.store.allLinks() }.filter {
            $0.state == .active && $0.kind == .tc && $0.dispatcherID == nil && $0.nsid == netns.nsid
                && $0.ifindex == ifindex && $0.direction == direction.rawValue && $0.tcHandle != nil
        }
        let handles = links.map {
            TCFilterHandle(
                ifindex: ifindex,
                direction: direction,
                priority: UInt16(truncatingIfNeeded: $0.tcPriority ?? 0),
                handle: $0.tcHandle ?? 0
            )
        }
        let positions = try mapDispatchError { () throws(DispatchError) in
            try NativeTC.positions(netns: netns, ifindex: ifindex, direction: direction, ours: handles)
        }
        try mapStoreError { () throws(SQLiteError) in
            for (link, handle) in zip(links, handles) {
                try context.store.updatePosition(link: link.id, position: positions[handle].map { Int32($0) })
            }
        }
    }

    // MARK: - Helpers

    private static func hookKind(_ record: DispatcherRecord) -> DispatcherHook.Kind? {
        switch (record.kind, record.direction) {
        case ("xdp", _): .xdp
        case ("tc", "ingress"): .tcIngress
        case ("tc", "egress"): .tcEgress
        default: nil
        }
    }

    private static func direction(of hook: DispatcherHook) -> String? {
        switch hook.kind {
        case .xdp: nil
        case .tcIngress: "ingress"
        case .tcEgress: "egress"
        }
    }

    private static func netnsRecord(of link: LinkRecord) -> NetworkNamespace {
        let path: String?
        switch link.spec {
        case .xdp(let a): path = a.netns
        case .tc(let a): path = a.netns
        default: path = nil
        }
        return NetworkNamespace(path: path?.isEmpty == true ? nil : path, nsid: link.nsid ?? 0)
    }
}

/// The XDP/TC fields of an attach request, validated (SPEC §3.3 per-variant checks).
struct HookRequest {
    var kind: DispatcherHook.Kind
    var iface: String
    var direction: TCDirection?
    var priority: Int32
    var proceedOn: ProceedOn
    var netns: NetworkNamespace

    init(_ spec: AttachSpec) throws(DispatchError) {
        let netnsPath: String?
        switch spec {
        case .xdp(let a):
            try NetworkInterface.validate(name: a.iface)
            try Self.checkPriority(a.priority)
            kind = .xdp
            iface = a.iface
            direction = nil
            priority = a.priority
            proceedOn = try ProceedOn(family: .xdp, codes: a.proceedOn)
            netnsPath = a.netns
        case .tc(let a):
            try NetworkInterface.validate(name: a.iface)
            try Self.checkPriority(a.priority)
            let parsed = try TCDirection(parsing: a.direction)
            kind = parsed.hookKind
            iface = a.iface
            direction = parsed
            priority = a.priority
            proceedOn = try ProceedOn(family: .tc, codes: a.proceedOn)
            netnsPath = a.netns
        default:
            throw DispatchError(.invalidArgument, "\(spec.variantName) attachments do not go through dispatchers")
        }
        netns = try NetworkNamespace.resolve(netnsPath)
    }

    private static func checkPriority(_ priority: Int32) throws(DispatchError) {
        guard priority >= 0 else {
            throw DispatchError(.invalidArgument, "priority must be non-negative, got \(priority)")
        }
    }
}

/// Runs `body`, mapping `DispatchError` to the engine's error with the same code and message.
private func mapDispatchError<T>(_ body: () throws(DispatchError) -> T) throws(EngineError) -> T {
    do {
        return try body()
    } catch {
        switch error.code {
        case .invalidArgument: throw .invalidArgument(error.message)
        case .failedPrecondition: throw .failedPrecondition(error.message)
        case .internal: throw .internal(error.message, errno: error.errno)
        }
    }
}

/// Runs a store call, mapping its error to `.internal`.
@discardableResult
private func mapStoreError<T>(_ body: () throws(SQLiteError) -> T) throws(EngineError) -> T {
    do {
        return try body()
    } catch {
        throw .internal("database error: \(error)")
    }
}
