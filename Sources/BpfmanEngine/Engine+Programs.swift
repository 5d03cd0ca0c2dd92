internal import CBPF
internal import Glibc
internal import Logging

extension Engine {
    /// Unloads a managed program (SPEC §3.2): detaches every link as Detach does, removes `fs/prog_<id>`,
    /// leaves the map set (removing it with its last member), releases PIN_BY_NAME references, deletes records.
    /// - Throws: INVALID_ARGUMENT for id 0, NOT_FOUND for unknown/unmanaged/vanished programs, INTERNAL when a
    ///   kernel step fails (the program stays managed with its remaining links).
    package func unload(id: UInt32) throws(EngineError) {
        let record = try managedProgram(id)
        let links = try db { () throws(SQLiteError) in try store.links(ofProgram: id) }
        let hookLinks = links.filter { $0.kind.usesHookAttacher && $0.state == .active }
        if !hookLinks.isEmpty, let hooks {
            do { try hooks.detachAll(hookLinks, context: hookContext) } catch {
                throw .internal("failed to unload program \(id): detach: \(error.message)", errno: error.errno)
            }
        }
        for link in links where !link.kind.usesHookAttacher {
            do { try detachLink(link) } catch {
                throw .internal(
                    "failed to unload program \(id): detach link \(link.id): \(error.message)",
                    errno: error.errno
                )
            }
        }
        try forget(record)
        logger.info("unloaded program", metadata: ["program_id": "\(id)"])
    }

    /// Returns once kernel program `id` is gone (at most 2 s; `KernelRelease`), without holding the actor:
    /// the kernel frees an unpinned program a moment after Unload dropped its last reference.
    package nonisolated func waitUntilProgramGone(_ id: UInt32) async {
        _ = await KernelRelease.wait(until: { !BPF.programExists(id: id) })
    }

    /// The record of a managed program that is alive in the kernel.
    /// - Throws: the NOT_FOUND / INVALID_ARGUMENT shapes shared by Unload, Attach and Get.
    func managedProgram(_ id: UInt32) throws(EngineError) -> ProgramRecord {
        guard id != 0 else { throw .invalidArgument("program id is required") }
        guard let record = try db({ () throws(SQLiteError) in try store.program(id) }) else {
            if BPF.programExists(id: id) {
                throw .notFound("program \(id) exists in the kernel but is not managed by bpfman")
            }
            throw .notFound("program \(id) does not exist")
        }
        guard isAlive(record) else {
            try? forget(record, stale: true)
            throw .notFound("program \(id) does not exist")
        }
        return record
    }

    /// A managed program is alive while the pin the engine made for it is there (SPEC §6.4; `ProgramPins`).
    func isAlive(_ record: ProgramRecord) -> Bool {
        record.isAlive(pinInode: ProgramPins.inode(at: paths.programPin(record.id)), paths: paths)
    }

    /// Deletes a program's records (and, for stale programs, its link records) in one transaction, then removes
    /// its pins: program pin, link pins, a map-set directory left without members, unreferenced shared maps.
    func forget(_ record: ProgramRecord, stale: Bool = false) throws(EngineError) {
        let links = try db { () throws(SQLiteError) in try store.links(ofProgram: record.id) }
        let (released, emptySet) = try db { () throws(SQLiteError) -> ([String], Bool) in
            try store.transaction { () throws(SQLiteError) -> ([String], Bool) in
                let released = try store.deleteProgram(record.id)
                let empty = try store.mapSetMembers(record.mapSetID).isEmpty
                if empty { try store.deleteMapSet(record.mapSetID) }
                return (released, empty)
            }
        }
        crashPoint("unload.afterCommit")
        for link in links { if let pin = link.pinPath { removePin(pin) } }
        removePin(paths.programPin(record.id))
        if emptySet { removeDirectory(paths.mapSetDirectory(record.mapSetID)) }
        for name in released { removePin(paths.sharedMapsDirectory + "/" + name) }
        if stale { logger.info("dropped stale record", metadata: ["program_id": "\(record.id)"]) }
    }

    /// Drops every record whose program vanished (its pin removed, SPEC §6.4), dependants before owners.
    func dropStaleRecords() {
        guard let pins = try? store.programPins(), !pins.isEmpty else { return }
        // One read of the bpffs directory for all records (`ProgramPins`), from the writer's copy of their pins.
        let found = ProgramPins.inodes(in: paths.bpffs)
        let stale = pins.values.filter { !$0.isAlive(found: found[$0.id], paths: paths) }.map(\.id).sorted()
            .compactMap { try? store.program($0) }
        for record in stale where record.mapOwnerID != nil { try? forget(record, stale: true) }
        for record in stale where record.mapOwnerID == nil { try? forget(record, stale: true) }
    }

    /// `ProgramInfo` of a record: links, map pin path and map-set members from the store.
    func programInfo(_ record: ProgramRecord) throws(EngineError) -> ProgramInfo {
        let (links, members) = try db { () throws(SQLiteError) in
            (try store.activeLinkIDs(ofProgram: record.id), try store.mapSetMemberPins(record.mapSetID))
        }
        let live = members.filter { member in
            member.id == record.id
                || member.isAlive(found: ProgramPins.inode(at: paths.programPin(member.id)), paths: paths)
        }
        return ProgramInfo(
            record: record,
            links: links,
            mapPinPath: paths.mapSetDirectory(record.mapSetID),
            mapUsedBy: live.map { String($0.id) }
        )
    }

    /// Get (SPEC §3.6), served off the actor by `reader`.
    package nonisolated func get(id: UInt32) async throws(EngineError) -> ProgramDetails {
        try await reader.get(id: id)
    }

    /// List (SPEC §3.5), served off the actor by `reader`.
    package nonisolated func list(_ filter: ListFilter = ListFilter()) async throws(EngineError) -> [ProgramDetails] {
        try await reader.list(filter)
    }

    /// `list` with the store generation of its records (`EngineReader.listWithGeneration`).
    package nonisolated func listWithGeneration(
        _ filter: ListFilter = ListFilter(),
        unless known: ListStamp? = nil
    ) async throws(EngineError) -> (results: [ProgramDetails]?, generation: UInt64?, stamp: ListStamp?) {
        try await reader.listWithGeneration(filter, unless: known)
    }

    /// Every active link record (for Inspect and tests), served off the actor by `reader`.
    package nonisolated func links() async throws(EngineError) -> [LinkRecord] {
        try reader.links()
    }

    /// Drops the records of program `id` when it vanished (a reader found its pin gone). Checked again here: an
    /// Unload may have removed the records, or a new record been written, meanwhile.
    func dropStaleRecord(_ id: UInt32) {
        guard let record = try? store.program(id), !isAlive(record) else { return }
        try? forget(record, stale: true)
    }

    /// One link record as the writer sees it, or NOT_FOUND `link <id> does not exist` (Detach).
    package func link(id: UInt32) throws(EngineError) -> LinkRecord {
        guard let link = try db({ () throws(SQLiteError) in try store.link(id) }), link.state == .active else {
            throw .notFound("link \(id) does not exist")
        }
        return link
    }
}
