import Testing

@testable import H2Transport

@Suite struct GRPCFramingTests {
    @Test(arguments: [
        ("1S", UInt64(1_000_000_000)), ("100m", 100_000_000), ("5u", 5_000), ("7n", 7), ("2M", 120_000_000_000),
        ("1H", 3_600_000_000_000), ("99999999S", 99_999_999_000_000_000),
    ])
    func timeoutUnits(_ text: String, _ nanoseconds: UInt64) {
        #expect(GRPCFraming.parseTimeout(Array(text.utf8)) == nanoseconds)
    }

    @Test(arguments: ["", "S", "1", "1x", "123456789S", "-1S", "1.5S"])
    func malformedTimeouts(_ text: String) {
        #expect(GRPCFraming.parseTimeout(Array(text.utf8)) == nil)
    }

    @Test func statusMessageIsPercentEncoded() {
        let status = GRPCStatus(.notFound, "100% ü\n")
        #expect(String(decoding: status.percentEncodedMessage, as: UTF8.self) == "100%25 %C3%BC%0A")
        #expect(GRPCStatus.percentDecoded(status.percentEncodedMessage) == "100% ü\n")
    }

    @Test func deframerReassemblesSplitMessagesAndEnforcesLimits() {
        var deframer = GRPCMessageDeframer(maxMessageSize: 10)
        let bytes: [UInt8] = [0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0]
        var out: [GRPCMessageDeframer.OnMessage] = []
        for byte in bytes { out += [byte].withUnsafeBytes { deframer.append($0) } }
        #expect(out == [.message([1, 2, 3]), .message([])])
        #expect(deframer.hasPartialMessage)
        var small = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(([0, 0, 0, 0, 11] as [UInt8]).withUnsafeBytes { small.append($0) } == [.tooLarge(announced: 11)])
        var compressed = GRPCMessageDeframer(maxMessageSize: 10)
        #expect(([1, 0, 0, 0, 1, 9] as [UInt8]).withUnsafeBytes { compressed.append($0) } == [.compressed])
    }

    @Test func routerNamesUnknownServicesAndMethods() {
        var router = GRPCRouter()
        router.register("/a.B/C", .unary { _, r in r })
        #expect(router.serviceNames == ["a.B"])
        guard case .unimplemented(let method) = router.lookup("/a.B/D") else {
            Issue.record("found D")
            return
        }
        #expect(method == "unknown method D for service a.B")
        guard case .unimplemented(let service) = router.lookup("/x.Y/C") else {
            Issue.record("found x.Y")
            return
        }
        #expect(service == "unknown service x.Y")
        guard case .found = router.lookup("/a.B/C") else {
            Issue.record("C not found")
            return
        }
    }

    @Test(arguments: 0...16)
    func everyStatusCodeHasAName(_ code: Int) throws {
        let value = try #require(GRPCStatus.Code(rawValue: code))
        #expect(!value.description.isEmpty)
        #expect(GRPCStatus.Code(rawValue: 17) == nil)
    }
}
