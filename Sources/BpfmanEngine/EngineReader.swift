internal import CBPF
internal import Glibc

/// The engine's read path (SPEC §1.7): Get, List and link queries, run on the caller's task without entering
/// the `Engine` actor, so reads proceed concurrently with each other and with a mutation in progress.
///
/// Records come from a read-only connection of the engine's `ReadPool`, all of one request's queries in one
/// read transaction (a consistent snapshot), or from `memo` when the store has not changed since a read kept
/// them there; kernel information is read live afterwards, one program fd at a time, closed before the next
/// (no fds at rest, SPEC §6.5). The only write a read may cause — dropping the record of a program that
/// vanished (SPEC §6.4) — is handed to the actor.
package struct EngineReader: Sendable {
    let engine: Engine
    let pool: ReadPool
    let memo: RecordMemo
    let paths: BpfmanPaths

    /// Runs store reads in one snapshot, turning SQLite failures into INTERNAL errors.
    private func snapshot<R>(_ body: (ProgramStore) throws(SQLiteError) -> R) throws(EngineError) -> R {
        do { return try pool.read(body) } catch { throw error.engineError }
    }

    /// Get (SPEC §3.6): managed programs with `info` and `kernelInfo`, unmanaged ones with `kernelInfo` only.
    /// A managed program gone from the kernel loses its records and reads as NOT_FOUND.
    package func get(id: UInt32) async throws(EngineError) -> ProgramDetails {
        guard id != 0 else { throw .invalidArgument("program id is required") }
        guard let managed = try managedProgram(id) else {
            guard let kernel = KernelProgramInfo.read(id: id) else { throw .notFound("program \(id) does not exist") }
            return ProgramDetails(info: nil, kernelInfo: kernel)
        }
        let record = managed.record
        guard
            let kernel = KernelProgramInfo.read(
                id: id,
                reportedType: record.kind.reportedKernelType,
                memlock: record.bytesMemlock
            )
        else {
            await engine.dropStaleRecord(id)
            throw .notFound("program \(id) does not exist")
        }
        let info = ProgramInfo(
            record: record,
            links: managed.links,
            mapPinPath: paths.mapSetDirectory(record.mapSetID),
            mapUsedBy: managed.members.filter { $0 == id || BPF.programExists(id: $0) }.map { String($0) }
        )
        return ProgramDetails(info: info, kernelInfo: kernel)
    }

    /// Program `id`'s record, active links and map-set members, or nil when it is not managed.
    private func managedProgram(_ id: UInt32) throws(EngineError) -> RecordMemo.Program? {
        let generation = memo.commits.current
        if let kept = memo.program(id, at: generation) { return kept }
        let found = try snapshot { store throws(SQLiteError) -> RecordMemo.Program? in
            guard let record = try store.program(id) else { return nil }
            return RecordMemo.Program(
                record: record,
                links: try store.activeLinkIDs(ofProgram: id),
                members: try store.mapSetMembers(record.mapSetID)
            )
        }
        guard let found else { return nil }
        memo.keep(found, at: generation)
        return found
    }

    /// Every record and every program's active links (List).
    private func everything() throws(EngineError) -> RecordMemo.Everything {
        let generation = memo.commits.current
        if let kept = memo.everything(at: generation) { return kept }
        let found = try snapshot { store throws(SQLiteError) -> RecordMemo.Everything in
            RecordMemo.Everything(records: try store.allPrograms(), links: try store.activeLinkIDsByProgram())
        }
        memo.keep(found, at: generation)
        return found
    }

    /// From this many programs to read from the kernel on, `list` yields its thread before reading them
    /// (about 6 µs each). The daemon starts a read on its event-loop thread (no thread switch for a call that
    /// answers at once); a long List kept there would hold every other RPC of the daemon until it ended.
    /// Measured with 100 programs and two callers listing in a loop: a third caller's Get p50 went from
    /// 1.1-1.3 ms to 0.14-0.15 ms. Below it the switch is not worth its cost: List of 20 programs, one caller,
    /// p50 287-294 µs inline against 359-365 µs after a switch.
    static let yieldThreshold = 32

    /// List (SPEC §3.5): every kernel program in ascending id, managed ones with their records, filtered.
    /// Programs that vanish while listing are left out (their records are dropped by a later Get or restart).
    package func list(_ filter: ListFilter = ListFilter()) async throws(EngineError) -> [ProgramDetails] {
        let stored = try everything()
        let records = stored.records
        let links = stored.links
        // Every record is here (filters apply below), so the map sets' members come from them: ascending, as
        // the records are.
        var byID: [UInt32: ProgramRecord] = [:]
        var members: [UInt32: [UInt32]] = [:]
        byID.reserveCapacity(records.count)
        for record in records {
            byID[record.id] = record
            members[record.mapSetID, default: []].append(record.id)
        }
        let onlyManaged = filter.bpfmanProgramsOnly || !filter.matchMetadata.isEmpty
        let ids = onlyManaged ? records.map(\.id) : BPF.allProgramIDs()
        // The programs to read: managed ones that pass the record filters, unmanaged ones unless excluded.
        var candidates: [(record: ProgramRecord?, request: KernelProgramInfo.Request)] = []
        candidates.reserveCapacity(ids.count)
        for id in ids {
            if let record = byID[id] {
                if let wanted = filter.programType, wanted != record.kind.reportedKernelType { continue }
                guard filter.matchMetadata.allSatisfy({ record.metadata[$0.key] == $0.value }) else { continue }
                candidates.append(
                    (record, .init(id: id, reportedType: record.kind.reportedKernelType, memlock: record.bytesMemlock))
                )
            } else if !onlyManaged {
                candidates.append((nil, .init(id: id)))
            }
        }
        // A caller that began on an event-loop thread (the daemon's inline handlers) resumes on the global executor.
        if candidates.count >= Self.yieldThreshold { await Task.yield() }
        let kernelInfos = KernelProgramInfo.read(candidates.map(\.request))
        var alive: Set<UInt32> = []
        alive.reserveCapacity(records.count)
        var pending: [(ProgramRecord?, KernelProgramInfo)] = []
        pending.reserveCapacity(candidates.count)
        for (candidate, kernel) in zip(candidates, kernelInfos) {
            guard let kernel else { continue }
            if let record = candidate.record {
                alive.insert(record.id)
                pending.append((record, kernel))
            } else {
                if let wanted = filter.programType, wanted != kernel.kernelProgramType { continue }
                pending.append((nil, kernel))
            }
        }
        var results: [ProgramDetails] = []
        results.reserveCapacity(pending.count)
        for (record, kernel) in pending {
            guard let record else {
                results.append(ProgramDetails(info: nil, kernelInfo: kernel))
                continue
            }
            let set = members[record.mapSetID] ?? []
            let info = ProgramInfo(
                record: record,
                links: links[record.id] ?? [],
                mapPinPath: paths.mapSetDirectory(record.mapSetID),
                mapUsedBy: set.filter { alive.contains($0) || BPF.programExists(id: $0) }.map { String($0) }
            )
            results.append(ProgramDetails(info: info, kernelInfo: kernel))
        }
        return results
    }

    /// Every active link record (Inspect).
    package func links() throws(EngineError) -> [LinkRecord] {
        try snapshot { store throws(SQLiteError) in try store.allLinks().filter { $0.state == .active } }
    }

    /// One active link record, or NOT_FOUND `link <id> does not exist`.
    package func link(id: UInt32) throws(EngineError) -> LinkRecord {
        guard let link = try snapshot({ store throws(SQLiteError) in try store.link(id) }), link.state == .active
        else { throw .notFound("link \(id) does not exist") }
        return link
    }
}
