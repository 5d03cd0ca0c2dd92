import Testing

@testable import BpfmanEngine

/// SPEC §4.7's worked examples, run on the pure planner.
@Suite struct SlotPlannerTests {
    private static let xdpDefault = try! ProceedOn(family: .xdp, codes: [])

    private func member(
        _ link: UInt32,
        _ priority: Int32,
        _ name: String = "prog",
        program: UInt32? = nil
    )
        -> DispatcherMember
    {
        DispatcherMember(
            linkID: link,
            programID: program ?? 100 + link,
            programName: name,
            priority: priority,
            proceedOn: Self.xdpDefault
        )
    }

    /// Attaches and expects a rebuild; returns the priorities in slot order.
    @discardableResult
    private func attach(_ planner: inout SlotPlanner, _ m: DispatcherMember) throws -> [DispatcherMember] {
        guard case .rebuild(let members) = planner.attach(m, hookDescription: "veth0 xdp") else {
            Issue.record("attach of link \(m.linkID) was rejected")
            throw PlannerTestFailure()
        }
        #expect(members == planner.members)
        return members
    }

    @Test func rankOrderOfTenMembers() throws {
        var planner = SlotPlanner()
        let priorities: [Int32] = [500, 100, 800, 300, 900, 200, 700, 400, 600, 50]
        for (i, p) in priorities.enumerated() { try attach(&planner, member(UInt32(i + 1), p)) }
        #expect(planner.members.map(\.priority) == [50, 100, 200, 300, 400, 500, 600, 700, 800, 900])
        // The 50 member (link 10) is in slot 0, the 900 member (link 5) in slot 9.
        #expect(planner.position(of: 10) == 0)
        #expect(planner.position(of: 5) == 9)
    }

    @Test func slotReuseAfterDetach() throws {
        var planner = SlotPlanner()
        for i in 1...10 { try attach(&planner, member(UInt32(i), Int32(i * 100))) }
        #expect(planner.detach(linkID: 4) == .rebuild(planner.members))
        #expect(planner.members.count == 9)
        #expect(planner.position(of: 5) == 3)  // 500 moved up into slot 3
        try attach(&planner, member(11, 350))
        #expect(planner.position(of: 11) == 3)
        #expect(planner.members.count == 10)
    }

    @Test func eleventhMemberIsRejectedWithStateIntact() throws {
        var planner = SlotPlanner()
        for i in 1...10 { try attach(&planner, member(UInt32(i), 50)) }
        let before = planner
        let result = planner.attach(member(11, 1), hookDescription: "veth0 xdp")
        #expect(
            result
                == .rejected(
                    DispatchError(.failedPrecondition, "no free dispatcher slots on veth0 xdp (all 10 occupied)")
                )
        )
        #expect(planner == before)
    }

    @Test func negativePriorityIsRejected() {
        var planner = SlotPlanner()
        let result = planner.attach(member(1, -1), hookDescription: "veth0 xdp")
        #expect(result == .rejected(DispatchError(.invalidArgument, "priority must be non-negative, got -1")))
        #expect(planner.members.isEmpty)
    }

    @Test func priorityZeroSortsFirst() throws {
        var planner = SlotPlanner()
        try attach(&planner, member(1, 25))
        try attach(&planner, member(2, 0))
        try attach(&planner, member(3, 75))
        #expect(planner.members.map(\.priority) == [0, 25, 75])
    }

    @Test func newBeforeExistingAtEqualPriority() throws {
        var planner = SlotPlanner()
        try attach(&planner, member(1, 100, "xdp_stats"))
        try attach(&planner, member(2, 100, "pass"))
        #expect(planner.members.map(\.programName) == ["pass", "xdp_stats"])
        // Even a name that sorts later goes first when it is the new one.
        try attach(&planner, member(3, 100, "zzz"))
        #expect(planner.members.map(\.programName) == ["zzz", "pass", "xdp_stats"])
    }

    @Test func tieBrokenByNameOnRebuild() throws {
        var planner = SlotPlanner()
        try attach(&planner, member(1, 100, "alpha"))
        try attach(&planner, member(2, 100, "beta"))
        #expect(planner.members.map(\.programName) == ["beta", "alpha"])
        try attach(&planner, member(3, 200, "gamma"))
        #expect(planner.members.map(\.programName) == ["alpha", "beta", "gamma"])
    }

    @Test func sameNameSamePriorityKeepsPreviousOrder() throws {
        var planner = SlotPlanner()
        try attach(&planner, member(1, 55, "xdp_pass", program: 7))
        try attach(&planner, member(2, 55, "xdp_pass", program: 8))
        #expect(planner.members.map(\.linkID) == [2, 1])
        // A later rebuild treats both as existing: exact tie, previous order kept.
        try attach(&planner, member(3, 99, "other"))
        #expect(planner.members.map(\.linkID) == [2, 1, 3])
        #expect(planner.detach(linkID: 3) == .rebuild(planner.members))
        #expect(planner.members.map(\.linkID) == [2, 1])
    }

    @Test func detachCascadeEndsInTeardown() throws {
        var planner = SlotPlanner()
        for i in 1...10 { try attach(&planner, member(UInt32(i), 50, "xdp_pass", program: 42)) }
        var counts: [Int] = []
        for i in 1...9 {
            #expect(planner.detach(linkID: UInt32(i)) == .rebuild(planner.members))
            counts.append(planner.members.count)
        }
        #expect(counts == [9, 8, 7, 6, 5, 4, 3, 2, 1])
        #expect(planner.detach(linkID: 10) == .teardown)
        #expect(planner.members.isEmpty)
        #expect(planner.detach(linkID: 10) == .notAMember)
    }

    @Test func sameProgramInSeveralSlots() throws {
        var planner = SlotPlanner()
        try attach(&planner, member(1, 10, "counter", program: 9))
        try attach(&planner, member(2, 20, "counter", program: 9))
        try attach(&planner, member(3, 15, "other", program: 5))
        #expect(planner.members.map(\.linkID) == [1, 3, 2])
        // Unloading program 9 removes both of its slots and keeps the survivor.
        #expect(planner.removeProgram(9) == .rebuild([member(3, 15, "other", program: 5)]))
        #expect(planner.removeProgram(9) == .notAMember)
        #expect(planner.removeProgram(5) == .teardown)
    }
}

private struct PlannerTestFailure: Error {}
