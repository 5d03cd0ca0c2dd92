internal import H2Transport
internal import Logging

/// The one line an RPC logs (SPEC §1.10): `status=OK`, or the status the client was sent for what the handler
/// threw (`ErrorMapping.status(for:)`, the transport's own mapping, so a cancelled call logs CANCELLED).
enum RPCLog {
    /// `handler`, logging one debug line per call; a failed mutating call logs at info instead.
    static func unary(
        _ name: String,
        mutating: Bool = false,
        logger: Logger,
        _ handler: @escaping @Sendable (GRPCServerContext, [UInt8]) async throws -> [UInt8]
    ) -> GRPCMethod {
        .unary { context, bytes in
            let start = ContinuousClock.now
            do {
                let reply = try await handler(context, bytes)
                logger.debug(
                    "rpc",
                    metadata: ["rpc": "\(name)", "status": "OK", "elapsed": "\(ContinuousClock.now - start)"]
                )
                return reply
            } catch {
                let status = ErrorMapping.status(for: error)
                let metadata: Logger.Metadata = [
                    "rpc": "\(name)", "status": "\(status.code)", "status_message": "\(status.message)",
                    "elapsed": "\(ContinuousClock.now - start)",
                ]
                if mutating {
                    logger.info("rpc failed", metadata: metadata)
                } else {
                    logger.debug("rpc", metadata: metadata)
                }
                throw error
            }
        }
    }
}
