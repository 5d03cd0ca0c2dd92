import Testing

@testable import Proto

@Suite struct VarintTests {
    static let vectors: [(UInt64, [UInt8])] = [
        (0, [0x00]),
        (1, [0x01]),
        (127, [0x7F]),
        (128, [0x80, 0x01]),
        (300, [0xAC, 0x02]),
        (UInt64.max, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ]

    @Test(arguments: vectors)
    func encodesToTheWireBytes(value: UInt64, expected: [UInt8]) {
        var bytes: [UInt8] = []
        Varint.append(value, to: &bytes)
        #expect(bytes == expected)
        #expect(Varint.encodedSize(of: value) == expected.count)
    }

    static let zigzagPairs: [(Int64, UInt64)] = [(0, 0), (-1, 1), (1, 2), (-2, 3), (.max, .max - 1), (.min, .max)]

    @Test(arguments: zigzagPairs)
    func zigzagMapsSignedToUnsigned(signed: Int64, unsigned: UInt64) {
        #expect(Varint.zigzag(signed) == unsigned)
        #expect(Varint.unzigzag(unsigned) == signed)
    }
}
