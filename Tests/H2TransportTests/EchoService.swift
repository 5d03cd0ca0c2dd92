import H2Transport
import Synchronization

/// `h2test.v1.EchoRequest` / `EchoReply` of Interop/h2/echo.proto, encoded by hand: the transport
/// tests must not depend on the Proto module, and five fields are easy to do on bytes.
struct EchoRequest: Equatable {
    var text = ""
    var status: Int = 0
    var sleepMilliseconds: Int = 0
    var count: Int = 0
    var payload: [UInt8] = []
}

struct EchoReply: Equatable {
    var text = ""
    var payload: [UInt8] = []
    var index: Int = 0
}

enum MiniProto {
    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func appendBytes(_ field: Int, _ bytes: [UInt8], to out: inout [UInt8]) {
        guard !bytes.isEmpty else { return }
        appendVarint(UInt64(field << 3 | 2), to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    static func appendInt(_ field: Int, _ value: Int, to out: inout [UInt8]) {
        guard value != 0 else { return }
        appendVarint(UInt64(field << 3), to: &out)
        appendVarint(UInt64(bitPattern: Int64(value)), to: &out)
    }

    /// Calls `body(field, varint, bytes)` for each field; nil on malformed input.
    static func parse(_ bytes: [UInt8], _ body: (Int, UInt64, [UInt8]) -> Void) -> Bool {
        var i = 0
        func varint() -> UInt64? {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count, shift < 64 {
                let b = bytes[i]
                i += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
            return nil
        }
        while i < bytes.count {
            guard let key = varint() else { return false }
            switch key & 7 {
            case 0:
                guard let v = varint() else { return false }
                body(Int(key >> 3), v, [])
            case 2:
                guard let n = varint(), i + Int(n) <= bytes.count else { return false }
                body(Int(key >> 3), 0, Array(bytes[i..<(i + Int(n))]))
                i += Int(n)
            default:
                return false
            }
        }
        return true
    }
}

extension EchoRequest {
    init(decoding bytes: [UInt8]) throws {
        var r = EchoRequest()
        let ok = MiniProto.parse(bytes) { field, v, b in
            switch field {
            case 1: r.text = String(decoding: b, as: UTF8.self)
            case 2: r.status = Int(Int32(truncatingIfNeeded: v))
            case 3: r.sleepMilliseconds = Int(Int32(truncatingIfNeeded: v))
            case 4: r.count = Int(Int32(truncatingIfNeeded: v))
            case 5: r.payload = b
            default: break
            }
        }
        guard ok else { throw GRPCStatus(.invalidArgument, "malformed EchoRequest") }
        self = r
    }

    var encoded: [UInt8] {
        var out: [UInt8] = []
        MiniProto.appendBytes(1, Array(text.utf8), to: &out)
        MiniProto.appendInt(2, status, to: &out)
        MiniProto.appendInt(3, sleepMilliseconds, to: &out)
        MiniProto.appendInt(4, count, to: &out)
        MiniProto.appendBytes(5, payload, to: &out)
        return out
    }
}

extension EchoReply {
    init(decoding bytes: [UInt8]) {
        var r = EchoReply()
        _ = MiniProto.parse(bytes) { field, v, b in
            switch field {
            case 1: r.text = String(decoding: b, as: UTF8.self)
            case 2: r.payload = b
            case 3: r.index = Int(Int32(truncatingIfNeeded: v))
            default: break
            }
        }
        self = r
    }

    var encoded: [UInt8] {
        var out: [UInt8] = []
        MiniProto.appendBytes(1, Array(text.utf8), to: &out)
        MiniProto.appendBytes(2, payload, to: &out)
        MiniProto.appendInt(3, index, to: &out)
        return out
    }
}

/// What the echo handlers observed, for tests that check the server side (cancellation).
final class EchoObservations: Sendable {
    private let state = Mutex<[String: String]>([:])

    func record(_ text: String, _ outcome: String) {
        state.withLock { $0[text] = outcome }
    }

    func outcome(of text: String) -> String? {
        state.withLock { $0[text] }
    }

    /// Waits up to `seconds` for an outcome to be recorded for `text`.
    func waitForOutcome(of text: String, seconds: Double = 5) async -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let outcome = outcome(of: text) { return outcome }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }
}

enum EchoService {
    static let name = "h2test.v1.Echo"

    /// Sleeps `ms`, recording "cancelled" for `text` if the call is cancelled meanwhile.
    private static func sleep(_ ms: Int, _ text: String, _ observations: EchoObservations) async throws {
        guard ms > 0 else { return }
        do {
            try await Task.sleep(for: .milliseconds(ms))
        } catch {
            observations.record(text, "cancelled")
            throw error
        }
    }

    private static func fail(_ request: EchoRequest) throws {
        guard request.status != 0 else { return }
        throw GRPCStatus(GRPCStatus.Code(rawValue: request.status) ?? .unknown, request.text)
    }

    static func register(in router: inout GRPCRouter, observations: EchoObservations) {
        router.register(
            "/\(name)/Unary",
            .unary { _, bytes in
                let request = try EchoRequest(decoding: bytes)
                try await sleep(request.sleepMilliseconds, request.text, observations)
                try fail(request)
                observations.record(request.text, "completed")
                return EchoReply(text: request.text, payload: request.payload).encoded
            }
        )
        router.register(
            "/\(name)/ServerStream",
            .serverStreaming { _, bytes, writer in
                let request = try EchoRequest(decoding: bytes)
                for index in 0..<request.count {
                    if index > 0 { try await sleep(request.sleepMilliseconds, request.text, observations) }
                    do {
                        try await writer.write(
                            EchoReply(text: request.text, payload: request.payload, index: index).encoded
                        )
                    } catch {
                        observations.record(request.text, "cancelled")
                        throw error
                    }
                }
                try fail(request)
                observations.record(request.text, "completed")
            }
        )
        router.register(
            "/\(name)/ClientStream",
            .clientStreaming { _, requests in
                var texts: [String] = []
                var payload: [UInt8] = []
                for try await bytes in requests {
                    let request = try EchoRequest(decoding: bytes)
                    texts.append(request.text)
                    payload += request.payload
                }
                return EchoReply(text: texts.joined(separator: ","), payload: payload, index: texts.count).encoded
            }
        )
        router.register(
            "/\(name)/Bidi",
            .bidiStreaming { _, requests, writer in
                var index = 0
                for try await bytes in requests {
                    let request = try EchoRequest(decoding: bytes)
                    try fail(request)
                    try await writer.write(
                        EchoReply(text: request.text, payload: request.payload, index: index).encoded
                    )
                    index += 1
                }
            }
        )
    }
}
