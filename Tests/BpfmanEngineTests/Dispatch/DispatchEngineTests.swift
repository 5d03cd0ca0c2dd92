import CBPF
import Foundation
import TestSupport
import Testing

@testable import BpfmanEngine

private typealias Support = DispatchTestSupport

/// An Engine with the dispatch `HookAttacher` under a private runtime directory, plus a veth pair.
private struct EngineBench {
    let harness: TestEngine
    let pair: Support.VethPair
    var engine: Engine { harness.engine }
    var paths: BpfmanPaths { harness.paths }

    static func with(_ tag: String, _ body: (EngineBench) async throws -> Void) async throws {
        let paths = try makeTestRuntime(tag)
        defer { removeTestRuntime(paths) }
        let attacher = try DispatchHookAttacher.make(
            paths: paths,
            libxdpDirectory: nil,
            xdpModes: [:]
        )
        let before = bpfDescriptors()
        let engine = try await Engine(paths: paths, hookAttacher: attacher)
        let harness = TestEngine(engine: engine, paths: paths, descriptorsBefore: before)
        let pair = try Support.makeVethPair()
        defer { Support.removeVethPair(pair) }
        try await body(EngineBench(harness: harness, pair: pair))
        harness.expectNoDescriptorsAtRest("at the end of the test, before the engine closes")
        await engine.close()
    }

    func load(_ fixture: String, _ function: String, _ type: BpfmanProgramType) async throws -> UInt32 {
        try await harness.load(fixture: fixture, function, type)
    }

    func xdp(_ priority: Int32, proceedOn: [Int32] = []) -> AttachSpec {
        .xdp(XDPAttach(priority: priority, iface: pair.b, proceedOn: proceedOn, netns: pair.netnsB))
    }

    func tc(_ priority: Int32, _ direction: String = "ingress", proceedOn: [Int32] = []) -> AttachSpec {
        .tc(TCAttach(priority: priority, iface: pair.b, direction: direction, proceedOn: proceedOn, netns: pair.netnsB))
    }

    func send(_ count: Int) throws { try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: count) }

    /// The inode of the netns file the links are attached in: their `nsid` (SPEC §4.16).
    var namespaceInode: UInt64 {
        get throws {
            var info = stat()
            try #require(stat(pair.netnsB, &info) == 0, "stat \(pair.netnsB)")
            return UInt64(info.st_ino)
        }
    }

    /// Files under `<rd>/fs` other than the test dispatchers.
    var pins: [String] {
        filesUnder(paths.bpffs).filter { !$0.hasPrefix("dispatcher-test/") }
    }
}

/// XDP and TC through the Engine in native mode, on the machine's own kernel.
extension KernelTests {
    @Suite(.enabled(if: !TestKernel.isKernelBLane, "native mode is what kernel A gets; kernel B uses dispatchers"))
    struct DispatchEngineNativeTests {
        @Test func nativeModeIsChosenWithTheProbeReason() async throws {
            try await EngineBench.with("dnat") { bench in
                let status = try #require(await bench.engine.attachModeStatus)
                #expect(status.mode == "native")
                #expect(status.freplace == false)
                #expect(status.reason.hasPrefix("freplace probe failed: "), "\(status.reason)")
                #expect(try await bench.engine.dispatchers().isEmpty)
                #expect(!FileManager.default.fileExists(atPath: "\(bench.paths.bpffs)/dispatcher-test/xdp"))
            }
        }

        @Test func xdpAttachCountsTrafficAndASecondIsRefused() async throws {
            try await EngineBench.with("dnx") { bench in
                let first = try await bench.load("xdp_counter", "xdp_count_pass", .xdp)
                let second = try await bench.load("xdp_counter", "xdp_count_pass", .xdp)
                let link = try await bench.engine.attach(programID: first, spec: bench.xdp(50))
                let record = try await bench.engine.link(id: link)
                #expect(record.pinPath == bench.paths.linkPin(link))
                #expect(record.position == 0)
                #expect(record.nsid == (try bench.namespaceInode), "nsid is the inode of the netns file")
                #expect(FileManager.default.fileExists(atPath: bench.paths.linkPin(link)))
                try bench.send(3)
                #expect(try bench.harness.counter(program: first, map: "xdp_hits") == 3)
                // The interface lives in the test netns only: without `netns` it is not found (SPEC §10, 27).
                let hostError = await engineError {
                    _ = try await bench.engine.attach(
                        programID: second,
                        spec: .xdp(XDPAttach(priority: 60, iface: bench.pair.b))
                    )
                }
                #expect(hostError?.code == .invalidArgument)
                #expect(hostError?.message == "interface \"\(bench.pair.b)\" not found in netns \"host\"")
                let proceed = await engineError {
                    _ = try await bench.engine.attach(programID: second, spec: bench.xdp(60, proceedOn: [9]))
                }
                #expect(proceed?.message == "invalid XDP proceed_on: unknown XDP action code 9")

                let error = await engineError {
                    _ = try await bench.engine.attach(programID: second, spec: bench.xdp(60))
                }
                #expect(error?.code == .failedPrecondition)
                #expect(
                    error?.message
                        == "interface \(bench.pair.b) already has XDP program \(first) attached as link \(link); more "
                        + "than one XDP program per interface needs freplace support, which this kernel does not allow"
                )
                #expect(try await bench.engine.links().map(\.id) == [link])

                try await bench.engine.detach(linkID: link)
                #expect(bench.pins.filter { $0.hasPrefix("links/") }.isEmpty)
                try bench.send(2)
                #expect(try bench.harness.counter(program: first, map: "xdp_hits") == 3)
                // Now the second program can go on the interface.
                let again = try await bench.engine.attach(programID: second, spec: bench.xdp(60))
                try await bench.engine.unload(id: second)  // unload detaches its links
                #expect(try await bench.engine.links().isEmpty)
                #expect(!FileManager.default.fileExists(atPath: bench.paths.linkPin(again)))
                try await bench.engine.unload(id: first)
            }
        }

        @Test func tcAttachmentsAreFiltersAtPriorityPlusOneWithLivePositions() async throws {
            try await EngineBench.with("dnt") { bench in
                let p50 = try await bench.load("tc_counter", "tc_count_ok", .tc)
                let p0 = try await bench.load("tc_counter", "tc_count_unspec", .tc)
                let p100 = try await bench.load("tc_counter", "tc_count_unspec", .tc)
                let l50 = try await bench.engine.attach(programID: p50, spec: bench.tc(50))
                let l0 = try await bench.engine.attach(programID: p0, spec: bench.tc(0))
                let l100 = try await bench.engine.attach(programID: p100, spec: bench.tc(100))
                let records = try await bench.engine.links()
                let byID = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0) })
                #expect(byID[l0]?.tcPriority == 1 && byID[l50]?.tcPriority == 51 && byID[l100]?.tcPriority == 101)
                #expect(byID[l0]?.position == 0 && byID[l50]?.position == 1 && byID[l100]?.position == 2)
                let inode = try bench.namespaceInode
                #expect(records.allSatisfy { $0.nsid == inode }, "nsid is the inode of the netns file")
                try bench.send(2)
                #expect(try bench.harness.counter(program: p0, map: "tc_hits") == 2)
                #expect(try bench.harness.counter(program: p50, map: "tc_hits") == 2)
                #expect(try bench.harness.counter(program: p100, map: "tc_hits") == 0)

                try await bench.engine.detach(linkID: l50)
                let after = Dictionary(uniqueKeysWithValues: try await bench.engine.links().map { ($0.id, $0) })
                #expect(after[l0]?.position == 0 && after[l100]?.position == 1)
                try bench.send(1)
                #expect(try bench.harness.counter(program: p100, map: "tc_hits") == 1)

                let negative = await engineError {
                    _ = try await bench.engine.attach(programID: p50, spec: bench.tc(-1))
                }
                #expect(negative?.message == "priority must be non-negative, got -1")
                let direction = await engineError {
                    _ = try await bench.engine.attach(programID: p50, spec: bench.tc(1, "sideways"))
                }
                #expect(direction?.message == "invalid TC direction \"sideways\": must be 'ingress' or 'egress'")
                let proceed = await engineError {
                    _ = try await bench.engine.attach(programID: p50, spec: bench.tc(1, proceedOn: [9]))
                }
                #expect(proceed?.message == "invalid TC proceed_on: unknown TC action code 9")
                let hostError = await engineError {
                    _ = try await bench.engine.attach(
                        programID: p50,
                        spec: .tc(TCAttach(priority: 1, iface: bench.pair.b, direction: "ingress"))
                    )
                }
                #expect(hostError?.message == "interface \"\(bench.pair.b)\" not found in netns \"host\"")
                #expect(try await bench.engine.links().count == 2)

                for id in [p50, p0, p100] { try await bench.engine.unload(id: id) }
                #expect(try Support.filters(netns: bench.pair.netnsB, iface: bench.pair.b, direction: .ingress).isEmpty)
            }
        }
    }

    /// XDP and TC through the Engine in dispatcher mode (kernel B).
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct DispatchEngineKernelB {
        /// SPEC §10 scenario 45's kernel-B half at the engine: 4 concurrent callers x 2 iterations of
        /// Load -> Get -> Attach -> Get -> Detach -> Get -> Unload -> Get for kprobe, fentry, fexit, LSM and XDP
        /// and TC members of dispatchers, then nothing left: no records, no pins, no fds (the bench's check).
        @Test func concurrentLifecyclesOfEveryKindLeaveNothingBehind() async throws {
            try await EngineBench.with("dstress") { bench in
                let engine = bench.engine
                let (iface, netns) = (bench.pair.b, bench.pair.netnsB)
                let kinds: [(fixture: String, name: String, type: BpfmanProgramType, target: LoadTarget?)] = [
                    ("kprobe_counter", "kprobe_hit", .kprobe, nil),
                    ("fentry_counter", "fentry_hit", .fentry, .fentry(functionName: "__x64_sys_getpgid")),
                    ("fentry_counter", "fexit_hit", .fexit, .fexit(functionName: "__x64_sys_getpgid")),
                    ("fentry_counter", "lsm_hit", .lsm, .lsm(hookName: "file_open")),
                    ("xdp_counter", "xdp_count_pass", .xdp, nil),
                    ("tc_counter", "tc_count_ok", .tc, nil),
                ]
                func spec(_ type: BpfmanProgramType) -> AttachSpec {
                    switch type {
                    case .kprobe: .kprobe(KprobeAttach(fnName: "__x64_sys_getpgid"))
                    case .fentry: .fentry(metadata: [:])
                    case .fexit: .fexit(metadata: [:])
                    case .lsm: .lsm(metadata: [:])
                    case .xdp: .xdp(XDPAttach(priority: 100, iface: iface, netns: netns))
                    default: .tc(TCAttach(priority: 100, iface: iface, direction: "ingress", netns: netns))
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for caller in 0..<4 {
                        group.addTask {
                            for iteration in 0..<2 {
                                for kind in kinds {
                                    let metadata = ["caller": "\(caller)", "iteration": "\(iteration)"]
                                    let id = try await engine.load(
                                        LoadRequest(
                                            bytecode: .file(try BPFFixtures.object(kind.fixture)),
                                            programs: [
                                                ProgramLoadInfo(name: kind.name, type: kind.type, target: kind.target)
                                            ],
                                            metadata: metadata
                                        )
                                    )[0].kernelInfo.id
                                    #expect(try await engine.get(id: id).info?.metadata == metadata)
                                    let link = try await engine.attach(programID: id, spec: spec(kind.type))
                                    #expect(link != 0)
                                    #expect(try await engine.get(id: id).info?.links == [link])
                                    try await engine.detach(linkID: link)
                                    #expect(try await engine.get(id: id).info?.links == [])
                                    try await engine.unload(id: id)
                                    // The kernel frees an unpinned program a moment later (RCU): poll, as the
                                    // daemon's Unload does before it answers.
                                    var notFound = false
                                    for _ in 0..<400 where !notFound {
                                        do {
                                            _ = try await engine.get(id: id)
                                            try await Task.sleep(for: .milliseconds(5))
                                        } catch let error as EngineError {
                                            notFound = error.code == .notFound
                                        }
                                    }
                                    #expect(notFound, "\(kind.name) of caller \(caller) is NOT_FOUND after Unload")
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                #expect(try await engine.list(ListFilter(bpfmanProgramsOnly: true)).isEmpty)
                #expect(try await engine.links().isEmpty)
                #expect(try await engine.dispatchers().isEmpty)
                #expect(bench.pins.isEmpty, "\(bench.pins)")
            }
        }

        @Test func dispatcherModeThroughTheEngine() async throws {
            try await EngineBench.with("dkb") { bench in
                let status = try #require(await bench.engine.attachModeStatus)
                #expect(status.mode == "dispatcher")
                #expect(status.freplace == true)
                #expect(FileManager.default.fileExists(atPath: "\(bench.paths.bpffs)/dispatcher-test/xdp"))
                let a = try await bench.load("xdp_counter", "xdp_count_pass", .xdp)
                let b = try await bench.load("xdp_counter", "xdp_count_pass", .xdp)
                let la = try await bench.engine.attach(programID: a, spec: bench.xdp(200))
                let lb = try await bench.engine.attach(programID: b, spec: bench.xdp(100))
                let lb2 = try await bench.engine.attach(programID: b, spec: bench.xdp(300))
                try bench.send(2)
                #expect(try bench.harness.counter(program: a, map: "xdp_hits") == 2)
                #expect(try bench.harness.counter(program: b, map: "xdp_hits") == 4)  // two slots

                var dispatchers = try await bench.engine.dispatchers()
                #expect(dispatchers.count == 1)
                let d = try #require(dispatchers.first)
                #expect(d.revision == 3)
                #expect(d.memberViews.map(\.linkID) == [lb, la, lb2])
                #expect(d.memberViews.map(\.position) == [0, 1, 2])
                #expect(d.memberViews.map(\.proceedOnMask) == [2_147_483_652, 2_147_483_652, 2_147_483_652])
                let records = Dictionary(uniqueKeysWithValues: try await bench.engine.links().map { ($0.id, $0) })
                #expect(records[la]?.position == 1)
                #expect(
                    records[la]?.pinPath
                        == "\(bench.paths.bpffs)/xdp/dispatcher_\(d.hook.nsid)_\(d.hook.ifindex)_3/link_1"
                )

                // Unloading b rebuilds around the survivor.
                try await bench.engine.unload(id: b)
                dispatchers = try await bench.engine.dispatchers()
                #expect(dispatchers.first?.memberViews.map(\.linkID) == [la])
                #expect(dispatchers.first?.memberViews.first?.position == 0)
                try await bench.engine.detach(linkID: la)
                #expect(try await bench.engine.dispatchers().isEmpty)
                #expect(bench.pins.filter { $0.hasPrefix("xdp/") }.isEmpty)
                try await bench.engine.unload(id: a)
            }
        }

        @Test func restartRebuildsADispatcherThatDoesNotMatchItsRecords() async throws {
            let paths = try makeTestRuntime("dkr")
            defer { removeTestRuntime(paths) }
            let pair = try Support.makeVethPair()
            defer { Support.removeVethPair(pair) }
            let spec = { (priority: Int32) -> AttachSpec in
                .xdp(XDPAttach(priority: priority, iface: pair.b, netns: pair.netnsB))
            }
            let descriptorsBefore = bpfDescriptors()
            var engine = try await Engine(
                paths: paths,
                hookAttacher: try DispatchHookAttacher.make(paths: paths, libxdpDirectory: nil)
            )
            var harness = TestEngine(engine: engine, paths: paths, descriptorsBefore: descriptorsBefore)
            let a = try await harness.load(fixture: "xdp_counter", "xdp_count_pass", .xdp)
            let b = try await harness.load(fixture: "xdp_counter", "xdp_count_pass", .xdp)
            _ = try await engine.attach(programID: a, spec: spec(1))
            _ = try await engine.attach(programID: b, spec: spec(2))
            let before = try #require(try await engine.dispatchers().first)
            await engine.close()

            // Out of band, the freplace link of slot 1 goes away: the dispatcher no longer matches.
            let slot1 = "\(paths.bpffs)/xdp/\(before.hook.stem)_\(before.revision)/link_1"
            #expect(unlink(slot1) == 0)

            engine = try await Engine(
                paths: paths,
                hookAttacher: try DispatchHookAttacher.make(paths: paths, libxdpDirectory: nil)
            )
            harness = TestEngine(engine: engine, paths: paths, descriptorsBefore: descriptorsBefore)
            let after = try #require(try await engine.dispatchers().first)
            #expect(after.revision == before.revision + 1)
            #expect(after.memberViews.map(\.linkID) == before.memberViews.map(\.linkID))
            let files = Set(try FileManager.default.contentsOfDirectory(atPath: "\(paths.bpffs)/xdp"))
            #expect(files == ["\(after.hook.stem)_\(after.revision)", "\(after.hook.stem)_link"])
            try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 2)
            #expect(try harness.counter(program: a, map: "xdp_hits") == 2)
            #expect(try harness.counter(program: b, map: "xdp_hits") == 2)
            try await engine.unload(id: a)
            try await engine.unload(id: b)
            #expect(try await engine.dispatchers().isEmpty)
            await engine.close()
        }

        @Test func tcDispatcherThroughTheEngine() async throws {
            try await EngineBench.with("dkt") { bench in
                let ok = try await bench.load("tc_counter", "tc_count_ok", .tc)
                let other = try await bench.load("tc_counter", "tc_count_ok", .tc)
                _ = try await bench.engine.attach(programID: ok, spec: bench.tc(10, proceedOn: [0]))
                _ = try await bench.engine.attach(programID: other, spec: bench.tc(20))
                try bench.send(3)
                #expect(try bench.harness.counter(program: ok, map: "tc_hits") == 3)
                #expect(try bench.harness.counter(program: other, map: "tc_hits") == 3)
                let d = try #require(try await bench.engine.dispatchers(iface: bench.pair.b).first)
                #expect(d.hook.kind == .tcIngress)
                #expect(d.tcPriority == 50)
                #expect(d.tcHandle != nil)
                try await bench.engine.unload(id: ok)
                try await bench.engine.unload(id: other)
                #expect(try await bench.engine.dispatchers().isEmpty)
                #expect(try Support.filters(netns: bench.pair.netnsB, iface: bench.pair.b, direction: .ingress).isEmpty)
            }
        }
    }
}
