import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

extension KernelTests {
    /// Tracepoint attach and detach proven by a counter (SPEC §4.11).
    @Suite struct EngineTracepointTests {
        @Test func tracepointCounterRisesAfterTheSyscall() async throws {
            try await withTestEngine("tp") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill", metadata: ["k": "v"]))
                )
                #expect(FileManager.default.fileExists(atPath: h.paths.linkPin(link)))
                let before = try h.counter(program: id, map: "counter")
                for _ in 0..<5 { kill(getpid(), 0) }
                let after = try h.counter(program: id, map: "counter")
                #expect(after >= before + 5)
                let record = try await h.engine.link(id: link)
                #expect(record.metadata == ["k": "v"])
                #expect(record.kernelLinkID != nil)
                let got = try await h.engine.get(id: id)
                #expect(got.info?.links == [link])
                h.expectNoDescriptorsAtRest("with a tracepoint link attached")

                try await h.engine.detach(linkID: link)
                #expect(!FileManager.default.fileExists(atPath: h.paths.linkPin(link)))
                #expect(!BPF.linkExists(id: try #require(record.kernelLinkID)), "kernel link gone when Detach returns")
                // The counter stops as Detach returns (the tracepoint is system-wide: the baseline is read after).
                let detached = try h.counter(program: id, map: "counter")
                for _ in 0..<5 { kill(getpid(), 0) }
                #expect(try h.counter(program: id, map: "counter") == detached, "detached: the counter stops")
                let again = await engineError { try await h.engine.detach(linkID: link) }
                #expect(again?.code == .notFound)
                #expect(again?.message == "link \(link) does not exist")
                try await h.engine.unload(id: id)
            }
        }

        /// A detached program no longer runs once Detach has returned: fifty rounds of attach, Detach, five
        /// syscalls the counter must not see. (Unpinning alone left the program on the tracepoint for a moment
        /// after its link id was gone, in 19 of 200 rounds.)
        @Test func aDetachedProgramNoLongerRunsWhenDetachReturns() async throws {
            try await withTestEngine("tp-stop") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                var late = 0
                for _ in 0..<50 {
                    let link = try await h.engine.attach(
                        programID: id,
                        spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                    )
                    try await h.engine.detach(linkID: link)
                    let detached = try h.counter(program: id, map: "counter")
                    for _ in 0..<5 { kill(getpid(), 0) }
                    if try h.counter(program: id, map: "counter") != detached { late += 1 }
                }
                #expect(late == 0, "\(late) of 50 rounds counted after Detach returned")
                try await h.engine.unload(id: id)
            }
        }

        /// Loads `count_kill` and attaches it to `syscalls/sys_enter_kill`.
        private func loadAndAttachKillCounter(_ h: TestEngine) async throws -> (program: UInt32, link: UInt32) {
            let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
            let link = try await h.engine.attach(
                programID: id,
                spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
            )
            return (id, link)
        }

        /// SPEC §10 scenario 12, out of band: the link's pin removed by hand (the kernel link goes with it);
        /// Detach still succeeds and drops the record.
        @Test func detachOfALinkWhosePinWasRemovedByHandSucceeds() async throws {
            try await withTestEngine("tp-rmlink") { h in
                let (id, link) = try await loadAndAttachKillCounter(h)
                let kernelLink = try #require(try await h.engine.link(id: link).kernelLinkID)
                #expect(unlink(h.paths.linkPin(link)) == 0)
                #expect(await eventually { !BPF.linkExists(id: kernelLink) })
                try await h.engine.detach(linkID: link)
                let gone = await engineError { _ = try await h.engine.link(id: link) }
                #expect(gone?.code == .notFound)
                #expect(gone?.message == "link \(link) does not exist")
                #expect(try await h.engine.get(id: id).info?.links == [])
                try await h.engine.unload(id: id)
            }
        }

        /// SPEC §10 scenario 8: program, link and map pins removed by hand. Get answers NOT_FOUND and drops the
        /// records, after which List leaves the program out and the link reads NOT_FOUND too.
        @Test func programAndLinkRemovedByHandReadAsNotFound() async throws {
            try await withTestEngine("tp-vanish") { h in
                let (id, link) = try await loadAndAttachKillCounter(h)
                #expect(unlink(h.paths.linkPin(link)) == 0)
                #expect(unlink(h.paths.programPin(id)) == 0)
                let maps = h.paths.mapSetDirectory(id)
                for name in filesUnder(maps) { #expect(unlink(maps + "/" + name) == 0) }
                #expect(rmdir(maps) == 0)
                #expect(await eventually { !BPF.programExists(id: id) })

                let get = await engineError { _ = try await h.engine.get(id: id) }
                #expect(get?.code == .notFound)
                #expect(get?.message == "program \(id) does not exist")
                #expect(!(try await h.engine.list()).contains { $0.kernelInfo.id == id })
                let linkError = await engineError { _ = try await h.engine.link(id: link) }
                #expect(linkError?.code == .notFound)
                #expect(linkError?.message == "link \(link) does not exist")
            }
        }

        /// SPEC §10 scenario 14: Unload of a program with two links removes both kernel links and their pins
        /// first; neither link can be read or detached afterwards.
        @Test(arguments: ["tracepoint", "uprobe"])
        func unloadDetachesEveryLinkFirst(_ kind: String) async throws {
            try await withTestEngine("cascade") { h in
                let id: UInt32
                let specs: [AttachSpec]
                if kind == "uprobe" {
                    id = try await h.load(fixture: "uprobe_counter", "count_call", .uprobe)
                    specs = ["getpid", "getppid"].map { .uprobe(UprobeAttach(fnName: $0, target: "libc")) }
                } else {
                    id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                    specs = ["syscalls/sys_enter_kill", "syscalls/sys_enter_getppid"].map {
                        .tracepoint(TracepointAttach(tracepoint: $0))
                    }
                }
                var links: [UInt32] = []
                for spec in specs { links.append(try await h.engine.attach(programID: id, spec: spec)) }
                let kernelIDs = try await links.asyncMap { try await h.engine.link(id: $0).kernelLinkID }
                #expect(filesUnder(h.paths.linksDirectory) == links.map { "\($0)" }.sorted())
                try await h.engine.unload(id: id)
                for kernelID in kernelIDs { #expect(!BPF.linkExists(id: try #require(kernelID))) }
                #expect(filesUnder(h.paths.linksDirectory).isEmpty)
                for link in links {
                    let read = await engineError { _ = try await h.engine.link(id: link) }
                    #expect(read?.code == .notFound)
                    let detach = await engineError { try await h.engine.detach(linkID: link) }
                    #expect(detach?.code == .notFound)
                }
            }
        }
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
