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
                    "failed to unload program \(id): detach link \(link.id): \(error.message)", errno: error.errno)
            }
        }
        try forget(record)
        logger.info("unloaded program", metadata: ["program_id": "\(id)"])
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

    /// A managed program is alive while its kernel id exists.
    func isAlive(_ record: ProgramRecord) -> Bool {
        BPF.programExists(id: record.id)
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

    /// Drops every record whose program vanished from the kernel (SPEC §6.4), dependants before owners.
    func dropStaleRecords() {
        guard let ids = try? store.programIDs(), !ids.isEmpty else { return }
        // One walk of the kernel's ids (no fds) instead of opening every program.
        let live = Set(BPF.allProgramIDs())
        let stale = ids.filter { !live.contains($0) }.compactMap { try? store.program($0) }
        for record in stale where record.mapOwnerID != nil { try? forget(record, stale: true) }
        for record in stale where record.mapOwnerID == nil { try? forget(record, stale: true) }
    }

    /// `ProgramInfo` of a record: links, map pin path and map-set members from the store.
    func programInfo(_ record: ProgramRecord) throws(EngineError) -> ProgramInfo {
        let (links, members) = try db { () throws(SQLiteError) in
            (try store.activeLinkIDs(ofProgram: record.id), try store.mapSetMembers(record.mapSetID))
        }
        return ProgramInfo(
            record: record, links: links, mapPinPath: paths.mapSetDirectory(record.mapSetID),
            mapUsedBy: members.filter { $0 == record.id || BPF.programExists(id: $0) }.map { String($0) })
    }

    /// Get (SPEC §3.6): managed programs with `info` and `kernelInfo`, unmanaged ones with `kernelInfo` only.
    package func get(id: UInt32) throws(EngineError) -> ProgramDetails {
        guard id != 0 else { throw .invalidArgument("program id is required") }
        let record = try db { () throws(SQLiteError) in try store.program(id) }
        guard let record else {
            guard let kernel = KernelProgramInfo.read(id: id) else { throw .notFound("program \(id) does not exist") }
            return ProgramDetails(info: nil, kernelInfo: kernel)
        }
        guard let kernel = KernelProgramInfo.read(id: id, reportedType: record.kind.reportedKernelType) else {
            try? forget(record, stale: true)
            throw .notFound("program \(id) does not exist")
        }
        return ProgramDetails(info: try programInfo(record), kernelInfo: kernel)
    }

    /// List (SPEC §3.5): every kernel program in ascending id, managed ones with their records, filtered.
    package func list(_ filter: ListFilter = ListFilter()) throws(EngineError) -> [ProgramDetails] {
        let (records, links, members) = try db { () throws(SQLiteError) in
            (try store.allPrograms(), try store.activeLinkIDsByProgram(), try store.allMapSetMembers())
        }
        var byID: [UInt32: ProgramRecord] = [:]
        for record in records { byID[record.id] = record }
        let onlyManaged = filter.bpfmanProgramsOnly || !filter.matchMetadata.isEmpty
        let ids = onlyManaged ? records.map(\.id) : BPF.allProgramIDs()
        var alive: Set<UInt32> = []
        var results: [ProgramDetails] = []
        var pending: [(ProgramRecord?, KernelProgramInfo)] = []
        for id in ids {
            let record = byID[id]
            if let record {
                if let wanted = filter.programType, wanted != record.kind.reportedKernelType { continue }
                guard filter.matchMetadata.allSatisfy({ record.metadata[$0.key] == $0.value }) else { continue }
                guard let kernel = KernelProgramInfo.read(id: id, reportedType: record.kind.reportedKernelType) else {
                    continue
                }
                alive.insert(id)
                pending.append((record, kernel))
            } else {
                guard !onlyManaged, let kernel = KernelProgramInfo.read(id: id) else { continue }
                if let wanted = filter.programType, wanted != kernel.kernelProgramType { continue }
                pending.append((nil, kernel))
            }
        }
        for (record, kernel) in pending {
            guard let record else {
                results.append(ProgramDetails(info: nil, kernelInfo: kernel))
                continue
            }
            let set = members[record.mapSetID] ?? []
            let info = ProgramInfo(
                record: record, links: links[record.id] ?? [], mapPinPath: paths.mapSetDirectory(record.mapSetID),
                mapUsedBy: set.filter { alive.contains($0) || BPF.programExists(id: $0) }
                    .map { String($0) })
            results.append(ProgramDetails(info: info, kernelInfo: kernel))
        }
        return results
    }

    /// Every link record (for Inspect and tests).
    package func links() throws(EngineError) -> [LinkRecord] {
        try db { () throws(SQLiteError) in try store.allLinks().filter { $0.state == .active } }
    }

    /// One link record, or NOT_FOUND `link <id> does not exist`.
    package func link(id: UInt32) throws(EngineError) -> LinkRecord {
        guard let link = try db({ () throws(SQLiteError) in try store.link(id) }), link.state == .active else {
            throw .notFound("link \(id) does not exist")
        }
        return link
    }
}
