internal import CLinux
internal import Dispatch
internal import FoundationEssentials
internal import Glibc
package import Logging
internal import Synchronization
internal import SystemCalls

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
    /// The `[[signing.trusted_identities]]` entries in a canonical order (any signer when empty).
    package var trustedIdentities: [TrustedIdentity]

    package init(verifyEnabled: Bool = true, allowUnsigned: Bool = true, trustedIdentities: [TrustedIdentity] = []) {
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
    /// The digest whose signature was verified, or nil when the image was admitted unsigned or unchecked.
    package var verifiedDigest: String? = nil
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
    /// `SSL_CERT_FILE`, opened for each pull and handed to the fetcher (which runs as nobody) as fd 4.
    let caBundlePath: String?
    /// The Sigstore trust root (SPEC §8.5), opened for each pull with verification on and handed over as fd 5.
    package let trustRootPath: String
    /// Where the trust root comes from when no file is there (nil when `SIGSTORE_ROOT_FILE` names one).
    package let tuf: TUFCache?
    /// One TUF cache update at a time.
    private let tufLock = Mutex(())
    /// Loopback registries that answered over plain HTTP: later pulls skip the TLS attempt.
    private let plainHTTPRegistries = Mutex<Set<String>>([])
    /// The executable run as the fetcher, with argv[0] "bpfman-image": `bpfman` itself (FetcherProcess).
    let fetcherPath: String
    let tokens = TokenCache()
    private let inFlight = Mutex<[String: Task<CachedImage, any Error>]>([:])
    /// Entries read before, by directory, with the identity of the `metadata.json` they were read from: a cached
    /// Load then costs one stat instead of a read and a JSON decode. A swapped-in entry is a new file (new inode).
    private let readEntries = Mutex<[String: (stamp: FileStamp, image: CachedImage, metadata: EntryMetadata)]>([:])

    /// - Parameters:
    ///   - directory: the cache (`--image-cache-dir`); made if missing, leftovers of interrupted pulls removed.
    ///   - objectCheck: why bytes are not a loadable BPF object for this machine, or nil.
    ///   - environment: where `SSL_CERT_FILE` and the auth files of SPEC §8.4 are looked up.
    ///   - fetcher: the executable to run as `bpfman-image` (`ImageStore.fetcherPath(environment:)` by default).
    ///   - runtimeDirectory: where `tuf/trusted_root.json` is looked for when `SIGSTORE_ROOT_FILE` is not set.
    package init(
        directory: String,
        signing: SigningPolicy,
        environment: [String: String],
        runtimeDirectory: String = defaultBpfmanRuntimeDirectory,
        limits: ImageLimits = ImageLimits(),
        userAgent: String,
        logger: Logger,
        fetcher: String? = nil,
        objectCheck: @escaping @Sendable ([UInt8]) -> String?
    ) throws(ImageError) {
        self.directory = directory
        self.signing = signing
        self.authFiles = AuthFiles(environment: environment)
        self.limits = limits
        self.objectCheck = objectCheck
        self.logger = logger
        self.userAgent = userAgent
        self.caBundlePath = environment["SSL_CERT_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        self.fetcherPath = fetcher ?? Self.fetcherPath(environment: environment)
        self.trustRootPath = Self.trustRootPath(environment: environment, runtimeDirectory: runtimeDirectory)
        let namedFile = environment["SIGSTORE_ROOT_FILE"].map { !$0.isEmpty } ?? false
        self.tuf = namedFile ? nil : TUFCache(environment: environment, runtimeDirectory: runtimeDirectory)
        try makeDirectories(directory)
        for name in Syscalls.listDirectory(directory) where name.hasPrefix(".") {
            removeTree(directory + "/" + name)
        }
    }

    /// The executable to run as the image fetcher (argv[0] "bpfman-image"): `$BPFMAN_IMAGE_PATH`, else the `bpfman`
    /// executable (SystemCalls' `bpfmanExecutable(override:)`).
    package static func fetcherPath(environment: [String: String]) -> String {
        bpfmanExecutable(override: environment["BPFMAN_IMAGE_PATH"])
    }

    /// `$SIGSTORE_ROOT_FILE` when set, else `<runtime dir>/tuf/trusted_root.json` (SPEC §8.5). Only the path: the
    /// file is opened when a pull verifies signatures, and read only when the fetcher finds one.
    package static func trustRootPath(environment: [String: String], runtimeDirectory: String) -> String {
        if let path = environment["SIGSTORE_ROOT_FILE"], !path.isEmpty { return path }
        return runtimeDirectory + "/tuf/trusted_root.json"
    }

    /// The cache entry's directory for a normalized reference: `sha256_<first 16 bytes of its sha256>`.
    package func entryDirectory(for normalized: String) throws(ImageError) -> String {
        directory + "/sha256_" + (try SHA256Hasher.digest(Array(normalized.utf8))).dropFirst(7).prefix(32)
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
        let entry = try entryDirectory(for: reference.normalized)
        if policy != .always {
            switch readEntry(entry) {
            case .some(let (image, metadata)) where metadata.policy == signing && admitsCached(metadata):
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
        let credentials = credentials(for: reference, username: username, password: password)
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

    /// The credentials given, else those of the auth files for the reference's registry.
    private func credentials(
        for reference: ImageReference,
        username: String?,
        password: String?
    ) -> RegistryCredentials? {
        if let given = RegistryCredentials(username: username, password: password) { return given }
        if case .registry(let registry) = reference { return authFiles.credentials(for: registry.registry) }
        return nil
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
                    returning: Result { () throws(ImageError) -> CachedImage in
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
        let (reply, object) = try fetch(url: url, reference: reference, credentials: credentials, inspectOnly: false)
        if let failure = reply.failure { throw failure.imageError(url: url) }
        if let problem = objectCheck(object) {
            throw .invalidArgument("image \(url) does not hold a BPF object for this machine: \(problem)")
        }
        let verifiedDigest = try admit(url: url, digest: reply.digest, signature: reply.signature)
        let metadata = EntryMetadata(
            reference: reference.normalized,
            digest: reply.digest,
            programs: reply.programs,
            maps: reply.maps,
            pulled_at: Int64(Date().timeIntervalSince1970),
            policy: signing,
            verified_digest: verifiedDigest
        )
        try writeEntry(entry, object: object, metadata: metadata, url: url)
        logger.info(
            "pulled image",
            metadata: [
                "image": "\(reference.normalized)", "digest": "\(reply.digest)",
                "bytes": "\(object.count)", "elapsed": "\(ContinuousClock.now - start)",
            ]
        )
        return CachedImage(
            objectPath: entry + "/bytecode.o",
            reference: reference.normalized,
            digest: reply.digest,
            programs: reply.programs,
            maps: reply.maps,
            verifiedDigest: verifiedDigest
        )
    }

    /// Runs the fetcher for `url` (SPEC §8): opens what it needs, keeps the tokens and the plain-HTTP finding it
    /// reports and the TUF metadata it fetched. With `inspectOnly` it reads manifests and configs only and the
    /// signing policy is not applied (`image inspect`). Blocking.
    private func fetch(
        url: String,
        reference: ImageReference,
        credentials: RegistryCredentials?,
        inspectOnly: Bool
    ) throws(ImageError) -> (FetchReply, [UInt8]) {
        // oci: and oci-archive: are opened here, as root, and handed to the fetcher, which runs as nobody.
        var localFD: OwnedFD? = nil
        switch reference {
        case .registry: break
        case .layout(let path, _): localFD = try openLocal(path, flags: O_DIRECTORY, url: url)
        case .archive(let path, _): localFD = try openLocal(path, flags: 0, url: url)
        }
        var registryHost = ""
        if case .registry(let registry) = reference { registryHost = registry.host }
        var caBundleFD: OwnedFD? = nil
        if let caBundlePath {
            do throws(SystemCallError) {
                caBundleFD = try Syscalls.open(caBundlePath, O_RDONLY | O_NONBLOCK)
            } catch {
                throw .internal(
                    "failed to pull image \(url): cannot open the CA bundle SSL_CERT_FILE=\(caBundlePath): "
                        + error.errno.description
                )
            }
        }
        // The trust root is only opened here; a missing one matters only if the fetcher finds a signature.
        // Without the file (and without SIGSTORE_ROOT_FILE), it comes through TUF, fetched by the fetcher when it
        // finds a signature.
        var trustRootFD: OwnedFD? = nil
        var trustRootProblem: String?
        var tufRequest: TUFRequest?
        if signing.verifyEnabled && !inspectOnly {
            do throws(SystemCallError) {
                trustRootFD = try Syscalls.open(trustRootPath, O_RDONLY | O_NONBLOCK)
            } catch {
                if error.errno == .noSuchFileOrDirectory, let tuf {
                    do { tufRequest = try tuf.request() } catch { trustRootProblem = error.message }
                } else {
                    trustRootProblem = "cannot open \(trustRootPath): \(error.errno)"
                }
            }
        }
        let plainHTTP = plainHTTPRegistries.withLock { $0.contains(registryHost) }
        let request = FetchRequest(
            url: url,
            credentials: credentials,
            tokens: tokens.grants(registry: registryHost, credentials: credentials),
            plainHTTP: plainHTTP,
            limits: limits,
            userAgent: userAgent,
            signing: signing.verifyEnabled && !inspectOnly
                ? SignatureCheck(
                    allowUnsigned: signing.allowUnsigned,
                    trustedIdentities: signing.trustedIdentities,
                    trustRootPath: tufRequest.map { "\($0.repository)/targets/trusted_root.json" } ?? trustRootPath,
                    trustRootProblem: trustRootProblem,
                    tuf: tufRequest
                ) : nil,
            inspectOnly: inspectOnly
        )
        // The descriptors are lent: their owners here close them when this function returns.
        let (reply, object) = try runFetcher(
            request,
            localFD: localFD?.rawValue,
            caBundleFD: caBundleFD?.rawValue,
            trustRootFD: trustRootFD?.rawValue,
            url: url
        )
        if !registryHost.isEmpty {
            tokens.replace(registry: registryHost, credentials: credentials, with: reply.tokens)
            if reply.plainHTTP { plainHTTPRegistries.withLock { _ = $0.insert(registryHost) } }
        }
        if let update = reply.tuf, let tuf, tufRequest != nil {
            if let reason = update.unreachable {
                logger.warning(
                    "TUF repository unreachable; using the cached sigstore trust root, whose timestamp is still fresh",
                    metadata: ["repository": "\(tuf.repository)", "reason": "\(reason)"]
                )
            } else {
                do { try tufLock.withLock { _ throws(ImageError) in try tuf.store(update) } } catch {
                    throw .internal(
                        "cannot verify signature of \(url): sigstore trust root unavailable: \(error.message)"
                    )
                }
                logger.info("sigstore trust root fetched through TUF", metadata: ["repository": "\(tuf.repository)"])
            }
        }
        return (reply, object)
    }

    /// The image `url` as `image inspect` shows it, read from its manifests and configs; nothing is cached.
    /// - Throws: `ImageError` with SPEC §8's code and message.
    package func inspect(
        url: String,
        username: String? = nil,
        password: String? = nil
    ) async throws(ImageError)
        -> ImageInspection
    {
        guard !url.isEmpty else { throw .invalidArgument("image url is required") }
        let reference = try ImageReference(parsing: url)
        let credentials = credentials(for: reference, username: username, password: password)
        let result: Result<ImageInspection, ImageError> = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    returning: Result { () throws(ImageError) -> ImageInspection in
                        let (reply, _) = try self.fetch(
                            url: url,
                            reference: reference,
                            credentials: credentials,
                            inspectOnly: true
                        )
                        if let failure = reply.failure { throw failure.imageError(url: url) }
                        guard let inspection = reply.inspection else {
                            throw .internal("failed to inspect image \(url): the fetcher described nothing")
                        }
                        return inspection
                    }
                )
            }
        }
        return try result.get()
    }

    /// Opens an `oci:` directory or an `oci-archive:` file for the fetcher; a missing one is NOT_FOUND.
    private func openLocal(_ path: String, flags: CInt, url: String) throws(ImageError) -> OwnedFD {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (the fetcher refuses anything not regular).
        do throws(SystemCallError) {
            return try Syscalls.open(path, O_RDONLY | O_NONBLOCK | flags)
        } catch {
            if error.errno == .noSuchFileOrDirectory { throw ImageError(.notFound, "image \(url) not found") }
            throw .internal("failed to pull image \(url): \(path): \(error.errno)")
        }
    }

    /// Runs one `bpfman-image` process: the request on its standard input, `localFD` as its fd 3, `caBundleFD` as
    /// its fd 4 and `trustRootFD` as its fd 5; reads its reply line and the object that follows, at most a reply's
    /// and an object's worth.
    private func runFetcher(
        _ request: FetchRequest,
        localFD: CInt?,
        caBundleFD: CInt?,
        trustRootFD: CInt?,
        url: String
    ) throws(ImageError) -> (FetchReply, [UInt8]) {
        func failed(_ reason: String) -> ImageError { .internal("failed to pull image \(url): \(reason)") }
        guard let requestBytes = try? JSONEncoder().encode(request) else { throw failed("cannot encode the request") }
        // The request goes in on `input`, the reply comes out on `output`; the child's ends are closed here once
        // it has been started.
        var input: [CInt] = [-1, -1]
        var output: [CInt] = [-1, -1]
        guard clinux_pipe_cloexec(&input) == 0 else { throw failed("pipe: \(Errno.current)") }
        let childInput = OwnedFD(taking: input[0])
        let requestWriter = OwnedFD(taking: input[1])
        guard clinux_pipe_cloexec(&output) == 0 else { throw failed("pipe: \(Errno.current)") }
        let replyReader = OwnedFD(taking: output[0])
        let childOutput = OwnedFD(taking: output[1])
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        if let localFD { posix_spawn_file_actions_adddup2(&actions, localFD, 3) }
        if let caBundleFD { posix_spawn_file_actions_adddup2(&actions, caBundleFD, 4) }
        if let trustRootFD { posix_spawn_file_actions_adddup2(&actions, trustRootFD, 5) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A clean signal state: the thread that spawns may block signals the fetcher must heed.
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let arguments = ["bpfman-image"]
        var environment = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]
        for name in [
            "TMPDIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
        ] {
            if let value = getenv(name) { environment.append(name + "=" + String(cString: value)) }
        }
        var argv = arguments.map { strdup($0) } + [nil]
        var envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, fetcherPath, &actions, &attributes, &argv, &envp)
        _ = consume childInput
        _ = consume childOutput
        guard spawned == 0 else {
            throw failed("cannot start the image fetcher \(fetcherPath): \(Errno(rawValue: spawned))")
        }
        // The fetcher reads its whole request before it writes; a fetcher gone early makes this write fail (the
        // daemon ignores SIGPIPE), and its exit status tells why.
        // SIGPIPE is blocked on this thread for the write (and one it raised is taken back), so a process that
        // does not ignore it, a test or the in-process CLI, is not killed by a fetcher that exits early.
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        var previousMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &pipeSignal, &previousMask)
        if case .failure(let error) = Array(requestBytes).withUnsafeBytes({
            Syscalls.writeAll(requestWriter.rawValue, $0)
        }),
            error.errno == .brokenPipe
        {
            var noWait = timespec()
            _ = sigtimedwait(&pipeSignal, nil, &noWait)
        }
        pthread_sigmask(SIG_SETMASK, &previousMask, nil)
        _ = consume requestWriter  // closed: the fetcher reads to the end of its request
        // The reply line carries at most a TUF update besides small fields (four metadata files of at most 512 KiB and a 1 MiB target, as JSON numbers).
        let reply = Syscalls.readAll(replyReader.rawValue, limit: (16 << 20) + limits.entry + 1) ?? []
        var status: CInt = 0
        _ = try? syscall("waitpid") { waitpid(pid, &status, 0) }
        guard let newline = reply.firstIndex(of: 0x0a),
            let answer = try? JSONDecoder().decode(FetchReply.self, from: Data(reply[..<newline]))
        else {
            let how =
                (status & 0x7f) == 0
                ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(status & 0x7f)"
            throw failed("the image fetcher \(how) without a reply")
        }
        let object = Array(reply[(newline + 1)...])
        guard answer.failure != nil || (object.count == answer.objectSize && object.count <= limits.entry) else {
            throw failed("the image fetcher sent \(object.count) bytes of an object of \(answer.objectSize)")
        }
        return (answer, object)
    }

    /// The signing policy's word on a pulled image (SPEC §8.5), from what the fetcher found. The fetcher refuses
    /// unsigned images itself when they are not allowed; this checks its report again.
    /// - Returns: the digest whose signature verified, recorded as the entry's `verified_digest`.
    private func admit(url: String, digest: String, signature: SignatureReport?) throws(ImageError) -> String? {
        guard signing.verifyEnabled else { return nil }
        if let verified = signature?.verifiedDigest {
            guard verified == digest else {
                throw .failedPrecondition("signature verification failed for \(url): the fetcher verified \(verified)")
            }
            logger.info(
                "image signature verified",
                metadata: [
                    "image": "\(url)", "digest": "\(digest)", "identity": "\(signature?.identity ?? "")",
                    "issuer": "\(signature?.issuer ?? "")", "found_in": "\(signature?.source ?? "")",
                ]
            )
            return verified
        }
        guard signing.allowUnsigned else {
            throw .failedPrecondition("image \(url) is not signed and unsigned images are not allowed")
        }
        logger.warning("image is not signed; accepted because allow_unsigned = true", metadata: ["image": "\(url)"])
        return nil
    }

    /// Whether a cache entry recorded under the current policy is still one the policy admits: with unsigned
    /// images refused, only an entry whose own digest was verified.
    private func admitsCached(_ metadata: EntryMetadata) -> Bool {
        guard signing.verifyEnabled, !signing.allowUnsigned else { return true }
        return metadata.verified_digest == metadata.digest
    }

    /// The entry in `path` when it is whole and readable.
    private func readEntry(_ path: String) -> (CachedImage, EntryMetadata)? {
        guard let stamp = FileStamp(path + "/metadata.json") else {
            _ = readEntries.withLock { $0.removeValue(forKey: path) }
            return nil
        }
        if let known = readEntries.withLock({ $0[path] }), known.stamp == stamp, access(path + "/bytecode.o", R_OK) == 0
        {
            return (known.image, known.metadata)
        }
        guard let bytes = readSmallFile(path + "/metadata.json", limit: limits.document),
            let metadata = try? JSONDecoder().decode(EntryMetadata.self, from: Data(bytes)),
            access(path + "/bytecode.o", R_OK) == 0
        else { return nil }
        let image = CachedImage(
            objectPath: path + "/bytecode.o",
            reference: metadata.reference,
            digest: metadata.digest,
            programs: metadata.programs,
            maps: metadata.maps,
            verifiedDigest: metadata.verified_digest
        )
        readEntries.withLock { $0[path] = (stamp, image, metadata) }
        return (image, metadata)
    }

    /// Writes an entry under a temporary name, then swaps it in (SPEC §8.3).
    private func writeEntry(_ path: String, object: [UInt8], metadata: EntryMetadata, url: String) throws(ImageError) {
        func failed(_ step: String) -> ImageError {
            .internal(
                "failed to pull image \(url): cannot \(step) in the image cache: \(Errno.current)"
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
            let error = Errno.current
            guard error == .directoryNotEmpty || error == .fileExists, clinux_rename_exchange(temporary, path) == 0
            else {
                throw failed("install an entry")
            }
            // `temporary` now names the old entry.
            removeTree(temporary)
        }
        installed = true
        _ = syncPath(directory)
    }
}

// MARK: - Files

func makeDirectories(_ path: String) throws(ImageError) {
    if case .failure(let error) = Syscalls.makeDirectories(path, 0o755) {
        throw .internal("cannot make the image cache \(path): \(error.errno)")
    }
}

func makeTemporaryDirectory(in directory: String, prefix: String) throws(ImageError) -> String {
    var template = Array((directory + "/" + prefix + "XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else {
        throw .internal("cannot make a directory in the image cache \(directory): \(Errno.current)")
    }
    return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// Removes a directory of regular files and directories (what this module writes), or a file.
package func removeTree(_ path: String) {
    guard let status = Syscalls.status(path) else { return }
    if (status.st_mode & S_IFMT) == S_IFDIR {
        for name in Syscalls.listDirectory(path) { removeTree(path + "/" + name) }
        _ = Syscalls.rmdir(path)
    } else {
        _ = Syscalls.unlink(path)
    }
}

/// Writes `bytes` to a new file at `path` and syncs it; false on any failure (errno tells which).
func writeFile(_ path: String, _ bytes: [UInt8]) -> Bool {
    guard let fd = try? Syscalls.open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644) else { return false }
    guard case .success = bytes.withUnsafeBytes({ Syscalls.writeAll(fd.rawValue, $0) }) else { return false }
    return fsync(fd.rawValue) == 0
}

func syncPath(_ path: String) -> Bool {
    guard let fd = try? Syscalls.open(path, O_RDONLY | O_DIRECTORY) else { return false }
    return fsync(fd.rawValue) == 0
}

/// What tells one version of a file from another without reading it: device, inode, size and change time.
struct FileStamp: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var changed: Int
    var changedNanoseconds: Int

    init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        changed = info.st_ctim.tv_sec
        changedNanoseconds = info.st_ctim.tv_nsec
    }
}
