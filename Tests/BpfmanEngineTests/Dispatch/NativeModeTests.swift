import CBPF
import Foundation
import TestSupport
import Testing

@testable import BpfmanEngine

private typealias Support = DispatchTestSupport

/// Native mode (SPEC §4.9) on the machine's own kernel: XDP programs attached directly, TC programs as
/// individual cls_bpf filters. Traffic goes through veth pairs in test-made namespaces and is counted by
/// the programs' own maps.
extension KernelTests {
    @Suite struct NativeModeTests {
        @Test func xdpLinkCountsTrafficAndDetachStopsIt() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let program = try Support.loadPinned(
                        fixture: "xdp_counter",
                        function: "xdp_count_pass",
                        mapName: "xdp_hits",
                        root: root,
                        pinName: "prog_pass"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    let linkPin = "\(root)/link_1"
                    let attached = try NativeXDP.attach(
                        netns: netns,
                        iface: pair.b,
                        programPin: program.programPin,
                        mode: .drv,
                        linkPin: linkPin
                    )
                    #expect(FileManager.default.fileExists(atPath: linkPin))
                    #expect(Support.linkExists(attached.kernelLinkID))

                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 5)
                    #expect(try program.hits() == 5)

                    try NativeXDP.detach(linkPin: linkPin)
                    #expect(!FileManager.default.fileExists(atPath: linkPin))
                    #expect(!Support.linkExists(attached.kernelLinkID))
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 3)
                    #expect(try program.hits() == 5)
                    // Detaching again (pin gone) is not an error.
                    try NativeXDP.detach(linkPin: linkPin)
                }
            }
        }

        @Test func xdpDropStopsFramesBeforeTC() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let drop = try Support.loadPinned(
                        fixture: "xdp_counter",
                        function: "xdp_count_drop",
                        mapName: "xdp_hits",
                        root: root,
                        pinName: "prog_drop"
                    )
                    let tc = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_ok",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "prog_tc"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    _ = try NativeTC.attach(
                        netns: netns,
                        iface: pair.b,
                        direction: .ingress,
                        priority: 10,
                        programPin: tc.programPin
                    )
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 4)
                    #expect(try tc.hits() == 4)

                    _ = try NativeXDP.attach(
                        netns: netns,
                        iface: pair.b,
                        programPin: drop.programPin,
                        mode: .skb,
                        linkPin: "\(root)/link_1"
                    )
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 4)
                    #expect(try drop.hits() == 4)
                    #expect(try tc.hits() == 4)  // XDP dropped them before TC ingress
                    try NativeXDP.detach(linkPin: "\(root)/link_1")
                }
            }
        }

        @Test func secondXDPProgramOnAnInterfaceIsAFailedPrecondition() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let first = try Support.loadPinned(
                        fixture: "xdp_counter",
                        function: "xdp_count_pass",
                        mapName: "xdp_hits",
                        root: root,
                        pinName: "prog_a"
                    )
                    let second = try Support.loadPinned(
                        fixture: "xdp_counter",
                        function: "xdp_count_pass",
                        mapName: "xdp_hits",
                        root: root,
                        pinName: "prog_b"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    _ = try NativeXDP.attach(
                        netns: netns,
                        iface: pair.b,
                        programPin: first.programPin,
                        mode: .skb,
                        linkPin: "\(root)/link_1"
                    )
                    // The kernel itself refuses a second XDP link; without a bpfman record it is "foreign".
                    let error = #expect(throws: DispatchError.self) {
                        try NativeXDP.attach(
                            netns: netns,
                            iface: pair.b,
                            programPin: second.programPin,
                            mode: .skb,
                            linkPin: "\(root)/link_2"
                        )
                    }
                    #expect(error?.code == .failedPrecondition)
                    #expect(
                        error?.message == "interface \(pair.b) already has an XDP program that bpfman does not manage"
                    )
                    #expect(!FileManager.default.fileExists(atPath: "\(root)/link_2"))
                    // With the record, the Engine reports SPEC's message for bpfman's own program.
                    let own = NativeXDP.secondProgramError(iface: pair.b, programID: first.programID, linkID: 1)
                    #expect(own.code == .failedPrecondition)
                    #expect(
                        own.message
                            == "interface \(pair.b) already has XDP program \(first.programID) attached as link 1; more "
                            + "than one XDP program per interface needs freplace support, which this kernel does not allow"
                    )
                    // The first attachment still counts.
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 2)
                    #expect(try first.hits() == 2)
                    #expect(try second.hits() == 0)
                    try NativeXDP.detach(linkPin: "\(root)/link_1")
                }
            }
        }

        @Test func tcFiltersRunInPriorityOrderAndChainOnUnspec() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    func load(_ function: String, _ pin: String) throws -> Support.PinnedProgram {
                        try Support.loadPinned(
                            fixture: "tc_counter",
                            function: function,
                            mapName: "tc_hits",
                            root: root,
                            pinName: pin
                        )
                    }
                    let ok50 = try load("tc_count_ok", "ok50")
                    let unspec100 = try load("tc_count_unspec", "unspec100")
                    let unspec0 = try load("tc_count_unspec", "unspec0")
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    func attach(_ p: Support.PinnedProgram, _ priority: Int32) throws -> TCFilterHandle {
                        try NativeTC.attach(
                            netns: netns,
                            iface: pair.b,
                            direction: .ingress,
                            priority: priority,
                            programPin: p.programPin
                        )
                    }
                    let f50 = try attach(ok50, 50)
                    let f100 = try attach(unspec100, 100)
                    let f0 = try attach(unspec0, 0)
                    #expect([f0.priority, f50.priority, f100.priority] == [1, 51, 101])

                    let ifindex = f0.ifindex
                    let positions = try NativeTC.positions(
                        netns: netns,
                        ifindex: ifindex,
                        direction: .ingress,
                        ours: [f50, f100, f0]
                    )
                    #expect(positions == [f0: 0, f50: 1, f100: 2])

                    // 0 returns UNSPEC so 50 runs; 50 returns OK so 100 never sees the frames.
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 3)
                    #expect(try [unspec0.hits(), ok50.hits(), unspec100.hits()] == [3, 3, 0])

                    // Detach exactly the 50 filter: now 100 runs too.
                    try NativeTC.detach(netns: netns, filter: f50)
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 2)
                    #expect(try [unspec0.hits(), ok50.hits(), unspec100.hits()] == [5, 3, 2])
                    let left = try Support.filters(netns: pair.netnsB, iface: pair.b, direction: .ingress)
                    #expect(left.map(\.priority) == [1, 101])
                    try NativeTC.detach(netns: netns, filter: f0)
                    try NativeTC.detach(netns: netns, filter: f100)
                    #expect(try Support.filters(netns: pair.netnsB, iface: pair.b, direction: .ingress).isEmpty)
                }
            }
        }

        @Test func samePriorityTwiceGivesTwoFilters() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let p = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_unspec",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "p"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    let a = try NativeTC.attach(
                        netns: netns,
                        iface: pair.b,
                        direction: .ingress,
                        priority: 7,
                        programPin: p.programPin
                    )
                    let b = try NativeTC.attach(
                        netns: netns,
                        iface: pair.b,
                        direction: .ingress,
                        priority: 7,
                        programPin: p.programPin
                    )
                    #expect(a.priority == 8 && b.priority == 8 && a.handle != b.handle)
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 2)
                    #expect(try p.hits() == 4)  // one program, two filters, both run (UNSPEC)
                    try NativeTC.detach(netns: netns, filter: a)
                    let left = try Support.filters(netns: pair.netnsB, iface: pair.b, direction: .ingress)
                    #expect(left.map(\.handle) == [b.handle])
                    try NativeTC.detach(netns: netns, filter: b)
                }
            }
        }

        @Test func ingressAndEgressAreIndependent() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let inbound = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_ok",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "in"
                    )
                    let outbound = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_ok",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "out"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    let fi = try NativeTC.attach(
                        netns: netns,
                        iface: pair.b,
                        direction: .ingress,
                        priority: 5,
                        programPin: inbound.programPin
                    )
                    let fe = try NativeTC.attach(
                        netns: netns,
                        iface: pair.b,
                        direction: .egress,
                        priority: 5,
                        programPin: outbound.programPin
                    )
                    try Support.sendFrames(netns: pair.netnsA, iface: pair.a, count: 3)  // arrive at b
                    try Support.sendFrames(netns: pair.netnsB, iface: pair.b, count: 2)  // leave b
                    #expect(try inbound.hits() == 3)
                    #expect(try outbound.hits() == 2)
                    try NativeTC.detach(netns: netns, filter: fe)
                    #expect(try Support.filters(netns: pair.netnsB, iface: pair.b, direction: .egress).isEmpty)
                    #expect(try Support.filters(netns: pair.netnsB, iface: pair.b, direction: .ingress).count == 1)
                    try NativeTC.detach(netns: netns, filter: fi)
                }
            }
        }

        @Test func classicIngressQdiscIsAFailedPrecondition() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let p = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_ok",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "p"
                    )
                    try Support.sh(
                        "ip",
                        "netns",
                        "exec",
                        pair.namespaceB,
                        "tc",
                        "qdisc",
                        "add",
                        "dev",
                        pair.b,
                        "ingress"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    let error = #expect(throws: DispatchError.self) {
                        try NativeTC.attach(
                            netns: netns,
                            iface: pair.b,
                            direction: .ingress,
                            priority: 5,
                            programPin: p.programPin
                        )
                    }
                    #expect(error?.code == .failedPrecondition)
                    #expect(
                        error?.message
                            == "interface \(pair.b) has a \"ingress\" qdisc where clsact is needed; bpfman does not "
                            + "replace qdiscs it did not create"
                    )
                    // The foreign qdisc is still there, untouched.
                    let qdiscs = try Support.sh(
                        "ip",
                        "netns",
                        "exec",
                        pair.namespaceB,
                        "tc",
                        "qdisc",
                        "show",
                        "dev",
                        pair.b
                    )
                    #expect(qdiscs.contains("qdisc ingress ffff:"))
                }
            }
        }

        @Test func foreignFiltersAreNeverTouched() throws {
            try Support.withBPFFS { root in
                try Support.withVethPair { pair in
                    let p = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_unspec",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "p"
                    )
                    let ns = pair.namespaceB
                    try Support.sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", pair.b, "clsact")
                    // A foreign non-bpf filter at netlink priority 51, i.e. where bpfman priority 50 would go.
                    try Support.sh(
                        "ip",
                        "netns",
                        "exec",
                        ns,
                        "tc",
                        "filter",
                        "add",
                        "dev",
                        pair.b,
                        "ingress",
                        "prio",
                        "51",
                        "protocol",
                        "all",
                        "u32",
                        "match",
                        "u32",
                        "0",
                        "0",
                        "flowid",
                        "1:1"
                    )
                    let netns = try NetworkNamespace.resolve(pair.netnsB)
                    let error = #expect(throws: DispatchError.self) {
                        try NativeTC.attach(
                            netns: netns,
                            iface: pair.b,
                            direction: .ingress,
                            priority: 50,
                            programPin: p.programPin
                        )
                    }
                    #expect(error?.code == .failedPrecondition)
                    #expect(error?.message == "a non-bpf filter occupies priority 51 on \(pair.b) tc ingress")

                    // Elsewhere, attach and detach leave the foreign filter where it was.
                    let mine = try NativeTC.attach(
                        netns: netns,
                        iface: pair.b,
                        direction: .ingress,
                        priority: 10,
                        programPin: p.programPin
                    )
                    try NativeTC.detach(netns: netns, filter: mine)
                    let left = try Support.filters(netns: pair.netnsB, iface: pair.b, direction: .ingress)
                    #expect(!left.isEmpty)  // u32 dumps its hash table and its key
                    #expect(left.allSatisfy { $0.kind == "u32" && $0.priority == 51 })
                }
            }
        }

        @Test func detachAfterTheNamespaceVanished() throws {
            try Support.withBPFFS { root in
                var filter: TCFilterHandle?
                var netns: NetworkNamespace?
                try Support.withVethPair { pair in
                    let p = try Support.loadPinned(
                        fixture: "tc_counter",
                        function: "tc_count_ok",
                        mapName: "tc_hits",
                        root: root,
                        pinName: "p"
                    )
                    netns = try NetworkNamespace.resolve(pair.netnsB)
                    filter = try NativeTC.attach(
                        netns: netns!,
                        iface: pair.b,
                        direction: .ingress,
                        priority: 1,
                        programPin: p.programPin
                    )
                }
                // The namespace (and with it the filter) is gone; Detach still succeeds.
                try NativeTC.detach(netns: try #require(netns), filter: try #require(filter))
            }
        }

        @Test func badNamespaceInterfaceAndPriority() throws {
            let notNetns = #expect(throws: DispatchError.self) { try NetworkNamespace.resolve("/proc/self/ns/mnt") }
            #expect(notNetns?.code == .invalidArgument)
            #expect(notNetns?.message.hasPrefix("netns \"/proc/self/ns/mnt\" is not a network namespace: ") == true)
            let relative = #expect(throws: DispatchError.self) { try NetworkNamespace.resolve("var/run/netns/x") }
            #expect(relative?.code == .invalidArgument)
            let missing = #expect(throws: DispatchError.self) {
                try NetworkNamespace.resolve("/var/run/netns/disp-none")
            }
            #expect(missing?.code == .invalidArgument)

            let host = try NetworkNamespace.resolve(nil)
            #expect(host.nsid != 0)
            #expect(try NetworkNamespace.resolve("/proc/self/ns/net").nsid == host.nsid)
            let absent = #expect(throws: DispatchError.self) {
                try host.run { () throws(DispatchError) in
                    _ = try NetworkInterface.index(of: "dispnope0", netnsLabel: host.label)
                }
            }
            #expect(absent?.message == "interface \"dispnope0\" not found in netns \"host\"")
            #expect(throws: DispatchError(.invalidArgument, "invalid interface name \"a/b\"")) {
                try NetworkInterface.validate(name: "a/b")
            }
            #expect(throws: DispatchError(.invalidArgument, "iface is required")) {
                try NetworkInterface.validate(name: "")
            }
            #expect(
                throws: DispatchError(
                    .invalidArgument,
                    "priority 65535 is out of range for native TC attachment (0-65534)"
                )
            ) { try TCFilters.nativePriority(65535) }
            #expect(try TCFilters.nativePriority(0) == 1)
            #expect(try TCDirection(parsing: " Egress ") == .egress)
            #expect(
                throws: DispatchError(.invalidArgument, "invalid TC direction \"up\": must be 'ingress' or 'egress'")
            ) { try TCDirection(parsing: "up") }
        }
    }
}
