import CNghttp2
import Foundation
import TestSupport

/// One HTTP/2 frame as it appears on the wire.
struct H2Frame: Equatable, CustomStringConvertible {
    var type: UInt8
    var flags: UInt8
    var streamID: UInt32
    var payload: [UInt8]

    static let data: UInt8 = 0, headers: UInt8 = 1, rstStream: UInt8 = 3, settings: UInt8 = 4, ping: UInt8 = 6,
        goAway: UInt8 = 7, windowUpdate: UInt8 = 8, continuation: UInt8 = 9
    static let endStream: UInt8 = 1, endHeaders: UInt8 = 4, ack: UInt8 = 1

    var bytes: [UInt8] {
        let n = payload.count
        return [
            UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags,
            UInt8(streamID >> 24 & 0x7F), UInt8(streamID >> 16 & 0xFF), UInt8(streamID >> 8 & 0xFF),
            UInt8(streamID & 0xFF),
        ] + payload
    }

    /// The error code of a GOAWAY or RST_STREAM frame.
    var errorCode: UInt32? {
        let offset: Int
        switch type {
        case H2Frame.goAway: offset = 4
        case H2Frame.rstStream: offset = 0
        default: return nil
        }
        guard payload.count >= offset + 4 else { return nil }
        return payload[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    var description: String { "frame(type \(type), flags \(flags), stream \(streamID), \(payload.count) bytes)" }

    /// HEADERS built from literal fields (HPACK "literal without indexing, new name", no Huffman).
    static func headers(stream: UInt32, _ fields: [(String, String)], endStream: Bool) -> H2Frame {
        var block: [UInt8] = []
        for (name, value) in fields {
            block.append(0)
            appendLength(name.utf8.count, to: &block)
            block += Array(name.utf8)
            appendLength(value.utf8.count, to: &block)
            block += Array(value.utf8)
        }
        return H2Frame(
            type: headers,
            flags: endHeaders | (endStream ? H2Frame.endStream : 0),
            streamID: stream,
            payload: block
        )
    }

    /// An HPACK string length with a 7-bit prefix (H = 0).
    static func appendLength(_ n: Int, to out: inout [UInt8]) {
        if n < 127 {
            out.append(UInt8(n))
            return
        }
        out.append(127)
        var rest = n - 127
        while rest >= 128 {
            out.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    static func data(stream: UInt32, _ payload: [UInt8], endStream: Bool) -> H2Frame {
        H2Frame(type: data, flags: endStream ? H2Frame.endStream : 0, streamID: stream, payload: payload)
    }

    /// A gRPC message with its 5-byte prefix.
    static func grpcMessage(_ message: [UInt8], compressed: Bool = false) -> [UInt8] {
        let n = message.count
        return [
            compressed ? 1 : 0, UInt8(n >> 24 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF),
        ]
            + message
    }

    static let clientPreface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// The request headers a gRPC client sends, with overrides (`nil` value drops a field).
    static func grpcRequest(
        stream: UInt32 = 1,
        path: String = "/h2test.v1.Echo/Unary",
        overrides: [String: String?] = [:],
        extra: [(String, String)] = [],
        endStream: Bool = false
    ) -> H2Frame {
        var fields: [(String, String?)] = [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "localhost"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ]
        for (name, value) in overrides {
            if let index = fields.firstIndex(where: { $0.0 == name }) {
                fields[index].1 = value
            } else {
                fields.append((name, value))
            }
        }
        let present = fields.compactMap { field in field.1.map { (field.0, $0) } } + extra
        return headers(stream: stream, present, endStream: endStream)
    }
}

/// A blocking HTTP/2 client speaking raw frames over a Unix socket, with an HPACK decoder for replies.
/// `@unchecked Sendable`: a test drives it from one task at a time; blocking reads run on a
/// separate thread (`offPool`) so they never hold a Swift concurrency thread the server needs.
final class RawHTTP2Connection: @unchecked Sendable {
    let fd: CInt
    private var inflater: OpaquePointer?
    private var buffer: [UInt8] = []
    private(set) var sawEOF = false

    init(unixPath: String, readTimeoutSeconds: Int = 5) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw FixtureError("socket failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: unixPath.utf8)
            raw[unixPath.utf8.count] = 0
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw FixtureError("connect(\(unixPath)) failed: errno \(errno)")
        }
        var timeout = timeval(tv_sec: readTimeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        nghttp2_hd_inflate_new(&inflater)
    }

    deinit {
        if let inflater {
            nghttp2_hd_inflate_del(inflater)
            close(fd)
        }
    }

    /// Sets how long a read waits before giving up.
    func setReadTimeout(milliseconds: Int) {
        var timeout = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes {
                Foundation.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { return }
            offset += n
        }
    }

    func send(_ frames: H2Frame...) {
        send(frames.flatMap(\.bytes))
    }

    /// Preface, empty SETTINGS, and the ACK of the server's SETTINGS once it arrives.
    func handshake() {
        send(H2Frame.clientPreface + H2Frame(type: H2Frame.settings, flags: 0, streamID: 0, payload: []).bytes)
    }

    /// Reads the next frame; `nil` on EOF or timeout.
    func readFrameBlocking() -> H2Frame? {
        while true {
            if buffer.count >= 9 {
                let length = Int(buffer[0]) << 16 | Int(buffer[1]) << 8 | Int(buffer[2])
                if buffer.count >= 9 + length {
                    let frame = H2Frame(
                        type: buffer[3],
                        flags: buffer[4],
                        streamID: buffer[5..<9].reduce(0) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF,
                        payload: Array(buffer[9..<(9 + length)])
                    )
                    buffer.removeFirst(9 + length)
                    return frame
                }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            // A close with our unread bytes in its buffer reaches us as ECONNRESET rather than EOF.
            if n == 0 || (n < 0 && errno == ECONNRESET) { sawEOF = true }
            if n <= 0 { return nil }
            buffer += chunk[0..<n]
        }
    }

    /// Reads frames until `stop` says so (inclusive), EOF or timeout. SETTINGS frames from the
    /// server are acknowledged as they come.
    func readFramesBlocking(until stop: (H2Frame) -> Bool = { _ in false }) -> [H2Frame] {
        var frames: [H2Frame] = []
        while let frame = readFrameBlocking() {
            if frame.type == H2Frame.settings && frame.flags & H2Frame.ack == 0 {
                send(H2Frame(type: H2Frame.settings, flags: H2Frame.ack, streamID: 0, payload: []).bytes)
            }
            frames.append(frame)
            if stop(frame) { break }
        }
        return frames
    }

    /// Frames of `stream` until it ends (END_STREAM or RST_STREAM), skipping connection-level ones.
    func readStreamBlocking(_ stream: UInt32) -> [H2Frame] {
        readFramesBlocking { frame in
            frame.streamID == stream && (frame.flags & H2Frame.endStream != 0 || frame.type == H2Frame.rstStream)
        }.filter { $0.streamID == stream }
    }

    func readFrame() async -> H2Frame? { await offPool { self.readFrameBlocking() } }

    func readFrames(until stop: @escaping @Sendable (H2Frame) -> Bool = { _ in false }) async -> [H2Frame] {
        await offPool { self.readFramesBlocking(until: stop) }
    }

    func readStream(_ stream: UInt32) async -> [H2Frame] { await offPool { self.readStreamBlocking(stream) } }

    /// Decodes a HEADERS payload (no padding or priority: our server sends neither).
    func decodeHeaders(_ frame: H2Frame) -> [String] {
        var fields: [String] = []
        var input = frame.payload
        input.withUnsafeMutableBufferPointer { raw in
            var offset = 0
            while true {
                var nv = nghttp2_nv()
                var flags: Int32 = 0
                let consumed = nghttp2_hd_inflate_hd2(
                    inflater,
                    &nv,
                    &flags,
                    raw.baseAddress! + offset,
                    raw.count - offset,
                    1
                )
                if consumed < 0 {
                    fields.append("<hpack error \(consumed)>")
                    return
                }
                offset += consumed
                if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                    let name = String(decoding: UnsafeBufferPointer(start: nv.name, count: nv.namelen), as: UTF8.self)
                    let value = String(
                        decoding: UnsafeBufferPointer(start: nv.value, count: nv.valuelen),
                        as: UTF8.self
                    )
                    fields.append("\(name): \(value)")
                }
                if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 {
                    nghttp2_hd_inflate_end_headers(inflater)
                    return
                }
                if consumed == 0 && offset >= raw.count { return }
            }
        }
        return fields
    }
}

/// Runs blocking work on its own thread and awaits the result.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}
