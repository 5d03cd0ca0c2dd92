/// A gRPC status: one of the 17 codes plus a human-readable message.
///
/// Handlers throw it (or anything `GRPCStatusConvertible`) to end a call with that status; the
/// transport sends it in the `grpc-status` / `grpc-message` trailers, the message percent-encoded.
package struct GRPCStatus: Error, Sendable, Hashable, CustomStringConvertible {
    /// A status code, 0 through 16, as in gRPC's `statuscodes.md`.
    package struct Code: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        package let rawValue: Int
        package init?(rawValue: Int) {
            guard (0...16).contains(rawValue) else { return nil }
            self.rawValue = rawValue
        }
        private init(_ value: Int) { self.rawValue = value }

        package static let ok = Code(0)
        package static let cancelled = Code(1)
        package static let unknown = Code(2)
        package static let invalidArgument = Code(3)
        package static let deadlineExceeded = Code(4)
        package static let notFound = Code(5)
        package static let alreadyExists = Code(6)
        package static let permissionDenied = Code(7)
        package static let resourceExhausted = Code(8)
        package static let failedPrecondition = Code(9)
        package static let aborted = Code(10)
        package static let outOfRange = Code(11)
        package static let unimplemented = Code(12)
        package static let `internal` = Code(13)
        package static let unavailable = Code(14)
        package static let dataLoss = Code(15)
        package static let unauthenticated = Code(16)

        private static let names = [
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
            "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
            "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
        ]
        package var description: String { Self.names[rawValue] }
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    package static let ok = GRPCStatus(.ok)

    package var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }

    /// The message as sent in `grpc-message`: bytes outside printable ASCII, and `%`, become `%XX`.
    package var percentEncodedMessage: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.utf8.count)
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        for byte in message.utf8 {
            if byte >= 0x20 && byte <= 0x7E && byte != UInt8(ascii: "%") {
                out.append(byte)
            } else {
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            }
        }
        return out
    }

    /// Decodes a percent-encoded `grpc-message` value (invalid escapes are kept as they are).
    package static func percentDecoded(_ bytes: some Collection<UInt8>) -> String {
        let input = Array(bytes)
        var out: [UInt8] = []
        out.reserveCapacity(input.count)
        var i = 0
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while i < input.count {
            if input[i] == UInt8(ascii: "%"), i + 2 < input.count,
                let hi = hexValue(input[i + 1]), let lo = hexValue(input[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(input[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// An error that knows which gRPC status it should become (STYLE.md convention 11).
///
/// The router maps a thrown error as: `GRPCStatus` as is, then `GRPCStatusConvertible`, then
/// `UNKNOWN` (logging the cause); `CancellationError` becomes `CANCELLED`.
package protocol GRPCStatusConvertible: Error {
    var grpcStatus: GRPCStatus { get }
}

extension GRPCStatus: GRPCStatusConvertible {
    package var grpcStatus: GRPCStatus { self }
}
