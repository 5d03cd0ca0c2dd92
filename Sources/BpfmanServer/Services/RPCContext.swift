package import BpfmanEngine
package import BpfmanImages
internal import H2Transport
package import Logging

/// What the daemon's services share: the engine, the image cache, the writer lock, a logger and the facts
/// `Status` reports.
package struct ServiceContext: Sendable {
    package var engine: Engine
    /// The OCI image cache (SPEC §8), or why there is none (the cache directory could not be made). Asked for on
    /// each image use: the daemon makes it at start-up, the in-process CLI on first use only (a command that pulls
    /// nothing leaves the cache directory alone).
    package var images: @Sendable () -> Result<ImageStore, ImageError>
    package var writerLock: WriterLock
    package var logger: Logger
    package var facts: DaemonFacts
    /// Encoded List results kept between Lists (`ListAnswerCache`).
    let listAnswers = ListAnswerCache()

    package init(
        engine: Engine,
        images: @escaping @Sendable () -> Result<ImageStore, ImageError>,
        writerLock: WriterLock = WriterLock(),
        logger: Logger,
        facts: DaemonFacts
    ) {
        self.engine = engine
        self.images = images
        self.writerLock = writerLock
        self.logger = logger
        self.facts = facts
    }

    /// The object file of `image` (SPEC §8.3), pulled as its policy says. Runs before the writer lock is taken
    /// and never under it (SPEC §1.7): a slow registry holds up this call only.
    func resolve(_ image: BytecodeImage) async throws(ImageError) -> CachedImage {
        let store = try images().get()
        let policy: PullPolicy =
            switch image.pullPolicy {
            case .always: .always
            case .ifNotPresent: .ifNotPresent
            case .never: .never
            }
        return try await store.resolve(
            url: image.url,
            policy: policy,
            username: image.username,
            password: image.password
        )
    }

    /// A unary method that logs one debug line per call (SPEC §1.10), and one info line when a mutating
    /// call fails (successful mutations are logged by the engine with their ids). See `RPCLog`.
    func unary(
        _ name: String,
        mutating: Bool = false,
        _ body: @escaping @Sendable (GRPCServerContext, [UInt8]) async throws -> [UInt8]
    ) -> GRPCMethod {
        RPCLog.unary(name, mutating: mutating, logger: logger, body)
    }

    /// Runs a mutation under the writer lock (SPEC §1.7).
    func mutate<R: Sendable>(
        _ context: GRPCServerContext,
        _ body: @Sendable (Engine) async throws(EngineError) -> R
    ) async throws -> R {
        // Give up a little before the deadline (a tenth of the time left, 2 to 20 ms), so our message reaches the
        // client before its own timer or the transport's answer the call with a generic one.
        let deadline = context.deadline.map { deadline in
            let margin = min(max((deadline - .now) / 10, .milliseconds(2)), .milliseconds(20))
            return deadline - margin
        }
        do {
            try await writerLock.acquire(deadline: deadline)
        } catch WriterLock.WaitError.deadlineExceeded {
            throw ErrorMapping.writerLockTimeout
        } catch {
            throw ErrorMapping.writerLockCancelled
        }
        defer { writerLock.release() }
        return try await body(engine)
    }
}

/// Daemon facts reported by `bpfman.ext.v1.Inspect/Status` (SPEC §3.9).
package struct DaemonFacts: Sendable {
    package var version: String
    package var attachMode: String
    package var attachModeReason: String
    package var runtimeDirectory: String
    package var socketPath: String
    package var csiEnabled: Bool
    package var csiSocketPath: String
    package var idleTimeoutSeconds: UInt32
    package var socketActivated: Bool
    package var kernelFeatures: [String: Bool]

    package init(
        version: String,
        attachMode: String,
        attachModeReason: String,
        runtimeDirectory: String,
        socketPath: String,
        csiEnabled: Bool = false,
        csiSocketPath: String = "",
        idleTimeoutSeconds: UInt32 = 0,
        socketActivated: Bool = false,
        kernelFeatures: [String: Bool] = [:]
    ) {
        self.version = version
        self.attachMode = attachMode
        self.attachModeReason = attachModeReason
        self.runtimeDirectory = runtimeDirectory
        self.socketPath = socketPath
        self.csiEnabled = csiEnabled
        self.csiSocketPath = csiSocketPath
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.socketActivated = socketActivated
        self.kernelFeatures = kernelFeatures
    }
}
