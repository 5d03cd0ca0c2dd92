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
                let other = try Database(path: h.paths.database)
                try other.execute("UPDATE programs SET bytes_memlock = NULL WHERE id = \(id)")
                other.close()
                #expect(try await h.engine.get(id: id).kernelInfo.bytesMemlock == live)
                #expect(
                    try await h.engine.list(ListFilter(bpfmanProgramsOnly: true)).first?.kernelInfo.bytesMemlock == live
                )
                try await h.engine.unload(id: id)
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
