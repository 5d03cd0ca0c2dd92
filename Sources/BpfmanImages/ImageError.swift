/// Why an image could not be turned into a verified object file (SPEC §8). The code is a gRPC status code
/// by meaning only: this module knows nothing of gRPC, and the server maps each code in its ErrorMapping.
package struct ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Code: Sendable, Equatable {
        /// A malformed reference, an image that holds no usable BPF object, a bad label.
        case invalidArgument
        /// The registry answered 404 for the manifest.
        case notFound
        /// The registry refused the credentials that were sent.
        case permissionDenied
        /// Policy: not cached with `Never`, unsigned and not allowed.
        case failedPrecondition
        /// Everything else: the network, HTTP statuses, digest mismatches, the cache's file system.
        case `internal`
    }

    package var code: Code
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { message }

    static func invalidArgument(_ message: String) -> ImageError { ImageError(.invalidArgument, message) }
    static func failedPrecondition(_ message: String) -> ImageError { ImageError(.failedPrecondition, message) }
    static func `internal`(_ message: String) -> ImageError { ImageError(.internal, message) }
}

/// A failure inside a pull, before the url is known to the message (the puller adds `failed to pull image <url>`).
struct PullFailure: Error, Sendable {
    enum Kind: Sendable {
        /// Network, HTTP status, digest, size: INTERNAL `failed to pull image <url>: <reason>`.
        case transfer
        /// 404 of the manifest: NOT_FOUND `image <url> not found`.
        case manifestNotFound
        /// 401/403 after credentials were sent: PERMISSION_DENIED.
        case credentialsRefused(host: String)
        /// The image's content is not a usable bytecode image: INVALID_ARGUMENT with its own message.
        case content(ImageError)
    }

    var kind: Kind
    var reason: String
    /// libcurl's result code when the failure is libcurl's, else 0.
    var curlCode: Int = 0

    static func transfer(_ reason: String) -> PullFailure { PullFailure(kind: .transfer, reason: reason) }
    static func content(_ error: ImageError) -> PullFailure {
        PullFailure(kind: .content(error), reason: error.message)
    }

    /// The error a client sees for a pull of `url` that failed this way (SPEC §8.3).
    func imageError(url: String) -> ImageError {
        switch kind {
        case .transfer: .internal("failed to pull image \(url): \(reason)")
        case .manifestNotFound: ImageError(.notFound, "image \(url) not found")
        case .credentialsRefused(let host):
            ImageError(.permissionDenied, "registry \(host) refused the credentials for \(url)")
        case .content(let error): error
        }
    }
}
