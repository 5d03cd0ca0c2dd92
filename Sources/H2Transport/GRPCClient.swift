internal import CNghttp2
package import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// A blocking gRPC client for one unary call at a time over a Unix socket (the `bpfman` CLI's side).
///
/// One connection per client; every call is one HTTP/2 stream. The client session is nghttp2's, fed
/// through `mem_send`/`mem_recv` exactly like the server's. Not for concurrent use.
package final class GRPCUnaryClient {
    private let socket: OwnedFD
    private var fd: CInt { socket.rawValue }
    private var session: OpaquePointer?
    // The call in progress (the callbacks write here).
    fileprivate var body: [UInt8] = []
    fileprivate var bodyOffset = 0
    fileprivate var received: [UInt8] = []
    fileprivate var headers: [(String, String)] = []
    fileprivate var closedStream: Int32?
    fileprivate var resetCode: UInt32 = 0

    /// Connects to the Unix socket at `path`.
    /// - Parameter sendTimeout: how long a connect to a full listen queue, or a write to a full socket, may block
    ///   (`SO_SNDTIMEO`) before failing with `EAGAIN`: a server that stopped accepting or reading cannot hang the
    ///   client there either. nil blocks for as long as it takes.
    /// - Throws: `SystemCallError` naming `socket` or `connect` (e.g. ENOENT when no daemon listens there).
    package init(unixPath path: String, sendTimeout: Duration? = nil) throws(SystemCallError) {
        guard path.utf8.count <= ListenerFactory.maxUnixPathLength else {
            throw SystemCallError(function: "connect", errno: .nameTooLong, detail: path)
        }
        let raw = try syscall("socket") {
            Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }!
        socket = OwnedFD(taking: raw)
        if let sendTimeout {
            var value = timeval(
                tv_sec: Int(sendTimeout.components.seconds),
                tv_usec: Int(sendTimeout.components.attoseconds / 1_000_000_000_000)
            )
            setsockopt(raw, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        // A connect interrupted by a signal goes on in the background; it is not started again (connect(2)).
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected != 0 { throw SystemCallError(function: "connect", errno: .current, detail: path) }
        ignoreSIGPIPEOnce()
        session = makeClientSession(owner: self)
        if session == nil {
            throw SystemCallError(function: "nghttp2_session_client_new", errno: .outOfMemory)
        }
    }

    deinit {
        nghttp2_session_del(session)
    }

    /// Calls `path` (e.g. `/bpfman.v1.Bpfman/Get`) with one serialized request.
    /// - Parameter timeout: sent as `grpc-timeout`, which the server enforces, and kept here too: a server that
    ///   does not answer at all (stopped, wedged) ends the call when it runs out, with `ETIMEDOUT` from `poll`.
    /// - Returns: the serialized response, or the call's non-OK status.
    /// - Throws: `SystemCallError` when the connection fails or the deadline passes without an answer.
    package func call(
        _ path: String,
        _ request: [UInt8],
        timeout: Duration? = nil
    ) throws(SystemCallError)
        -> Result<[UInt8], GRPCStatus>
    {
        body = []
        GRPCFraming.appendFramed(request, to: &body)
        bodyOffset = 0
        received = []
        headers = []
        closedStream = nil
        resetCode = 0
        var block = HeaderBlock()
        block.add(.method, GRPCHeaderValue.post)
        block.add(.scheme, GRPCHeaderValue.http)
        block.add(.path, path)
        block.add(.authority, GRPCHeaderValue.localhost)
        block.add(.contentType, GRPCHeaderValue.applicationGRPC)
        block.add(.te, GRPCHeaderValue.trailers)
        if let timeout {
            let milliseconds = max(
                1,
                timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
            )
            block.add(.grpcTimeout, "\(milliseconds)m")
        }
        var provider = cnghttp2_data_provider(readRequestData)
        let stream = block.withNV { nva, count in nghttp2_submit_request(session, nil, nva, count, &provider, nil) }
        guard stream > 0 else { throw SystemCallError(function: "nghttp2_submit_request", errno: .invalidArgument) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        // The server's deadline plus a margin for its DEADLINE_EXCEEDED to arrive before ours.
        let deadline = timeout.map { ContinuousClock.now + $0 + .milliseconds(500) }
        while closedStream != stream {
            try flush()
            if let deadline { try waitReadable(until: deadline) }
            let n = try buffer.withUnsafeMutableBytes { buffer in
                valueOrErrno("read") { read(fd, buffer.baseAddress, buffer.count) }
            }.get()
            if n == 0 {
                throw SystemCallError(
                    function: "read",
                    errno: .connectionReset,
                    detail: "the daemon closed the connection"
                )
            }
            let consumed = buffer.withUnsafeBytes {
                nghttp2_session_mem_recv(session, $0.baseAddress!.assumingMemoryBound(to: UInt8.self), n)
            }
            if consumed < 0 { throw SystemCallError(function: "nghttp2_session_mem_recv", errno: .protocolError) }
        }
        return finish()
    }

    /// Waits until the socket has bytes (or an error) to read, or throws `ETIMEDOUT` at `deadline`.
    private func waitReadable(until deadline: ContinuousClock.Instant) throws(SystemCallError) {
        while true {
            let left = deadline - .now
            guard left > .zero else {
                throw SystemCallError(function: "poll", errno: .timedOut, detail: "no answer before the deadline")
            }
            let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // An interrupted poll is retried with the time left.
            if try syscall("poll", { poll(&entry, 1, CInt(clamping: max(1, milliseconds))) })! > 0 { return }
        }
    }

    private func flush() throws(SystemCallError) {
        while true {
            var data: UnsafePointer<UInt8>?
            let length = nghttp2_session_mem_send(session, &data)
            if length < 0 { throw SystemCallError(function: "nghttp2_session_mem_send", errno: .protocolError) }
            if length == 0 { return }
            var offset = 0
            while offset < length {
                offset += try syscall("write") { write(fd, data! + offset, length - offset) }!
            }
        }
    }

    private func finish() -> Result<[UInt8], GRPCStatus> {
        func header(_ name: GRPCHeader) -> String? { headers.last { $0.0 == name.rawValue }?.1 }
        guard let statusText = header(.grpcStatus), let number = Int(statusText),
            let code = GRPCStatus.Code(rawValue: number)
        else {
            if resetCode != 0 {
                return .failure(GRPCStatus(.unavailable, "stream reset by the daemon (HTTP/2 error \(resetCode))"))
            }
            return .failure(
                GRPCStatus(.internal, "response without grpc-status (HTTP status \(header(.status) ?? "none"))")
            )
        }
        guard code == .ok else {
            let message = header(.grpcMessage).map { GRPCStatus.percentDecoded(Array($0.utf8)) } ?? ""
            return .failure(GRPCStatus(code, message))
        }
        // One length-prefixed, uncompressed message.
        guard received.count >= 5, received[0] == 0 else {
            return .failure(GRPCStatus(.internal, "malformed response message"))
        }
        let length = Int(received[1]) << 24 | Int(received[2]) << 16 | Int(received[3]) << 8 | Int(received[4])
        guard received.count >= 5 + length else { return .failure(GRPCStatus(.internal, "truncated response message")) }
        return .success(Array(received[5..<(5 + length)]))
    }

    fileprivate func readBody(into buffer: UnsafeMutableRawBufferPointer, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let n = min(buffer.count, body.count - bodyOffset)
        body.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + bodyOffset, byteCount: n)
        }
        bodyOffset += n
        if bodyOffset == body.count { flags.pointee |= UInt32(NGHTTP2_DATA_FLAG_EOF.rawValue) }
        return n
    }
}

private func client(_ userData: UnsafeMutableRawPointer?) -> GRPCUnaryClient {
    Unmanaged<GRPCUnaryClient>.fromOpaque(userData!).takeUnretainedValue()
}

private func clientOnHeader(
    _ session: OpaquePointer?,
    _ frame: UnsafePointer<nghttp2_frame>?,
    _ name: UnsafePointer<UInt8>?,
    _ nameLength: Int,
    _ value: UnsafePointer<UInt8>?,
    _ valueLength: Int,
    _ flags: UInt8,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    let name = String(decoding: UnsafeBufferPointer(start: name, count: nameLength), as: UTF8.self)
    let value = String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self)
    client(userData).headers.append((name, value))
    return 0
}

private func clientOnData(
    _ session: OpaquePointer?,
    _ flags: UInt8,
    _ streamID: Int32,
    _ data: UnsafePointer<UInt8>?,
    _ length: Int,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    client(userData).received.append(contentsOf: UnsafeBufferPointer(start: data, count: length))
    return 0
}

private func clientOnStreamClose(
    _ session: OpaquePointer?,
    _ streamID: Int32,
    _ errorCode: UInt32,
    _ userData: UnsafeMutableRawPointer?
) -> CInt {
    let owner = client(userData)
    owner.closedStream = streamID
    owner.resetCode = errorCode
    return 0
}

private func readRequestData(
    _ session: OpaquePointer?,
    _ streamID: Int32,
    _ buffer: UnsafeMutablePointer<UInt8>?,
    _ length: Int,
    _ dataFlags: UnsafeMutablePointer<UInt32>?,
    _ source: UnsafeMutablePointer<nghttp2_data_source>?,
    _ userData: UnsafeMutableRawPointer?
) -> Int {
    guard let buffer, let dataFlags else { return Int(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue) }
    return client(userData).readBody(
        into: UnsafeMutableRawBufferPointer(start: buffer, count: length),
        flags: dataFlags
    )
}

private func makeClientSession(owner: GRPCUnaryClient) -> OpaquePointer? {
    var callbacks: OpaquePointer?
    guard nghttp2_session_callbacks_new(&callbacks) == 0 else { return nil }
    defer { nghttp2_session_callbacks_del(callbacks) }
    nghttp2_session_callbacks_set_on_header_callback(callbacks, clientOnHeader)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, clientOnData)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, clientOnStreamClose)
    var session: OpaquePointer?
    let userData = Unmanaged.passUnretained(owner).toOpaque()
    guard nghttp2_session_client_new(&session, callbacks, userData) == 0 else { return nil }
    var window = [
        nghttp2_settings_entry(
            settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
            value: 16 * 1024 * 1024
        )
    ]
    _ = nghttp2_submit_settings(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), &window, window.count)
    _ = nghttp2_session_set_local_window_size(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), 0, 64 * 1024 * 1024)
    return session
}
