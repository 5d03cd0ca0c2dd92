import Testing

@testable import BpfmanEngine

@Suite struct ProceedOnTests {
    @Test func defaults() throws {
        let xdp = try ProceedOn(family: .xdp, codes: [])
        #expect(xdp.codes == [2, 31])
        #expect(xdp.mask == 2_147_483_652)
        #expect(xdp.names == ["pass", "dispatcher_return"])
        let tc = try ProceedOn(family: .tc, codes: [])
        #expect(tc.codes == [3, 30])
        #expect(tc.mask == 2_147_483_664)
        #expect(!tc.codes.contains(TCAction.ok.rawValue))
    }

    @Test(arguments: [
        (ProceedOnFamily.xdp, [Int32(2), 1], UInt32(6)),
        (.xdp, [0, 1, 2, 3, 4], 31),
        (.xdp, [31], 0x8000_0000),
        (.tc, [0, 3, 30], 2_147_483_666),
        (.tc, [-1], 1),
        (.tc, [8], 0x200),
    ])
    func specExamples(family: ProceedOnFamily, codes: [Int32], mask: UInt32) throws {
        #expect(try ProceedOn(family: family, codes: codes).mask == mask)
    }

    /// Every code of SPEC §4.8's table, one at a time: XDP bit = 1 << code, TC bit = 1 << (code + 1).
    @Test func encodingMatrix() throws {
        let xdp: [(XDPAction, UInt32)] = [
            (.aborted, 0x1), (.drop, 0x2), (.pass, 0x4), (.tx, 0x8), (.redirect, 0x10),
            (.dispatcherReturn, 0x8000_0000),
        ]
        for (action, bit) in xdp {
            #expect(try ProceedOn(family: .xdp, codes: [action.rawValue]).mask == bit, "\(action)")
            #expect(ProceedOn.code(named: action.name, in: .xdp) == action.rawValue)
        }
        let tc: [(TCAction, UInt32)] = [
            (.unspec, 0x1), (.ok, 0x2), (.reclassify, 0x4), (.shot, 0x8), (.pipe, 0x10), (.stolen, 0x20),
            (.queued, 0x40), (.repeat, 0x80), (.redirect, 0x100), (.trap, 0x200), (.dispatcherReturn, 0x8000_0000),
        ]
        for (action, bit) in tc {
            #expect(try ProceedOn(family: .tc, codes: [action.rawValue]).mask == bit, "\(action)")
            #expect(ProceedOn.code(named: action.name, in: .tc) == action.rawValue)
        }
        #expect(XDPAction.allCases.count == xdp.count)
        #expect(TCAction.allCases.count == tc.count)
    }

    @Test func duplicatesDroppedOrderKept() throws {
        let p = try ProceedOn(family: .xdp, codes: [4, 2, 4, 0, 2])
        #expect(p.codes == [4, 2, 0])
        #expect(p.mask == 0x15)
    }

    @Test(arguments: [
        (ProceedOnFamily.xdp, Int32(5), "invalid XDP proceed_on: unknown XDP action code 5"),
        (.xdp, -1, "invalid XDP proceed_on: unknown XDP action code -1"),
        (.xdp, 30, "invalid XDP proceed_on: unknown XDP action code 30"),
        (.tc, 9, "invalid TC proceed_on: unknown TC action code 9"),
        (.tc, 31, "invalid TC proceed_on: unknown TC action code 31"),
        (.tc, -2, "invalid TC proceed_on: unknown TC action code -2"),
    ])
    func unknownCodesAreInvalidArguments(family: ProceedOnFamily, code: Int32, message: String) {
        #expect(throws: DispatchError(.invalidArgument, message)) {
            try ProceedOn(family: family, codes: [2, code])
        }
    }

    @Test func namesParse() throws {
        #expect(try ProceedOn(family: .tc, names: ["ok", "Pipe", "dispatcher_return"]).mask == 2_147_483_666)
        #expect(throws: DispatchError.self) { try ProceedOn(family: .xdp, names: ["ok"]) }
    }

    @Test func chainRuleMatchesTheDispatchers() throws {
        let xdp = try ProceedOn(family: .xdp, codes: [])
        #expect(xdp.continues(after: 2))
        #expect(!xdp.continues(after: 1))
        #expect(xdp.continues(after: 31))
        #expect(!xdp.continues(after: 32))
        let tc = try ProceedOn(family: .tc, codes: [])
        #expect(!tc.continues(after: 0))  // TC_ACT_OK stops the chain with the default
        #expect(tc.continues(after: 3))
        #expect(try ProceedOn(family: .tc, codes: [0]).continues(after: 0))
        #expect(try ProceedOn(family: .tc, codes: [-1]).continues(after: -1))
    }
}
