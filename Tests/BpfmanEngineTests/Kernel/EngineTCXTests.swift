import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanEngine

/// Two network namespaces joined by a veth pair: `engv0` (10.201.0.1) in `a`, `engv1` (10.201.0.2) in `b`.
struct VethPair {
    let a: String
    let b: String

    init() throws {
        a = "eng-a-\(getpid())"
        b = "eng-b-\(getpid())"
        VethPair.remove(a, b)
        for command in [
            ["netns", "add", a], ["netns", "add", b],
            ["-n", a, "link", "add", "engv0", "type", "veth", "peer", "name", "engv1", "netns", b],
            ["-n", a, "addr", "add", "10.201.0.1/24", "dev", "engv0"],
            ["-n", b, "addr", "add", "10.201.0.2/24", "dev", "engv1"],
            ["-n", a, "link", "set", "engv0", "up"], ["-n", b, "link", "set", "engv1", "up"],
        ] {
            let result = try run("ip", command)
            try #require(result.status == 0, "ip \(command.joined(separator: " ")): \(result.output)")
        }
    }

    var netnsB: String { "/var/run/netns/\(b)" }

    /// Sends `count` UDP datagrams from a to b (no ping on these machines); returns the sender's status.
    func send(count: Int) throws -> Int32 {
        let script = """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range(\(count)):
                s.sendto(b"bpfman", ("10.201.0.2", 9)); time.sleep(0.05)
            """
        return try run("ip", ["netns", "exec", a, "python3", "-c", script]).status
    }

    static func remove(_ names: String...) {
        for name in names { _ = try? run("ip", ["netns", "del", name]) }
    }

    func remove() { VethPair.remove(a, b) }
}

extension KernelTests {
    /// TCX links with priority ordering through before/after anchors, in a test-made netns (SPEC §4.10, §4.16).
    @Suite struct EngineTCXTests {
        @Test func startUpProbesKernelA() async throws {
            try await withTestEngine("features") { h in
                let features = h.engine.kernelFeatures
                #expect(features.btf)
                #expect(features.tcx, "kernel A (6.18) has TCX")
                #expect(features.kprobe == TestKernel.hasKprobes)
                #expect(features.lsm == TestKernel.hasBPFLSM)
            }
        }

        @Test func tcxProgramCountsPacketsOverAVethPairInANetns() async throws {
            let veth = try VethPair()
            defer { veth.remove() }
            try await withTestEngine("tcx") { h in
                let id = try await h.load(fixture: "tcx_counter", "tcx_count", .tcx)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .tcx(TCXAttach(priority: 100, iface: "engv1", direction: "Ingress ", netns: veth.netnsB))
                )
                #expect(try veth.send(count: 5) == 0)
                #expect(try h.counter(program: id, map: "packets") >= 5)
                let record = try await h.engine.link(id: link)
                #expect(record.direction == "ingress")
                #expect(record.position == 0)
                var st = stat()
                #expect(stat(veth.netnsB, &st) == 0)
                #expect(record.nsid == UInt64(st.st_ino), "nsid is the netns file's inode")
                #expect(FileManager.default.fileExists(atPath: h.paths.linkPin(link)))
                h.expectNoDescriptorsAtRest("with a TCX link attached")

                let duplicate = await engineError {
                    _ = try await h.engine.attach(
                        programID: id,
                        spec: .tcx(TCXAttach(priority: 5, iface: "engv1", direction: "ingress", netns: veth.netnsB))
                    )
                }
                #expect(duplicate?.code == .failedPrecondition)
                #expect(
                    duplicate?.message
                        == "program \(id) is already attached to engv1 ingress as link \(link); detach it first"
                )
                #expect(try await h.engine.link(id: link).position == 0, "the original is untouched")
                #expect(try await h.engine.get(id: id).info?.links == [link])
                #expect(BPF.linkExists(id: try #require(record.kernelLinkID)))
                let counted = try h.counter(program: id, map: "packets")
                #expect(try veth.send(count: 3) == 0)
                #expect(try h.counter(program: id, map: "packets") >= counted + 3, "and still counts")
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: id)
            }
        }

        /// SPEC §4.2 / §10 scenario 5: a program from a `tc` section requested as TCX loads as TCX (kernel type
        /// 3, sched_cls) and counts packets through a TCX link.
        @Test func aTCSectionProgramLoadsAndAttachesAsTCX() async throws {
            let veth = try VethPair()
            defer { veth.remove() }
            try await withTestEngine("tc-as-tcx") { h in
                let loaded = try await h.load(
                    LoadRequest(
                        bytecode: .file(try BPFFixtures.object("tc_counter")),
                        programs: [ProgramLoadInfo(name: "tc_count_ok", type: .tcx)]
                    )
                )
                let id = loaded[0].kernelInfo.id
                #expect(loaded[0].info?.kind == .tcx)
                #expect(loaded[0].kernelInfo.programType == 3)
                let link = try await h.engine.attach(
                    programID: id,
                    spec: .tcx(TCXAttach(priority: 1, iface: "engv1", direction: "ingress", netns: veth.netnsB))
                )
                #expect(try veth.send(count: 3) == 0)
                #expect(try h.counter(program: id, map: "tc_hits") >= 3)
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: id)
            }
        }

        @Test func tcxPositionsFollowPriorityAndInsertionOrder() async throws {
            let veth = try VethPair()
            defer { veth.remove() }
            try await withTestEngine("tcxorder") { h in
                var programs: [UInt32] = []
                for _ in 0..<7 { programs.append(try await h.load(fixture: "tcx_counter", "tcx_count", .tcx)) }
                func attach(_ index: Int, _ priority: Int32) async throws -> UInt32 {
                    try await h.engine.attach(
                        programID: programs[index],
                        spec: .tcx(
                            TCXAttach(priority: priority, iface: "engv1", direction: "egress", netns: veth.netnsB)
                        )
                    )
                }
                var links: [Int32: UInt32] = [:]
                for (index, priority) in [500, 100, 800, 300, 55].enumerated() {
                    links[Int32(priority)] = try await attach(index, Int32(priority))
                }
                for (rank, priority) in [55, 100, 300, 500, 800].enumerated() {
                    #expect(try await h.engine.link(id: links[Int32(priority)]!).position == Int32(rank))
                }
                // Two priority-0 links keep insertion order, ahead of everything else.
                let zeroA = try await attach(5, 0)
                let zeroB = try await attach(6, 0)
                #expect(try await h.engine.link(id: zeroA).position == 0)
                #expect(try await h.engine.link(id: zeroB).position == 1)
                #expect(try await h.engine.link(id: links[800]!).position == 6)
                // The kernel's own order agrees.
                let kernelOrder = try NamespaceThread.run(in: veth.netnsB) { () throws(EngineError) -> [UInt32] in
                    let index = if_nametoindex("engv1")
                    guard case .success(let entries) = BPF.query(ifindex: index, attachType: BPFAttachType.tcxEgress)
                    else {
                        throw .internal("query failed")
                    }
                    return entries.map(\.program)
                }
                #expect(
                    kernelOrder == [
                        programs[5], programs[6], programs[4], programs[1], programs[3], programs[0], programs[2],
                    ]
                )
                // Detach recomputes positions.
                try await h.engine.detach(linkID: zeroA)
                #expect(try await h.engine.link(id: zeroB).position == 0)
                #expect(try await h.engine.link(id: links[800]!).position == 5)
                for id in programs { try await h.engine.unload(id: id) }
            }
        }
    }
}
