internal import CNghttp2
internal import Logging
internal import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// One gRPC call on one HTTP/2 stream: its state machine and the handles of its handler. Confined to the loop
/// thread. The machine decides; `Connection` does what it answers, on nghttp2 and on these handles.
final class H2Stream {
    let id: Int32
    var machine: ServerStreamStateMachine
    /// The handler's task, once started.
    var task: Task<Void, Never>?
    /// A streaming handler's request messages, while the request is open.
    var requests: AsyncThrowingStream<[UInt8], any Error>.Continuation?
    /// A streaming handler's request flow control, shared with its request stream.
    var flow: RequestFlow?
    /// Handler writes waiting for the body to drain below the high-water mark.
    var writers: [CheckedContinuation<Bool, Never>] = []

    init(id: Int32, configuration: GRPCServer.Configuration) {
        self.id = id
        self.machine = ServerStreamStateMachine(
            maxMessageSize: configuration.maxReceiveMessageSize,
            maxHeaderListSize: configuration.maxHeaderListSize,
            outputHighWater: configuration.streamOutputHighWater
        )
    }

    /// The final status is decided (or the stream is gone): handler output is ignored.
    var finished: Bool { machine.isFinished }

    func resumeWriters(_ accepted: Bool) {
        let waiting = writers
        writers.removeAll()
        for writer in waiting { writer.resume(returning: accepted) }
    }

    /// Ends the handler side: cancels the task, fails the request stream and any waiting writer.
    func cancelHandler() {
        task?.cancel()
        requests?.finish(throwing: CancellationError())
        requests = nil
        resumeWriters(false)
    }
}

/// One accepted socket and its nghttp2 server session. Confined to the loop thread.
///
/// nghttp2 never sees the socket (STYLE.md convention 7): bytes read go through `mem_recv`, bytes
/// to write come from `mem_send`, and a slow reader is bounded by `outputBufferLimit` (reading stops
/// while the backlog is above it) and by the per-stream high-water mark of `GRPCResponseWriter`.
final class Connection {
    let id: UInt64
    let token: UInt64
    /// Borrowed view of `fd`'s descriptor, valid until `close()`.
    let rawFD: CInt
    private var fd: OwnedFD?
    unowned let loop: EventLoop
    var session: OpaquePointer?
    var streams: [Int32: H2Stream] = [:]
    private var outbuf: [UInt8] = []
    private var outOffset = 0
    private var interest: UInt32 = 0
    /// Calls with one request message (unary, server streaming) whose request ended during the current
    /// `mem_recv`; `startReadyCalls` starts them after it.
    private var readyCalls: [(stream: H2Stream, request: [UInt8])] = []
    /// Inside `nghttp2_session_mem_recv`, where nghttp2 forbids `mem_send`.
    private var receiving = false
    var isDirty = false
    private(set) var isClosed = false
    let logger: Logger
    /// No socket: what would be sent is kept in `memoryOutput` (`GRPCMemoryConnection`).
    let inMemory: Bool
    var memoryOutput: [UInt8] = []

    init(id: UInt64, token: UInt64, fd: consuming OwnedFD, loop: EventLoop, logger: Logger) {
        self.id = id
        self.token = token
        self.rawFD = fd.withRawDescriptor { $0 }
        self.fd = .some(fd)
        self.loop = loop
        self.logger = logger
        self.inMemory = false
    }

    /// A connection without a socket, fed by `receive(_:)`; its output collects in `memoryOutput`.
    init(inMemoryID id: UInt64, loop: EventLoop, logger: Logger) {
        self.id = id
        self.token = id
        self.rawFD = -1
        self.fd = nil
        self.loop = loop
        self.logger = logger
        self.inMemory = true
    }

    deinit {
        assert(session == nil, "Connection dropped without close()")
    }

    /// Creates the session and queues the server's SETTINGS.
    func start() -> Bool {
        session = makeServerSession(owner: self, settings: loop.configuration)
        return session != nil
    }

    // MARK: Socket I/O

    /// Reads what the socket has and feeds it to nghttp2.
    func readable() {
        for _ in 0..<8 {
            let count: Int?
            do {
                count = try loop.readBuffer.withUnsafeMutableBytes { buffer throws(SystemCallError) in
                    try syscall("read", nonBlocking: true) { Glibc.read(rawFD, buffer.baseAddress, buffer.count) }
                }
            } catch {
                logger.debug("read failed", metadata: ["error": "\(error)"])
                close()
                return
            }
            guard let count else { break }
            if count == 0 {
                close()
                return
            }
            let accepted = loop.readBuffer.withUnsafeBytes { feed(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
            guard accepted else { return }
            startReadyCalls()
            if isClosed { return }
            if count < loop.readBuffer.count { break }
        }
        markDirty()
    }

    /// Feeds bytes from the peer to nghttp2 and starts the calls they complete; `false` when they broke the
    /// session, which is then closed. The socket-less entry (`GRPCMemoryConnection`); `readable()` is the other.
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard !isClosed, feed(bytes) else { return false }
        startReadyCalls()
        return !isClosed
    }

    /// Hands bytes to nghttp2; `false` when they broke the session, which is then closed (after a last flush of
    /// the GOAWAY nghttp2 queued).
    private func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return true }
        receiving = true
        let consumed = nghttp2_session_mem_recv(session, base.assumingMemoryBound(to: UInt8.self), bytes.count)
        receiving = false
        if consumed < 0 {
            logger.debug(
                "HTTP/2 session error",
                metadata: ["error": "\(String(cString: nghttp2_strerror(Int32(consumed))))"]
            )
            // Flush whatever nghttp2 queued (a GOAWAY) and hang up.
            readyCalls.removeAll()
            flush(finalAttempt: true)
            close()
            return false
        }
        return true
    }

    /// Starts the single-request calls of one read in arrival order. A handler that answers inline has posted its
    /// answer by the time `spawnHandler` returns; it is sent before the next handler starts, so a client with
    /// several calls in flight decodes the first answer while the server computes the others. (Started from
    /// nghttp2's callbacks, every answer of the read waited for the last handler. With 8 grpc-go callers of
    /// the daemon's Get, 20 programs: 21.7-22.5k calls/s, p50 341-347 µs before; 24.4-25.4k, 257-283 µs after.)
    /// The last call's answer goes out with the loop's usual flush.
    private func startReadyCalls() {
        guard !readyCalls.isEmpty else { return }
        let calls = readyCalls
        readyCalls.removeAll(keepingCapacity: true)
        for (index, call) in calls.enumerated() {
            guard !isClosed else { return }
            guard !call.stream.finished, streams[call.stream.id] === call.stream else { continue }
            spawnHandler(call.stream, request: call.request, requests: nil)
            if index < calls.count - 1 {
                loop.drainInbox()
                flush()
            }
        }
    }

    func markDirty() {
        if !isDirty && !isClosed {
            isDirty = true
            loop.dirty.append(self)
        }
    }

    /// Moves nghttp2's output to the socket, updates epoll interest, and closes a finished session.
    func flush(finalAttempt: Bool = false) {
        isDirty = false
        guard !isClosed, let session else { return }
        let limit = loop.configuration.outputBufferLimit
        while outbuf.count - outOffset < limit {
            var data: UnsafePointer<UInt8>?
            let n = nghttp2_session_mem_send(session, &data)
            if n < 0 {
                logger.debug("nghttp2_session_mem_send failed", metadata: ["code": "\(n)"])
                close()
                return
            }
            if n == 0 { break }
            // Gather every frame nghttp2 has ready and write them with one send(): a reply's
            // HEADERS, DATA and trailers reach the peer in one segment, waking it once.
            outbuf.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n))
        }
        if outbuf.count > outOffset {
            let pending = outbuf.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[outOffset...]) }
            guard let written = write(pending) else { return }
            outOffset += written
            if outOffset == outbuf.count {
                outbuf.removeAll(keepingCapacity: outbuf.capacity <= 1 << 16)
                outOffset = 0
            }
        }
        if finalAttempt { return }
        let backlog = outbuf.count - outOffset
        if backlog == 0 && nghttp2_session_want_read(session) == 0 && nghttp2_session_want_write(session) == 0 {
            close()
            return
        }
        var wanted: UInt32 = 0
        if backlog < limit { wanted |= EPOLLIN.rawValue }
        if backlog > 0 || nghttp2_session_want_write(session) != 0 { wanted |= EPOLLOUT.rawValue }
        if wanted != interest && !inMemory {
            interest = wanted
            loop.modify(fd: rawFD, token: token, events: wanted)
        }
    }

    /// Writes as much of `bytes` as the socket takes; `nil` when the connection had to be closed.
    private func write(_ bytes: UnsafeRawBufferPointer) -> Int? {
        if inMemory {
            memoryOutput.append(contentsOf: bytes)
            return bytes.count
        }
        var offset = 0
        while offset < bytes.count {
            do {
                let n = try syscall("send", nonBlocking: true) {
                    Glibc.send(rawFD, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
                }
                guard let n else { break }
                offset += n
            } catch {
                logger.debug("send failed", metadata: ["error": "\(error)"])
                close()
                return nil
            }
        }
        return offset
    }

    /// Tears the connection down: cancels every handler, frees the session, closes the socket.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        let open = streams
        streams.removeAll()
        for stream in open.values { abandon(stream) }
        nghttp2_session_del(session)
        session = nil
        loop.remove(connection: self)
        fd = nil
    }

    /// Ends a stream's handler side without sending anything; `true` when the call was still live.
    @discardableResult
    private func abandon(_ stream: H2Stream) -> Bool {
        let closing = stream.machine.closed()
        stream.cancelHandler()
        if closing.endsCall { loop.rpcEnded() }
        return closing.wasLive
    }

    /// Sends GOAWAY naming the last stream we will process.
    func sendGoAway() {
        guard let session else { return }
        _ = nghttp2_submit_goaway(
            session,
            UInt8(NGHTTP2_FLAG_NONE.rawValue),
            nghttp2_session_get_last_proc_stream_id(session),
            NGHTTP2_NO_ERROR.rawValue,
            nil,
            0
        )
        markDirty()
    }

    // MARK: nghttp2 callbacks (via Nghttp2Callbacks.swift)

    func onBeginHeaders(streamID: Int32) {
        streams[streamID] = H2Stream(id: streamID, configuration: loop.configuration)
    }

    func onHeader(streamID: Int32, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let stream = streams[streamID] else { return true }
        return stream.machine.receivedHeaderField(name: name, value: value) == .accept
    }

    func onFrameRecv(type: UInt8, flags: UInt8, streamID: Int32, isRequestHeaders: Bool) {
        guard let stream = streams[streamID] else { return }
        let isHeaders = type == UInt8(NGHTTP2_HEADERS.rawValue)
        guard isHeaders || type == UInt8(NGHTTP2_DATA.rawValue) else { return }
        if isHeaders && isRequestHeaders {
            startRequest(stream)
        }
        if flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0 {
            endOfRequest(stream)
        }
    }

    func onDataChunk(streamID: Int32, _ bytes: UnsafeRawBufferPointer) {
        guard let stream = streams[streamID] else {
            _ = nghttp2_session_consume(session, streamID, bytes.count)
            return
        }
        switch stream.machine.receivedData(bytes) {
        case .consume:
            _ = nghttp2_session_consume(session, streamID, bytes.count)
        case .deliver(let messages):
            for case .message(let message) in messages {
                stream.flow?.queuedMessage(message.count)
                stream.requests?.yield(message)
            }
            if let flow = stream.flow, !flow.mayConsume() {
                _ = nghttp2_session_consume_connection(session, bytes.count)
                stream.machine.withholdWindow(bytes.count)
            } else {
                _ = nghttp2_session_consume(session, streamID, bytes.count)
            }
        case .fail(let send):
            stream.cancelHandler()
            perform(send, on: stream)
            _ = nghttp2_session_consume(session, streamID, bytes.count)
        case .reset(let code):
            _ = nghttp2_session_consume(session, streamID, bytes.count)
            resetStream(stream, code)
        }
    }

    func onStreamClose(streamID: Int32, errorCode: UInt32) {
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        if abandon(stream) && errorCode != NGHTTP2_NO_ERROR.rawValue {
            logger.debug("stream reset by peer", metadata: ["stream": "\(streamID)", "code": "\(errorCode)"])
        }
    }

    func onFrameSend(type: UInt8, flags: UInt8, streamID: Int32) {
        // Our END_STREAM went out while the client is still sending: tell it to stop (RFC 9113 §8.1).
        guard flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0,
            type == UInt8(NGHTTP2_HEADERS.rawValue) || type == UInt8(NGHTTP2_DATA.rawValue),
            let stream = streams[streamID], stream.machine.sentEndOfStream()
        else { return }
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID, NGHTTP2_NO_ERROR.rawValue)
    }

    func readResponseData(
        streamID: Int32,
        into buffer: UnsafeMutableRawBufferPointer,
        flags: UnsafeMutablePointer<UInt32>
    ) -> Int {
        guard let stream = streams[streamID] else { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
        let read = stream.machine.readBody(into: buffer)
        if read.wakeWriters && !stream.writers.isEmpty { stream.resumeWriters(true) }
        switch read.then {
        case .more:
            return read.count
        case .trailers(let status, let acceptEncoding):
            flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue | NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
            submitTrailers(streamID: streamID, status: status, acceptEncoding: acceptEncoding)
            return read.count
        case .deferred:
            return Int(NGHTTP2_ERR_DEFERRED.rawValue)
        case .noBody:
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
    }

    // MARK: gRPC request handling

    private func startRequest(_ stream: H2Stream) {
        switch stream.machine.receivedRequestHeaders(router: loop.router, now: .now) {
        case .ignore:
            return
        case .reject(let send):
            perform(send, on: stream)
        case .awaitRequest(let timeout):
            callStarted(stream, timeout: timeout)
        case .startStreaming(let timeout):
            callStarted(stream, timeout: timeout)
            let (requests, continuation) = AsyncThrowingStream<[UInt8], any Error>.makeStream()
            let flow = RequestFlow(highWater: loop.configuration.streamInputHighWater)
            stream.requests = continuation
            stream.flow = flow
            let requestStream = GRPCRequestStream(
                base: requests,
                flow: flow,
                loop: loop,
                key: StreamKey(connection: id, stream: stream.id)
            )
            spawnHandler(stream, request: [], requests: requestStream)
        }
    }

    /// A routed call: counted in flight, its deadline armed.
    private func callStarted(_ stream: H2Stream, timeout: UInt64?) {
        if let timeout {
            loop.addDeadline(monotonicNanoseconds() &+ timeout, StreamKey(connection: id, stream: stream.id))
        }
        loop.rpcStarted()
    }

    private func endOfRequest(_ stream: H2Stream) {
        switch stream.machine.receivedEndOfStream() {
        case .nothing:
            return
        case .startHandler(let request):
            if receiving && loop.configuration.handlerStart == .inline {
                readyCalls.append((stream, request))
            } else {
                spawnHandler(stream, request: request, requests: nil)
            }
        case .finishRequests:
            stream.requests?.finish()
            stream.requests = nil
        case .fail(let send):
            stream.cancelHandler()
            perform(send, on: stream)
        case .reset(let code):
            resetStream(stream, code)
        }
    }

    private func spawnHandler(_ stream: H2Stream, request: [UInt8], requests: GRPCRequestStream?) {
        guard let call = stream.machine.call else { return }
        let method = call.method
        let context = call.context
        let loop = self.loop
        let key = StreamKey(connection: id, stream: stream.id)
        let writer = GRPCResponseWriter(loop: loop, key: key)
        // The handler starts on the loop thread and runs there until its first real suspension (an
        // actor hop, a sleep, a write that waits): a handler that answers at once costs no thread
        // switch at all, and anything that waits continues on the global executor, off the loop.
        let run: @Sendable () async -> Void = {
            await runHandler(
                method,
                context: context,
                request: request,
                requests: requests,
                writer: writer,
                loop: loop,
                key: key
            )
        }
        switch loop.configuration.handlerStart {
        case .inline: stream.task = Task.immediate(operation: run)
        case .globalExecutor: stream.task = Task(operation: run)
        }
    }

    // MARK: Responses (called from the loop's inbox)

    /// A streaming handler caught up: grant the window withheld from its stream.
    func resumeReading(_ stream: H2Stream) {
        let window = stream.machine.handlerCaughtUp()
        guard window > 0 else { return }
        _ = nghttp2_session_consume_stream(session, stream.id, window)
        markDirty()
    }

    /// A handler is done: queue its last message (if any) and the trailers.
    func finish(_ stream: H2Stream, message: [UInt8]?, status: GRPCStatus) {
        guard case .send(let send) = stream.machine.handlerFinished(message: message, status: status) else { return }
        stream.requests?.finish()
        stream.requests = nil
        perform(send, on: stream)
    }

    /// A streaming handler wrote a message.
    func write(_ stream: H2Stream, message: [UInt8], continuation: CheckedContinuation<Bool, Never>) {
        guard case .queued(let send, let acceptNow) = stream.machine.handlerWrote(message) else {
            continuation.resume(returning: false)
            return
        }
        perform(send, on: stream)
        if acceptNow {
            continuation.resume(returning: true)
        } else {
            stream.writers.append(continuation)
        }
    }

    /// Ends a call early with `status` (deadline): the handler is cancelled.
    func fail(_ stream: H2Stream, _ status: GRPCStatus) {
        guard case .cancel(let send) = stream.machine.cancel(with: status) else { return }
        stream.cancelHandler()
        perform(send, on: stream)
    }

    /// Does what the state machine answered for the response.
    private func perform(_ send: ServerStreamStateMachine.Send, on stream: H2Stream) {
        switch send {
        case .nothing:
            break
        case .responseHeaders:
            var headers = HeaderBlock()
            headers.add(.status, GRPCHeaderValue.status200)
            headers.add(.contentType, GRPCHeaderValue.applicationGRPC)
            var provider = makeResponseDataProvider()
            headers.withNV { nva, count in
                _ = nghttp2_submit_response(session, stream.id, nva, count, &provider)
            }
        case .resumeBody:
            _ = nghttp2_session_resume_data(session, stream.id)
        case .trailersOnly(let httpStatus, let status, let acceptEncoding):
            var headers = HeaderBlock()
            headers.add(.status, httpStatus == 200 ? GRPCHeaderValue.status200 : Array(String(httpStatus).utf8))
            headers.add(.contentType, GRPCHeaderValue.applicationGRPC)
            headers.addStatus(status, acceptEncoding: acceptEncoding)
            headers.withNV { nva, count in
                _ = nghttp2_submit_response(session, stream.id, nva, count, nil)
            }
        }
        markDirty()
    }

    private func resetStream(_ stream: H2Stream, _ code: ServerStreamStateMachine.ResetCode) {
        _ = nghttp2_submit_rst_stream(session, UInt8(NGHTTP2_FLAG_NONE.rawValue), stream.id, code.rawValue)
        markDirty()
    }

    private func submitTrailers(streamID: Int32, status: GRPCStatus, acceptEncoding: Bool) {
        var trailers = HeaderBlock()
        trailers.addStatus(status, acceptEncoding: acceptEncoding)
        trailers.withNV { nva, count in
            _ = nghttp2_submit_trailer(session, streamID, nva, count)
        }
    }
}

/// Runs one handler to completion and posts its outcome to the loop.
private func runHandler(
    _ method: GRPCMethod,
    context: GRPCServerContext,
    request: [UInt8],
    requests: GRPCRequestStream?,
    writer: GRPCResponseWriter,
    loop: EventLoop,
    key: StreamKey
) async {
    do {
        switch method.body {
        case .unary(let handler):
            let response = try await handler(context, request)
            loop.post(.finish(key, response, .ok))
        case .serverStreaming(let handler):
            try await handler(context, request, writer)
            loop.post(.finish(key, nil, .ok))
        case .clientStreaming(let handler):
            let response = try await handler(context, requests!)
            loop.post(.finish(key, response, .ok))
        case .bidiStreaming(let handler):
            try await handler(context, requests!, writer)
            loop.post(.finish(key, nil, .ok))
        }
    } catch {
        let (status, unexpected) = grpcStatus(for: error)
        if unexpected {
            loop.logger.error("handler failed", metadata: ["rpc": "\(context.path)", "error": "\(error)"])
        }
        loop.post(.finish(key, nil, status))
    }
}

/// A header list laid out for `nghttp2_nv`: names and values in one buffer (nghttp2 copies them).
struct HeaderBlock {
    private var storage: [UInt8] = []
    private var fields: [(nameStart: Int, nameLength: Int, valueStart: Int, valueLength: Int)] = []

    mutating func add(_ name: GRPCHeader, _ value: String) {
        add(name, Array(value.utf8))
    }

    mutating func add(_ name: GRPCHeader, _ value: [UInt8]) {
        let nameStart = storage.count
        storage.append(contentsOf: name.rawValue.utf8)
        let valueStart = storage.count
        storage.append(contentsOf: value)
        fields.append((nameStart, valueStart - nameStart, valueStart, value.count))
    }

    mutating func addStatus(_ status: GRPCStatus, acceptEncoding: Bool) {
        add(.grpcStatus, String(status.code.rawValue))
        if !status.message.isEmpty { add(.grpcMessage, status.percentEncodedMessage) }
        if acceptEncoding { add(.grpcAcceptEncoding, GRPCHeaderValue.identity) }
    }

    mutating func withNV<R>(_ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
        let fields = self.fields
        return storage.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            let nva = fields.map { field in
                nghttp2_nv(
                    name: base + field.nameStart,
                    value: base + field.valueStart,
                    namelen: field.nameLength,
                    valuelen: field.valueLength,
                    flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                )
            }
            return nva.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
        }
    }
}
