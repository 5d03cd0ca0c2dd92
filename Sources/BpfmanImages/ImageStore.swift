internal import CLinux
internal import Dispatch
internal import FoundationEssentials
internal import Glibc
package import Logging
internal import Synchronization

/// The pull policies of SPEC §8.3, numbered as on the wire.
package enum PullPolicy: Int32, Sendable {
    case always = 0
    case ifNotPresent = 1
    case never = 2
}

/// The `[signing]` settings an image is admitted under (SPEC §1.8, §8.5). A cache entry records the policy it
/// was admitted under; a hit under another policy is not used as is (SPEC §8.3).
package struct SigningPolicy: Sendable, Hashable, Codable {
    package var verifyEnabled: Bool
    package var allowUnsigned: Bool
    /// The `[[signing.trusted_identities]]` entries, each in one canonical text.
    package var trustedIdentities: [String]

    package init(verifyEnabled: Bool = true, allowUnsigned: Bool = true, trustedIdentities: [String] = []) {
        self.verifyEnabled = verifyEnabled
        self.allowUnsigned = allowUnsigned
        self.trustedIdentities = trustedIdentities
    }

    enum CodingKeys: String, CodingKey {
        case verifyEnabled = "verify_enabled"
        case allowUnsigned = "allow_unsigned"
        case trustedIdentities = "trusted_identities"
    }
}

/// A cache entry ready to load: `<cache>/sha256_<32 hex>/bytecode.o` and what `metadata.json` says of it.
package struct CachedImage: Sendable, Equatable {
    package var objectPath: String
    /// The normalized reference (SPEC §8.2).
    package var reference: String
    package var digest: String
    /// `io.ebpf.programs` (or the legacy labels): function → type, informational (SPEC §8.1).
    package var programs: [String: String]?
    package var maps: [String: String]?
}

/// `metadata.json` of a cache entry (SPEC §8.3). It never holds credentials.
struct EntryMetadata: Codable, Equatable {
    var reference: String
    var digest: String
    var programs: [String: String]?
    var maps: [String: String]?
    /// Seconds since the epoch.
    var pulled_at: Int64
    var policy: SigningPolicy
    /// The digest whose signature was verified, or nil when the image was admitted unsigned.
    var verified_digest: String?

    /// Every field is written, absent ones as null, so the file always has SPEC §8.3's shape.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(reference, forKey: .reference)
        try container.encode(digest, forKey: .digest)
        try container.encode(programs, forKey: .programs)
        try container.encode(maps, forKey: .maps)
        try container.encode(pulled_at, forKey: .pulled_at)
        try container.encode(policy, forKey: .policy)
        try container.encode(verified_digest, forKey: .verified_digest)
    }
}

/// The daemon's image cache and puller (SPEC §8): turns a url, a pull policy and credentials into a verified
/// object file on disk. Knows nothing of gRPC or the engine.
///
/// Pulls run on Dispatch's threads, never on Swift's cooperative pool (libcurl blocks); concurrent pulls of one
/// reference with the same credentials share one download. Entries are written under a temporary name and
/// swapped in by rename, so a reader sees a whole old entry or a whole new one, and a failed or cancelled
/// pull leaves nothing.
package final class ImageStore: Sendable {
    package let directory: String
    let signing: SigningPolicy
    let authFiles: AuthFiles
    let limits: ImageLimits
    let objectCheck: @Sendable ([UInt8]) -> String?
    let logger: Logger
    let userAgent: String
    let caBundle: String?
    let tokens = TokenCache()
    private let inFlight = Mutex<[String: Task<CachedImage, any Error>]>([:])

    /// - Parameters:
    ///   - directory: the cache (`--image-cache-dir`); made if missing, leftovers of interrupted pulls removed.
    ///   - objectCheck: why bytes are not a loadable BPF object for this machine, or nil.
    ///   - environment: where `SSL_CERT_FILE` and the auth files of SPEC §8.4 are looked up.
    package init(
        directory: String,
        signing: SigningPolicy,
        environment: [String: String],
        limits: ImageLimits = ImageLimits(),
        userAgent: String,
        logger: Logger,
        objectCheck: @escaping @Sendable ([UInt8]) -> String?
    ) throws(ImageError) {
        self.directory = directory
        self.signing = signing
        self.authFiles = AuthFiles(environment: environment)
        self.limits = limits
        self.objectCheck = objectCheck
        self.logger = logger
        self.userAgent = userAgent
        self.caBundle = environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        try makeDirectories(directory)
        for name in listDirectory(directory) where name.hasPrefix(".") {
            removeTree(directory + "/" + name)
        }
    }

    /// The cache entry's directory for a normalized reference: `sha256_<first 16 bytes of its sha256>`.
    package func entryDirectory(for normalized: String) -> String {
        directory + "/sha256_" + SHA256Hasher.digest(Array(normalized.utf8)).dropFirst(7).prefix(32)
    }

    /// The object file of `url` under `policy` (SPEC §8.3).
    /// - Throws: `ImageError` with SPEC §8's code and message.
    package func resolve(
        url: String,
        policy: PullPolicy,
        username: String? = nil,
        password: String? = nil
    ) async throws(ImageError) -> CachedImage {
        guard !url.isEmpty else { throw .invalidArgument("image url is required") }
        let reference = try ImageReference(parsing: url)
        let entry = entryDirectory(for: reference.normalized)
        if policy != .always {
            switch readEntry(entry) {
            case .some(let (image, metadata)) where metadata.policy == signing:
                return image
            case .some:
                if policy == .never {
                    throw .failedPrecondition(
                        "image \(url) was cached under a different signing policy and pull policy is Never"
                    )
                }
            case .none:
                if policy == .never {
                    throw .failedPrecondition("image \(url) not in cache and pull policy is Never")
                }
            }
        }
        let credentials: RegistryCredentials? =
            if let given = RegistryCredentials(username: username, password: password) {
                given
            } else if case .registry(let registry) = reference {
                authFiles.credentials(for: registry.registry)
            } else {
                nil
            }
        // One download per reference and credentials; later callers wait for the first one's.
        let key = reference.normalized + "\u{0}" + (credentials?.fingerprint ?? "")
        let task: Task<CachedImage, any Error> = inFlight.withLock { running in
            if let task = running[key] { return task }
            let task = Task<CachedImage, any Error> {
                defer { _ = self.inFlight.withLock { $0.removeValue(forKey: key) } }
                return try await self.pullOnThread(
                    url: url,
                    reference: reference,
                    credentials: credentials,
                    entry: entry
                )
            }
            running[key] = task
            return task
        }
        do {
            return try await task.value
        } catch let error as ImageError {
            throw error
        } catch {
            throw .internal("failed to pull image \(url): \(error)")
        }
    }

    /// Runs `pull` on a Dispatch thread and waits for it.
    private func pullOnThread(
        url: String,
        reference: ImageReference,
        credentials: RegistryCredentials?,
        entry: String
    ) async throws(ImageError) -> CachedImage {
        let result: Result<CachedImage, ImageError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    returning: Result { () throws(ImageError) in
                        try self.pull(url: url, reference: reference, credentials: credentials, entry: entry)
                    }
                )
            }
        }
        return try result.get()
    }

    /// Downloads, checks, admits and caches one image. Blocking.
    private func pull(
        url: String,
        reference: ImageReference,
        credentials: RegistryCredentials?,
        entry: String
    ) throws(ImageError) -> CachedImage {
        let start = ContinuousClock.now
        let staging = try makeTemporaryDirectory(in: directory, prefix: ".pull-")
        defer { removeTree(staging) }
        let puller = Puller(url: url, limits: limits, staging: staging, objectCheck: objectCheck)
        let pulled: PulledImage
        do throws(PullFailure) {
            switch reference {
            case .registry(let registry):
                let session = try HTTPSession(
                    userAgent: userAgent,
                    caBundle: caBundle,
                    cancellation: CancellationFlag()
                )
                var source = RegistrySource(
                    reference: registry,
                    credentials: credentials,
                    tokens: tokens,
                    session: session
                )
                pulled = try puller.pull(from: &source)
            case .layout(let layoutDirectory, let tag):
                var source = LayoutSource(directory: layoutDirectory, tag: tag)
                pulled = try puller.pull(from: &source)
            case .archive(let file, let tag):
                let unpacked = staging + "/layout"
                guard mkdir(unpacked, 0o700) == 0 else { throw PullFailure.transfer("cannot make \(unpacked)") }
                try unpackLayoutArchive(file, into: unpacked, limit: limits.layer * 2)
                var source = LayoutSource(directory: unpacked, tag: tag)
                pulled = try puller.pull(from: &source)
            }
        } catch {
            throw error.imageError(url: url)
        }
        try admit(url: url)
        let metadata = EntryMetadata(
            reference: reference.normalized,
            digest: pulled.digest,
            programs: pulled.programs,
            maps: pulled.maps,
            pulled_at: Int64(Date().timeIntervalSince1970),
            policy: signing,
            verified_digest: nil
        )
        try writeEntry(entry, object: pulled.object, metadata: metadata, url: url)
        logger.info(
            "pulled image",
            metadata: [
                "image": "\(reference.normalized)", "digest": "\(pulled.digest)",
                "bytes": "\(pulled.object.count)", "elapsed": "\(ContinuousClock.now - start)",
            ]
        )
        return CachedImage(
            objectPath: entry + "/bytecode.o",
            reference: reference.normalized,
            digest: pulled.digest,
            programs: pulled.programs,
            maps: pulled.maps
        )
    }

    /// The signing policy's word on an image (SPEC §8.5). Signatures are not verified by this build, so every
    /// image counts as unsigned: admitted with a warning when `allow_unsigned`, refused otherwise.
    private func admit(url: String) throws(ImageError) {
        guard signing.verifyEnabled else { return }
        guard signing.allowUnsigned else {
            throw .failedPrecondition("image \(url) is not signed and unsigned images are not allowed")
        }
        logger.warning(
            "image accepted without a verified signature (allow_unsigned = true; this build does not verify signatures)",
            metadata: ["image": "\(url)"]
        )
    }

    /// The entry in `path` when it is whole and readable.
    private func readEntry(_ path: String) -> (CachedImage, EntryMetadata)? {
        guard let bytes = readSmallFile(path + "/metadata.json", limit: limits.document),
            let metadata = try? decodeJSON(EntryMetadata.self, bytes),
            access(path + "/bytecode.o", R_OK) == 0
        else { return nil }
        let image = CachedImage(
            objectPath: path + "/bytecode.o",
            reference: metadata.reference,
            digest: metadata.digest,
            programs: metadata.programs,
            maps: metadata.maps
        )
        return (image, metadata)
    }

    /// Writes an entry under a temporary name, then swaps it in (SPEC §8.3).
    private func writeEntry(_ path: String, object: [UInt8], metadata: EntryMetadata, url: String) throws(ImageError) {
        func failed(_ step: String) -> ImageError {
            .internal(
                "failed to pull image \(url): cannot \(step) in the image cache: \(String(cString: strerror(errno)))"
            )
        }
        let temporary = try makeTemporaryDirectory(in: directory, prefix: ".new-")
        var installed = false
        defer { if !installed { removeTree(temporary) } }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let json = try? encoder.encode(metadata) else { throw .internal("failed to pull image \(url): metadata") }
        guard writeFile(temporary + "/bytecode.o", object), writeFile(temporary + "/metadata.json", Array(json)),
            syncPath(temporary)
        else { throw failed("write an entry") }
        if rename(temporary, path) != 0 {
            guard errno == ENOTEMPTY || errno == EEXIST, clinux_rename_exchange(temporary, path) == 0 else {
                throw failed("install an entry")
            }
            // `temporary` now names the old entry.
            removeTree(temporary)
        }
        installed = true
        _ = syncPath(directory)
    }
}

extension Result where Failure == ImageError {
    init(_ body: () throws(ImageError) -> Success) {
        do { self = .success(try body()) } catch { self = .failure(error) }
    }
}

// MARK: - Files

func makeDirectories(_ path: String) throws(ImageError) {
    var prefix = path.hasPrefix("/") ? "" : "."
    for component in path.split(separator: "/") {
        prefix += "/" + component
        if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw .internal("cannot make the image cache \(path): \(String(cString: strerror(errno)))")
        }
    }
}

func makeTemporaryDirectory(in directory: String, prefix: String) throws(ImageError) -> String {
    var template = Array((directory + "/" + prefix + "XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else {
        throw .internal("cannot make a directory in the image cache \(directory): \(String(cString: strerror(errno)))")
    }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) {
            String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes a directory of regular files and directories (what this module writes), or a file.
func removeTree(_ path: String) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if (info.st_mode & S_IFMT) == S_IFDIR {
        for name in listDirectory(path) { removeTree(path + "/" + name) }
        rmdir(path)
    } else {
        unlink(path)
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return bytes.withUnsafeBytes { writeAll(fd, $0) } == 0 && fsync(fd) == 0
}

func syncPath(_ path: String) -> Bool {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return fsync(fd) == 0
}
