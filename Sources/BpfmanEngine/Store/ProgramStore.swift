internal import CSQLite
internal import FoundationEssentials
internal import Glibc

/// The engine's records (SPEC §6.1): every SQL statement of the engine lives in this file.
///
/// One writing `ProgramStore` per `Engine`, whose actor serialises access, plus read-only ones lent by the
/// engine's `ReadPool` to one reader at a time; the class is not `Sendable`.
package final class ProgramStore {
    package let database: Database
    /// Prepared statements by SQL text, reused across calls (preparing dominates small queries).
    private var statements: [String: Statement] = [:]
    /// The writing store's copy of the `programs` ids with their pins, so every Load's stale-record sweep (SPEC
    /// §6.4) costs no read transaction: filled by the first `programIDs()` or `programPins()`, changed by
    /// `insertProgram` / `deleteProgram` / `recordKernelFacts` once their transaction commits. Always nil on
    /// read-only stores, whose rows other connections change.
    private var programPinCache: [UInt32: ProgramPin]?
    /// Changes made inside the open transaction: a program's pin (inserted or changed) or nil (deleted), by id;
    /// applied on COMMIT.
    private var uncommittedPinChanges: [(id: UInt32, pin: ProgramPin?)] = []
    private var inTransaction = false
    private let isWriter: Bool
    /// Statements a read-only store used since its read transaction began (`endRead` rewinds just these).
    private var usedStatements: [Statement] = []

    /// Opens the store at `path` with WAL, `synchronous=FULL` and foreign keys, and migrates it.
    package init(path: String) throws(SQLiteError) {
        database = try Database(path: path)
        isWriter = true
        try database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        try Schema.migrate(database)
    }

    /// Opens a read-only connection to an existing, migrated store (`ReadPool`): `query_only`, no migration.
    package init(readerAt path: String) throws(SQLiteError) {
        database = try Database(path: path, create: false)
        isWriter = false
        try database.execute("PRAGMA query_only=1")
    }

    /// Starts a read transaction (`ReadPool`): a deferred `BEGIN`, so the snapshot is taken at the first read.
    package func beginRead() throws(SQLiteError) {
        try cached("BEGIN").run()
    }

    /// Ends a read transaction, first rewinding the statements it used so none keeps the snapshot open.
    package func endRead() throws(SQLiteError) {
        for statement in usedStatements { statement.reset() }
        usedStatements.removeAll(keepingCapacity: true)
        try cached("COMMIT").run()
    }

    package func close() {
        statements.removeAll()
        database.close()
    }

    /// A prepared statement for `sql`, from the cache; reset, with bindings cleared.
    private func cached(_ sql: String) throws(SQLiteError) -> Statement {
        let statement: Statement
        if let cached = statements[sql] {
            cached.reset()
            statement = cached
        } else {
            statement = try database.prepare(sql)
            statements[sql] = statement
        }
        if !isWriter { usedStatements.append(statement) }
        return statement
    }

    /// `BEGIN IMMEDIATE … COMMIT` around `body`, rolled back when it throws. The three statements are prepared
    /// once (an `sqlite3_exec` parses its text on every call).
    package func transaction<R>(_ body: () throws(SQLiteError) -> R) throws(SQLiteError) -> R {
        try cached("BEGIN IMMEDIATE").run()
        inTransaction = true
        defer {
            inTransaction = false
            uncommittedPinChanges.removeAll()
        }
        do {
            let result = try body()
            try cached("COMMIT").run()
            for change in uncommittedPinChanges { notePin(change.id, change.pin) }
            return result
        } catch {
            try? cached("ROLLBACK").run()
            throw error
        }
    }

    /// Records that program `id` now has a row with `pin` (nil: no row), once that is committed.
    private func pinChanged(_ id: UInt32, _ pin: ProgramPin?) {
        if inTransaction {
            uncommittedPinChanges.append((id, pin))
        } else {
            notePin(id, pin)
        }
    }

    private func notePin(_ id: UInt32, _ pin: ProgramPin?) {
        programPinCache?[id] = pin
    }

    // MARK: programs

    /// Inserts a program with its metadata, global data and shared-map references.
    package func insertProgram(_ p: ProgramRecord) throws(SQLiteError) {
        let (locationKind, location, policy): (String, String, Int32) =
            switch p.location {
            case .file(let path): ("file", path, 0)
            case .image(let image): ("image", image.url, image.pullPolicy.rawValue)
            }
        try cached(
            """
            INSERT INTO programs(id, name, kind, load_mode, location_kind, location, pull_policy, map_owner_id,
                map_set_id, attach_target, created_at, pin_inode, \(Self.kernelFactColumns))
                VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
            """
        ).bind(
            p.id,
            p.name,
            p.kind.rawValue,
            p.loadMode.rawValue,
            locationKind,
            location,
            policy,
            p.mapOwnerID,
            p.mapSetID,
            p.attachTarget,
            Int64(time(nil)),
            p.pinInode,
            p.kernelFacts?.name,
            p.kernelFacts?.kernelType,
            p.kernelFacts?.loadTime,
            p.kernelFacts?.tag,
            p.kernelFacts?.gplCompatible,
            p.kernelFacts.map { Self.mapIDsText($0.mapIDs) },
            p.kernelFacts?.btfID,
            p.kernelFacts?.bytesXlated,
            p.kernelFacts?.bytesJited,
            p.kernelFacts?.bytesMemlock,
            p.kernelFacts?.verifiedInsns
        ).run()
        pinChanged(p.id, ProgramPin(p))
        let metadata = try cached("INSERT INTO program_metadata(program_id, key, value) VALUES(?,?,?)")
        for (key, value) in p.metadata { try metadata.bind(p.id, key, value).run() }
        let global = try cached("INSERT INTO program_global_data(program_id, name, value) VALUES(?,?,?)")
        for (name, value) in p.globalData { try global.bind(p.id, name, value).run() }
        let shared = try cached("INSERT INTO program_shared_maps(program_id, name) VALUES(?,?)")
        let count = try cached(
            "INSERT INTO shared_maps(name, refcount) VALUES(?, 1) ON CONFLICT(name) DO UPDATE SET refcount = refcount + 1"
        )
        for name in p.sharedMaps {
            try shared.bind(p.id, name).run()
            try count.bind(name).run()
        }
    }

    /// Deletes a program's record, its links' records and its shared-map references.
    /// - Returns: shared-map names whose reference count dropped to zero (their pins may go).
    @discardableResult
    package func deleteProgram(_ id: UInt32) throws(SQLiteError) -> [String] {
        var released: [String] = []
        let names = try cached("SELECT name FROM program_shared_maps WHERE program_id = ?").bind(id)
        var shared: [String] = []
        while try names.step() { shared.append(names.text(0)) }
        let decrement = try cached("UPDATE shared_maps SET refcount = refcount - 1 WHERE name = ?")
        let remaining = try cached("SELECT refcount FROM shared_maps WHERE name = ?")
        let drop = try cached("DELETE FROM shared_maps WHERE name = ? AND refcount <= 0")
        for name in shared {
            try decrement.bind(name).run()
            try remaining.bind(name)
            let exhausted = try remaining.step() && remaining.int64(0) <= 0
            remaining.reset()
            if exhausted {
                released.append(name)
                try drop.bind(name).run()
            }
        }
        try cached("DELETE FROM links WHERE program_id = ?").bind(id).run()
        try cached("DELETE FROM programs WHERE id = ?").bind(id).run()
        pinChanged(id, nil)
        return released
    }

    private static let programColumns =
        "id, name, kind, load_mode, location_kind, location, pull_policy, map_owner_id, map_set_id, attach_target, "
        + "pin_inode, \(kernelFactColumns)"

    /// Program records, all of them or the one with `id`, with metadata, global data and shared maps.
    private func programs(id: UInt32?) throws(SQLiteError) -> [ProgramRecord] {
        let filter = id == nil ? "" : "WHERE id = ?1"
        let statement = try cached("SELECT \(Self.programColumns) FROM programs \(filter) ORDER BY id")
        if let id { try statement.bind(id) }
        var records: [ProgramRecord] = []
        var index: [UInt32: Int] = [:]
        let clock = LoadTimeClock()
        while try statement.step() {
            let id = statement.uint32(0)
            let location: BytecodeLocation =
                statement.text(4) == "image"
                ? .image(
                    BytecodeImage(
                        url: statement.text(5),
                        // Written from a valid policy by `insertProgram`; an unknown number reads as the default.
                        pullPolicy: BytecodeImage.PullPolicy(rawValue: Int32(truncatingIfNeeded: statement.int64(6)))
                            ?? .ifNotPresent
                    )
                )
                : .file(statement.text(5))
            index[id] = records.count
            records.append(
                ProgramRecord(
                    id: id,
                    name: statement.text(1),
                    kind: ProgramKind(rawValue: statement.text(2)) ?? .tracepoint,
                    loadMode: LoadMode(rawValue: statement.text(3)) ?? .native,
                    location: location,
                    metadata: [:],
                    globalData: [:],
                    mapOwnerID: statement.optionalUInt32(7),
                    mapSetID: statement.uint32(8),
                    attachTarget: statement.optionalText(9),
                    sharedMaps: [],
                    kernelFacts: Self.kernelFacts(statement, from: 11, clock: clock),
                    pinInode: statement.optionalInt64(10).map { UInt64(bitPattern: $0) }
                )
            )
        }
        if records.isEmpty { return records }
        let programFilter = id == nil ? "" : "WHERE program_id = ?1"
        let metadata = try cached("SELECT program_id, key, value FROM program_metadata \(programFilter)")
        if let id { try metadata.bind(id) }
        while try metadata.step() {
            if let i = index[metadata.uint32(0)] { records[i].metadata[metadata.text(1)] = metadata.text(2) }
        }
        let global = try cached("SELECT program_id, name, value FROM program_global_data \(programFilter)")
        if let id { try global.bind(id) }
        while try global.step() {
            if let i = index[global.uint32(0)] { records[i].globalData[global.text(1)] = global.blob(2) }
        }
        let shared = try cached("SELECT program_id, name FROM program_shared_maps \(programFilter) ORDER BY name")
        if let id { try shared.bind(id) }
        while try shared.step() {
            if let i = index[shared.uint32(0)] { records[i].sharedMaps.append(shared.text(1)) }
        }
        return records
    }

    /// The record of program `id`, if managed.
    package func program(_ id: UInt32) throws(SQLiteError) -> ProgramRecord? {
        try programs(id: id).first
    }

    /// Every program record, ascending id.
    package func allPrograms() throws(SQLiteError) -> [ProgramRecord] {
        try programs(id: nil)
    }

    /// Ids of all managed programs, ascending. The writing store answers from its copy after the first call.
    package func programIDs() throws(SQLiteError) -> [UInt32] {
        try programPins().keys.sorted()
    }

    /// Every managed program's pin as recorded, by id. The writing store answers from its copy after the first
    /// call.
    package func programPins() throws(SQLiteError) -> [UInt32: ProgramPin] {
        if let programPinCache { return programPinCache }
        let statement = try cached("SELECT id, pin_inode, load_time FROM programs")
        var pins: [UInt32: ProgramPin] = [:]
        while try statement.step() {
            let pin = ProgramPin(statement, from: 0)
            pins[pin.id] = pin
        }
        if isWriter && !inTransaction { programPinCache = pins }
        return pins
    }

    /// Writes a program's kernel facts and pin inode (start-up reconciliation, for records without them or
    /// re-pinned).
    package func recordKernelFacts(_ facts: KernelProgramFacts, pinInode: UInt64?, of id: UInt32) throws(SQLiteError) {
        try writeKernelFacts(facts, pinInode: pinInode, of: id)
        pinChanged(id, ProgramPin(id: id, inode: pinInode, loadTime: facts.loadTime))
    }

    private static let kernelFactColumns =
        "kernel_name, kernel_type, load_time, tag, gpl_compatible, map_ids, btf_id, bytes_xlated, bytes_jited, "
        + "bytes_memlock, verified_insns"

    private func writeKernelFacts(_ facts: KernelProgramFacts, pinInode: UInt64?, of id: UInt32) throws(SQLiteError) {
        try cached(
            """
            UPDATE programs SET kernel_name = ?, kernel_type = ?, load_time = ?, tag = ?, gpl_compatible = ?,
                map_ids = ?, btf_id = ?, bytes_xlated = ?, bytes_jited = ?, bytes_memlock = ?, verified_insns = ?,
                pin_inode = ? WHERE id = ?
            """
        ).bind(
            facts.name,
            facts.kernelType,
            facts.loadTime,
            facts.tag,
            facts.gplCompatible,
            Self.mapIDsText(facts.mapIDs),
            facts.btfID,
            facts.bytesXlated,
            facts.bytesJited,
            facts.bytesMemlock,
            facts.verifiedInsns,
            pinInode,
            id
        ).run()
    }

    /// Map ids as stored: decimal, separated by commas.
    private static func mapIDsText(_ ids: [UInt32]) -> String {
        ids.map { String($0) }.joined(separator: ",")
    }

    /// The kernel facts in `kernelFactColumns` order from column `first` on; nil when the row has none yet (written
    /// before schema 3, or before its memlock was kept).
    private static func kernelFacts(
        _ statement: Statement,
        from first: Int32,
        clock: LoadTimeClock
    )
        -> KernelProgramFacts?
    {
        guard !statement.isNull(first), !statement.isNull(first + 9) else { return nil }
        return KernelProgramFacts(
            name: statement.text(first),
            kernelType: statement.uint32(first + 1),
            loadTime: UInt64(bitPattern: statement.int64(first + 2)),
            tag: statement.text(first + 3),
            gplCompatible: statement.int64(first + 4) != 0,
            mapIDs: statement.text(first + 5).split(separator: ",").compactMap { UInt32($0) },
            btfID: statement.uint32(first + 6),
            bytesXlated: statement.uint32(first + 7),
            bytesJited: statement.uint32(first + 8),
            bytesMemlock: statement.uint32(first + 9),
            verifiedInsns: statement.uint32(first + 10),
            clock: clock
        )
    }

    // MARK: map sets

    package func insertMapSet(id: UInt32, pinDirectory: String) throws(SQLiteError) {
        try cached("INSERT INTO map_sets(id, pin_dir) VALUES(?, ?)").bind(id, pinDirectory).run()
    }

    package func deleteMapSet(_ id: UInt32) throws(SQLiteError) {
        try cached("DELETE FROM map_sets WHERE id = ?").bind(id).run()
    }

    /// Ids of every map set.
    package func mapSetIDs() throws(SQLiteError) -> [UInt32] {
        let statement = try cached("SELECT id FROM map_sets ORDER BY id")
        var ids: [UInt32] = []
        while try statement.step() { ids.append(statement.uint32(0)) }
        return ids
    }

    /// Program ids recorded as members of map set `id`, ascending.
    package func mapSetMembers(_ id: UInt32) throws(SQLiteError) -> [UInt32] {
        let statement = try cached("SELECT id FROM programs WHERE map_set_id = ? ORDER BY id").bind(id)
        var ids: [UInt32] = []
        while try statement.step() { ids.append(statement.uint32(0)) }
        return ids
    }

    /// The recorded pins of the members of map set `id`, ascending id (Get's `map_used_by`).
    package func mapSetMemberPins(_ id: UInt32) throws(SQLiteError) -> [ProgramPin] {
        let statement = try cached("SELECT id, pin_inode, load_time FROM programs WHERE map_set_id = ? ORDER BY id")
            .bind(id)
        var pins: [ProgramPin] = []
        while try statement.step() { pins.append(ProgramPin(statement, from: 0)) }
        return pins
    }

    /// Shared-map names with a positive reference count.
    package func sharedMapNames() throws(SQLiteError) -> Set<String> {
        let statement = try cached("SELECT name FROM shared_maps WHERE refcount > 0")
        var names: Set<String> = []
        while try statement.step() { names.insert(statement.text(0)) }
        return names
    }

    // MARK: links

    private static let encoder = JSONEncoder()
    private static let decoder = JSONDecoder()

    /// Inserts a `pending` link row in its own transaction and returns the new link id (SPEC §6.2).
    package func insertPendingLink(programID: UInt32, kind: ProgramKind, spec: AttachSpec) throws(SQLiteError) -> UInt32
    {
        let json = Self.encodeSpec(spec)
        return try transaction { () throws(SQLiteError) -> UInt32 in
            try cached("INSERT INTO links(program_id, kind, state, spec_json) VALUES(?, ?, 'pending', ?)")
                .bind(programID, kind.rawValue, json).run()
            return UInt32(truncatingIfNeeded: database.lastInsertRowID)
        }
    }

    /// Writes every field of `link` and marks it `active`.
    package func activateLink(_ link: LinkRecord) throws(SQLiteError) {
        try cached(
            """
            UPDATE links SET state = 'active', spec_json = ?, nsid = ?, ifindex = ?, direction = ?, priority = ?,
                position = ?, dispatcher_id = ?, kernel_link_id = ?, pin_path = ?, tc_handle = ?, tc_priority = ?,
                resolved_target = ? WHERE id = ?
            """
        ).bind(
            Self.encodeSpec(link.spec),
            link.nsid,
            link.ifindex,
            link.direction,
            link.priority,
            link.position,
            link.dispatcherID,
            link.kernelLinkID,
            link.pinPath,
            link.tcHandle,
            link.tcPriority,
            link.resolvedTarget,
            link.id
        ).run()
    }

    package func deleteLink(_ id: UInt32) throws(SQLiteError) {
        try cached("DELETE FROM links WHERE id = ?").bind(id).run()
    }

    package func updatePosition(link id: UInt32, position: Int32?) throws(SQLiteError) {
        try cached("UPDATE links SET position = ? WHERE id = ?").bind(position, id).run()
    }

    private static let linkColumns = """
        id, program_id, kind, state, spec_json, nsid, ifindex, direction, priority, position, dispatcher_id,
        kernel_link_id, pin_path, tc_handle, tc_priority, resolved_target
        """

    private func links(where clause: String, _ value: (any SQLValue)? = nil) throws(SQLiteError) -> [LinkRecord] {
        let statement = try cached("SELECT \(Self.linkColumns) FROM links \(clause) ORDER BY id")
        if let value { try statement.bind(value) }
        var result: [LinkRecord] = []
        while try statement.step() {
            guard let spec = Self.decodeSpec(statement.text(4)) else { continue }
            result.append(
                LinkRecord(
                    id: statement.uint32(0),
                    programID: statement.uint32(1),
                    kind: ProgramKind(rawValue: statement.text(2)) ?? .tracepoint,
                    state: LinkState(rawValue: statement.text(3)) ?? .pending,
                    spec: spec,
                    nsid: statement.optionalInt64(5).map { UInt64(bitPattern: $0) },
                    ifindex: statement.optionalUInt32(6),
                    direction: statement.optionalText(7),
                    priority: statement.optionalInt64(8).map { Int32(truncatingIfNeeded: $0) },
                    position: statement.optionalInt64(9).map { Int32(truncatingIfNeeded: $0) },
                    dispatcherID: statement.optionalInt64(10),
                    kernelLinkID: statement.optionalUInt32(11),
                    pinPath: statement.optionalText(12),
                    tcHandle: statement.optionalUInt32(13),
                    tcPriority: statement.optionalUInt32(14),
                    resolvedTarget: statement.optionalText(15)
                )
            )
        }
        return result
    }

    package func link(_ id: UInt32) throws(SQLiteError) -> LinkRecord? {
        try links(where: "WHERE id = ?", id).first
    }

    /// Active and pending links of a program, ascending id.
    package func links(ofProgram id: UInt32) throws(SQLiteError) -> [LinkRecord] {
        try links(where: "WHERE program_id = ?", id)
    }

    package func allLinks() throws(SQLiteError) -> [LinkRecord] { try links(where: "") }

    package func pendingLinks() throws(SQLiteError) -> [LinkRecord] { try links(where: "WHERE state = 'pending'") }

    /// Active TCX links on one hook.
    package func tcxLinks(nsid: UInt64, ifindex: UInt32, direction: String) throws(SQLiteError) -> [LinkRecord] {
        try links(where: "WHERE state = 'active' AND kind = 'tcx'").filter {
            $0.nsid == nsid && $0.ifindex == ifindex && $0.direction == direction
        }
    }

    /// Active link ids of one program, ascending.
    package func activeLinkIDs(ofProgram id: UInt32) throws(SQLiteError) -> [UInt32] {
        let statement = try cached("SELECT id FROM links WHERE program_id = ? AND state = 'active' ORDER BY id").bind(
            id
        )
        var ids: [UInt32] = []
        while try statement.step() { ids.append(statement.uint32(0)) }
        return ids
    }

    /// Program id → active link ids ascending, for every program with links.
    package func activeLinkIDsByProgram() throws(SQLiteError) -> [UInt32: [UInt32]] {
        let statement = try cached("SELECT program_id, id FROM links WHERE state = 'active' ORDER BY id")
        var result: [UInt32: [UInt32]] = [:]
        while try statement.step() { result[statement.uint32(0), default: []].append(statement.uint32(1)) }
        return result
    }

    private static func encodeSpec(_ spec: AttachSpec) -> String {
        // Encoding a value type of strings and integers cannot fail.
        String(decoding: (try? encoder.encode(spec)) ?? Data(), as: UTF8.self)
    }

    private static func decodeSpec(_ json: String) -> AttachSpec? {
        try? decoder.decode(AttachSpec.self, from: Data(json.utf8))
    }
}

/// What the liveness check needs of a managed program (`ProgramPins`): its id, the inode of the pin the engine
/// made and its load time, as recorded (nil when not recorded yet).
package struct ProgramPin: Sendable, Hashable {
    package var id: UInt32
    package var inode: UInt64?
    package var loadTime: UInt64?

    package init(id: UInt32, inode: UInt64?, loadTime: UInt64?) {
        self.id = id
        self.inode = inode
        self.loadTime = loadTime
    }

    init(_ record: ProgramRecord) {
        self.init(id: record.id, inode: record.pinInode, loadTime: record.kernelFacts?.loadTime)
    }

    /// From columns `id, pin_inode, load_time` starting at `first`.
    fileprivate init(_ statement: Statement, from first: Int32) {
        self.init(
            id: statement.uint32(first),
            inode: statement.optionalInt64(first + 1).map { UInt64(bitPattern: $0) },
            loadTime: statement.optionalInt64(first + 2).map { UInt64(bitPattern: $0) }
        )
    }

    /// Whether the program is alive given the inode now found at its pin (see `ProgramPins`).
    func isAlive(found: UInt64?, paths: BpfmanPaths) -> Bool {
        ProgramPins.isAlive(id: id, recorded: inode, loadTime: loadTime, found: found, path: paths.programPin(id))
    }
}
