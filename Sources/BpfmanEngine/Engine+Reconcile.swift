internal import Glibc
internal import Logging
internal import SystemCalls

extension Engine {
    /// Start-up reconciliation (SPEC §6.3): records are made to agree with the kernel and the pins, and every
    /// pin under `<rd>/fs` that no record explains is removed.
    func reconcile() throws(EngineError) {
        var dropped = 0
        // 1. Pending link rows: an attach that never committed.
        let pending = try db { () throws(SQLiteError) in try store.pendingLinks() }
        for link in pending {
            removePin(link.pinPath ?? paths.linkPin(link.id))
            try db { () throws(SQLiteError) in try store.deleteLink(link.id) }
            dropped += 1
        }
        // 2. Programs gone from the kernel are dropped; alive ones missing their pin are re-pinned.
        dropped += try reconcilePrograms()
        // 3. Single links whose pin is missing: re-pin a live kernel link, else drop the record.
        let links = try db { () throws(SQLiteError) in try store.allLinks() }
        for link in links where !link.kind.usesHookAttacher {
            let pin = link.pinPath ?? paths.linkPin(link.id)
            if Syscalls.exists(pin) { continue }
            if let kernelID = link.kernelLinkID, let fd = try? BPF.linkFD(id: kernelID) {
                _ = BPF.pin(fd, at: pin)
            } else {
                try db { () throws(SQLiteError) in try store.deleteLink(link.id) }
                dropped += 1
            }
        }
        // 4. Dispatchers belong to the hook attacher.
        if let hooks { try hooks.reconcile(context: hookContext) }
        // 5. Orphan pins.
        let programIDs = Set(try db { () throws(SQLiteError) in try store.programIDs() })
        for name in Syscalls.listDirectory(paths.bpffs) where name.hasPrefix("prog_") {
            if let id = UInt32(name.dropFirst(5)), programIDs.contains(id) { continue }
            removePin(paths.bpffs + "/" + name)
        }
        let activeLinks = Set(try db { () throws(SQLiteError) in try store.allLinks() }.map(\.id))
        for name in Syscalls.listDirectory(paths.linksDirectory) {
            if let id = UInt32(name), activeLinks.contains(id) { continue }
            removePin(paths.linksDirectory + "/" + name)
        }
        let mapSets = Set(try db { () throws(SQLiteError) in try store.mapSetIDs() })
        for name in Syscalls.listDirectory(paths.mapsDirectory) {
            if let id = UInt32(name), mapSets.contains(id) { continue }
            removeDirectory(paths.mapsDirectory + "/" + name)
        }
        let shared = try db { () throws(SQLiteError) in try store.sharedMapNames() }
        for name in Syscalls.listDirectory(paths.sharedMapsDirectory) where !shared.contains(name) {
            removePin(paths.sharedMapsDirectory + "/" + name)
        }
        // 6. TCX positions.
        let tcx = try db { () throws(SQLiteError) in try store.allLinks() }.filter { $0.kind == .tcx }
        for hook in Set(tcx.compactMap { tcxHook(of: $0) }) { try? recomputeTCXPositions(hook) }
        let remaining = try db { () throws(SQLiteError) in (try store.programIDs().count, try store.allLinks().count) }
        logger.info(
            "reconciled: \(remaining.0) programs, \(remaining.1) links, dropped \(dropped) stale records"
        )
    }

    /// Step 2 of start-up reconciliation: every record's program must be alive with its recorded load time (a
    /// kernel id can be reused after the program it named is gone), pinned at `fs/prog_<id>` with the inode the
    /// record keeps (re-pinned from its id otherwise) and its kernel facts recorded: a record written before they
    /// were kept gets them here, so an upgrade needs no reload (SPEC §3.8). The others are dropped, dependants
    /// before owners.
    /// - Returns: how many records were dropped.
    private func reconcilePrograms() throws(EngineError) -> Int {
        let programs = try db { () throws(SQLiteError) in try store.allPrograms() }
        let pins = ProgramPins.inodes(in: paths.bpffs)
        let clock = LoadTimeClock()
        var stale: [ProgramRecord] = []
        for record in programs {
            // The pin the engine made is still there: the program is ours and alive, nothing to read.
            if record.kernelFacts != nil, let recorded = record.pinInode, pins[record.id] == recorded { continue }
            guard let fd = try? BPF.programFD(id: record.id),
                let (id, facts) = KernelProgramFacts.readWithID(rawFD: fd.rawValue, clock: clock),
                id == record.id, record.kernelFacts.map({ $0.loadTime == facts.loadTime }) ?? true
            else {
                stale.append(record)
                continue
            }
            let pin = paths.programPin(record.id)
            var inode = pins[record.id]
            if inode != nil && inode != record.pinInode && !ProgramPins.holds(pin, id: id, loadTime: facts.loadTime) {
                removePin(pin)  // another program pinned where ours was
                inode = nil
            }
            if inode == nil {
                _ = BPF.pin(fd, at: pin)
                inode = ProgramPins.inode(at: pin)
            }
            if record.kernelFacts == nil || inode != record.pinInode {
                try db { () throws(SQLiteError) in
                    try store.recordKernelFacts(record.kernelFacts ?? facts, pinInode: inode, of: record.id)
                }
            }
        }
        for record in stale where record.mapOwnerID != nil { try? forget(record, stale: true) }
        for record in stale where record.mapOwnerID == nil { try? forget(record, stale: true) }
        return stale.count
    }
}
