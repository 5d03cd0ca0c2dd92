/// The gRPC life of one HTTP/2 stream on the server, as a value (STYLE.md convention 8).
///
/// Each event (a request header, the end of the request headers, a DATA chunk, END_STREAM, the stream's close,
/// a handler's message or result, a deadline, nghttp2 asking for body bytes) is a `mutating` method that moves
/// the state and returns an `On…` value saying what `Connection` must do: submit a response or trailers, reset the
/// stream, start or cancel the handler. The machine does no I/O, calls no nghttp2 function and owns no task or
/// continuation, so every transition tests as a value (`ServerStreamStateMachineTests`).
///
/// An event that cannot happen in the current state (nghttp2 filters most of them) gets a defined answer, never a
/// trap: client frames after the client's END_STREAM reset the stream with STREAM_CLOSED (RFC 9113 §5.1), DATA
/// before the request headers are complete with PROTOCOL_ERROR, and a handler's output after the call's end is
/// refused or ignored.
///
/// The byte buffers (request headers being collected, the request deframer, the unsent response body) are stored
/// beside the state rather than in it, so that appending a frame never copies them; each is empty outside the
/// states that use it.
struct ServerStreamStateMachine {
    /// A routed call: what its handler is started with.
    struct Call {
        let method: GRPCMethod
        let context: GRPCServerContext
    }

    /// What the response has sent so far, while the handler runs.
    enum ResponsePhase: Equatable {
        /// No response HEADERS yet.
        case notStarted
        /// HEADERS submitted with the data provider; nghttp2 asks for the body as it can send it.
        case flowing
        /// nghttp2 found the body empty and waits for `nghttp2_session_resume_data`.
        case deferred
    }

    enum State {
        /// HEADERS (and CONTINUATION) arriving: nothing routed yet.
        case receivingHeaders
        /// Routed to a method that takes one request (unary, server streaming): its message is collected and the
        /// handler starts at the client's END_STREAM. The call is counted in flight.
        case awaitingRequest(request: [UInt8]?)
        /// The handler runs. `clientEnded`: the client sent END_STREAM (a streaming handler has every message).
        case handling(clientEnded: Bool, response: ResponsePhase)
        /// The final status is decided and the response started: the queued body drains, then the trailers go.
        /// Handler output is refused from now on.
        case draining(Draining)
        /// The response is complete (trailers or a Trailers-Only response submitted, or the stream reset):
        /// nothing more is sent. `counted`: the call was counted in flight (it was routed).
        case responded(clientEnded: Bool, counted: Bool)
        /// nghttp2 closed the stream, or the connection went away.
        case closed
    }

    struct Draining: Equatable {
        let status: GRPCStatus
        let acceptEncoding: Bool
        var clientEnded: Bool
    }

    /// HTTP/2 error codes the machine resets a stream with (RFC 9113 §7).
    enum ResetCode: UInt32 {
        case noError = 0x0
        case protocolError = 0x1
        case streamClosed = 0x5
    }

    /// How the response goes on after an event queued output.
    enum Send: Equatable {
        /// nghttp2 will ask for the body by itself (or nothing is to be sent).
        case nothing
        /// Submit the response HEADERS with the data provider; the body and the trailers follow.
        case responseHeaders
        /// nghttp2 deferred the body: resume it.
        case resumeBody
        /// Submit a Trailers-Only response.
        case trailersOnly(httpStatus: Int, GRPCStatus, acceptEncoding: Bool)
    }

    private(set) var state: State = .receivingHeaders
    /// Bytes of the request's header lists (head and trailers), as nghttp2 counts them.
    private var headerBytes = 0
    private let maxHeaderListSize: Int
    private let outputHighWater: Int
    /// The routed call, from its headers on. Kept beside the state and out of the actions: its deadline is a
    /// `ContinuousClock.Instant`, whose layout the standard library does not publish, and an enum carrying one is
    /// switched through the runtime (`swift_getEnumCaseMultiPayload`) on every event, measurably slower per call.
    private(set) var call: Call?
    /// The request head, while `receivingHeaders`.
    private var head = GRPCRequestHead()
    private var metadata: [(name: String, value: String)] = []
    /// Request messages being reassembled, while the request is open.
    private var deframer: GRPCMessageDeframer
    /// Response bytes not yet handed to nghttp2, and how far they were.
    private var body: [UInt8] = []
    private var bodyOffset = 0
    /// Received bytes whose stream window is withheld from the client until the handler reads.
    private(set) var withheldWindow = 0

    init(maxMessageSize: Int, maxHeaderListSize: Int, outputHighWater: Int) {
        self.deframer = GRPCMessageDeframer(maxMessageSize: maxMessageSize)
        self.maxHeaderListSize = maxHeaderListSize
        self.outputHighWater = outputHighWater
    }

    /// Response bytes queued and not yet taken by nghttp2.
    var pendingOutput: Int { body.count - bodyOffset }

    /// The final status is decided (or the stream is gone): handler output is ignored.
    var isFinished: Bool {
        switch state {
        case .receivingHeaders, .awaitingRequest, .handling: false
        case .draining, .responded, .closed: true
        }
    }

    // MARK: Request

    enum OnHeaderField: Equatable {
        case accept
        /// The header lists exceed the limit: nghttp2 resets the stream (temporal callback failure).
        case tooLarge
    }

    /// One request header (or request trailer, which is only counted).
    mutating func receivedHeaderField(
        name: UnsafeBufferPointer<UInt8>,
        value: UnsafeBufferPointer<UInt8>
    )
        -> OnHeaderField
    {
        headerBytes += name.count + value.count + 32
        if headerBytes > maxHeaderListSize { return .tooLarge }
        guard case .receivingHeaders = state, let first = name.first else { return .accept }
        if first == UInt8(ascii: ":") {
            if name.elementsEqual(GRPCHeader.path.rawValue.utf8) {
                head.path = Array(value)
            } else if name.elementsEqual(GRPCHeader.method.rawValue.utf8) {
                head.method = Array(value)
            }
        } else if name.elementsEqual(GRPCHeader.contentType.rawValue.utf8) {
            head.contentType = Array(value)
        } else if name.elementsEqual(GRPCHeader.te.rawValue.utf8) {
            head.te = Array(value)
        } else if name.elementsEqual(GRPCHeader.grpcTimeout.rawValue.utf8) {
            head.timeout = Array(value)
        } else if name.elementsEqual(GRPCHeader.grpcEncoding.rawValue.utf8) {
            head.encoding = Array(value)
        } else {
            metadata.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        }
        return .accept
    }

    enum OnRequestHeaders: Equatable {
        /// Count the call in flight (and arm its deadline): its handler starts at the client's END_STREAM.
        case awaitRequest(timeout: UInt64?)
        /// Count the call in flight, arm its deadline, open its request stream and start its handler (`call`) now.
        case startStreaming(timeout: UInt64?)
        /// Answer at once; the call never reaches a handler.
        case reject(Send)
        /// Not the request's first header block (trailers), or the call is already over.
        case ignore
    }

    /// The request's HEADERS are complete: route and check them (`GRPCRequestHead.classify`).
    /// - Parameter now: the instant a `grpc-timeout` counts from (read only when the request has one).
    mutating func receivedRequestHeaders(
        router: GRPCRouter,
        now: @autoclosure () -> ContinuousClock.Instant
    ) -> OnRequestHeaders {
        guard case .receivingHeaders = state else { return .ignore }
        let verdict = head.classify(router: router)
        head = GRPCRequestHead()
        switch verdict {
        case .reject(let httpStatus, let status, let acceptEncoding):
            metadata = []
            state = .responded(clientEnded: false, counted: false)
            return .reject(.trailersOnly(httpStatus: httpStatus, status, acceptEncoding: acceptEncoding))
        case .accept(let method, let path, let timeout):
            let deadline = timeout.map { now().advanced(by: .nanoseconds(Int64(clamping: $0))) }
            let call = Call(
                method: method,
                context: GRPCServerContext(path: path, metadata: GRPCMetadata(metadata), deadline: deadline)
            )
            metadata = []
            self.call = call
            if method.takesSingleRequest {
                state = .awaitingRequest(request: nil)
                return .awaitRequest(timeout: timeout)
            }
            state = .handling(clientEnded: false, response: .notStarted)
            return .startStreaming(timeout: timeout)
        }
    }

    enum OnData: Equatable {
        /// Nothing for the handler: grant the window back at once.
        case consume
        /// Hand these messages (every event is a `.message`) to the streaming handler; its flow control decides
        /// when the window comes back.
        case deliver([GRPCMessageDeframer.OnMessage])
        /// The call ends with a status (bad request body): grant the window, cancel the handler, send this.
        case fail(Send)
        /// A protocol violation on this stream: grant the window and reset the stream with this code.
        case reset(ResetCode)
    }

    /// A chunk of request DATA.
    mutating func receivedData(_ bytes: UnsafeRawBufferPointer) -> OnData {
        switch state {
        case .receivingHeaders:
            state = .responded(clientEnded: true, counted: false)
            return .reset(.protocolError)
        case .awaitingRequest(var request):
            for event in deframer.append(bytes) {
                switch event {
                case .message(let message):
                    guard request == nil else {
                        return .fail(
                            fail(
                                GRPCStatus(.internal, "more than one request message for a unary request"),
                                acceptEncoding: false
                            )
                        )
                    }
                    request = message
                    state = .awaitingRequest(request: request)
                case .compressed, .tooLarge:
                    let (status, acceptEncoding) = Self.failure(event, maxMessageSize: deframer.maxMessageSize)
                    return .fail(fail(status, acceptEncoding: acceptEncoding))
                }
            }
            return .consume
        case .handling(clientEnded: false, _):
            // The deframer stops at its first error, so only the last event can be one; the messages are handed
            // on in the deframer's own array (no copy per chunk).
            let events = deframer.append(bytes)
            guard let last = events.last else { return .consume }
            if case .message = last { return .deliver(events) }
            let (status, acceptEncoding) = Self.failure(last, maxMessageSize: deframer.maxMessageSize)
            return .fail(fail(status, acceptEncoding: acceptEncoding))
        case .handling(clientEnded: true, _):
            return resetAfterClientEnd()
        case .draining(let draining):
            return draining.clientEnded ? resetAfterClientEnd() : .consume
        case .responded(let clientEnded, _):
            return clientEnded ? resetAfterClientEnd() : .consume
        case .closed:
            return .consume
        }
    }

    /// The status a malformed request body ends the call with, and whether it names the encodings accepted.
    private static func failure(
        _ event: GRPCMessageDeframer.OnMessage,
        maxMessageSize: Int
    ) -> (GRPCStatus, acceptEncoding: Bool) {
        switch event {
        case .compressed:
            (GRPCStatus(.unimplemented, "compressed messages are not supported (identity only)"), true)
        case .tooLarge(let announced):
            (
                GRPCStatus(.resourceExhausted, "received message larger than max (\(announced) vs. \(maxMessageSize))"),
                false
            )
        case .message:
            (GRPCStatus(.internal, "unexpected message"), false)
        }
    }

    /// The client sent a frame after its END_STREAM (RFC 9113 §5.1: a stream error STREAM_CLOSED).
    private mutating func resetAfterClientEnd() -> OnData {
        state = .responded(clientEnded: true, counted: isCounted)
        return .reset(.streamClosed)
    }

    enum OnEndOfStream: Equatable {
        case nothing
        /// Start the single-request handler (`call`) with this message.
        case startHandler(request: [UInt8])
        /// Finish the streaming handler's request stream (no more messages).
        case finishRequests
        /// The request body is malformed: cancel the handler (if any) and send this.
        case fail(Send)
        /// END_STREAM where it cannot be: reset the stream with this code.
        case reset(ResetCode)
    }

    /// The client's END_STREAM (on HEADERS or DATA), after that frame's other events.
    mutating func receivedEndOfStream() -> OnEndOfStream {
        switch state {
        case .receivingHeaders:
            state = .responded(clientEnded: true, counted: false)
            return .reset(.protocolError)
        case .awaitingRequest(let request):
            if deframer.hasPartialMessage {
                return .fail(failAtEndOfStream(GRPCStatus(.internal, "request stream ended inside a message")))
            }
            guard let request else {
                return .fail(failAtEndOfStream(GRPCStatus(.internal, "no request message for a unary request")))
            }
            state = .handling(clientEnded: true, response: .notStarted)
            return .startHandler(request: request)
        case .handling(clientEnded: false, let response):
            if deframer.hasPartialMessage {
                return .fail(failAtEndOfStream(GRPCStatus(.internal, "request stream ended inside a message")))
            }
            state = .handling(clientEnded: true, response: response)
            return .finishRequests
        case .handling(clientEnded: true, _):
            if case .reset(let code) = resetAfterClientEnd() { return .reset(code) }
            return .nothing
        case .draining(var draining):
            guard !draining.clientEnded else { return endAfterEnd() }
            draining.clientEnded = true
            state = .draining(draining)
            return .nothing
        case .responded(let clientEnded, let counted):
            guard !clientEnded else { return endAfterEnd() }
            state = .responded(clientEnded: true, counted: counted)
            return .nothing
        case .closed:
            return .nothing
        }
    }

    /// Ends the call with `status` at the client's END_STREAM: the client has ended, so no RST_STREAM follows
    /// our END_STREAM.
    private mutating func failAtEndOfStream(_ status: GRPCStatus) -> Send {
        let send = fail(status, acceptEncoding: false)
        switch state {
        case .responded(_, let counted): state = .responded(clientEnded: true, counted: counted)
        case .draining(var draining):
            draining.clientEnded = true
            state = .draining(draining)
        default: break
        }
        return send
    }

    private mutating func endAfterEnd() -> OnEndOfStream {
        if case .reset(let code) = resetAfterClientEnd() { return .reset(code) }
        return .nothing
    }

    // MARK: Handler

    enum OnHandlerMessage: Equatable {
        /// The call is over: the write fails.
        case reject
        /// Queued. `acceptNow`: the writer may go on (below the high-water mark); otherwise it waits until
        /// nghttp2 has taken enough (`OnBodyRead.wakeWriters`).
        case queued(Send, acceptNow: Bool)
    }

    /// A streaming handler wrote a message.
    mutating func handlerWrote(_ message: [UInt8]) -> OnHandlerMessage {
        guard case .handling(let clientEnded, let response) = state else { return .reject }
        GRPCFraming.appendFramed(message, to: &body)
        state = .handling(clientEnded: clientEnded, response: .flowing)
        return .queued(Self.send(after: response), acceptNow: pendingOutput < outputHighWater)
    }

    enum OnHandlerFinished: Equatable {
        /// The call was already over (reset, deadline, bad body): nothing to send.
        case ignore
        /// Close the request stream and send this.
        case send(Send)
    }

    /// The handler returned (or threw): its last message, if any, then `status`.
    mutating func handlerFinished(message: [UInt8]?, status: GRPCStatus) -> OnHandlerFinished {
        guard case .handling(let clientEnded, let response) = state else { return .ignore }
        if response == .notStarted && message == nil {
            state = .responded(clientEnded: clientEnded, counted: true)
            return .send(.trailersOnly(httpStatus: 200, status, acceptEncoding: false))
        }
        if let message { GRPCFraming.appendFramed(message, to: &body) }
        state = .draining(Draining(status: status, acceptEncoding: false, clientEnded: clientEnded))
        return .send(Self.send(after: response))
    }

    /// What starts or restarts the body once bytes are queued, from the phase before.
    private static func send(after response: ResponsePhase) -> Send {
        switch response {
        case .notStarted: .responseHeaders
        case .deferred: .resumeBody
        case .flowing: .nothing
        }
    }

    enum OnFail: Equatable {
        /// The call was already over.
        case ignore
        /// Cancel the handler (its task, its request stream, its waiting writers) and send this.
        case cancel(Send)
    }

    /// Ends the call early with `status` (deadline, or a bad request body): the handler's output is dropped.
    mutating func cancel(with status: GRPCStatus, acceptEncoding: Bool = false) -> OnFail {
        guard !isFinished else { return .ignore }
        return .cancel(fail(status, acceptEncoding: acceptEncoding))
    }

    private mutating func fail(_ status: GRPCStatus, acceptEncoding: Bool) -> Send {
        switch state {
        case .receivingHeaders:
            state = .responded(clientEnded: false, counted: false)
        case .awaitingRequest:
            state = .responded(clientEnded: false, counted: true)
        case .handling(let clientEnded, .notStarted):
            state = .responded(clientEnded: clientEnded, counted: true)
        case .handling(let clientEnded, let response):
            body.removeAll()
            bodyOffset = 0
            state = .draining(Draining(status: status, acceptEncoding: acceptEncoding, clientEnded: clientEnded))
            return response == .deferred ? .resumeBody : .nothing
        case .draining, .responded, .closed:
            return .nothing
        }
        return .trailersOnly(httpStatus: 200, status, acceptEncoding: acceptEncoding)
    }

    // MARK: Response body

    struct OnBodyRead: Equatable {
        enum Then: Equatable {
            /// More may follow: return the count.
            case more
            /// The body is complete: set EOF | NO_END_STREAM and submit these trailers.
            case trailers(GRPCStatus, acceptEncoding: Bool)
            /// Nothing to send yet: return `NGHTTP2_ERR_DEFERRED` until the body is resumed.
            case deferred
            /// nghttp2 asked for a body this stream does not have: fail the callback (the stream is reset).
            case noBody
        }
        let count: Int
        let then: Then
        /// The queue fell below half the high-water mark: writers waiting for room may go on.
        let wakeWriters: Bool
    }

    /// nghttp2's data provider asks for body bytes: copies up to `buffer.count` of them into `buffer`.
    mutating func readBody(into buffer: UnsafeMutableRawBufferPointer) -> OnBodyRead {
        switch state {
        case .handling, .draining: break
        default: return OnBodyRead(count: 0, then: .noBody, wakeWriters: false)
        }
        let n = min(buffer.count, pendingOutput)
        if n > 0 {
            body.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + bodyOffset, byteCount: n)
            }
            bodyOffset += n
            if bodyOffset == body.count {
                body.removeAll(keepingCapacity: body.capacity <= 1 << 16)
                bodyOffset = 0
            }
        }
        let wakeWriters = pendingOutput < outputHighWater / 2
        guard pendingOutput == 0 else { return OnBodyRead(count: n, then: .more, wakeWriters: wakeWriters) }
        switch state {
        case .draining(let draining):
            state = .responded(clientEnded: draining.clientEnded, counted: true)
            return OnBodyRead(
                count: n,
                then: .trailers(draining.status, acceptEncoding: draining.acceptEncoding),
                wakeWriters: wakeWriters
            )
        case .handling(let clientEnded, _) where n == 0:
            state = .handling(clientEnded: clientEnded, response: .deferred)
            return OnBodyRead(count: 0, then: .deferred, wakeWriters: wakeWriters)
        default:
            return OnBodyRead(count: n, then: .more, wakeWriters: wakeWriters)
        }
    }

    /// Our END_STREAM went out. `true` when the client is still sending and must be told to stop with
    /// RST_STREAM NO_ERROR (RFC 9113 §8.1).
    func sentEndOfStream() -> Bool {
        switch state {
        case .responded(let clientEnded, _): !clientEnded
        case .draining(let draining): !draining.clientEnded
        case .receivingHeaders, .awaitingRequest, .handling, .closed: false
        }
    }

    // MARK: Request flow control

    /// `count` received bytes whose stream window is withheld until the streaming handler reads.
    mutating func withholdWindow(_ count: Int) {
        withheldWindow += count
    }

    /// The streaming handler caught up (a window update is due): the stream window to grant, 0 if none.
    mutating func handlerCaughtUp() -> Int {
        guard case .closed = state else {
            defer { withheldWindow = 0 }
            return withheldWindow
        }
        return 0
    }

    // MARK: Close

    struct OnClose: Equatable {
        /// The call was counted in flight: uncount it.
        let endsCall: Bool
        /// The call was still live (no final status): a non-zero error code is the client's reset.
        let wasLive: Bool
    }

    /// nghttp2 closed the stream (both sides ended, RST_STREAM either way) or the connection is going away. The
    /// caller cancels whatever handler runs; later events are ignored.
    mutating func closed() -> OnClose {
        let result = OnClose(endsCall: isCounted, wasLive: !isFinished)
        state = .closed
        call = nil
        body = []
        bodyOffset = 0
        return result
    }

    /// Whether the call is counted in flight (routed and not yet closed).
    private var isCounted: Bool {
        switch state {
        case .receivingHeaders, .closed: false
        case .awaitingRequest, .handling, .draining: true
        case .responded(_, let counted): counted
        }
    }
}
