internal import Glibc
internal import Logging

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
        // 2. Programs gone from the kernel; alive ones missing their pin are re-pinned.
        let programs = try db { () throws(SQLiteError) in try store.allPrograms() }
        var stale = 0
        for record in programs where !isAlive(record) { stale += 1 }
        dropStaleRecords()
        dropped += stale
        let alive = try db { () throws(SQLiteError) in try store.allPrograms() }
        for record in alive where !Syscalls.exists(paths.programPin(record.id)) {
            if let fd = try? BPF.programFD(id: record.id) { _ = BPF.pin(fd, at: paths.programPin(record.id)) }
        }
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
}
