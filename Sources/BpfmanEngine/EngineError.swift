package import SystemCalls

/// The engine's one error type. `code` mirrors the gRPC status the server maps it to (SPEC §0.3), `message`
/// is the normative one-sentence text, `errno` the kernel's answer when one caused it.
package struct EngineError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The error class; one case per status code the engine produces.
    package struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Storage: Hashable, Sendable {
            case invalidArgument, notFound, failedPrecondition, internalError, unimplemented
            case alreadyExists, aborted, resourceExhausted
        }
        private let storage: Storage
        private init(_ storage: Storage) { self.storage = storage }

        /// Malformed or unusable input (gRPC INVALID_ARGUMENT, 3).
        package static let invalidArgument = Code(.invalidArgument)
        /// Unknown program, link or tracepoint (NOT_FOUND, 5).
        package static let notFound = Code(.notFound)
        /// The request is fine but the system state refuses it (FAILED_PRECONDITION, 9).
        package static let failedPrecondition = Code(.failedPrecondition)
        /// Kernel refusal, I/O or database failure (INTERNAL, 13).
        package static let `internal` = Code(.internalError)
        /// Not provided by this build (UNIMPLEMENTED, 12).
        package static let unimplemented = Code(.unimplemented)
        /// ALREADY_EXISTS (6).
        package static let alreadyExists = Code(.alreadyExists)
        /// ABORTED (10).
        package static let aborted = Code(.aborted)
        /// RESOURCE_EXHAUSTED (8).
        package static let resourceExhausted = Code(.resourceExhausted)

        package var description: String {
            switch storage {
            case .invalidArgument: "invalidArgument"
            case .notFound: "notFound"
            case .failedPrecondition: "failedPrecondition"
            case .internalError: "internal"
            case .unimplemented: "unimplemented"
            case .alreadyExists: "alreadyExists"
            case .aborted: "aborted"
            case .resourceExhausted: "resourceExhausted"
            }
        }
    }

    package var code: Code
    package var message: String
    /// The errno behind a kernel or I/O failure, if any.
    package var errno: Errno?

    package init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    package var description: String { "\(code): \(message)" }

    package static func invalidArgument(_ message: String) -> EngineError { EngineError(.invalidArgument, message) }
    package static func notFound(_ message: String) -> EngineError { EngineError(.notFound, message) }
    package static func failedPrecondition(_ message: String) -> EngineError {
        EngineError(.failedPrecondition, message)
    }
    package static func `internal`(_ message: String, errno: Errno? = nil) -> EngineError {
        EngineError(.internal, message, errno: errno)
    }
}

/// Runs `body` and turns its typed error into an `EngineError` (also for non-copyable results such as fds).
func converting<T: ~Copyable, E: Error>(
    _ body: () throws(E) -> T,
    mapError transform: (E) -> EngineError
) throws(EngineError) -> T {
    do { return try body() } catch { throw transform(error) }
}
