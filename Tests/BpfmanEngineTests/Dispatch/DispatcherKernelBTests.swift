import CBPF
import Foundation
import SystemCalls
import TestSupport
import Testing

@testable import BpfmanEngine

private typealias Support = DispatchTestSupport

/// A dispatcher test bench: a private bpffs as `<rd>/fs`, test dispatchers installed, a veth pair.
private struct Bench {
    let root: String
    let pair: Support.VethPair
    let kernel: DispatcherKernel
    let netns: NetworkNamespace
    var paths: DispatcherPaths { kernel.paths }

    static func with(_ body: (Bench) throws -> Void) throws {
        try Support.withBPFFS { root in
            try Support.withVethPair { pair in
                let kernel = DispatcherKernel(
                    paths: DispatcherPaths(fsRoot: root),
                    libxdpDirectory: "\(root)/libxdp"
                )
                try kernel.installTestDispatchers()
                try body(
                    Bench(root: root, pair: pair, kernel: kernel, netns: try NetworkNamespace.resolve(pair.netnsB))
                )
            }
        }
    }

    /// Loads an XDP member as EXT against the test dispatcher, pinned at `<fs>/prog_<id>`.
    func xdpMember(_ function: String = "xdp_count_pass") throws -> Support.PinnedProgram {
        try Support.loadPinned(
            fixture: "xdp_counter",
            function: function,
            mapName: "xdp_hits",
            root: root,
            extensionTarget: paths.testDispatcher(.xdp)
        )
    }

    func tcMember(_ function: String) throws -> Support.PinnedProgram {
        try Support.loadPinned(
            fixture: "tc_counter",
            function: function,
            mapName: "tc_hits",
            root: root,
            extensionTarget: paths.testDispatcher(.tc)
        )
    }

    func member(
        _ link: UInt32,
        _ p: Support.PinnedProgram,
        priority: Int32,
        proceedOn: [Int32] = [],
        tc: Bool = false
    )
        throws -> DispatcherMember
    {
        DispatcherMember(
            linkID: link,
            programID: p.programID,
            programName: p.name,
            priority: priority,
            proceedOn: try ProceedOn(family: tc ? .tc : .xdp, codes: proceedOn)
        )
    }

    func hook(_ kind: DispatcherHook.Kind) throws -> DispatcherHook {
        try DispatcherKernel.hook(kind: kind, iface: pair.b, netns: netns)
    }

    /// Attaches, records (here: returns) and removes the previous revision, as the engine does.
    func attach(
        _ m: DispatcherMember,
        _ kind: DispatcherHook.Kind,
        to previous: DispatcherState?
    ) throws
        -> DispatcherState
    {
        let next = try kernel.attach(
            m,
            hook: try hook(kind),
            iface: pair.b,
            netns: netns,
            previous: previous,
            xdpMode: .skb
        )
        if let previous { kernel.removeRevision(of: previous) }
        return next
    }

    func detach(_ link: UInt32, from state: DispatcherState) throws -> DispatcherState? {
        switch try kernel.detach(linkID: link, from: state) {
        case .rebuilt(let next):
            kernel.removeRevision(of: state)
            return next
        case .tornDown:
            return nil
        case .notAMember:
            Issue.record("link \(link) not a member")
            return state
        }
    }

    /// Names in a kind directory.
    func entries(_ kind: DispatcherHook.Kind) -> Set<String> {
        Set((try? FileManager.default.contentsOfDirectory(atPath: paths.kindDirectory(kind))) ?? [])
    }

    /// Asserts SPEC §2's layout for `state`: exactly one revision directory holding `dispatcher` and
    /// `link_0...link_<n-1>`, plus the `_link` pin for XDP; and that the kernel runs what is recorded.
    func expectLayout(_ state: DispatcherState, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let stem = state.hook.stem
        var expected: Set<String> = ["\(stem)_\(state.revision)"]
        if state.hook.kind == .xdp { expected.insert("\(stem)_link") }
        let mine = entries(state.hook.kind).filter { $0.hasPrefix(stem + "_") }
        #expect(mine == expected, sourceLocation: sourceLocation)
        let files = Set(try FileManager.default.contentsOfDirectory(atPath: state.pinDirectory(paths)))
        let links = (0..<state.members.count).map { "link_\($0)" }
        #expect(files == Set(["dispatcher"] + links), sourceLocation: sourceLocation)
        // Each slot's freplace link runs the member recorded at that position.
        for (position, m) in state.members.enumerated() {
            let fd = bpf_obj_get(paths.memberLink(state.hook, revision: state.revision, position: position))
            #expect(fd >= 0, sourceLocation: sourceLocation)
            var info = bpf_link_info()
            var length = UInt32(MemoryLayout<bpf_link_info>.size)
            _ = bpf_obj_get_info_by_fd(fd, &info, &length)
            close(fd)
            #expect(info.prog_id == m.programID, "slot \(position)", sourceLocation: sourceLocation)
        }
        if state.hook.kind == .xdp {
            let fd = bpf_obj_get(paths.xdpLink(state.hook))
            var info = bpf_link_info()
            var length = UInt32(MemoryLayout<bpf_link_info>.size)
            _ = bpf_obj_get_info_by_fd(fd, &info, &length)
            close(fd)
            #expect(
                info.prog_id == state.programID,
                "interface link runs the recorded dispatcher",
                sourceLocation: sourceLocation
            )
        } else {
            let direction: TCDirection = state.hook.kind == .tcIngress ? .ingress : .egress
            let filters = try Support.filters(netns: pair.netnsB, iface: pair.b, direction: direction)
            #expect(
                filters.contains { $0.priority == 50 && $0.handle == state.tcHandle && $0.kind == "bpf" },
                sourceLocation: sourceLocation
            )
        }
    }

    func send(_ count: Int) throws { try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: count) }
}

/// Dispatcher mode (SPEC §4.4-4.8) with real traffic. Needs freplace: runs in the kernel-B lane.
extension KernelTests {
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct DispatcherKernelB {
        @Test func freplaceProbeSucceeds() throws {
            try Support.withBPFFS { root in
                let kernel = DispatcherKernel(paths: DispatcherPaths(fsRoot: root))
                #expect(kernel.probeFreplace() == nil)
            }
        }

        @Test func tenMembersRankedByPriorityAllCountTraffic() throws {
            try Bench.with { bench in
                var state: DispatcherState?
                var programs: [Int32: Support.PinnedProgram] = [:]
                let priorities: [Int32] = [500, 100, 800, 300, 900, 200, 700, 400, 600, 50]
                for (i, priority) in priorities.enumerated() {
                    let p = try bench.xdpMember()
                    programs[priority] = p
                    state = try bench.attach(try bench.member(UInt32(i + 1), p, priority: priority), .xdp, to: state)
                    #expect(state?.revision == UInt32(i + 1))
                    try bench.expectLayout(try #require(state))
                }
                let final = try #require(state)
                #expect(final.members.map(\.priority) == [50, 100, 200, 300, 400, 500, 600, 700, 800, 900])
                #expect(final.memberViews.map(\.position) == Array(0..<10))
                try bench.send(4)
                for (priority, p) in programs { #expect(try p.hits() == 4, "priority \(priority)") }

                // An 11th member is refused; nothing changes.
                let extra = try bench.xdpMember()
                let error = #expect(throws: DispatchError.self) {
                    try bench.attach(try bench.member(11, extra, priority: 1), .xdp, to: final)
                }
                #expect(error?.code == .failedPrecondition)
                #expect(error?.message == "no free dispatcher slots on \(bench.pair.b) xdp (all 10 occupied)")
                try bench.expectLayout(final)
            }
        }

        @Test func slotReuseAfterDetach() throws {
            try Bench.with { bench in
                var state: DispatcherState?
                let p = try bench.xdpMember()
                for i in 1...10 {
                    state = try bench.attach(try bench.member(UInt32(i), p, priority: Int32(i * 100)), .xdp, to: state)
                }
                state = try bench.detach(4, from: try #require(state))
                #expect(state?.members.count == 9)
                #expect(state?.planner.position(of: 5) == 3)
                state = try bench.attach(try bench.member(11, p, priority: 350), .xdp, to: state)
                #expect(state?.planner.position(of: 11) == 3)
                #expect(state?.members.count == 10)
                try bench.expectLayout(try #require(state))
                // One program in ten slots: it runs ten times per frame.
                try bench.send(1)
                #expect(try p.hits() == 10)
            }
        }

        @Test func xdpProceedOnDefaultPassesDropStops() throws {
            try Bench.with { bench in
                let first = try bench.xdpMember()
                let dropper = try bench.xdpMember("xdp_count_drop")
                let last = try bench.xdpMember()
                var state = try bench.attach(try bench.member(1, first, priority: 10), .xdp, to: nil)
                state = try bench.attach(try bench.member(2, last, priority: 30), .xdp, to: state)
                try bench.send(3)
                #expect(try [first.hits(), last.hits()] == [3, 3])
                // A member returning XDP_DROP (not in its default proceed_on) ends the chain.
                state = try bench.attach(try bench.member(3, dropper, priority: 20), .xdp, to: state)
                try bench.send(2)
                #expect(try [first.hits(), dropper.hits(), last.hits()] == [5, 2, 3])
                // With drop in its proceed_on, the chain goes on (the verdict of the last member wins).
                state = try #require(try bench.detach(3, from: state))
                state = try bench.attach(
                    try bench.member(4, dropper, priority: 20, proceedOn: [1, 2]),
                    .xdp,
                    to: state
                )
                #expect(state.members[1].proceedOn.mask == 6)
                try bench.send(2)
                #expect(try [first.hits(), dropper.hits(), last.hits()] == [7, 4, 5])
                try bench.expectLayout(state)
            }
        }

        @Test func tcProceedOnDefaultStopsAtOK() throws {
            try Bench.with { bench in
                let a = try bench.tcMember("tc_count_ok")
                let b = try bench.tcMember("tc_count_ok")
                var state = try bench.attach(try bench.member(1, a, priority: 1, tc: true), .tcIngress, to: nil)
                state = try bench.attach(try bench.member(2, b, priority: 2, tc: true), .tcIngress, to: state)
                try bench.send(3)
                #expect(try [a.hits(), b.hits()] == [3, 0])  // TC_ACT_OK is not in the default
                // With ok in a's proceed_on, both run.
                state = try #require(try bench.detach(1, from: state))
                state = try bench.attach(
                    try bench.member(3, a, priority: 1, proceedOn: [0, 3, 30], tc: true),
                    .tcIngress,
                    to: state
                )
                #expect(state.members[0].proceedOn.mask == 2_147_483_666)
                try bench.send(2)
                #expect(try [a.hits(), b.hits()] == [5, 2])
                try bench.expectLayout(state)
            }
        }

        @Test func lastDetachRemovesTheDispatcherAndANewOneStartsAtRevisionOne() throws {
            try Bench.with { bench in
                let p = try bench.xdpMember()
                var state = try bench.attach(try bench.member(1, p, priority: 50), .xdp, to: nil)
                state = try bench.attach(try bench.member(2, p, priority: 50), .xdp, to: state)
                let firstID = state.programID
                state = try #require(try bench.detach(1, from: state))
                #expect(try bench.detach(2, from: state) == nil)
                #expect(bench.entries(.xdp).isEmpty)
                let before = try p.hits()
                try bench.send(2)
                #expect(try p.hits() == before)  // nothing runs any more
                let again = try bench.attach(try bench.member(3, p, priority: 50), .xdp, to: nil)
                #expect(again.revision == 1)
                #expect(again.programID != firstID)
                try bench.expectLayout(again)
            }
        }

        @Test func ingressAndEgressAreIndependent() throws {
            try Bench.with { bench in
                let inbound = try bench.tcMember("tc_count_ok")
                let outbound = try bench.tcMember("tc_count_ok")
                let ingress = try bench.attach(try bench.member(1, inbound, priority: 5, tc: true), .tcIngress, to: nil)
                let egress = try bench.attach(try bench.member(2, outbound, priority: 5, tc: true), .tcEgress, to: nil)
                try bench.expectLayout(ingress)
                try bench.expectLayout(egress)
                try bench.send(3)
                try Support.sendFrames(netns: bench.pair.netnsB, iface: bench.pair.b, count: 2)
                #expect(try [inbound.hits(), outbound.hits()] == [3, 2])
                #expect(try bench.detach(2, from: egress) == nil)
                #expect(try Support.filters(netns: bench.pair.netnsB, iface: bench.pair.b, direction: .egress).isEmpty)
                try bench.expectLayout(ingress)
            }
        }

        @Test func multipleInterfacesAreIndependent() throws {
            try Bench.with { bench in
                // One dispatcher on each end of the pair: frames A->B hit b's, frames B->A hit a's.
                let onB = try bench.xdpMember()
                let onA = try bench.xdpMember()
                let stateB = try bench.attach(try bench.member(1, onB, priority: 1), .xdp, to: nil)
                let netnsA = try NetworkNamespace.resolve(bench.pair.netnsA)
                let hookA = try DispatcherKernel.hook(kind: .xdp, iface: bench.pair.a, netns: netnsA)
                var stateA = try bench.kernel.attach(
                    try bench.member(2, onA, priority: 1),
                    hook: hookA,
                    iface: bench.pair.a,
                    netns: netnsA,
                    previous: nil,
                    xdpMode: .skb
                )
                #expect(stateA.hook != stateB.hook)
                #expect(stateA.programID != stateB.programID)
                try bench.send(3)
                try Support.sendFrames(netns: bench.pair.netnsB, iface: bench.pair.b, count: 2)
                #expect(try [onB.hits(), onA.hits()] == [3, 2])
                // Rebuilding a's dispatcher leaves b's alone.
                let extra = try bench.xdpMember()
                let next = try bench.kernel.attach(
                    try bench.member(3, extra, priority: 0),
                    hook: hookA,
                    iface: bench.pair.a,
                    netns: netnsA,
                    previous: stateA,
                    xdpMode: .skb
                )
                bench.kernel.removeRevision(of: stateA)
                stateA = next
                #expect(stateA.revision == 2)
                try bench.expectLayout(stateB)
                try bench.send(1)
                #expect(try onB.hits() == 4)
                try bench.kernel.teardown(stateA)
                try bench.expectLayout(stateB)
            }
        }

        @Test func foreignProgramsAndQdiscsRefuseTheFirstMemberCleanly() throws {
            try Bench.with { bench in
                // A plain XDP program attached by someone else.
                let foreign = try Support.loadPinned(
                    fixture: "xdp_counter",
                    function: "xdp_count_pass",
                    mapName: "xdp_hits",
                    root: bench.root,
                    pinName: "foreign"
                )
                _ = try NativeXDP.attach(
                    netns: bench.netns,
                    iface: bench.pair.b,
                    programPin: foreign.programPin,
                    mode: .skb,
                    linkPin: "\(bench.root)/foreign_link"
                )
                let p = try bench.xdpMember()
                let error = #expect(throws: DispatchError.self) {
                    try bench.attach(try bench.member(1, p, priority: 1), .xdp, to: nil)
                }
                #expect(error?.code == .failedPrecondition)
                #expect(
                    error?.message == "interface \(bench.pair.b) already has an XDP program that bpfman does not manage"
                )
                #expect(bench.entries(.xdp).isEmpty, "no revision directory or link pin left behind")
                try bench.send(1)
                #expect(try foreign.hits() == 1)  // the foreign program still runs
                try NativeXDP.detach(linkPin: "\(bench.root)/foreign_link")

                // A classic ingress qdisc refuses the TC dispatcher, leaving nothing behind.
                try Support.sh(
                    "ip",
                    "netns",
                    "exec",
                    bench.pair.namespaceB,
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    bench.pair.b,
                    "ingress"
                )
                let tcMember = try bench.tcMember("tc_count_ok")
                let tcError = #expect(throws: DispatchError.self) {
                    try bench.attach(try bench.member(2, tcMember, priority: 1, tc: true), .tcIngress, to: nil)
                }
                #expect(tcError?.code == .failedPrecondition)
                #expect(bench.entries(.tcIngress).isEmpty)
                // The XDP hook is free again and takes the member.
                let state = try bench.attach(try bench.member(3, p, priority: 1), .xdp, to: nil)
                try bench.expectLayout(state)
            }
        }

        @Test func foreignFilterAtPriority50SurvivesRebuilds() throws {
            try Bench.with { bench in
                // A bpf filter bpfman does not manage, at the dispatcher's own priority.
                let foreign = try Support.loadPinned(
                    fixture: "tc_counter",
                    function: "tc_count_unspec",
                    mapName: "tc_hits",
                    root: bench.root,
                    pinName: "foreign"
                )
                let ns = bench.pair.namespaceB
                try Support.sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", bench.pair.b, "clsact")
                try Support.sh(
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "tc",
                    "filter",
                    "add",
                    "dev",
                    bench.pair.b,
                    "ingress",
                    "protocol",
                    "all",
                    "prio",
                    "50",
                    "handle",
                    "7",
                    "bpf",
                    "object-pinned",
                    foreign.programPin,
                    "direct-action"
                )
                let p = try bench.tcMember("tc_count_ok")
                var state = try bench.attach(try bench.member(1, p, priority: 1, tc: true), .tcIngress, to: nil)
                state = try bench.attach(try bench.member(2, p, priority: 2, tc: true), .tcIngress, to: state)
                state = try #require(try bench.detach(2, from: state))
                let filters = try Support.filters(netns: bench.pair.netnsB, iface: bench.pair.b, direction: .ingress)
                #expect(filters.contains { $0.handle == 7 && $0.priority == 50 })
                #expect(filters.filter { $0.priority == 50 }.count == 2)  // the foreign one and ours
                #expect(try bench.detach(1, from: state) == nil)
                let left = try Support.filters(netns: bench.pair.netnsB, iface: bench.pair.b, direction: .ingress)
                #expect(left.map(\.handle) == [7])
            }
        }

        @Test func detachAfterTheNamespaceVanishedTearsDown() throws {
            try Support.withBPFFS { root in
                let kernel = DispatcherKernel(paths: DispatcherPaths(fsRoot: root))
                try kernel.installTestDispatchers()
                var state: DispatcherState?
                try Support.withVethPair { pair in
                    let p = try Support.loadPinned(
                        fixture: "xdp_counter",
                        function: "xdp_count_pass",
                        mapName: "xdp_hits",
                        root: root,
                        extensionTarget: kernel.paths.testDispatcher(.xdp)
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    let hook = try DispatcherKernel.hook(kind: .xdp, iface: pair.b, netns: netns)
                    let m = DispatcherMember(
                        linkID: 1,
                        programID: p.programID,
                        programName: p.name,
                        priority: 1,
                        proceedOn: try ProceedOn(family: .xdp, codes: [])
                    )
                    var s = try kernel.attach(m, hook: hook, iface: pair.b, netns: netns, previous: nil, xdpMode: .skb)
                    var m2 = m
                    m2.linkID = 2
                    let s2 = try kernel.attach(m2, hook: hook, iface: pair.b, netns: netns, previous: s, xdpMode: .skb)
                    kernel.removeRevision(of: s)
                    s = s2
                    state = s
                }
                // Both namespaces are gone now.
                let result = try kernel.detach(linkID: 1, from: try #require(state))
                guard case .tornDown(let dropped) = result else {
                    Issue.record("expected a teardown, got \(result)")
                    return
                }
                #expect(dropped.sorted() == [1, 2])
                #expect((try? FileManager.default.contentsOfDirectory(atPath: "\(root)/xdp"))?.isEmpty ?? true)
            }
        }

        @Test func xdpLoaderStatusShowsOurMembers() throws {
            try Bench.with { bench in
                let a = try bench.xdpMember()
                let b = try bench.xdpMember()
                var state = try bench.attach(try bench.member(1, a, priority: 10), .xdp, to: nil)
                state = try bench.attach(try bench.member(2, b, priority: 20), .xdp, to: state)
                let result = try run(
                    "ip",
                    ["netns", "exec", bench.pair.namespaceB, "xdp-loader", "status", bench.pair.b],
                    environment: ["LIBXDP_BPFFS": "\(bench.root)/libxdp"]
                )
                #expect(result.status == 0, "\(result.output)")
                #expect(result.output.contains("xdp_dispatcher"), "\(result.output)")
                #expect(result.output.contains("xdp_count_pass"), "\(result.output)")
                #expect(result.output.contains("\(state.programID)"), "\(result.output)")
                // Both members are listed under the dispatcher, with their own program ids.
                #expect(result.output.contains(" \(a.programID) "), "\(result.output)")
                #expect(result.output.contains(" \(b.programID) "), "\(result.output)")
                #expect(!result.output.contains("Unable to read pinned progs"), "\(result.output)")
                // A rebuild moves libxdp's view to the new dispatcher and drops the old directory.
                let next = try #require(try bench.detach(1, from: state))
                let entries = try FileManager.default.contentsOfDirectory(atPath: "\(bench.root)/libxdp/xdp")
                #expect(entries.contains("dispatch-\(next.hook.ifindex)-\(next.programID)"))
                #expect(!entries.contains("dispatch-\(state.hook.ifindex)-\(state.programID)"))
            }
        }
    }
}

/// The start-up probe on the machine's own kernel, which refuses freplace: native mode is chosen.
extension KernelTests {
    @Suite(.enabled(if: !TestKernel.isKernelBLane, "runs on kernel A, where freplace is refused"))
    struct FreplaceProbeKernelA {
        @Test func probeFailsSoNativeModeIsUsed() throws {
            try Support.withBPFFS { root in
                let kernel = DispatcherKernel(paths: DispatcherPaths(fsRoot: root))
                let error = try #require(kernel.probeFreplace())
                #expect(error.code == .internal)
                #expect(error.errno == .notPermitted, "\(error.message)")
                // The test dispatchers themselves load fine (they are plain XDP / TC programs).
                try kernel.installTestDispatchers()
                #expect(FileManager.default.fileExists(atPath: "\(root)/dispatcher-test/xdp"))
                #expect(FileManager.default.fileExists(atPath: "\(root)/dispatcher-test/tc"))
            }
        }
    }
}

/// Attach/detach cost of a full rebuild next to libxdp's own tool on the same kernel (issue 6 benchmark).
/// Prints the numbers; the assertion is only that both paths work.
extension KernelTests {
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct DispatcherBenchmarkKernelB {
        @Test func attachAndDetachTimesAgainstXdpLoader() throws {
            try Bench.with { bench in
                let clock = ContinuousClock()
                func ms(_ d: Duration) -> Double {
                    Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
                }
                // Ours: ten members, one rebuild each.
                var state: DispatcherState?
                var ours: [Double] = []
                let p = try bench.xdpMember()
                for i in 1...10 {
                    let m = try bench.member(UInt32(i), p, priority: Int32(i))
                    let took = try clock.measure { state = try bench.attach(m, .xdp, to: state) }
                    ours.append(ms(took))
                }
                var detachOurs: [Double] = []
                for i in 1...10 {
                    let current = try #require(state)
                    let took = try clock.measure { state = try bench.detach(UInt32(i), from: current) }
                    detachOurs.append(ms(took))
                }
                #expect(state == nil)

                // xdp-loader adding the same program to the same interface, in the same boot.
                let object = try BPFFixtures.object("xdp_counter")
                let env = ["LIBXDP_BPFFS": "\(bench.root)/libxdp"]
                try DispatcherKernel.makeDirectory("\(bench.root)/libxdp")
                var theirs: [Double] = []
                for _ in 1...10 {
                    let start = clock.now
                    let r = try run(
                        "ip",
                        [
                            "netns", "exec", bench.pair.namespaceB, "xdp-loader", "load", "-m", "skb", "-p",
                            "xdp_count_pass", bench.pair.b, object,
                        ],
                        environment: env
                    )
                    theirs.append(ms(clock.now - start))
                    #expect(r.status == 0, "\(r.output)")
                }
                let start = clock.now
                let r = try run(
                    "ip",
                    ["netns", "exec", bench.pair.namespaceB, "xdp-loader", "unload", "--all", bench.pair.b],
                    environment: env
                )
                let unloadAll = ms(clock.now - start)
                #expect(r.status == 0, "\(r.output)")

                func row(_ name: String, _ a: Double, _ b: Double) -> String {
                    "\(name): bpfman \(String(format: "%.1f", a)) ms, xdp-loader \(String(format: "%.1f", b)) ms, "
                        + "ratio \(String(format: "%.2f", a / b))"
                }
                print("dispatcher benchmark (kernel B under TCG; xdp-loader times include starting the tool):")
                print(row("attach #1", ours[0], theirs[0]))
                print(row("attach #5", ours[4], theirs[4]))
                print(row("attach #10", ours[9], theirs[9]))
                print(row("detach (mean of 10) vs unload --all", detachOurs.reduce(0, +) / 10, unloadAll))
            }
        }
    }
}

/// SPEC §4.7's tie-breaks at equal priority, seen in traffic: every member runs with proceed_on `[drop]` and
/// returns XDP_PASS, so the chain stops after position 0 and only that member's counter moves.
extension KernelTests {
    @Suite(.enabled(if: TestKernel.isKernelBLane, "\(TestKernel.needsKernelB)"))
    struct DispatcherTieKernelB {
        /// `function` of the xdp_named fixture (alpha, beta, gamma: all count and pass) as an EXT member.
        private func named(_ bench: Bench, _ function: String) throws -> Support.PinnedProgram {
            try Support.loadPinned(
                fixture: "xdp_named",
                function: function,
                mapName: "xdp_hits",
                root: bench.root,
                extensionTarget: bench.paths.testDispatcher(.xdp)
            )
        }

        /// Sends `count` frames and returns each program's counter, in the order given.
        private func hitsAfterSending(
            _ count: Int,
            _ bench: Bench,
            _ programs: [Support.PinnedProgram]
        ) throws
            -> [UInt64]
        {
            try bench.send(count)
            return try programs.map { try $0.hits() }
        }

        /// SPEC §4.7 "Tie, name on rebuild": alpha@100, then beta@100 (new first: beta 0, alpha 1), then
        /// gamma@200 (both at 100 are existing now: alpha 0 by name, beta 1, gamma 2).
        @Test func tieBrokenByProgramNameAtEqualPriority() throws {
            try Bench.with { bench in
                let alpha = try named(bench, "alpha")
                let beta = try named(bench, "beta")
                let gamma = try named(bench, "gamma")
                let stopAfterPass: [Int32] = [1]
                var state = try bench.attach(
                    try bench.member(1, alpha, priority: 100, proceedOn: stopAfterPass),
                    .xdp,
                    to: nil
                )
                state = try bench.attach(
                    try bench.member(2, beta, priority: 100, proceedOn: stopAfterPass),
                    .xdp,
                    to: state
                )
                #expect(state.members.map(\.programName) == ["beta", "alpha"])
                #expect(state.members[0].proceedOn.mask == 2)
                #expect(try hitsAfterSending(2, bench, [alpha, beta, gamma]) == [0, 2, 0])

                state = try bench.attach(
                    try bench.member(3, gamma, priority: 200, proceedOn: stopAfterPass),
                    .xdp,
                    to: state
                )
                #expect(state.members.map(\.programName) == ["alpha", "beta", "gamma"])
                #expect([1, 2, 3].map { state.planner.position(of: $0) } == [0, 1, 2])
                try bench.expectLayout(state)
                #expect(try hitsAfterSending(3, bench, [alpha, beta, gamma]) == [3, 2, 0])

                // A detach rebuilds with all members existing: still by name at equal priority.
                state = try #require(try bench.detach(3, from: state))
                #expect(state.members.map(\.programName) == ["alpha", "beta"])
                try bench.expectLayout(state)
                #expect(try hitsAfterSending(1, bench, [alpha, beta, gamma]) == [4, 2, 0])
            }
        }

        /// SPEC §4.7 "Tie, new first" and "Same name, same priority": at equal priority the newly attached
        /// link goes before every existing one, whatever its name, and a second load of the same function too.
        @Test func newlyAttachedBeforeExistingAtEqualPriority() throws {
            try Bench.with { bench in
                let alpha = try named(bench, "alpha")
                let gamma = try named(bench, "gamma")
                let alphaAgain = try named(bench, "alpha")
                let all = [alpha, gamma, alphaAgain]
                let stopAfterPass: [Int32] = [1]
                var state = try bench.attach(
                    try bench.member(1, alpha, priority: 55, proceedOn: stopAfterPass),
                    .xdp,
                    to: nil
                )
                #expect(try hitsAfterSending(1, bench, all) == [1, 0, 0])

                // gamma sorts after alpha by name, yet as the new link it takes position 0.
                state = try bench.attach(
                    try bench.member(2, gamma, priority: 55, proceedOn: stopAfterPass),
                    .xdp,
                    to: state
                )
                #expect(state.planner.position(of: 2) == 0 && state.planner.position(of: 1) == 1)
                try bench.expectLayout(state)
                #expect(try hitsAfterSending(2, bench, all) == [1, 2, 0])

                // A second program named alpha, newest: position 0. The existing two are re-sorted by name on
                // this rebuild (alpha before gamma).
                state = try bench.attach(
                    try bench.member(3, alphaAgain, priority: 55, proceedOn: stopAfterPass),
                    .xdp,
                    to: state
                )
                #expect(state.members.map(\.programID) == [alphaAgain.programID, alpha.programID, gamma.programID])
                try bench.expectLayout(state)
                #expect(try hitsAfterSending(3, bench, all) == [1, 2, 3])

                // A lower priority still wins over "new first" at a higher one: a new link at 56 goes last.
                let beta = try named(bench, "beta")
                state = try bench.attach(
                    try bench.member(4, beta, priority: 56, proceedOn: stopAfterPass),
                    .xdp,
                    to: state
                )
                #expect(state.planner.position(of: 4) == 3 && state.planner.position(of: 3) == 0)
                #expect(try hitsAfterSending(1, bench, all + [beta]) == [1, 2, 4, 0])
            }
        }
    }
}
