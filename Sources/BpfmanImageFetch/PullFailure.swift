internal import BpfmanImages

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
        /// No signature, and unsigned images are not allowed.
        case unsigned
        /// Signatures were found and none verified: FAILED_PRECONDITION.
        case signatureInvalid
        /// The Sigstore trust root cannot be read: INTERNAL.
        case trustRootUnavailable
    }

    var kind: Kind
    var reason: String
    /// libcurl's result code when the failure is libcurl's, else 0.
    var curlCode: Int = 0
    /// What arrived is not what its descriptor promised (size or digest).
    var isContentMismatch = false

    static func transfer(_ reason: String) -> PullFailure { PullFailure(kind: .transfer, reason: reason) }
    static func content(_ error: ImageError) -> PullFailure {
        PullFailure(kind: .content(error), reason: error.message)
    }

    /// How the fetcher reports this failure to the daemon.
    var fetchFailure: FetchFailure {
        switch kind {
        case .transfer: FetchFailure(kind: .transfer, reason: reason)
        case .manifestNotFound: FetchFailure(kind: .manifestNotFound, reason: reason)
        case .credentialsRefused(let host): FetchFailure(kind: .credentialsRefused, reason: reason, host: host)
        case .content(let error): FetchFailure(kind: .invalidContent, reason: error.message)
        case .unsigned: FetchFailure(kind: .unsigned, reason: reason)
        case .signatureInvalid: FetchFailure(kind: .signatureInvalid, reason: reason)
        case .trustRootUnavailable: FetchFailure(kind: .trustRootUnavailable, reason: reason)
        }
    }
}
