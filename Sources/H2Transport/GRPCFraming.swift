/// gRPC's length-prefixed message framing: 1 flag byte (compressed or not), 4 bytes big-endian length.
enum GRPCFraming {
    static let prefixLength = 5

    /// Appends `message` to `out` with its 5-byte prefix (never compressed).
    static func appendFramed(_ message: [UInt8], to out: inout [UInt8]) {
        let n = UInt32(message.count)
        out.append(0)
        out.append(UInt8(truncatingIfNeeded: n >> 24))
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
        out.append(contentsOf: message)
    }

    /// Parses a `grpc-timeout` value ("1..8 digits" then one of H M S m u n) into nanoseconds.
    static func parseTimeout(_ value: [UInt8]) -> UInt64? {
        guard value.count >= 2, value.count <= 9 else { return nil }
        var amount: UInt64 = 0
        for digit in value.dropLast() {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + UInt64(digit - UInt8(ascii: "0"))
        }
        let unit: UInt64
        switch value.last! {
        case UInt8(ascii: "H"): unit = 3_600_000_000_000
        case UInt8(ascii: "M"): unit = 60_000_000_000
        case UInt8(ascii: "S"): unit = 1_000_000_000
        case UInt8(ascii: "m"): unit = 1_000_000
        case UInt8(ascii: "u"): unit = 1_000
        case UInt8(ascii: "n"): unit = 1
        default: return nil
        }
        let (product, overflow) = amount.multipliedReportingOverflow(by: unit)
        return overflow ? UInt64.max : product
    }
}

/// Reassembles length-prefixed messages from DATA payloads as they arrive.
struct GRPCMessageDeframer {
    enum OnMessage: Equatable {
        /// A complete message.
        case message([UInt8])
        /// The compressed flag is set; we accept only identity.
        case compressed
        /// The announced length exceeds the limit.
        case tooLarge(announced: Int)
    }

    let maxMessageSize: Int
    private var buffer: [UInt8] = []
    private var consumed = 0

    init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// Whether a partial message is buffered (a stream that ends now is malformed).
    var hasPartialMessage: Bool { buffer.count > consumed }

    /// Feeds `bytes` and returns what became complete (stopping at the first error).
    mutating func append(_ bytes: UnsafeRawBufferPointer) -> [OnMessage] {
        buffer.append(contentsOf: bytes)
        var out: [OnMessage] = []
        while buffer.count - consumed >= GRPCFraming.prefixLength {
            let flag = buffer[consumed]
            let length =
                Int(buffer[consumed + 1]) << 24 | Int(buffer[consumed + 2]) << 16 | Int(buffer[consumed + 3]) << 8
                | Int(buffer[consumed + 4])
            if flag & 1 != 0 {
                out.append(.compressed)
                return out
            }
            if length > maxMessageSize {
                out.append(.tooLarge(announced: length))
                return out
            }
            guard buffer.count - consumed - GRPCFraming.prefixLength >= length else { break }
            let start = consumed + GRPCFraming.prefixLength
            out.append(.message(Array(buffer[start..<(start + length)])))
            consumed = start + length
        }
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 65536)
            consumed = 0
        } else if consumed > 65536 {
            buffer.removeFirst(consumed)
            consumed = 0
        }
        return out
    }
}
