package import BpfmanEngine
package import BpfmanImages
package import H2Transport

/// The one place where errors become gRPC statuses (SPEC §0.3, STYLE convention 11).
///
/// Every handler throws `EngineError`, `ImageError`, `CSIError` (or a `GRPCStatus` made here); the router turns a
/// `GRPCStatusConvertible` into the call's status, so no other file chooses a status code for an error.
package enum ErrorMapping {
    /// The status the client gets for whatever a handler threw: the transport's own mapping (so a log line built
    /// from it says what was sent), which takes the conversions below and answers `CancellationError` with
    /// CANCELLED and anything else with UNKNOWN.
    package static func status(for error: any Error) -> GRPCStatus {
        GRPCStatus.sent(for: error)
    }

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

    /// `grpc.health.v1.Health/Check` for a service the server does not report.
    package static func unknownHealthService(_ service: String) -> GRPCStatus {
        GRPCStatus(.notFound, "unknown service \(service)")
    }

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

    /// The status the kubelet sees for a CSI failure (SPEC §7.3, §7.4).
    static func status(for error: CSIError) -> GRPCStatus {
        switch error {
        case .invalidRequest(let message):
            GRPCStatus(.invalidArgument, message)
        case .volumeBusy(let volumeID):
            GRPCStatus(.aborted, "an operation is already in progress for volume \"\(volumeID)\"")
        case .targetMountedWithOtherFilesystem(let targetPath, let filesystem):
            GRPCStatus(
                .failedPrecondition,
                "target path \(targetPath) is already mounted with filesystem \(filesystem)"
            )
        case .targetPublishedDifferently(let targetPath):
            GRPCStatus(
                .alreadyExists,
                "target path \(targetPath) is already published with different maps or access mode"
            )
        case .engine(let error):
            status(for: error)
        case .notBPFFS(let path):
            GRPCStatus(.internal, "\(path) is not a bpffs after mounting one (statfs magic)")
        case .nodeOperation(let what, let cause):
            GRPCStatus(.internal, "\(what): \(cause)")
        case .unimplemented(let method, let plugin):
            GRPCStatus(.unimplemented, "\(method) is not implemented by \(plugin)")
        }
    }
}

extension EngineError: GRPCStatusConvertible {
    package var grpcStatus: GRPCStatus { ErrorMapping.status(for: self) }
}

extension ImageError: GRPCStatusConvertible {
    package var grpcStatus: GRPCStatus { ErrorMapping.status(for: self) }
}

extension CSIError: GRPCStatusConvertible {
    var grpcStatus: GRPCStatus { ErrorMapping.status(for: self) }
}
