import CBPF
import Foundation
import Glibc
import Synchronization
import TestSupport
import Testing

@testable import BpfmanEngine

/// A flag shared between tasks.
private final class Flag: Sendable {
    private let value = Atomic(false)
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
}

extension Engine {
    /// Test hook: occupies the actor (blocking its thread, so nothing else can run on it) until `release` is
    /// set or 10 s pass, after setting `entered`.
    fileprivate func occupy(entered: Flag, release: Flag) {
        entered.set()
        let deadline = ContinuousClock.now + .seconds(10)
        while !release.isSet && ContinuousClock.now < deadline { usleep(1000) }
    }

    /// Test hook: runs `sql` on the engine's own writing connection, as a mutation would.
    fileprivate func executeOnTheWriter(_ sql: String) throws {
        try store.database.execute(sql)
    }
}

extension KernelTests {
    /// The concurrent read path (SPEC §1.7): reads never queue behind the engine actor.
    @Suite struct EngineReaderTests {
        @Test func getListAndLinksAnswerWhileTheActorIsBusy() async throws {
            try await withTestEngine("reader") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                let entered = Flag()
                let release = Flag()
                let engine = h.engine
                let busy = Task { await engine.occupy(entered: entered, release: release) }
                while !entered.isSet { try await Task.sleep(for: .milliseconds(1)) }

                let got = try await engine.get(id: id)
                let listed = try await engine.list(ListFilter(bpfmanProgramsOnly: true))
                let links = try await engine.links()
                let byID = try engine.reader.link(id: link)
                let answeredWhileBusy = !release.isSet
                release.set()
                await busy.value

                #expect(answeredWhileBusy, "reads finished while the actor was still occupied")
                #expect(got.info?.links == [link])
                #expect(got.info?.mapUsedBy == [String(id)])
                #expect(listed.map(\.kernelInfo.id) == [id])
                #expect(got.kernelInfo.bytesMemlock > 0)
                #expect(listed.first?.kernelInfo.bytesMemlock == got.kernelInfo.bytesMemlock, "List reads fdinfo too")
                #expect(links.map(\.id) == [link])
                #expect(byID.programID == id)
                try await h.engine.unload(id: id)
            }
        }

        @Test func memlockRecordedAtLoadEqualsFdinfoAndARecordWithoutOneIsReadLive() async throws {
            try await withTestEngine("memlock") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                // What the kernel shows now, read by the test itself through a descriptor of its own.
                let fd = bpf_prog_get_fd_by_id(id)
                try #require(fd >= 0)
                let fdinfo = try String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8)
                close(fd)
                let line = try #require(fdinfo.split(separator: "\n").first { $0.hasPrefix("memlock:") })
                let live = try #require(UInt32(line.dropFirst("memlock:".count).trimmingCharacters(in: .whitespaces)))
                #expect(live > 0)

                let recorded = try await h.engine.get(id: id)
                let listed = try await h.engine.list(ListFilter(bpfmanProgramsOnly: true))
                #expect(recorded.kernelInfo.bytesMemlock == live)
                #expect(listed.first?.kernelInfo.bytesMemlock == live)

                // A record written before memlock was kept (schema 1 rows after the migration) reads it live.
                try await h.engine.executeOnTheWriter("UPDATE programs SET bytes_memlock = NULL WHERE id = \(id)")
                #expect(try await h.engine.get(id: id).kernelInfo.bytesMemlock == live)
                #expect(
                    try await h.engine.list(ListFilter(bpfmanProgramsOnly: true)).first?.kernelInfo.bytesMemlock == live
                )
                try await h.engine.unload(id: id)
            }
        }

        /// Reads answer from records kept since the last commit (`RecordMemo`); each kind of mutation must show
        /// in the very next Get and List, after reads that kept the state before it.
        @Test func getAndListAfterEachMutationShowIt() async throws {
            try await withTestEngine("memo") { h in
                let engine = h.engine
                func read(_ id: UInt32) async throws -> (get: ProgramInfo?, listed: [UInt32: ProgramInfo]) {
                    let got = try await engine.get(id: id).info
                    let listed = try await engine.list(ListFilter(bpfmanProgramsOnly: true))
                    return (got, Dictionary(uniqueKeysWithValues: listed.map { ($0.kernelInfo.id, $0.info!) }))
                }
                let owner = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                var seen = try await read(owner)
                #expect(seen.get?.links == [] && seen.listed[owner]?.links == [])

                let link = try await engine.attach(
                    programID: owner,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                seen = try await read(owner)
                #expect(seen.get?.links == [link], "Get after Attach")
                #expect(seen.listed[owner]?.links == [link], "List after Attach")

                let dependant = try await h.load(
                    fixture: "tracepoint_counter",
                    "count_kill",
                    .tracepoint,
                    mapOwner: owner
                )
                seen = try await read(owner)
                #expect(seen.get?.mapUsedBy == [String(owner), String(dependant)], "Get after a dependant's Load")
                #expect(seen.listed.keys.sorted() == [owner, dependant], "List after a dependant's Load")

                try await engine.detach(linkID: link)
                seen = try await read(owner)
                #expect(seen.get?.links == [], "Get after Detach")
                #expect(seen.listed[owner]?.links == [], "List after Detach")

                try await engine.unload(id: dependant)
                seen = try await read(owner)
                #expect(seen.get?.mapUsedBy == [String(owner)], "Get after the dependant's Unload")
                #expect(seen.listed.keys.sorted() == [owner], "List after the dependant's Unload")

                try await engine.executeOnTheWriter(
                    "INSERT INTO program_metadata(program_id, key, value) VALUES(\(owner), 'k', 'v')"
                )
                seen = try await read(owner)
                #expect(seen.get?.metadata == ["k": "v"], "Get after a commit of the writer's own")
                #expect(seen.listed[owner]?.metadata == ["k": "v"], "List after a commit of the writer's own")

                try await engine.unload(id: owner)
                // The kernel may free the program a little after Unload returns; until then it is unmanaged.
                let afterUnload = try? await engine.get(id: owner)
                #expect(afterUnload?.info == nil, "Get after Unload")
                #expect(try await engine.list(ListFilter(bpfmanProgramsOnly: true)).isEmpty, "List after Unload")
            }
        }

        @Test func concurrentReadsDuringLoadsAndUnloadsSeeWholePrograms() async throws {
            try await withTestEngine("readmix") { h in
                let engine = h.engine
                let object = try BPFFixtures.object("tracepoint_counter")
                let readers = Task {
                    try await withThrowingTaskGroup(of: Int.self) { group in
                        for _ in 0..<4 {
                            group.addTask {
                                var seen = 0
                                for _ in 0..<40 {
                                    for details in try await engine.list(ListFilter(bpfmanProgramsOnly: true)) {
                                        // A listed managed program carries its record and its own map set.
                                        #expect(details.info?.mapUsedBy.contains(String(details.kernelInfo.id)) == true)
                                        seen += 1
                                    }
                                }
                                return seen
                            }
                        }
                        return try await group.reduce(0, +)
                    }
                }
                for _ in 0..<6 {
                    let loaded = try await engine.load(
                        LoadRequest(
                            bytecode: .file(object),
                            programs: [ProgramLoadInfo(name: "count_kill", type: .tracepoint)]
                        )
                    )
                    h.loadedIDs += loaded.map(\.kernelInfo.id)
                    try await engine.unload(id: loaded[0].kernelInfo.id)
                }
                _ = try await readers.value
                #expect(try await engine.list(ListFilter(bpfmanProgramsOnly: true)).isEmpty)
            }
        }
    }
}
