/// What the daemon and its `bpfman-image` fetcher process say to each other (SPEC §8): one request as JSON on the
/// fetcher's standard input, one reply on its standard output, a JSON line followed by the object's bytes. Files
/// the daemon opens for the fetcher: fd 3, the `oci:` directory or `oci-archive:` file; fd 4, the CA bundle named
/// by `SSL_CERT_FILE`; fd 5, the Sigstore trust root when signatures are verified (the fetcher, as nobody, may not
/// be allowed to open any of them by path). The fetcher reads fd 5 only when it finds a signature (SPEC §8.5).
///
/// The fetcher downloads and parses untrusted bytes (registry JSON, gzip, tar) without root and without the
/// daemon's memory; it links libcurl and libarchive so the daemon does not load them (README, "Bytecode images").
package struct FetchRequest: Codable, Sendable {
    /// The url as the client gave it.
    package var url: String
    package var username: String?
    package var password: String?
    /// Live bearer tokens for this registry and these credentials.
    package var tokens: [TokenGrant]
    /// The registry is known to speak plain HTTP (a loopback registry without TLS, seen by an earlier pull).
    package var plainHTTP: Bool
    package var limits: ImageLimits
    package var userAgent: String
    /// Signature verification (SPEC §8.5), or nil when `verify_enabled = false`.
    package var signing: SignatureCheck?
    /// Read the manifests and configs only and describe the image (`image inspect`); no layer is downloaded.
    package var inspectOnly: Bool?

    package init(
        url: String,
        credentials: RegistryCredentials?,
        tokens: [TokenGrant],
        plainHTTP: Bool,
        limits: ImageLimits,
        userAgent: String,
        signing: SignatureCheck? = nil,
        inspectOnly: Bool = false
    ) {
        self.inspectOnly = inspectOnly ? true : nil
        self.url = url
        self.username = credentials?.username
        self.password = credentials?.password
        self.tokens = tokens
        self.plainHTTP = plainHTTP
        self.limits = limits
        self.userAgent = userAgent
        self.signing = signing
    }
}

/// What the fetcher checks of an image's signatures (SPEC §8.5).
package struct SignatureCheck: Codable, Sendable {
    package var allowUnsigned: Bool
    /// Any signer when empty.
    package var trustedIdentities: [TrustedIdentity]
    /// The trust root's path, for messages; the daemon opened it as fd 5.
    package var trustRootPath: String
    /// Why the daemon could not open the trust root (then there is no fd 5); reported only if a signature is found.
    package var trustRootProblem: String?
    /// Fetch the trust root through TUF instead (no trust root file exists), only when a signature is found.
    package var tuf: TUFRequest?

    package init(
        allowUnsigned: Bool,
        trustedIdentities: [TrustedIdentity],
        trustRootPath: String,
        trustRootProblem: String?,
        tuf: TUFRequest? = nil
    ) {
        self.allowUnsigned = allowUnsigned
        self.trustedIdentities = trustedIdentities
        self.trustRootPath = trustRootPath
        self.trustRootProblem = trustRootProblem
        self.tuf = tuf
    }
}

/// What the fetcher needs to fetch `trusted_root.json` through TUF (SPEC §8.5): the repository and the metadata
/// the daemon trusts (its cached copies, else the initial root), for root rotation and rollback protection.
package struct TUFRequest: Codable, Sendable {
    /// The repository's base url; metadata is under it, targets under `<url>/targets/`.
    package var repository: String
    package var root: [UInt8]
    package var timestamp: [UInt8]?
    package var snapshot: [UInt8]?
    package var targets: [UInt8]?
    /// The `trusted_root.json` cached with them: not downloaded again while the targets metadata lists it, and
    /// used when the repository cannot be reached while the cached metadata has not expired.
    package var trustedRoot: [UInt8]?

    package init(
        repository: String,
        root: [UInt8],
        timestamp: [UInt8]? = nil,
        snapshot: [UInt8]? = nil,
        targets: [UInt8]? = nil,
        trustedRoot: [UInt8]? = nil
    ) {
        self.repository = repository
        self.root = root
        self.timestamp = timestamp
        self.snapshot = snapshot
        self.targets = targets
        self.trustedRoot = trustedRoot
    }
}

/// The metadata a TUF update verified, and the `trusted_root.json` target it downloaded, for the daemon to cache.
package struct TUFUpdate: Codable, Sendable {
    package var root: [UInt8]
    package var timestamp: [UInt8]
    package var snapshot: [UInt8]
    package var targets: [UInt8]
    package var trustedRoot: [UInt8]
    /// Set when the repository could not be reached and the cached copies, still fresh, were used: why.
    package var unreachable: String?

    package init(
        root: [UInt8],
        timestamp: [UInt8],
        snapshot: [UInt8],
        targets: [UInt8],
        trustedRoot: [UInt8],
        unreachable: String? = nil
    ) {
        self.root = root
        self.timestamp = timestamp
        self.snapshot = snapshot
        self.targets = targets
        self.trustedRoot = trustedRoot
        self.unreachable = unreachable
    }
}

/// What the fetcher found of an image's signatures.
package struct SignatureReport: Codable, Sendable, Equatable {
    /// The digest whose signature verified, or nil when the image carries no signature.
    package var verifiedDigest: String?
    /// The signer's certificate identity and OIDC issuer, when verified.
    package var identity: String?
    package var issuer: String?
    /// Where the verified signature was found: `legacy .sig tag` or `OCI referrer bundle`.
    package var source: String?

    package init(verifiedDigest: String? = nil, identity: String? = nil, issuer: String? = nil, source: String? = nil) {
        self.verifiedDigest = verifiedDigest
        self.identity = identity
        self.issuer = issuer
        self.source = source
    }
}

/// A bearer token with the seconds it has left.
package struct TokenGrant: Codable, Sendable, Equatable {
    package var scope: String
    package var token: String
    package var seconds: Int64

    package init(scope: String, token: String, seconds: Int64) {
        self.scope = scope
        self.token = token
        self.seconds = seconds
    }
}

/// The fetcher's answer. On success `objectSize` bytes of the object follow the JSON line.
package struct FetchReply: Codable, Sendable {
    package var failure: FetchFailure?
    package var digest: String
    package var programs: [String: String]?
    package var maps: [String: String]?
    package var objectSize: Int
    /// The tokens for this registry and credentials after the pull.
    package var tokens: [TokenGrant]
    /// The registry answered over plain HTTP (a loopback registry without TLS).
    package var plainHTTP: Bool
    /// What the signature check found, when the request asked for one and the image was admitted.
    package var signature: SignatureReport?
    /// The TUF metadata and trust root fetched for this pull (SignatureCheck.tuf), whatever the signature's verdict.
    package var tuf: TUFUpdate?
    /// What an `inspectOnly` request found.
    package var inspection: ImageInspection?

    package init(
        failure: FetchFailure?,
        digest: String = "",
        programs: [String: String]? = nil,
        maps: [String: String]? = nil,
        objectSize: Int = 0,
        tokens: [TokenGrant] = [],
        plainHTTP: Bool = false,
        signature: SignatureReport? = nil,
        tuf: TUFUpdate? = nil,
        inspection: ImageInspection? = nil
    ) {
        self.tuf = tuf
        self.inspection = inspection
        self.failure = failure
        self.digest = digest
        self.programs = programs
        self.maps = maps
        self.objectSize = objectSize
        self.tokens = tokens
        self.plainHTTP = plainHTTP
        self.signature = signature
    }
}

/// Why a fetch failed, as the fetcher tells it.
package struct FetchFailure: Codable, Sendable, Equatable {
    package enum Kind: String, Codable, Sendable {
        /// INTERNAL `failed to pull image <url>: <reason>`.
        case transfer
        /// NOT_FOUND `image <url> not found`.
        case manifestNotFound
        /// PERMISSION_DENIED `registry <host> refused the credentials for <url>`.
        case credentialsRefused
        /// INVALID_ARGUMENT with `reason` as the whole message.
        case invalidContent
        /// FAILED_PRECONDITION `image <url> is not signed and unsigned images are not allowed`.
        case unsigned
        /// FAILED_PRECONDITION `signature verification failed for <url>: <reason>`.
        case signatureInvalid
        /// INTERNAL `cannot verify signature of <url>: sigstore trust root unavailable: <reason>`.
        case trustRootUnavailable
    }

    package var kind: Kind
    package var reason: String
    package var host: String

    package init(kind: Kind, reason: String, host: String = "") {
        self.kind = kind
        self.reason = reason
        self.host = host
    }

    /// The error a client sees for a pull of `url` that failed this way (SPEC §8.3).
    package func imageError(url: String) -> ImageError {
        switch kind {
        case .transfer: .internal("failed to pull image \(url): \(reason)")
        case .manifestNotFound: ImageError(.notFound, "image \(url) not found")
        case .credentialsRefused: ImageError(.permissionDenied, "registry \(host) refused the credentials for \(url)")
        case .invalidContent: ImageError(.invalidArgument, reason)
        case .unsigned: .failedPrecondition("image \(url) is not signed and unsigned images are not allowed")
        case .signatureInvalid: .failedPrecondition("signature verification failed for \(url): \(reason)")
        case .trustRootUnavailable:
            .internal("cannot verify signature of \(url): sigstore trust root unavailable: \(reason)")
        }
    }
}

/// Caps on what a pull reads (SPEC §8.1): checked against descriptors before a transfer and enforced during it.
package struct ImageLimits: Codable, Sendable {
    /// A manifest, an index or a config.
    package var document = 4 << 20
    /// A layer as downloaded (compressed).
    package var layer = 64 << 20
    /// One file inside a layer.
    package var entry = 16 << 20
    /// Layers of one manifest.
    package var layers = 64
    /// All bytes a layer expands to, entries skipped included.
    package var expanded = 256 << 20

    package init() {}
}

/// An image as `image inspect` describes it, read from its manifests and configs without downloading a layer:
/// the fields of upstream's `ImageInspection` (SPEC §9.4). An index has `manifests`; a single manifest has
/// `programs`, `maps` (from its `io.ebpf.*` labels) and `layers`.
package struct ImageInspection: Codable, Sendable, Equatable {
    package var reference: String
    package var digest: String
    package var mediaType: String
    package var programs: [String: String]?
    package var maps: [String: String]?
    package var layers: [DescriptorSummary]?
    package var manifests: [ManifestSummary]?

    /// One manifest of an index, with the platform it is for and what its config and layers say.
    package struct ManifestSummary: Codable, Sendable, Equatable {
        package var digest: String
        package var mediaType: String
        package var size: Int
        /// `os/architecture[/variant]`, nil when the index entry names no platform.
        package var platform: String?
        package var programs: [String: String]?
        package var maps: [String: String]?
        package var layers: [DescriptorSummary]

        package init(
            digest: String,
            mediaType: String,
            size: Int,
            platform: String?,
            programs: [String: String]?,
            maps: [String: String]?,
            layers: [DescriptorSummary]
        ) {
            self.digest = digest
            self.mediaType = mediaType
            self.size = size
            self.platform = platform
            self.programs = programs
            self.maps = maps
            self.layers = layers
        }
    }

    package struct DescriptorSummary: Codable, Sendable, Equatable {
        package var digest: String
        package var mediaType: String
        package var size: Int

        package init(digest: String, mediaType: String, size: Int) {
            self.digest = digest
            self.mediaType = mediaType
            self.size = size
        }
    }

    package init(
        reference: String,
        digest: String,
        mediaType: String,
        programs: [String: String]? = nil,
        maps: [String: String]? = nil,
        layers: [DescriptorSummary]? = nil,
        manifests: [ManifestSummary]? = nil
    ) {
        self.reference = reference
        self.digest = digest
        self.mediaType = mediaType
        self.programs = programs
        self.maps = maps
        self.layers = layers
        self.manifests = manifests
    }
}
