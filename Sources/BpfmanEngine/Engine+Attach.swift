internal import CBPF
internal import Glibc
internal import Logging
internal import SystemCalls

extension Engine {
    /// Attaches a managed program (SPEC §3.3) and returns the new link id.
    ///
    /// Single links (tracepoint, kprobe, uprobe, fentry, fexit, lsm, tcx) are pinned at `fs/links/<link id>`;
    /// XDP and TC go to the `HookAttacher`. A pending row reserves the id first (SPEC §6.2); any failure
    /// removes the row, the pin and the kernel link, so the id is simply never used.
    /// - Throws: `EngineError` with the §3.3 code and message of the first failing check.
    package func attach(programID: UInt32, spec: AttachSpec) throws(EngineError) -> UInt32 {
        let program = try managedProgram(programID)
        guard spec.acceptedKinds.contains(program.kind) else {
            throw .failedPrecondition(
                "program \(programID) is a \(program.kind.rawValue) program; the \(spec.variantName) attach accepts "
                    + spec.acceptedKinds.map(\.rawValue).joined(separator: " or ")
            )
        }
        if program.kind.usesHookAttacher {
            guard let hooks else {
                throw .failedPrecondition(
                    "\(spec.variantName) attachment is not available: this engine was started without the dispatcher"
                )
            }
            guard program.loadMode == hooks.loadMode else {
                func name(_ mode: LoadMode) -> String { mode == .ext ? "dispatcher" : "native" }
                throw .failedPrecondition(
                    "program \(programID) was loaded for \(name(program.loadMode)) attachment but the daemon runs in "
                        + "\(name(hooks.loadMode)) mode"
                )
            }
            let linkID = try db { () throws(SQLiteError) in
                try store.insertPendingLink(programID: programID, kind: program.kind, spec: spec)
            }
            do { try hooks.attach(linkID: linkID, program: program, spec: spec, context: hookContext) } catch {
                try? store.deleteLink(linkID)
                throw error
            }
            return linkID
        }
        let plan = try plan(spec, program: program)
        let linkID = try db { () throws(SQLiteError) in
            try store.insertPendingLink(programID: programID, kind: program.kind, spec: spec)
        }
        let pin = paths.linkPin(linkID)
        crashPoint("attach.afterPending")
        do throws(EngineError) {
            var record = try perform(plan, program: program, linkID: linkID, pin: pin)
            crashPoint("attach.afterPin")
            record.pinPath = pin
            try db { () throws(SQLiteError) in
                try store.transaction { () throws(SQLiteError) in try store.activateLink(record) }
            }
            if case .tcx(let hook, _) = plan { try? recomputeTCXPositions(hook) }
        } catch {
            removePin(pin)
            try? store.deleteLink(linkID)
            throw error
        }
        logger.info("attached", metadata: ["program_id": "\(programID)", "link_id": "\(linkID)"])
        return linkID
    }

    /// Detaches a link (SPEC §3.4); the program stays loaded.
    package func detach(linkID: UInt32) throws(EngineError) {
        guard linkID != 0 else { throw .invalidArgument("link id is required") }
        let link = try link(id: linkID)
        try detachLink(link)
        logger.info("detached", metadata: ["link_id": "\(linkID)"])
    }

    /// Detach of one link: record first, then the kernel (SPEC §6.2). The kernel link is gone on return.
    func detachLink(_ link: LinkRecord) throws(EngineError) {
        if link.kind.usesHookAttacher {
            guard let hooks else { throw .failedPrecondition("link \(link.id) needs the dispatcher to detach") }
            try hooks.detach(link, context: hookContext)
            return
        }
        try db { () throws(SQLiteError) in
            try store.transaction { () throws(SQLiteError) in try store.deleteLink(link.id) }
        }
        crashPoint("detach.afterCommit")
        let pin = link.pinPath ?? paths.linkPin(link.id)
        var kernelID = link.kernelLinkID
        var detached = false
        if let fd = try? BPF.objectGet(pin) {
            if case .success(let info) = BPF.linkInfo(fd) { kernelID = info.id }
            // Perf-event links have no BPF_LINK_DETACH (EOPNOTSUPP/EINVAL): they go with their last reference.
            if case .success = BPF.linkDetach(fd) { detached = true }
            // Unpin while this fd still holds the link, then close it: the kernel defers the release of a
            // reference dropped by unpinning (the link's id goes first, its program leaves the hook later),
            // but frees the link within close(2) when a file drops the last one.
            removePin(pin)
            _ = consume fd
        } else {
            removePin(pin)
        }
        if !detached, let kernelID { waitUntilLinkGone(kernelID) }
        if link.kind == .tcx, let hook = tcxHook(of: link) { try? recomputeTCXPositions(hook) }
    }

    /// Waits (blocking, inside the detach) until kernel link `id` no longer exists (`KernelRelease`).
    func waitUntilLinkGone(_ id: UInt32) {
        if KernelRelease.waitBlocking(until: { !BPF.linkExists(id: id) }) { return }
        logger.warning("kernel link still present after detach", metadata: ["kernel_link_id": "\(id)"])
    }

    // MARK: plans: validation without side effects

    struct TCXHook: Hashable {
        var netns: String?
        var nsid: UInt64
        var iface: String
        var ifindex: UInt32
        var direction: String
        var attachType: UInt32 { direction == "ingress" ? BPFAttachType.tcxIngress : BPFAttachType.tcxEgress }
    }

    enum AttachPlan {
        case tracepoint(id: UInt64, name: String)
        case kprobe(function: String, offset: UInt64, retprobe: Bool)
        case uprobe(path: String, address: UInt64, pid: Int32, retprobe: Bool, target: String)
        case uprobeInContainer(
            containerPid: Int32,
            target: String,
            fnName: String?,
            offset: UInt64,
            pid: Int32,
            retprobe: Bool
        )
        case tracing(ProgramKind)
        case tcx(TCXHook, priority: Int32)
    }

    /// Runs the per-variant checks of SPEC §3.3 and resolves everything the kernel step needs.
    private func plan(_ spec: AttachSpec, program: ProgramRecord) throws(EngineError) -> AttachPlan {
        switch spec {
        case .tracepoint(let a):
            let parts = a.tracepoint.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
                !a.tracepoint.contains(where: { $0.isWhitespace })
            else {
                throw .invalidArgument(
                    "invalid tracepoint \"\(a.tracepoint)\": expected group/name (e.g. sched/sched_switch)"
                )
            }
            guard let id = Probes.tracepointID(group: String(parts[0]), name: String(parts[1])) else {
                throw .notFound("tracepoint \"\(a.tracepoint)\" not found")
            }
            return .tracepoint(id: id, name: a.tracepoint)
        case .kprobe(let a):
            guard !a.fnName.isEmpty else { throw .invalidArgument("fn_name is required for kprobe attachment") }
            if program.kind == .kretprobe && a.offset != 0 {
                throw .invalidArgument("offset is not supported for kretprobe attachment")
            }
            if let container = a.containerPid {
                logger.warning("container_pid is ignored for kprobes", metadata: ["container_pid": "\(container)"])
            }
            return .kprobe(function: a.fnName, offset: a.offset, retprobe: program.kind == .kretprobe)
        case .uprobe(let a):
            guard !a.target.isEmpty else { throw .invalidArgument("target is required for uprobe attachment") }
            if let pid = a.pid, pid < 0 { throw .invalidArgument("pid must be non-negative, got \(pid)") }
            if let c = a.containerPid, c < 0 { throw .invalidArgument("container_pid must be non-negative, got \(c)") }
            let retprobe = program.kind == .uretprobe
            let fnName = (a.fnName?.isEmpty ?? true) ? nil : a.fnName
            if let container = a.containerPid, container > 0 {
                guard Syscalls.exists("/proc/\(container)/ns/mnt") || Syscalls.exists("/host/proc/\(container)/ns/mnt")
                else {
                    throw .invalidArgument(
                        "container pid \(container) has no mount namespace (tried /proc/\(container)/ns/mnt and "
                            + "/host/proc/\(container)/ns/mnt)"
                    )
                }
                return .uprobeInContainer(
                    containerPid: container,
                    target: a.target,
                    fnName: fnName,
                    offset: a.offset,
                    pid: a.pid ?? 0,
                    retprobe: retprobe
                )
            }
            let path: String
            switch UprobeTarget.resolve(a.target, pid: a.pid) {
            case .success(let resolved): path = resolved
            case .failure(let error):
                throw .invalidArgument("uprobe target \"\(a.target)\" could not be resolved: \(error.reason)")
            }
            let address = try probeAddress(path: path, fnName: fnName, offset: a.offset)
            return .uprobe(path: path, address: address, pid: a.pid ?? 0, retprobe: retprobe, target: a.target)
        case .fentry, .fexit:
            return .tracing(program.kind)
        case .lsm:
            let lsm = Syscalls.readText("/sys/kernel/security/lsm") ?? ""
            guard lsm.split(separator: ",").contains("bpf") else {
                throw .failedPrecondition("the BPF LSM is not active on this kernel (boot with lsm=...,bpf)")
            }
            return .tracing(.lsm)
        case .tcx(let a):
            return try planTCX(a, program: program)
        case .xdp, .tc:
            throw .failedPrecondition("\(spec.variantName) attachment needs the dispatcher")
        }
    }

    /// Symbol file offset + offset, or the offset alone without a symbol.
    func probeAddress(path: String, fnName: String?, offset: UInt64) throws(EngineError) -> UInt64 {
        guard let fnName else { return offset }
        let fd = try converting(
            { () throws(SystemCallError) in try Syscalls.open(path, O_RDONLY) },
            mapError: { .invalidArgument("uprobe target \"\(path)\" could not be resolved: \($0.errno)") }
        )
        guard let symbol = ELFFile.fileOffset(of: fnName, in: fd) else {
            throw .invalidArgument("symbol \"\(fnName)\" not found in \(path)")
        }
        return symbol + offset
    }

    private func planTCX(_ a: TCXAttach, program: ProgramRecord) throws(EngineError) -> AttachPlan {
        guard !a.iface.isEmpty else { throw .invalidArgument("iface is required") }
        guard a.iface.utf8.count <= 15, !a.iface.contains(where: { $0 == "/" || $0.isWhitespace }) else {
            throw .invalidArgument("invalid interface name \"\(a.iface)\"")
        }
        guard a.priority >= 0 else { throw .invalidArgument("priority must be non-negative, got \(a.priority)") }
        let direction = a.direction.trimmingWhitespace().lowercased()
        guard direction == "ingress" || direction == "egress" else {
            throw .invalidArgument("invalid TC direction \"\(a.direction)\": must be 'ingress' or 'egress'")
        }
        let netns = (a.netns?.isEmpty ?? true) ? nil : a.netns
        if let netns, !netns.hasPrefix("/") {
            throw NamespaceThread.notANamespace(netns, "path is not absolute")
        }
        let nsid = try NamespaceThread.nsid(path: netns)
        let attachType = direction == "ingress" ? BPFAttachType.tcxIngress : BPFAttachType.tcxEgress
        let ifindex = try NamespaceThread.run(in: netns) { () throws(EngineError) -> UInt32 in
            let index = if_nametoindex(a.iface)
            guard index != 0 else {
                throw .invalidArgument("interface \"\(a.iface)\" not found in netns \"\(netns ?? "host")\"")
            }
            if case .failure(let error) = BPF.query(ifindex: index, attachType: attachType),
                error.errno == .invalidArgument
            {
                throw .failedPrecondition("TCX is not supported by this kernel (needs Linux 6.6 or later)")
            }
            return index
        }
        let hook = TCXHook(netns: netns, nsid: nsid, iface: a.iface, ifindex: ifindex, direction: direction)
        let existing = try db { () throws(SQLiteError) in
            try store.tcxLinks(nsid: nsid, ifindex: ifindex, direction: direction)
        }
        if let duplicate = existing.first(where: { $0.programID == program.id }) {
            throw .failedPrecondition(
                "program \(program.id) is already attached to \(a.iface) \(direction) as link \(duplicate.id); detach it first"
            )
        }
        return .tcx(hook, priority: a.priority)
    }

    // MARK: kernel steps

    /// Creates and pins the kernel link; returns the record to activate.
    private func perform(
        _ plan: AttachPlan,
        program: ProgramRecord,
        linkID: UInt32,
        pin: String
    ) throws(EngineError)
        -> LinkRecord
    {
        let programPin = paths.programPin(program.id)
        let programFD = try converting(
            { () throws(BPFError) -> OwnedFD in
                do { return try BPF.objectGet(programPin) } catch { return try BPF.programFD(id: program.id) }
            },
            mapError: { _ in .notFound("program \(program.id) does not exist") }
        )
        let spec = try db { () throws(SQLiteError) in try store.link(linkID)?.spec }
        guard let spec else { throw .internal("link \(linkID) vanished during attach") }
        var record = LinkRecord(id: linkID, programID: program.id, kind: program.kind, state: .active, spec: spec)
        let link: OwnedFD
        switch plan {
        case .tracepoint(let id, let name):
            do throws(EngineError) {
                link = try attachFailure(program.kind, name) { () throws(BPFError) -> OwnedFD in
                    let perf = try Probes.openTracepoint(id: id)
                    return try BPF.perfLink(programFD: programFD, perfFD: perf)
                }
            } catch let error where error.errno == .fileExists {
                throw try alreadyOnTracepoint(program: program.id, tracepoint: name, attaching: linkID)
            }
        case .kprobe(let function, let offset, let retprobe):
            guard let pmu = Probes.pmu("kprobe") else {
                throw .internal("attach \(program.kind.rawValue) \(function): kprobes are not supported by this kernel")
            }
            link = try attachFailure(program.kind, function) { () throws(BPFError) -> OwnedFD in
                let perf = try Probes.openProbe(pmu: pmu, retprobe: retprobe, name: function, offset: offset, pid: -1)

                return try BPF.perfLink(programFD: programFD, perfFD: perf)
            }
        case .uprobe(let path, let address, let pid, let retprobe, _):
            link = try attachUprobe(
                programFD: programFD,
                kind: program.kind,
                path: path,
                address: address,
                pid: pid,
                retprobe: retprobe
            )
            record.resolvedTarget = path
        case .uprobeInContainer(let container, let target, let fnName, let offset, let pid, let retprobe):
            let opened = try ContainerTarget.open(
                containerPid: container,
                target: target,
                pid: pid,
                helper: BpfmanPaths.nsHelperPath
            )
            let fdPath = "/proc/self/fd/\(opened.fd.rawValue)"
            let address: UInt64
            if let fnName {
                guard let symbol = ELFFile.fileOffset(of: fnName, in: opened.fd) else {
                    throw .invalidArgument("symbol \"\(fnName)\" not found in \(opened.path)")
                }
                address = symbol + offset
            } else {
                address = offset
            }
            link = try attachUprobe(
                programFD: programFD,
                kind: program.kind,
                path: fdPath,
                address: address,
                pid: pid,
                retprobe: retprobe
            )
            record.resolvedTarget = opened.path
        case .tracing(let kind):
            link = try attachFailure(kind, program.attachTarget ?? program.name) { () throws(BPFError) -> OwnedFD in
                try BPF.tracingAttach(programFD: programFD)
            }
        case .tcx(let hook, let priority):
            link = try attachTCX(programFD: programFD, program: program, hook: hook, priority: priority)
            record.nsid = hook.nsid
            record.ifindex = hook.ifindex
            record.direction = hook.direction
            record.priority = priority
        }
        if case .failure(let error) = BPF.pin(link, at: pin) {
            _ = BPF.linkDetach(link)
            throw .internal("failed to pin link \(linkID): \(error.errno)", errno: error.errno)
        }
        if case .success(let info) = BPF.linkInfo(link) { record.kernelLinkID = info.id }
        return record
    }

    /// SPEC §3.3's refusal of a second link of one program to one tracepoint. The kernel keeps one copy of a
    /// program per tracepoint and answers a second with EEXIST; the existing link is the program's active
    /// tracepoint link of that name (not `linkID`, the pending row of this attach).
    private func alreadyOnTracepoint(
        program: UInt32,
        tracepoint: String,
        attaching linkID: UInt32
    ) throws(EngineError) -> EngineError {
        let links = try db { () throws(SQLiteError) in try store.links(ofProgram: program) }
        let existing = links.first { link in
            guard link.id != linkID, link.state == .active, case .tracepoint(let a) = link.spec else { return false }
            return a.tracepoint == tracepoint
        }
        guard let existing else {
            // Attached by someone else, through the program's pin: no link of ours to name.
            return .failedPrecondition(
                "program \(program) is already attached to tracepoint \(tracepoint) by a link bpfman does not manage"
            )
        }
        return .failedPrecondition(
            "program \(program) is already attached to tracepoint \(tracepoint) as link \(existing.id)"
        )
    }

    private func attachUprobe(
        programFD: borrowing OwnedFD,
        kind: ProgramKind,
        path: String,
        address: UInt64,
        pid: Int32,
        retprobe: Bool
    ) throws(EngineError) -> OwnedFD {
        guard let pmu = Probes.pmu("uprobe") else {
            throw .internal("attach \(kind.rawValue) \(path): uprobes are not supported by this kernel")
        }
        return try attachFailure(kind, path) { () throws(BPFError) -> OwnedFD in
            let perf = try Probes.openProbe(pmu: pmu, retprobe: retprobe, name: path, offset: address, pid: pid)
            return try BPF.perfLink(programFD: programFD, perfFD: perf)
        }
    }

    /// Kernel refusals become INTERNAL `attach <kind> <target>: <strerror>`.
    private func attachFailure(
        _ kind: ProgramKind,
        _ target: String,
        _ body: () throws(BPFError) -> OwnedFD
    ) throws(EngineError) -> OwnedFD {
        do { return try body() } catch {
            throw .internal("attach \(kind.rawValue) \(target): \(error.errno)", errno: error.errno)
        }
    }

    // MARK: TCX (SPEC §4.10)

    private func attachTCX(
        programFD: borrowing OwnedFD,
        program: ProgramRecord,
        hook: TCXHook,
        priority: Int32
    )
        throws(EngineError) -> OwnedFD
    {
        let existing = try db { () throws(SQLiteError) in
            try store.tcxLinks(nsid: hook.nsid, ifindex: hook.ifindex, direction: hook.direction)
        }
        let ordered = existing.sorted { ($0.priority ?? 0, $0.position ?? 0) < ($1.priority ?? 0, $1.position ?? 0) }
            .filter { BPF.programExists(id: $0.programID) }
        let (flags, relative) = Engine.tcxAnchor(
            ordered.map { ($0.priority ?? 0, $0.programID) },
            newPriority: priority
        )
        let raw = programFD.rawValue
        let fd = try NamespaceThread.run(in: hook.netns) { () throws(EngineError) -> CInt in
            do throws(BPFError) {
                let link = try BPF.linkCreate(
                    programFD: OwnedFD(taking: dup(raw)),
                    target: hook.ifindex,
                    attachType: hook.attachType,
                    flags: flags,
                    relativeID: relative
                )
                return link.take()
            } catch {
                throw .internal("attach tcx \(hook.iface) \(hook.direction): \(error.errno)", errno: error.errno)
            }
        }
        return OwnedFD(taking: fd)
    }

    /// The anchor rule of SPEC §4.10 over bpfman links sorted by (priority, position):
    /// `(flags, relative program id)`.
    static func tcxAnchor(_ ordered: [(priority: Int32, programID: UInt32)], newPriority: Int32) -> (UInt32, UInt32) {
        guard let last = ordered.last else { return (BPFMultiProgFlag.before, 0) }
        if let next = ordered.first(where: { $0.priority > newPriority }) {
            return (BPFMultiProgFlag.before | BPFMultiProgFlag.id, next.programID)
        }
        return (BPFMultiProgFlag.after | BPFMultiProgFlag.id, last.programID)
    }

    func tcxHook(of link: LinkRecord) -> TCXHook? {
        guard case .tcx(let a) = link.spec, let nsid = link.nsid, let ifindex = link.ifindex,
            let direction = link.direction
        else { return nil }
        let netns = (a.netns?.isEmpty ?? true) ? nil : a.netns
        return TCXHook(netns: netns, nsid: nsid, iface: a.iface, ifindex: ifindex, direction: direction)
    }

    /// Positions 0...n-1 of bpfman's links on a TCX hook, from the kernel's order (`BPF_PROG_QUERY`).
    func recomputeTCXPositions(_ hook: TCXHook) throws(EngineError) {
        if let netns = hook.netns, !Syscalls.exists(netns) { return }
        let order = try NamespaceThread.run(in: hook.netns) { () throws(EngineError) -> [UInt32] in
            switch BPF.query(ifindex: hook.ifindex, attachType: hook.attachType) {
            case .success(let entries): return entries.map(\.link)
            case .failure(let error): throw .internal("query tcx \(hook.iface): \(error.errno)")
            }
        }
        let links = try db { () throws(SQLiteError) in
            try store.tcxLinks(nsid: hook.nsid, ifindex: hook.ifindex, direction: hook.direction)
        }
        let ours = order.filter { kernelID in links.contains { $0.kernelLinkID == kernelID } }
        try db { () throws(SQLiteError) in
            try store.transaction { () throws(SQLiteError) in
                for link in links {
                    let position = link.kernelLinkID.flatMap { ours.firstIndex(of: $0) }.map { Int32($0) }
                    try store.updatePosition(link: link.id, position: position)
                }
            }
        }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
