internal import CNghttp2
internal import Logging
internal import Synchronization
internal import SystemCalls

#if canImport(Glibc)
@preconcurrency internal import Glibc
#endif

/// Names one stream of one connection across threads.
struct StreamKey: Hashable, Sendable {
    var connection: UInt64
    var stream: Int32
}

/// What handler tasks and the server send to the loop thread.
enum LoopMessage: Sendable {
    /// A streaming handler's message; the continuation resumes `false` if the call is over.
    case message(StreamKey, [UInt8], CheckedContinuation<Bool, Never>)
    /// A handler finished: optional last message, then the status.
    case finish(StreamKey, [UInt8]?, GRPCStatus)
    /// A streaming handler read enough: grant the stream's withheld receive window.
    case resumeReading(StreamKey)
    /// Work that must run on the loop thread.
    case run(@Sendable (EventLoop) -> Void)
    /// Graceful shutdown with a grace period in nanoseconds; resumed when the loop has stopped.
    case shutdown(UInt64, CheckedContinuation<Void, Never>)
}

/// A listening socket registered with the loop.
final class ListenerRecord {
    let fd: OwnedFD
    let rawFD: CInt
    /// Unlinked at shutdown: the Unix socket path we bound ourselves.
    let unlinkPath: String?

    init(fd: consuming OwnedFD, unlinkPath: String?) {
        self.rawFD = fd.withRawDescriptor { $0 }
        self.fd = fd
        self.unlinkPath = unlinkPath
    }
}

/// The epoll loop: one thread owning every socket and nghttp2 session of a server.
///
/// `@unchecked Sendable`: handler tasks only call `post(_:)` (a `Mutex` plus an eventfd write) and
/// read the immutable configuration; every other member is touched on the loop thread alone.
final class EventLoop: @unchecked Sendable {
    let configuration: GRPCServer.Configuration
    let router: GRPCRouter
    let logger: Logger
    let inFlight: Atomic<Int>

    private let epollFD: CInt
    private let wakeFD: CInt
    /// A descriptor held in reserve (/dev/null) for when the process runs out: closed to accept one pending
    /// connection and hang it up, then reopened (`shedPendingConnection`).
    private var spareFD: CInt
    /// Connections hung up at accept because the process had no descriptor left.
    private var shedCount = 0
    /// The most connections open at once since the heap was last trimmed.
    private var connectionPeak = 0
    private let inbox = Mutex<(messages: [LoopMessage], stopped: Bool)>(([], false))
    private let wakePending = Atomic<Bool>(false)
    /// The loop thread's `pthread_t`, 0 until it runs.
    private let loopThread = Atomic<UInt>(0)

    // Loop-thread state.
    var readBuffer = [UInt8](repeating: 0, count: 1 << 16)
    var dirty: [Connection] = []
    private var connections: [UInt64: Connection] = [:]
    private var listeners: [UInt64: ListenerRecord] = [:]
    private var nextToken: UInt64 = 1
    private var deadlines: [(at: UInt64, key: StreamKey)] = []
    private var nextDeadline = UInt64.max
    private var deadlineCompactionThreshold = 64
    private var drainDeadline: UInt64?
    private var shutdownWaiters: [CheckedContinuation<Void, Never>] = []
    private var running = true

    init(configuration: GRPCServer.Configuration, router: GRPCRouter, logger: Logger) throws(SystemCallError) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
        self.inFlight = Atomic(0)
        epollFD = try syscall("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }!
        let wake: CInt
        do throws(SystemCallError) {
            wake = try syscall("eventfd") { eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC)) }!
        } catch {
            Glibc.close(epollFD)
            throw error
        }
        wakeFD = wake
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = 0
        _ = try? syscall("epoll_ctl") { epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) }
    }

    deinit {
        Glibc.close(epollFD)
        Glibc.close(wakeFD)
        if spareFD >= 0 { Glibc.close(spareFD) }
    }

    /// Starts the loop thread. It keeps the loop alive until it stops.
    func start() {
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(
            &thread,
            nil,
            { context in
                let loop = Unmanaged<EventLoop>.fromOpaque(context!).takeRetainedValue()
                loop.run()
                return nil
            },
            context
        )
        precondition(rc == 0, "pthread_create failed: \(rc)")
        pthread_detach(thread)
    }

    // MARK: Cross-thread entry

    /// Hands `message` to the loop thread. After the loop stopped, writers are told `false`.
    func post(_ message: LoopMessage) {
        let accepted = inbox.withLock { state -> Bool in
            if state.stopped { return false }
            state.messages.append(message)
            return true
        }
        guard accepted else {
            switch message {
            case .message(_, _, let continuation): continuation.resume(returning: false)
            case .shutdown(_, let continuation): continuation.resume()
            case .finish, .run, .resumeReading: break
            }
            return
        }
        // On the loop thread itself (a handler that ran inline) the loop drains the inbox before it
        // polls again, so no wake-up is needed.
        if pthread_equal(pthread_self(), pthread_t(loopThread.load(ordering: .relaxed))) != 0 { return }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) {
            var one: UInt64 = 1
            _ = Glibc.write(wakeFD, &one, 8)
        }
    }

    // MARK: The loop

    private func run() {
        loopThread.store(UInt(pthread_self()), ordering: .relaxed)
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        while running {
            let timeout = pollTimeout()
            let count = events.withUnsafeMutableBufferPointer { buffer in
                epoll_wait(epollFD, buffer.baseAddress, Int32(buffer.count), timeout)
            }
            if count < 0 {
                let err = errno
                precondition(err == EINTR, "epoll_wait failed: \(err)")
                continue
            }
            for index in 0..<Int(count) {
                let token = events[index].data.u64
                let flags = events[index].events
                if token == 0 {
                    var value: UInt64 = 0
                    _ = Glibc.read(wakeFD, &value, 8)
                } else if let listener = listeners[token] {
                    accept(from: listener)
                } else if let connection = connections[token] {
                    if flags & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                        connection.readable()
                    }
                    if flags & EPOLLOUT.rawValue != 0 { connection.markDirty() }
                }
            }
            drainInbox()
            expireDeadlines()
            flushDirty()
            checkDrain()
        }
        inbox.withLock { $0.stopped = true }
        drainInbox()
        for connection in Array(connections.values) { connection.close() }
        let waiters = shutdownWaiters
        shutdownWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    private func pollTimeout() -> Int32 {
        if !dirty.isEmpty || !inbox.withLock({ $0.messages.isEmpty }) { return 0 }
        let next = min(nextDeadline, drainDeadline ?? .max)
        if next == .max { return -1 }
        let now = monotonicNanoseconds()
        if next <= now { return 0 }
        return Int32(clamping: (next - now + 999_999) / 1_000_000)
    }

    /// Handles every posted message. Runs once per loop turn, and from `Connection` between the unary calls
    /// of one read, so that an answer posted by a handler that ran inline is sent before the next starts.
    func drainInbox() {
        wakePending.store(false, ordering: .sequentiallyConsistent)
        let messages = inbox.withLock { state -> [LoopMessage] in
            let taken = state.messages
            state.messages.removeAll(keepingCapacity: true)
            return taken
        }
        for message in messages {
            switch message {
            case .message(let key, let bytes, let continuation):
                if let connection = connections[key.connection], let stream = connection.streams[key.stream] {
                    connection.write(stream, message: bytes, continuation: continuation)
                } else {
                    continuation.resume(returning: false)
                }
            case .finish(let key, let bytes, let status):
                if let connection = connections[key.connection], let stream = connection.streams[key.stream] {
                    connection.finish(stream, message: bytes, status: status)
                }
            case .resumeReading(let key):
                if let connection = connections[key.connection], let stream = connection.streams[key.stream] {
                    connection.resumeReading(stream)
                }
            case .run(let work):
                work(self)
            case .shutdown(let grace, let continuation):
                beginShutdown(grace: grace, continuation: continuation)
            }
        }
    }

    private func flushDirty() {
        while !dirty.isEmpty {
            let batch = dirty
            dirty.removeAll(keepingCapacity: true)
            for connection in batch { connection.flush() }
        }
    }

    // MARK: Deadlines

    func addDeadline(_ at: UInt64, _ key: StreamKey) {
        if deadlines.count >= deadlineCompactionThreshold {
            // Calls usually end long before their deadline: drop the entries of finished streams so
            // the list stays proportional to the calls in flight.
            deadlines.removeAll { entry in
                guard let stream = connections[entry.key.connection]?.streams[entry.key.stream] else { return true }
                return stream.finished
            }
            nextDeadline = deadlines.map(\.at).min() ?? .max
            deadlineCompactionThreshold = max(64, deadlines.count * 2)
        }
        deadlines.append((at, key))
        nextDeadline = min(nextDeadline, at)
    }

    private func expireDeadlines() {
        guard nextDeadline != .max else { return }
        let now = monotonicNanoseconds()
        guard nextDeadline <= now else { return }
        var remaining: [(at: UInt64, key: StreamKey)] = []
        var next = UInt64.max
        for entry in deadlines {
            guard let connection = connections[entry.key.connection],
                let stream = connection.streams[entry.key.stream], !stream.finished
            else { continue }
            if entry.at <= now {
                connection.fail(stream, GRPCStatus(.deadlineExceeded, "deadline exceeded"))
            } else {
                remaining.append(entry)
                next = min(next, entry.at)
            }
        }
        deadlines = remaining
        nextDeadline = next
    }

    // MARK: Accounting

    func rpcStarted() {
        let now = inFlight.add(1, ordering: .relaxed).newValue
        if now == 1 { configuration.onInFlightChange?(1) }
    }

    func rpcEnded() {
        let now = inFlight.subtract(1, ordering: .relaxed).newValue
        if now == 0 { configuration.onInFlightChange?(0) }
    }

    // MARK: Registration

    func modify(fd: CInt, token: UInt64, events: UInt32) {
        var event = epoll_event()
        event.events = events
        event.data.u64 = token
        _ = try? syscall("epoll_ctl") { epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) }
    }

    func addListener(_ record: ListenerRecord) {
        if drainDeadline != nil { return }
        let token = nextToken
        nextToken += 1
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = token
        do {
            try syscall("epoll_ctl") { epoll_ctl(epollFD, EPOLL_CTL_ADD, record.rawFD, &event) }
            listeners[token] = record
        } catch {
            logger.error("cannot watch listener", metadata: ["error": "\(error)"])
        }
    }

    private func accept(from listener: ListenerRecord) {
        while true {
            let fd: CInt?
            do throws(SystemCallError) {
                fd = try syscall("accept4", nonBlocking: true) {
                    cnghttp2_accept_nonblocking(listener.rawFD)
                }
            } catch {
                if error.errno == .connectionAborted { continue }
                if (error.errno == .tooManyOpenFiles || error.errno == .tooManyOpenFilesInSystem)
                    && shedPendingConnection(listener)
                {
                    continue
                }
                logger.warning("accept failed", metadata: ["error": "\(error)"])
                return
            }
            guard let fd else { return }
            let owned = OwnedFD(taking: fd)
            let token = nextToken
            nextToken += 1
            let connection = Connection(id: token, token: token, fd: owned, loop: self, logger: logger)
            guard connection.start() else {
                connection.close()
                continue
            }
            var event = epoll_event()
            event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue
            event.data.u64 = token
            do {
                try syscall("epoll_ctl") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
            } catch {
                connection.close()
                continue
            }
            connections[token] = connection
            connectionPeak = max(connectionPeak, connections.count)
            connection.markDirty()  // send our SETTINGS right away
        }
    }

    /// Registers a connection that has no socket (`GRPCMemoryConnection`): the inbox reaches it, epoll never.
    func adopt(inMemory connection: Connection) {
        connections[connection.token] = connection
    }

    /// Runs what a loop turn runs after its reads: posted messages, then every dirty connection's flush.
    func turn() {
        drainInbox()
        flushDirty()
    }

    /// What the loop does as it stops, for a loop that never ran (`GRPCMemoryConnection`): messages posted from
    /// now on are refused (a writer is told `false`), and those waiting are handled.
    func closeInbox() {
        inbox.withLock { $0.stopped = true }
        drainInbox()
    }

    /// Out of descriptors: accepts one pending connection with the reserve descriptor and hangs it up at once.
    /// A connection left pending keeps the listener readable, and the loop would spin on it, while its client waits
    /// forever; hung up, the client sees the refusal and the backlog drains. `false` when there is no reserve.
    private func shedPendingConnection(_ listener: ListenerRecord) -> Bool {
        guard spareFD >= 0 else { return false }
        Glibc.close(spareFD)
        let fd = cnghttp2_accept_nonblocking(listener.rawFD)
        if fd >= 0 { Glibc.close(fd) }
        spareFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        if shedCount % 1000 == 0 {
            logger.warning(
                "out of file descriptors: hanging up new connections",
                metadata: ["open connections": "\(connections.count)", "hung up so far": "\(shedCount + 1)"]
            )
        }
        shedCount += 1
        return true
    }

    func remove(connection: Connection) {
        if !connection.inMemory { _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, connection.rawFD, nil) }
        connections.removeValue(forKey: connection.token)
        // The last of many connections went: give their memory back. Without this the daemon's RSS stayed at
        // its peak after a thousand idle connections had gone (glibc keeps freed memory; the load test, README
        // "Fuzzing"). Rare: only when the count falls to zero after a peak of at least 64.
        if connections.isEmpty && connectionPeak >= 64 {
            connectionPeak = 0
            cnghttp2_release_free_memory()
        }
    }

    // MARK: Shutdown

    /// Stops accepting, sends GOAWAY everywhere and lets calls finish until `grace` runs out.
    func beginShutdown(grace: UInt64, continuation: CheckedContinuation<Void, Never>) {
        shutdownWaiters.append(continuation)
        if drainDeadline == nil {
            drainDeadline = monotonicNanoseconds() &+ grace
            for (_, listener) in listeners {
                _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, listener.rawFD, nil)
                if let path = listener.unlinkPath { _ = unlink(path) }
            }
            listeners.removeAll()
            for connection in connections.values { connection.sendGoAway() }
        }
    }

    private func checkDrain() {
        guard let drainDeadline else { return }
        if !connections.isEmpty && monotonicNanoseconds() >= drainDeadline {
            for connection in Array(connections.values) { connection.close() }
        }
        if connections.isEmpty { running = false }
    }

    var connectionCount: Int { connections.count }
}
