import Testing

@testable import BpfmanEngine

@Suite struct DispatcherPathsTests {
    let paths = DispatcherPaths(fsRoot: "/run/bpfman/fs")

    @Test func xdpLayout() {
        let hook = DispatcherHook(kind: .xdp, nsid: 4_026_531_840, ifindex: 7)
        #expect(paths.xdpLink(hook) == "/run/bpfman/fs/xdp/dispatcher_4026531840_7_link")
        #expect(paths.revisionDirectory(hook, revision: 3) == "/run/bpfman/fs/xdp/dispatcher_4026531840_7_3")
        #expect(paths.dispatcherProgram(hook, revision: 3) == "/run/bpfman/fs/xdp/dispatcher_4026531840_7_3/dispatcher")
        #expect(
            paths.memberLink(hook, revision: 3, position: 9) == "/run/bpfman/fs/xdp/dispatcher_4026531840_7_3/link_9"
        )
    }

    @Test func tcLayout() {
        let ingress = DispatcherHook(kind: .tcIngress, nsid: 12, ifindex: 3)
        let egress = DispatcherHook(kind: .tcEgress, nsid: 12, ifindex: 3)
        #expect(paths.revisionDirectory(ingress, revision: 1) == "/run/bpfman/fs/tc-ingress/dispatcher_12_3_1")
        #expect(
            paths.memberLink(egress, revision: 2, position: 0) == "/run/bpfman/fs/tc-egress/dispatcher_12_3_2/link_0"
        )
        #expect(paths.testDispatcher(.xdp) == "/run/bpfman/fs/dispatcher-test/xdp")
        #expect(paths.testDispatcher(.tc) == "/run/bpfman/fs/dispatcher-test/tc")
    }

    @Test func entriesParseBack() {
        let hook = DispatcherHook(kind: .xdp, nsid: 12, ifindex: 3)
        #expect(DispatcherPaths.parse(entry: "dispatcher_12_3_5", kind: .xdp)! == (hook, 5))
        #expect(DispatcherPaths.parse(entry: "dispatcher_12_3_link", kind: .xdp)! == (hook, nil))
        #expect(DispatcherPaths.parse(entry: "dispatcher_12_3_link", kind: .tcIngress) == nil)
        #expect(DispatcherPaths.parse(entry: "prog_12", kind: .xdp) == nil)
        #expect(DispatcherPaths.parse(entry: "dispatcher_x_3_1", kind: .xdp) == nil)
    }

    @Test func revisionsStartAtOneAndWrap() {
        #expect(DispatcherRevision.first == 1)
        #expect(DispatcherRevision.next(after: 1) == 2)
        #expect(DispatcherRevision.next(after: UInt32.max) == 0)
    }

    @Test func xdpConfigLayout() throws {
        let a = DispatcherMember(
            linkID: 1,
            programID: 2,
            programName: "a",
            priority: 1,
            proceedOn: try ProceedOn(family: .xdp, codes: [])
        )
        let b = DispatcherMember(
            linkID: 2,
            programID: 3,
            programName: "b",
            priority: 2,
            proceedOn: try ProceedOn(family: .xdp, codes: [1])
        )
        let bytes = DispatcherConfig(family: .xdp, members: [a, b]).bytes
        #expect(bytes.count == 124)
        #expect(Array(bytes[0..<4]) == [236, 2, 2, 0])
        #expect(Array(bytes[4..<12]) == [0x04, 0, 0, 0x80, 0x02, 0, 0, 0])
        #expect(bytes[12..<44].allSatisfy { $0 == 0 })
        #expect(Array(bytes[44..<48]) == [50, 0, 0, 0])
        #expect(Array(bytes[80..<84]) == [50, 0, 0, 0])
        #expect(bytes[84..<124].allSatisfy { $0 == 0 })
    }

    @Test func tcConfigLayout() throws {
        let a = DispatcherMember(
            linkID: 1,
            programID: 2,
            programName: "a",
            priority: 1,
            proceedOn: try ProceedOn(family: .tc, codes: [])
        )
        let bytes = DispatcherConfig(family: .tc, members: [a]).bytes
        #expect(bytes.count == 84)
        #expect(Array(bytes[0..<8]) == [1, 0, 0, 0, 0x10, 0, 0, 0x80])
        #expect(Array(bytes[44..<48]) == [50, 0, 0, 0])
    }
}
