import CBPF
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

        /// SPEC §3.3: the kernel keeps one copy of a program per tracepoint. A second Attach of the program to the
        /// tracepoint it is on: the kernel answers EEXIST (shown here straight through the program's pin), the
        /// engine FAILED_PRECONDITION naming the existing link, and the refused attach leaves no link row (pending
        /// or active), pin or fd; the first link still counts.
        @Test func secondAttachToTheSameTracepointIsAFailedPrecondition() async throws {
            try await withTestEngine("tp-twice") { h in
                let (id, link) = try await loadAndAttachKillCounter(h)
                let sysEnterKill = try #require(Probes.tracepointID(group: "syscalls", name: "sys_enter_kill"))
                #expect(try Self.linkDirectly(program: h.paths.programPin(id), tracepoint: sysEnterKill) == -EEXIST)

                let twice = await engineError {
                    _ = try await h.engine.attach(
                        programID: id,
                        spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                    )
                }
                #expect(twice?.code == .failedPrecondition)
                #expect(
                    twice?.message
                        == "program \(id) is already attached to tracepoint syscalls/sys_enter_kill as link \(link)"
                )
                try expectOnlyLink(link, h)
                let before = try h.counter(program: id, map: "counter")
                for _ in 0..<3 { kill(getpid(), 0) }
                #expect(try h.counter(program: id, map: "counter") >= before + 3, "the first link still counts")

                // Once detached, the same attach works again.
                try await h.engine.detach(linkID: link)
                let again = try await h.engine.attach(
                    programID: id,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                #expect(again > link)
                try await h.engine.unload(id: id)
            }
        }

        /// The same refusal when the program sits on the tracepoint through a link bpfman does not manage (made
        /// here from the program's pin): FAILED_PRECONDITION, nothing left behind.
        @Test func attachToATracepointTheProgramIsOnOutsideBpfmanIsAFailedPrecondition() async throws {
            try await withTestEngine("tp-foreign") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let getppid = try #require(Probes.tracepointID(group: "syscalls", name: "sys_enter_getppid"))
                let foreign = try Self.linkDirectly(program: h.paths.programPin(id), tracepoint: getppid)
                try #require(foreign >= 0, "a link of our own: \(String(cString: strerror(-foreign)))")
                defer { close(foreign) }
                let error = await engineError {
                    _ = try await h.engine.attach(
                        programID: id,
                        spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_getppid"))
                    )
                }
                #expect(error?.code == .failedPrecondition)
                #expect(
                    error?.message
                        == "program \(id) is already attached to tracepoint syscalls/sys_enter_getppid by a link bpfman "
                        + "does not manage"
                )
                try expectOnlyLink(nil, h, testsOwn: foreign)
                try await h.engine.unload(id: id)
            }
        }

        /// `bpf_link_create` of the pinned program on tracepoint `id` through a perf event of this test: the new
        /// link's fd (the caller closes it) or libbpf's `-errno`.
        static func linkDirectly(program pin: String, tracepoint id: UInt64) throws -> CInt {
            let program = bpf_obj_get(pin)
            try #require(program >= 0, "program pin \(pin) opens")
            defer { close(program) }
            let perf = cbpf_perf_open_tracepoint(id)
            try #require(perf >= 0, "perf_event_open for tracepoint \(id): \(String(cString: strerror(errno)))")
            defer { close(perf) }
            return bpf_link_create(program, perf, BPF_PERF_EVENT, nil)
        }

        /// Link records, pending rows and link pins are `link` alone (or nothing), and the engine holds no fd
        /// (`testsOwn` is one the test itself holds).
        private func expectOnlyLink(
            _ link: UInt32?,
            _ h: TestEngine,
            testsOwn: CInt? = nil,
            sourceLocation: SourceLocation = #_sourceLocation
        ) throws {
            let expected = link.map { [$0] } ?? []
            let store = try ProgramStore(readerAt: h.paths.database)
            defer { store.close() }
            #expect(try store.allLinks().map(\.id) == expected, "link rows", sourceLocation: sourceLocation)
            #expect(try store.pendingLinks().isEmpty, "no pending link row", sourceLocation: sourceLocation)
            #expect(
                filesUnder(h.paths.linksDirectory) == expected.map { "\($0)" },
                "link pins",
                sourceLocation: sourceLocation
            )
            let held = bpfDescriptors().subtracting(h.descriptorsBefore).filter { !$0.hasPrefix("\(testsOwn ?? -1) ") }
            #expect(held.isEmpty, "fds held after the refused attach: \(held.sorted())", sourceLocation: sourceLocation)
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
