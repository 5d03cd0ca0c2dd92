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

    package static func invalidArgument(_ message: String) -> ImageError { ImageError(.invalidArgument, message) }
    package static func failedPrecondition(_ message: String) -> ImageError { ImageError(.failedPrecondition, message) }
    package static func `internal`(_ message: String) -> ImageError { ImageError(.internal, message) }
}
