import Foundation
import Testing

@testable import BpfmanEngine

/// The SQLite store without a kernel: schema versioning, records round-trip, link ids (SPEC §6.1).
@Suite struct StoreTests {
    func withStore(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("eng-store-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory + "/store.db")
    }

    func record(_ id: UInt32, owner: UInt32? = nil) -> ProgramRecord {
        ProgramRecord(
            id: id,
            name: "prog_\(id)",
            kind: .uprobe,
            loadMode: .native,
            location: .image(BytecodeImage(url: "quay.io/x:1", pullPolicy: .never)),
            metadata: ["app": "a", "k": "v"],
            globalData: ["g": [0xde, 0xad]],
            mapOwnerID: owner,
            mapSetID: owner ?? id,
            attachTarget: nil,
            sharedMaps: ["shared_a"]
        )
    }

    /// Inserts `record` as the owner of its own map set, in one transaction.
    func insertOwner(_ record: ProgramRecord, into store: ProgramStore) throws {
        try store.transaction { () throws(SQLiteError) in
            try store.insertMapSet(id: record.id, pinDirectory: "/rd/fs/maps/\(record.id)")
            try store.insertProgram(record)
        }
    }

    @Test func schemaIsVersionedAndMigrationIsIdempotent() throws {
        try withStore { path in
            let store = try ProgramStore(path: path)
            #expect(try store.database.userVersion == Schema.currentVersion)
            store.close()
            let again = try ProgramStore(path: path)
            #expect(try again.database.userVersion == Schema.currentVersion)
            again.close()
        }
    }

    @Test func schemaOneStoreMigratesKeepingItsProgramsWithoutARecordedMemlock() throws {
        try withStore { path in
            // A store as the first release wrote it: migration 1 only, one program row.
            let old = try Database(path: path)
            try old.execute("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
            try old.execute(Schema.migrations[0])
            try old.execute("PRAGMA user_version = 1")
            try old.execute(
                """
                INSERT INTO map_sets(id, pin_dir) VALUES(10, '/rd/fs/maps/10');
                INSERT INTO programs(id, name, kind, load_mode, location_kind, location, map_set_id, created_at)
                    VALUES(10, 'prog_10', 'tracepoint', 'native', 'file', '/o.bpf.o', 10, 0);
                """
            )
            old.close()

            let store = try ProgramStore(path: path)
            defer { store.close() }
            #expect(try store.database.userVersion == Schema.currentVersion)
            let migrated = try #require(try store.program(10))
            #expect(migrated.name == "prog_10")
            #expect(migrated.kernelFacts == nil, "unknown for old rows: reconciliation reads them")
            #expect(migrated.pinInode == nil)
            var fresh = record(11)
            fresh.kernelFacts = facts(loadTime: 123_456_789_000)
            fresh.pinInode = 4242
            try insertOwner(fresh, into: store)
            #expect(try store.program(11) == fresh)
        }
    }

    func facts(loadTime: UInt64, mapIDs: [UInt32] = [7, 3, 12]) -> KernelProgramFacts {
        KernelProgramFacts(
            name: "count_kill",
            kernelType: 5,
            loadTime: loadTime,
            tag: "0123456789abcdef",
            gplCompatible: true,
            mapIDs: mapIDs,
            btfID: 99,
            bytesXlated: 232,
            bytesJited: 150,
            bytesMemlock: 4096,
            verifiedInsns: 29
        )
    }

    /// A schema-2 store (memlock kept, nothing else) migrates with its rows' facts unknown; facts written later
    /// (as start-up reconciliation does) read back field for field, and the writer's copy of the pins follows.
    @Test func schemaTwoRowsGetTheirKernelFactsAndPinInodeRecordedLater() throws {
        try withStore { path in
            let old = try Database(path: path)
            try old.execute("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;")
            try old.execute(Schema.migrations[0])
            try old.execute(Schema.migrations[1])
            try old.execute("PRAGMA user_version = 2")
            try old.execute(
                """
                INSERT INTO map_sets(id, pin_dir) VALUES(10, '/rd/fs/maps/10');
                INSERT INTO programs(id, name, kind, load_mode, location_kind, location, map_set_id, created_at,
                    bytes_memlock) VALUES(10, 'count_kill', 'tracepoint', 'native', 'file', '/o.bpf.o', 10, 0, 4096);
                """
            )
            old.close()

            let store = try ProgramStore(path: path)
            defer { store.close() }
            #expect(try store.program(10)?.kernelFacts == nil, "memlock alone is not the facts")
            #expect(try store.programPins() == [10: ProgramPin(id: 10, inode: nil, loadTime: nil)])
            for mapIDs in [[UInt32](), [7, 3, 12]] {
                let recorded = facts(loadTime: 5_000_000_123, mapIDs: mapIDs)
                try store.recordKernelFacts(recorded, pinInode: 77, of: 10)
                let read = try #require(try store.program(10))
                #expect(read.kernelFacts == recorded)
                #expect(read.kernelFacts?.mapIDs == mapIDs, "kernel order kept")
                #expect(read.kernelFacts?.loadedAt.text == recorded.loadedAt.text)
                #expect(read.pinInode == 77)
                #expect(try store.programPins() == [10: ProgramPin(id: 10, inode: 77, loadTime: 5_000_000_123)])
            }
            let reader = try ProgramStore(readerAt: path)
            defer { reader.close() }
            #expect(try reader.programPins() == [10: ProgramPin(id: 10, inode: 77, loadTime: 5_000_000_123)])
            #expect(try reader.mapSetMemberPins(10) == [ProgramPin(id: 10, inode: 77, loadTime: 5_000_000_123)])
        }
    }

    @Test func programIDsFollowCommitsNotRolledBackWritesOnceRemembered() throws {
        try withStore { path in
            let store = try ProgramStore(path: path)
            defer { store.close() }
            try insertOwner(record(10), into: store)
            #expect(try store.programIDs() == [10])  // read from the table, then remembered
            // A transaction that fails after inserting leaves neither the row nor the id.
            #expect(throws: SQLiteError.self) {
                try store.transaction { () throws(SQLiteError) in
                    try store.insertMapSet(id: 11, pinDirectory: "/rd/fs/maps/11")
                    try store.insertProgram(record(11))
                    try store.insertProgram(record(11))  // duplicate primary key
                }
            }
            #expect(try store.programIDs() == [10])
            #expect(try store.program(11) == nil)
            try insertOwner(record(12), into: store)
            _ = try store.deleteProgram(10)
            #expect(try store.programIDs() == [12])
            // What a fresh connection reads from the table agrees.
            let reader = try ProgramStore(readerAt: path)
            defer { reader.close() }
            #expect(try reader.programIDs() == [12])
        }
    }

    /// `countCommits` replaces SQLite's automatic checkpoint with its own hook: every commit is counted, rolled
    /// back ones are not, and the WAL is still checkpointed (it would otherwise grow without end).
    @Test func commitsAreCountedAndTheWALStaysCheckpointed() throws {
        try withStore { path in
            let store = try ProgramStore(path: path)
            defer { store.close() }
            let commits = CommitCounter()
            store.database.countCommits(commits)
            #expect(commits.current == 0)
            try insertOwner(record(1), into: store)
            #expect(commits.current == 1)
            #expect(throws: SQLiteError.self) {
                try store.transaction { () throws(SQLiteError) in
                    try store.insertMapSet(id: 2, pinDirectory: "/rd/fs/maps/2")
                    try store.insertMapSet(id: 2, pinDirectory: "/rd/fs/maps/2")
                }
            }
            #expect(commits.current == 1, "a rolled-back transaction is not a commit")
            // Each Load-sized transaction writes a few pages; 3000 of them are far more than 1000 pages.
            let payload = String(repeating: "x", count: 3000)
            for id in UInt32(10)..<3010 {
                try store.transaction { () throws(SQLiteError) in
                    try store.insertMapSet(id: id, pinDirectory: payload)
                }
            }
            #expect(commits.current == 3001)
            let walBytes = try #require(try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int)
            #expect(walBytes < 1200 * 4096, "WAL of \(walBytes) bytes: not checkpointed")
        }
    }

    @Test func newerSchemaIsRefused() throws {
        try withStore { path in
            let store = try ProgramStore(path: path)
            try store.database.execute("PRAGMA user_version = \(Schema.currentVersion + 1)")
            store.close()
            #expect(throws: SQLiteError.self) { _ = try ProgramStore(path: path) }
        }
    }

    @Test func programRecordsRoundTripWithMetadataGlobalDataAndMapSets() throws {
        try withStore { path in
            let store = try ProgramStore(path: path)
            defer { store.close() }
            try store.transaction { () throws(SQLiteError) in
                try store.insertMapSet(id: 10, pinDirectory: "/rd/fs/maps/10")
                try store.insertProgram(record(10))
                try store.insertProgram(record(11, owner: 10))
            }
            #expect(try store.program(10) == record(10))
            var withFacts = record(12)
            withFacts.kernelFacts = facts(loadTime: 1)
            withFacts.pinInode = UInt64(UInt32.max) + 5
            try insertOwner(withFacts, into: store)
            #expect(try store.program(12) == withFacts)
            _ = try store.deleteProgram(12)
            try store.deleteMapSet(12)
            #expect(try store.program(11) == record(11, owner: 10))
            #expect(try store.allPrograms().map(\.id) == [10, 11])
            #expect(try store.mapSetMembers(10) == [10, 11])
            #expect(try store.sharedMapNames() == ["shared_a"])
            // The shared map is released with its last user.
            #expect(try store.deleteProgram(10) == [])
            #expect(try store.deleteProgram(11) == ["shared_a"])
            #expect(try store.sharedMapNames().isEmpty)
        }
    }

    @Test func linkIDsStartAtOneAndAreNeverReusedEvenAfterReopening() throws {
        try withStore { path in
            var store = try ProgramStore(path: path)
            try insertOwner(record(10), into: store)
            let spec = AttachSpec.tracepoint(TracepointAttach(tracepoint: "a/b", metadata: ["m": "1"]))
            let first = try store.insertPendingLink(programID: 10, kind: .tracepoint, spec: spec)
            let second = try store.insertPendingLink(programID: 10, kind: .tracepoint, spec: spec)
            #expect(first == 1)
            #expect(second == 2)
            var link = try #require(try store.link(second))
            #expect(link.state == .pending)
            link.state = .active
            link.kernelLinkID = 77
            link.pinPath = "/rd/fs/links/2"
            try store.activateLink(link)
            #expect(try store.link(second) == link)
            #expect(try store.pendingLinks().map(\.id) == [first])
            try store.deleteLink(second)
            store.close()
            store = try ProgramStore(path: path)
            defer { store.close() }
            #expect(try store.insertPendingLink(programID: 10, kind: .tracepoint, spec: spec) == 3)
        }
    }
}

/// Pure helpers of the engine: section families, TCX anchors, ELF checks, ld.so.cache parsing, paths.
@Suite struct EngineRulesTests {
    @Test(arguments: [
        ("xdp", BpfmanProgramType.xdp, ProgramKind?.some(.xdp)),
        ("xdp.frags/x", .xdp, .xdp),
        ("classifier", .tc, .tc),
        ("classifier", .tcx, .tcx),
        ("tc", .tcx, .tcx),
        ("tc/ingress", .tcx, .tcx),
        ("tcx/ingress", .tcx, .tcx),
        ("tp/sched/x", .tracepoint, .tracepoint),
        ("kretprobe/do_x", .kprobe, .kretprobe),
        ("uretprobe.s/x", .uprobe, .uretprobe),
        ("uprobe/x", .kprobe, nil),
        ("kprobe/x", .uprobe, nil),
        ("fentry/x", .fexit, nil),
        ("lsm.s/file_open", .lsm, .lsm),
        ("socket", .xdp, nil),
        // Bare sections (SPEC §4.2): the attach point comes at attach time.
        ("uprobe", .uprobe, .uprobe),
        ("uretprobe", .uprobe, .uretprobe),
        ("uprobe.s", .uprobe, .uprobe),
        ("kprobe", .kprobe, .kprobe),
        ("kretprobe", .kprobe, .kretprobe),
        ("kretprobe", .uprobe, nil),
        ("tracepoint", .tracepoint, .tracepoint),
        ("tp", .tracepoint, .tracepoint),
        ("tcx", .tcx, .tcx),
        ("tcx", .tc, .tc),
        ("fentry", .fexit, nil),
        ("lsm.s", .lsm, .lsm),
    ])
    func sectionDecidesTheKind(_ section: String, _ type: BpfmanProgramType, _ kind: ProgramKind?) {
        #expect(Engine.kind(section: section, requested: type) == kind)
    }

    /// SPEC §4.10's worked example: 11@100, 12@300; 13@200 before 12; 14@300 after 12; 15@0 before 11.
    @Test func tcxAnchorsFollowTheSpecExample() {
        let before = BPFMultiProgFlag.before | BPFMultiProgFlag.id
        let after = BPFMultiProgFlag.after | BPFMultiProgFlag.id
        #expect(Engine.tcxAnchor([], newPriority: 5) == (BPFMultiProgFlag.before, 0))
        #expect(Engine.tcxAnchor([(100, 11), (300, 12)], newPriority: 200) == (before, 12))
        #expect(Engine.tcxAnchor([(100, 11), (200, 13), (300, 12)], newPriority: 300) == (after, 12))
        #expect(Engine.tcxAnchor([(100, 11), (200, 13), (300, 12), (300, 14)], newPriority: 0) == (before, 11))
    }

    @Test func elfHeaderChecks() {
        var header = [UInt8](repeating: 0, count: 64)
        header[0...3] = [0x7f, 0x45, 0x4c, 0x46]
        header[4] = 2
        header[5] = 1
        header[16] = 1
        header[18] = 247
        #expect(ELFFile.bpfObjectProblem(header: header) == nil)
        header[18] = 62
        #expect(ELFFile.bpfObjectProblem(header: header) == "ELF machine 62 is not BPF (247)")
        header[4] = 1
        #expect(ELFFile.bpfObjectProblem(header: header) == "not a 64-bit ELF file")
        #expect(ELFFile.bpfObjectProblem(header: Array("hello".utf8)) == "not an ELF file")
    }

    @Test func linkerCacheFindsLibc() throws {
        let cache = try #require(FileManager.default.contents(atPath: "/etc/ld.so.cache"))
        let path = try #require(LDSOCache.lookup("libc.so", in: Array(cache)))
        #expect(path.hasSuffix("/libc.so.6"))
        #expect(LDSOCache.lookup("libdefinitely-not-there.so", in: Array(cache)) == nil)
    }

    @Test func pathsFollowTheSpecLayout() {
        let paths = BpfmanPaths(root: "/tmp/rd/")
        #expect(BpfmanPaths().root == "/run/bpfman")
        #expect(paths.database == "/tmp/rd/db/store.db")
        #expect(paths.programPin(42) == "/tmp/rd/fs/prog_42")
        #expect(paths.mapPin(owner: 42, map: "counter") == "/tmp/rd/fs/maps/42/counter")
        #expect(paths.linkPin(7) == "/tmp/rd/fs/links/7")
        #expect(paths.sharedMapsDirectory == "/tmp/rd/fs/shared")
    }

    @Test func errorCodesAreDistinct() {
        let codes: [EngineError.Code] = [.invalidArgument, .notFound, .failedPrecondition, .internal, .unimplemented]
        #expect(Set(codes).count == codes.count)
        #expect(EngineError.notFound("x").description == "notFound: x")
    }
}
