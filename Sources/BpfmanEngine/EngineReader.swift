internal import CBPF
internal import Glibc

/// The engine's read path (SPEC §1.7): Get, List and link queries, run on the caller's task without entering
/// the `Engine` actor, so reads proceed concurrently with each other and with a mutation in progress.
///
/// Records come from a read-only connection of the engine's `ReadPool`, all of one request's queries in one
/// read transaction (a consistent snapshot), or from `memo` when the store has not changed since a read kept
/// them there. A managed program's `KernelProgramInfo` comes from its record, after a liveness check of its pin
/// (`ProgramPins`, SPEC §3.8); unmanaged programs are read live, one program fd at a time, closed before the
/// next (no fds at rest, SPEC §6.5). The only write a read may cause — dropping the record of a program that
/// vanished (SPEC §6.4) — is handed to the actor.
package struct EngineReader: Sendable {
    let engine: Engine
    let pool: ReadPool
    let memo: RecordMemo
    /// List's read of the pins, kept while the directory is unchanged.
    let pinScans: PinScanMemo
    let paths: BpfmanPaths

    /// Runs store reads in one snapshot, turning SQLite failures into INTERNAL errors.
    private func snapshot<R>(_ body: (ProgramStore) throws(SQLiteError) -> R) throws(EngineError) -> R {
        do { return try pool.read(body) } catch { throw error.engineError }
    }

    /// Get (SPEC §3.6): managed programs with `info` and `kernelInfo`, unmanaged ones with `kernelInfo` only.
    /// A managed program that vanished (its pin removed, SPEC §6.4) loses its records and reads as NOT_FOUND.
    package func get(id: UInt32) async throws(EngineError) -> ProgramDetails {
        guard id != 0 else { throw .invalidArgument("program id is required") }
        let clock = LoadTimeClock()
        guard let managed = try managedProgram(id) else {
            guard let kernel = KernelProgramInfo.read(id: id, clock: clock) else {
                throw .notFound("program \(id) does not exist")
            }
            return ProgramDetails(info: nil, kernelInfo: kernel)
        }
        let record = managed.record
        // The liveness check (SPEC §3.8): one fstatat of the program's pin, no kernel info read.
        guard record.isAlive(pinInode: ProgramPins.inode(at: paths.programPin(id)), paths: paths),
            let kernel = kernelInfo(of: record, clock: clock)
        else {
            await engine.dropStaleRecord(id)
            throw .notFound("program \(id) does not exist")
        }
        let usedBy = managed.members.filter { member in
            member.id == id || member.isAlive(found: ProgramPins.inode(at: paths.programPin(member.id)), paths: paths)
        }
        let info = ProgramInfo(
            record: record,
            links: managed.links,
            mapPinPath: paths.mapSetDirectory(record.mapSetID),
            mapUsedBy: usedBy.map { String($0.id) }
        )
        return ProgramDetails(info: info, kernelInfo: kernel)
    }

    /// A managed program's `KernelProgramInfo`: from its recorded facts (SPEC §3.8), or read live for a record
    /// that has none yet (one written before they were kept, until start-up reconciliation fills them in).
    private func kernelInfo(of record: ProgramRecord, clock: LoadTimeClock) -> KernelProgramInfo? {
        guard let facts = record.kernelFacts else {
            return KernelProgramInfo.read(id: record.id, reportedType: record.kind.reportedKernelType, clock: clock)
        }
        return KernelProgramInfo(
            id: record.id,
            facts: facts,
            reportedType: record.kind.reportedKernelType,
            clock: clock
        )
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
                members: try store.mapSetMemberPins(record.mapSetID)
            )
        }
        guard let found else { return nil }
        memo.keep(found, at: generation)
        return found
    }

    /// Every record and every program's active links (List), with the store generation they are provably the
    /// state of (nil when a commit was counted while they were read).
    private func everything() throws(EngineError) -> (RecordMemo.Everything, generation: UInt64?) {
        let generation = memo.commits.current
        if let kept = memo.everything(at: generation) { return (kept, generation) }
        let found = try snapshot { store throws(SQLiteError) -> RecordMemo.Everything in
            RecordMemo.Everything(
                records: try store.allPrograms(),
                links: try store.activeLinkIDsByProgram(),
                paths: paths
            )
        }
        return (found, memo.keep(found, at: generation) ? generation : nil)
    }

    /// From this many programs to read live from the kernel on (unmanaged ones, records without facts), `list`
    /// yields its thread before reading them (about 6 µs each). The daemon starts a read on its event-loop thread
    /// (no thread switch for a call that answers at once); a long List kept there would hold every other RPC of
    /// the daemon until it ended. Measured with 100 programs read live and two callers listing in a loop: a third
    /// caller's Get p50 went from 1.1-1.3 ms to 0.14-0.15 ms. Below it the switch is not worth its cost: List of
    /// 20 programs, one caller, p50 287-294 µs inline against 359-365 µs after a switch.
    static let yieldThreshold = 32

    /// From this many managed programs answered from their records on, `list` yields its thread too: building
    /// an answer from a record costs far less than a live read, so the bound is higher.
    static let recordedYieldThreshold = 256

    /// List (SPEC §3.5): every kernel program in ascending id, managed ones with their records, filtered.
    ///
    /// Managed programs are answered from their records (SPEC §3.8) after one liveness check for all of them, a
    /// read of the bpffs directory (`ProgramPins`); one that vanished is left out (its records are dropped by a
    /// later Get or Load, or at restart). Unmanaged programs are read live, as are records without facts.
    package func list(_ filter: ListFilter = ListFilter()) async throws(EngineError) -> [ProgramDetails] {
        try await listWithGeneration(filter).results ?? []
    }

    /// `list`, with the store generation (`CommitCounter`) whose records every managed result was built from, or
    /// nil when that cannot be told (a commit was counted while they were read). Two managed results of the same
    /// program at the same generation differ only in what does not come from the store: `loaded_at` (the clock)
    /// and `map_used_by` (the members' pins), which lets the daemon reuse a result's encoding.
    ///
    /// A List of managed programs only also gets a `ListStamp` when everything it answered is provably unchanged
    /// while the stamp holds; given back as `unless`, a stamp that still holds makes this return no results at
    /// all (the caller still has them), at the cost of the checks alone.
    package func listWithGeneration(
        _ filter: ListFilter = ListFilter(),
        unless known: ListStamp? = nil
    ) async throws(EngineError) -> (results: [ProgramDetails]?, generation: UInt64?, stamp: ListStamp?) {
        let (stored, generation) = try everything()
        let records = stored.records
        let links = stored.links
        let clock = LoadTimeClock()
        let (pins, pinRead) = pinScans.inodes(in: paths.bpffs)
        let onlyManaged = filter.bpfmanProgramsOnly || !filter.matchMetadata.isEmpty
        if let known, let generation, let pinRead, onlyManaged, known.generation == generation,
            known.pinRead == pinRead, known.filter == filter, known.bootTimes.contains(clock.bootNanos)
        {
            return (nil, generation, known)
        }
        // The boot times (wall clock) at which every `loaded_at` below reads the same.
        var bootTimes = Int64.min..<Int64.max
        // Liveness of every record (the members of a map set count only while alive), ascending as the records.
        var alive = [Bool](repeating: false, count: records.count)
        // Live members of the map sets that have dependants; every other program is alone in its own set.
        var sharedSets: [UInt32: [UInt32]] = [:]
        for (index, record) in records.enumerated() {
            alive[index] = record.isAlive(pinInode: pins[record.id], paths: paths)
            if record.mapOwnerID != nil { sharedSets[record.mapSetID] = [] }
        }
        if !sharedSets.isEmpty {
            for (index, record) in records.enumerated() where alive[index] && sharedSets[record.mapSetID] != nil {
                sharedSets[record.mapSetID]!.append(record.id)
            }
        }
        // What to answer, in ascending id: records and kernel ids are both ascending, so the two are merged
        // without a lookup table. A kernel id that is a vanished record's is neither managed nor listed.
        var entries: [(record: Int?, kernel: KernelProgramInfo?)] = []
        var live: [KernelProgramInfo.Request] = []
        var liveSlots: [Int] = []
        func addManaged(_ index: Int) {
            let record = records[index]
            if let wanted = filter.programType, wanted != record.kind.reportedKernelType { return }
            guard filter.matchMetadata.allSatisfy({ record.metadata[$0.key] == $0.value }) else { return }
            if let facts = record.kernelFacts {
                let second = clock.second(facts.loadTime) * 1_000_000_000 - Int64(truncatingIfNeeded: facts.loadTime)
                bootTimes = max(bootTimes.lowerBound, second)..<min(bootTimes.upperBound, second + 1_000_000_000)
                let kernel = KernelProgramInfo(
                    id: record.id,
                    facts: facts,
                    reportedType: record.kind.reportedKernelType,
                    clock: clock
                )
                entries.append((index, kernel))
            } else {
                liveSlots.append(entries.count)
                live.append(.init(id: record.id, reportedType: record.kind.reportedKernelType))
                entries.append((index, nil))
            }
        }
        if onlyManaged {
            entries.reserveCapacity(records.count)
            for index in records.indices where alive[index] { addManaged(index) }
        } else {
            let ids = BPF.allProgramIDs()
            entries.reserveCapacity(ids.count)
            var next = 0
            for id in ids {
                while next < records.count && records[next].id < id { next += 1 }
                if next < records.count && records[next].id == id {
                    if alive[next] { addManaged(next) }
                    continue
                }
                liveSlots.append(entries.count)
                live.append(.init(id: id))
                entries.append((nil, nil))
            }
        }
        // A caller that began on an event-loop thread (the daemon's inline handlers) resumes on the global executor.
        if live.count >= Self.yieldThreshold || entries.count >= Self.recordedYieldThreshold { await Task.yield() }
        if !live.isEmpty {
            for (slot, kernel) in zip(liveSlots, KernelProgramInfo.read(live, clock: clock)) {
                entries[slot].kernel = kernel
            }
        }
        var results: [ProgramDetails] = []
        results.reserveCapacity(entries.count)
        for (index, kernel) in entries {
            guard let kernel else { continue }
            guard let index else {
                if let wanted = filter.programType, wanted != kernel.kernelProgramType { continue }
                results.append(ProgramDetails(info: nil, kernelInfo: kernel))
                continue
            }
            let record = records[index]
            let usedBy =
                sharedSets.isEmpty
                ? stored.ownIDs[index]
                : sharedSets[record.mapSetID].map { $0.map { String($0) } } ?? stored.ownIDs[index]
            let info = ProgramInfo(
                record: record,
                links: links[record.id] ?? [],
                mapPinPath: stored.mapPinPaths[index],
                mapUsedBy: usedBy
            )
            results.append(ProgramDetails(info: info, kernelInfo: kernel))
        }
        guard let generation, let pinRead, onlyManaged, live.isEmpty, !bootTimes.isEmpty else {
            return (results, generation, nil)
        }
        return (
            results, generation,
            ListStamp(generation: generation, pinRead: pinRead, filter: filter, bootTimes: bootTimes)
        )
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

/// What a List of managed programs answered is the state of (`EngineReader.listWithGeneration`): the store's
/// generation, the read of the pins (`PinScanMemo`: the bpffs directory unchanged since), the filter, and the
/// boot times on the wall clock for which every `loaded_at` it answered reads the same. While all four hold, the
/// same List gives the same results.
package struct ListStamp: Sendable, Hashable {
    package var generation: UInt64
    package var pinRead: UInt64
    package var filter: ListFilter
    /// `CLOCK_REALTIME - CLOCK_BOOTTIME`, in nanoseconds (`LoadTimeClock.bootNanos`).
    package var bootTimes: Range<Int64>
}
