import CBPF
import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

extension Engine {
    /// Test hook: runs `sql` on the engine's own writing connection (a commit the readers see).
    fileprivate func executeSQL(_ sql: String) throws {
        try store.database.execute(sql)
    }
}

/// What the test itself reads of program `id`, through its own descriptor and none of the engine's code: the
/// fields of `KernelProgramInfo` that SPEC §3.8 says a live read gives.
private struct LiveRead: Equatable, CustomStringConvertible {
    var name: String
    var kernelType: UInt32
    var loadedAt: String
    var tag: String
    var gplCompatible: Bool
    var mapIDs: [UInt32]
    var btfID: UInt32
    var bytesXlated: UInt32
    var jited: Bool
    var bytesJited: UInt32
    var bytesMemlock: UInt32
    var verifiedInsns: UInt32

    var description: String {
        "\(name) type \(kernelType) \(loadedAt) tag \(tag) gpl \(gplCompatible) maps \(mapIDs) btf \(btfID) "
            + "xlated \(bytesXlated) jited \(jited)/\(bytesJited) memlock \(bytesMemlock) insns \(verifiedInsns)"
    }

    init?(id: UInt32) {
        let fd = bpf_prog_get_fd_by_id(id)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var ids = [UInt32](repeating: 0, count: 64)
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        let rc = ids.withUnsafeMutableBufferPointer { buffer in
            info.nr_map_ids = UInt32(buffer.count)
            info.map_ids = UInt64(UInt(bitPattern: buffer.baseAddress))
            return bpf_obj_get_info_by_fd(fd, &info, &length)
        }
        guard rc == 0,
            let fdinfo = try? String(contentsOfFile: "/proc/self/fdinfo/\(fd)", encoding: .utf8),
            let line = fdinfo.split(separator: "\n").first(where: { $0.hasPrefix("memlock:") }),
            let memlock = UInt32(line.dropFirst("memlock:".count).trimmingCharacters(in: .whitespaces))
        else { return nil }
        name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        kernelType = info.type
        var now = timespec()
        var boot = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let bootNanos = (Int64(now.tv_sec) - Int64(boot.tv_sec)) * 1_000_000_000 + Int64(now.tv_nsec - boot.tv_nsec)
        var seconds = time_t((bootNanos + Int64(info.load_time)) / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var text = [CChar](repeating: 0, count: 64)
        let count = strftime(&text, text.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        loadedAt = String(decoding: text.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        tag = withUnsafeBytes(of: info.tag) { $0.map { String(format: "%02x", $0) }.joined() }
        gplCompatible = info.gpl_compatible != 0
        mapIDs = Array(ids.prefix(Int(info.nr_map_ids)))
        btfID = info.btf_id
        bytesXlated = info.xlated_prog_len
        jited = info.jited_prog_len > 0
        bytesJited = info.jited_prog_len
        bytesMemlock = memlock
        verifiedInsns = info.verified_insns
    }

    init(_ answer: KernelProgramInfo) {
        name = answer.name
        kernelType = answer.kernelProgramType
        loadedAt = answer.loadedAt
        tag = answer.tag
        gplCompatible = answer.gplCompatible
        mapIDs = answer.mapIDs
        btfID = answer.btfID
        bytesXlated = answer.bytesXlated
        jited = answer.jited
        bytesJited = answer.bytesJited
        bytesMemlock = answer.bytesMemlock
        verifiedInsns = answer.verifiedInsns
    }
}

/// Get and List answer every managed program from its record and the live read agree on `ids`, field for field.
private func expectRecordedEqualsLive(
    _ h: TestEngine,
    _ ids: [UInt32],
    sourceLocation: SourceLocation = #_sourceLocation
) async throws {
    let managed = try await h.engine.list(ListFilter(bpfmanProgramsOnly: true))
    let all = try await h.engine.list()
    for id in ids {
        let got = try await h.engine.get(id: id)
        let live = try #require(LiveRead(id: id), "program \(id) readable", sourceLocation: sourceLocation)
        #expect(LiveRead(got.kernelInfo) == live, "Get \(id)", sourceLocation: sourceLocation)
        #expect(live.verifiedInsns > 0 && live.bytesMemlock > 0, sourceLocation: sourceLocation)
        // The engine's own live read (what unmanaged programs get) gives the very same answer, reported type too.
        let reported = try #require(got.info?.kind.reportedKernelType, sourceLocation: sourceLocation)
        #expect(
            KernelProgramInfo.read(id: id, reportedType: reported) == got.kernelInfo,
            "engine live read of \(id)",
            sourceLocation: sourceLocation
        )
        for (list, what) in [(managed, "List(programs only)"), (all, "List")] {
            let listed = try #require(
                list.first { $0.kernelInfo.id == id },
                "\(what) has \(id)",
                sourceLocation: sourceLocation
            )
            #expect(listed.kernelInfo == got.kernelInfo, "\(what) \(id)", sourceLocation: sourceLocation)
        }
    }
}

extension KernelTests {
    /// SPEC §3.8 (revised): managed programs' `KernelProgramInfo` is recorded at Load and answered from the
    /// record after a liveness check of the pin; SPEC §6.4: a removed pin means a vanished program.
    @Suite struct EngineRecordedInfoTests {
        @Test func getAndListAnswerWhatALiveReadGivesForEveryKindOfThisKernel() async throws {
            try await withTestEngine("recorded") { h in
                var ids = [
                    try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint),
                    try await h.load(fixture: "uprobe_counter", "count_call", .uprobe),
                    try await h.load(fixture: "uprobe_counter", "count_return", .uprobe),
                    try await h.load(fixture: "tcx_counter", "tcx_count", .tcx),
                    try await h.load(fixture: "tc_counter", "tc_count_ok", .tc),
                    try await h.load(fixture: "xdp_counter", "xdp_count_pass", .xdp),
                ]
                // A dependant shares its owner's maps: its map ids are the owner's.
                ids.append(try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint, mapOwner: ids[0]))
                #expect(LiveRead(id: ids[6])?.mapIDs == LiveRead(id: ids[0])?.mapIDs)
                try await expectRecordedEqualsLive(h, ids)
                for id in ids.reversed() { try await h.engine.unload(id: id) }
            }
        }

        /// The answer is the record's: a fact changed in the store (never by the kernel) shows in the next Get and
        /// List, which therefore read no kernel info for it.
        @Test func answersComeFromTheRecordNotFromAKernelRead() async throws {
            try await withTestEngine("fromrecord") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let live = try #require(LiveRead(id: id))
                try await h.engine.executeSQL(
                    "UPDATE programs SET verified_insns = 7, bytes_xlated = 8 WHERE id = \(id)"
                )
                let got = try await h.engine.get(id: id).kernelInfo
                #expect(got.verifiedInsns == 7 && got.bytesXlated == 8)
                let listed = try await h.engine.list(ListFilter(bpfmanProgramsOnly: true))
                #expect(listed.first?.kernelInfo == got)
                // A record without facts (as written before they were kept) is read live.
                try await h.engine.executeSQL("UPDATE programs SET kernel_name = NULL WHERE id = \(id)")
                #expect(LiveRead(try await h.engine.get(id: id).kernelInfo) == live)
                try await h.engine.unload(id: id)
            }
        }

        /// A link keeps the program alive in the kernel after its pin is removed by hand: it is vanished all the
        /// same (SPEC §6.4), at once, and Get drops its records with the link.
        @Test func aRemovedPinIsVanishedAtOnceEvenWhileALinkHoldsTheProgram() async throws {
            try await withTestEngine("pinonly") { h in
                let id = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let kept = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                #expect(FileManager.default.fileExists(atPath: h.paths.linkPin(link)))
                #expect(unlink(h.paths.programPin(id)) == 0)
                #expect(BPF.programExists(id: id), "the link holds the program")
                #expect(try await h.engine.list(ListFilter(bpfmanProgramsOnly: true)).map(\.kernelInfo.id) == [kept])
                #expect(!(try await h.engine.list()).contains { $0.kernelInfo.id == id })
                let error = await engineError { _ = try await h.engine.get(id: id) }
                #expect(error?.code == .notFound)
                #expect(error?.message == "program \(id) does not exist")
                #expect(try await h.engine.links().isEmpty, "the link's record went with the program's")
                #expect(filesUnder(h.paths.linksDirectory).isEmpty, "and its pin")
                #expect(await eventually { !BPF.programExists(id: id) })
                try await h.engine.unload(id: kept)
            }
        }

        /// Another program pinned where ours was is not ours; our own program pinned again is.
        @Test func thePinMustHoldTheRecordedProgram() async throws {
            try await withTestEngine("pinswap") { h in
                let ours = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let other = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                // Our own program, unpinned and pinned again (a new inode): still alive, answered from the record.
                do {
                    let fd = try BPF.objectGet(h.paths.programPin(ours))
                    #expect(unlink(h.paths.programPin(ours)) == 0)
                    try BPF.pin(fd, at: h.paths.programPin(ours)).get()
                }
                try await expectRecordedEqualsLive(h, [ours, other])
                // The other program pinned in place of ours (ours freed with its pin): ours has vanished.
                do {
                    let fd = try BPF.objectGet(h.paths.programPin(other))
                    #expect(unlink(h.paths.programPin(ours)) == 0)
                    try BPF.pin(fd, at: h.paths.programPin(ours)).get()
                }
                #expect(try await h.engine.list(ListFilter(bpfmanProgramsOnly: true)).map(\.kernelInfo.id) == [other])
                let error = await engineError { _ = try await h.engine.get(id: ours) }
                #expect(error?.code == .notFound)
                #expect(!FileManager.default.fileExists(atPath: h.paths.programPin(ours)), "the foreign pin went")
                try await h.engine.unload(id: other)
            }
        }

        /// An upgrade needs no reload: records without kernel facts or pin inode (schema 1 and 2) get them at
        /// start-up, and a program re-pinned by reconciliation gets its new inode recorded.
        @Test func restartFillsInFactsAndPinInodesOfOldRecords() async throws {
            let paths = try makeTestRuntime("upgrade")
            defer { removeTestRuntime(paths) }
            var engine = try await Engine(paths: paths)
            var ids: [UInt32] = []
            for name in ["count_call", "count_return"] {
                ids += try await engine.load(
                    LoadRequest(
                        bytecode: .file(try BPFFixtures.object("uprobe_counter")),
                        programs: [ProgramLoadInfo(name: name, type: .uprobe)]
                    )
                ).map(\.kernelInfo.id)
            }
            let loaded = try await engine.get(id: ids[0]).kernelInfo
            try await engine.executeSQL(
                """
                UPDATE programs SET kernel_name = NULL, kernel_type = NULL, load_time = NULL, tag = NULL,
                    gpl_compatible = NULL, map_ids = NULL, btf_id = NULL, bytes_xlated = NULL, bytes_jited = NULL,
                    bytes_memlock = NULL, verified_insns = NULL, pin_inode = NULL
                """
            )
            await engine.close()
            do {
                // The second program's pin goes while the daemon is down; reconciliation pins it again.
                let fd = try BPF.objectGet(paths.programPin(ids[1]))
                #expect(unlink(paths.programPin(ids[1])) == 0)
                engine = try await Engine(paths: paths)
                _ = consume fd
            }
            let store = try ProgramStore(readerAt: paths.database)
            defer { store.close() }
            for id in ids {
                let record = try #require(try store.program(id))
                #expect(record.kernelFacts != nil, "facts filled in for \(id)")
                #expect(record.pinInode != nil && record.pinInode == ProgramPins.inode(at: paths.programPin(id)))
                let got = try await engine.get(id: id)
                #expect(LiveRead(got.kernelInfo) == LiveRead(id: id))
            }
            #expect(try await engine.get(id: ids[0]).kernelInfo == loaded, "what Load answered")
            for id in ids { try await engine.unload(id: id) }
            await engine.close()
        }

        /// List keeps its read of the pins while the bpffs directory is unchanged (`PinScanMemo`); a pin removed
        /// after the directory had settled and been read is still seen by the very next List.
        @Test func aPinRemovedAfterAKeptReadIsSeenByTheNextList() async throws {
            try await withTestEngine("pinmemo") { h in
                let first = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let second = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                usleep(UInt32(PinScanMemo.settledNanos / 1000) + 20_000)
                let only = ListFilter(bpfmanProgramsOnly: true)
                #expect(try await h.engine.list(only).map(\.kernelInfo.id) == [first, second], "read and kept")
                #expect(try await h.engine.list(only).map(\.kernelInfo.id) == [first, second], "reused")
                #expect(unlink(h.paths.programPin(first)) == 0)
                #expect(try await h.engine.list(only).map(\.kernelInfo.id) == [second])
                _ = try? await h.engine.get(id: first)  // drops the stale record
                try await h.engine.unload(id: second)
            }
        }

        /// A List stamp holds while nothing it answered can have changed, and only then makes the engine answer
        /// "unchanged" (no results).
        @Test func aListStampHoldsOnlyWhileTheAnswerIsTheSame() async throws {
            try await withTestEngine("stamp") { h in
                let first = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let second = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                usleep(UInt32(PinScanMemo.settledNanos / 1000) + 20_000)
                let only = ListFilter(bpfmanProgramsOnly: true)
                let stamped = try await h.engine.listWithGeneration(only)
                let stamp = try #require(stamped.stamp, "a settled directory and an unchanged store give a stamp")
                #expect(try await h.engine.listWithGeneration(only, unless: stamp).results == nil, "unchanged")
                // Another filter, a boot time outside the stamp's range, and every program read live: answered.
                #expect(
                    try await h.engine.listWithGeneration(
                        ListFilter(programType: 5, bpfmanProgramsOnly: true),
                        unless: stamp
                    ).results != nil
                )
                var moved = stamp
                moved.bootTimes = (stamp.bootTimes.upperBound)..<(stamp.bootTimes.upperBound + 1)
                #expect(try await h.engine.listWithGeneration(only, unless: moved).results?.count == 2)
                #expect(try await h.engine.listWithGeneration(ListFilter(), unless: stamp).stamp == nil, "live reads")
                // A commit (an attach): answered again, with the link.
                let link = try await h.engine.attach(
                    programID: first,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                let afterAttach = try await h.engine.listWithGeneration(only, unless: stamp)
                #expect(afterAttach.results?.first?.info?.links == [link])
                try await h.engine.detach(linkID: link)
                // A pin removed by hand: answered again, without it.
                usleep(UInt32(PinScanMemo.settledNanos / 1000) + 20_000)
                let settled = try #require(try await h.engine.listWithGeneration(only).stamp)
                #expect(unlink(h.paths.programPin(first)) == 0)
                let afterUnlink = try await h.engine.listWithGeneration(only, unless: settled)
                #expect(afterUnlink.results?.map(\.kernelInfo.id) == [second])
                _ = try? await h.engine.get(id: first)  // drops the stale record
                try await h.engine.unload(id: second)
            }
        }

        @Test func pinNamesParseOnlyAsProgramIDs() {
            func parse(_ name: String) -> UInt32? {
                Array(name.utf8 + [0]).withUnsafeBytes { ProgramPins.programID(pinName: $0) }
            }
            #expect(parse("prog_1") == 1)
            #expect(parse("prog_4294967295") == 4_294_967_295)
            for name in ["prog_", "prog_4294967296", "prog_12a", "prog_-1", "maps", "links", "progx1", "prog", ""] {
                #expect(parse(name) == nil, "\(name)")
            }
        }
    }

    /// The same comparison for the kinds only kernel B loads (SPEC §4.12, §4.15).
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct EngineRecordedInfoKernelB {
        @Test func getAndListAnswerWhatALiveReadGivesForKprobesFentryFexitAndLSM() async throws {
            try await withTestEngine("recorded-b") { h in
                let probes = try await h.load(
                    LoadRequest(
                        bytecode: .file(try BPFFixtures.object("kprobe_counter")),
                        programs: [
                            ProgramLoadInfo(name: "kprobe_hit", type: .kprobe),
                            ProgramLoadInfo(name: "kretprobe_hit", type: .kprobe),
                        ]
                    )
                ).map(\.kernelInfo.id)
                let tracing = [
                    try await h.load(
                        fixture: "fentry_counter",
                        "fentry_hit",
                        .fentry,
                        target: .fentry(functionName: "__x64_sys_getpgid")
                    ),
                    try await h.load(
                        fixture: "fentry_counter",
                        "fexit_hit",
                        .fexit,
                        target: .fexit(functionName: "__x64_sys_getpgid")
                    ),
                    try await h.load(fixture: "fentry_counter", "lsm_hit", .lsm, target: .lsm(hookName: "file_open")),
                ]
                try await expectRecordedEqualsLive(h, probes + tracing)
                for id in probes + tracing { try await h.engine.unload(id: id) }
            }
        }
    }
}
