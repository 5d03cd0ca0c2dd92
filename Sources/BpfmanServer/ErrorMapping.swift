package import BpfmanEngine
package import BpfmanImages
package import H2Transport

/// The one place where engine error codes become gRPC statuses (SPEC §0.3, STYLE convention 11).
///
/// Every handler throws `EngineError` (or a `GRPCStatus` made here); the router turns a
/// `GRPCStatusConvertible` into the call's status, so no other file chooses a status code for an engine error.
package enum ErrorMapping {
    /// The status code for an engine error code.
    package static func statusCode(for code: EngineError.Code) -> GRPCStatus.Code {
        switch code {
        case .invalidArgument: .invalidArgument
        case .notFound: .notFound
        case .failedPrecondition: .failedPrecondition
        case .internal: .internal
        case .unimplemented: .unimplemented
        case .alreadyExists: .alreadyExists
        case .aborted: .aborted
        case .resourceExhausted: .resourceExhausted
        default: .unknown
        }
    }

    /// The status a client sees for `error`.
    package static func status(for error: EngineError) -> GRPCStatus {
        GRPCStatus(statusCode(for: error.code), error.message)
    }

    /// SPEC §1.7: the client's deadline ran out while the call waited for the writer lock.
    package static let writerLockTimeout = GRPCStatus(.deadlineExceeded, "timed out waiting for the bpfman writer lock")
    /// SPEC §1.7: the client cancelled while waiting for the writer lock.
    package static let writerLockCancelled = GRPCStatus(
        .cancelled,
        "cancelled while waiting for the bpfman writer lock"
    )

    /// A request message that does not decode.
    package static func undecodable(_ type: String, _ error: any Error) -> GRPCStatus {
        GRPCStatus(.invalidArgument, "cannot decode \(type): \(error)")
    }

    /// The status a client sees for an image error (SPEC §8.3).
    package static func status(for error: ImageError) -> GRPCStatus {
        let code: GRPCStatus.Code =
            switch error.code {
            case .invalidArgument: .invalidArgument
            case .notFound: .notFound
            case .permissionDenied: .permissionDenied
            case .failedPrecondition: .failedPrecondition
            case .internal: .internal
            }
        return GRPCStatus(code, error.message)
    }
}

extension EngineError: GRPCStatusConvertible {
    package var grpcStatus: GRPCStatus { ErrorMapping.status(for: self) }
}

extension ImageError: GRPCStatusConvertible {
    package var grpcStatus: GRPCStatus { ErrorMapping.status(for: self) }
}
