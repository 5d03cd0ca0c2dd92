package import BpfmanImages
internal import Glibc
internal import SystemCalls

/// The work of one `bpfman-image` process: a request in, a reply and the object's bytes out (FetchProtocol.swift).
package enum Fetcher {
    /// Pulls `request.url`.
    /// - Parameters:
    ///   - localFD: for `oci:` the layout directory, for `oci-archive:` the archive, opened by the daemon.
    ///   - caBundle: the PEM certificates of the daemon's `SSL_CERT_FILE`, or nil for libcurl's own bundle.
    ///   - trustRoot: reads the Sigstore trust root the daemon opened; called only when a signature is found.
    /// - Returns: the reply, and the object's bytes on success.
    package static func run(
        _ request: FetchRequest,
        localFD: CInt?,
        caBundle: [UInt8]?,
        trustRoot: @escaping () -> [UInt8]? = { nil }
    ) -> (FetchReply, [UInt8]) {
        let reference: ImageReference
        do { reference = try ImageReference(parsing: request.url) } catch {
            return (FetchReply(failure: FetchFailure(kind: .invalidContent, reason: error.message)), [])
        }
        let credentials = RegistryCredentials(username: request.username, password: request.password)
        let tokens = TokenCache()
        var registryHost = ""
        if case .registry(let registry) = reference {
            registryHost = registry.host
            tokens.replace(registry: registry.host, credentials: credentials, with: request.tokens)
        }
        let staging: String
        do { staging = try makeScratchDirectory() } catch {
            return (FetchReply(failure: error.fetchFailure), [])
        }
        defer { removeTree(staging) }
        // Without a trust root file, the trust root comes through TUF, fetched when a signature is found.
        var tufUpdate: TUFUpdate?
        var readTrustRoot: () throws(PullFailure) -> [UInt8]? = { trustRoot() }
        if let tuf = request.signing?.tuf {
            readTrustRoot = { () throws(PullFailure) in
                let update = try fetchThroughTUF(tuf, userAgent: request.userAgent, caBundle: caBundle)
                tufUpdate = update
                return update.trustedRoot
            }
        }
        let puller = Puller(
            url: request.url,
            limits: request.limits,
            staging: staging,
            signing: request.signing,
            readTrustRoot: readTrustRoot
        )
        var usedPlainHTTP = false
        // `image inspect` reads the manifests and configs only (no layer, nothing for the cache).
        var inspection: ImageInspection?
        func take(_ source: inout some ImageSource) throws(PullFailure) -> PulledImage? {
            guard request.inspectOnly != true else {
                inspection = try puller.inspect(from: &source, reference: reference.normalized)
                return nil
            }
            return try puller.pull(from: &source)
        }
        do throws(PullFailure) {
            let pulled: PulledImage?
            switch reference {
            case .registry(let registry):
                let session = try HTTPSession(
                    userAgent: request.userAgent,
                    caBundle: caBundle,
                    cancellation: CancellationFlag()
                )
                var source = RegistrySource(
                    reference: registry,
                    credentials: credentials,
                    tokens: tokens,
                    session: session,
                    plainHTTP: request.plainHTTP
                )
                defer { usedPlainHTTP = source.usesPlainHTTP }
                pulled = try take(&source)
            case .layout(let directory, let tag):
                guard let localFD else { throw PullFailure.transfer("the daemon did not open \(directory)") }
                var source = LayoutSource(directoryFD: localFD, directory: directory, tag: tag)
                pulled = try take(&source)
            case .archive(let file, let tag):
                guard let localFD else { throw PullFailure.transfer("the daemon did not open \(file)") }
                let unpacked = staging + "/layout"
                guard mkdir(unpacked, 0o700) == 0 else { throw PullFailure.transfer("cannot make \(unpacked)") }
                try unpackLayoutArchive(fd: localFD, name: file, into: unpacked, limit: request.limits.layer * 2)
                let directoryFD = open(unpacked, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard directoryFD >= 0 else { throw PullFailure.transfer("cannot open \(unpacked)") }
                defer { close(directoryFD) }
                var source = LayoutSource(directoryFD: directoryFD, directory: file, tag: tag)
                pulled = try take(&source)
            }
            guard let pulled else {
                let reply = FetchReply(
                    failure: nil,
                    digest: inspection?.digest ?? "",
                    tokens: tokens.grants(registry: registryHost, credentials: credentials),
                    plainHTTP: usedPlainHTTP,
                    inspection: inspection
                )
                return (reply, [])
            }
            let reply = FetchReply(
                failure: nil,
                digest: pulled.digest,
                programs: pulled.programs,
                maps: pulled.maps,
                objectSize: pulled.object.count,
                tokens: tokens.grants(registry: registryHost, credentials: credentials),
                plainHTTP: usedPlainHTTP,
                signature: pulled.signature,
                tuf: tufUpdate
            )
            return (reply, pulled.object)
        } catch {
            let reply = FetchReply(
                failure: error.fetchFailure,
                tokens: tokens.grants(registry: registryHost, credentials: credentials),
                plainHTTP: usedPlainHTTP,
                tuf: tufUpdate
            )
            return (reply, [])
        }
    }

    /// Runs a TUF update against `request.repository` over its own HTTP session (TUF.swift).
    static func fetchThroughTUF(
        _ request: TUFRequest,
        userAgent: String,
        caBundle: [UInt8]?
    ) throws(PullFailure) -> TUFUpdate {
        func failed(_ reason: String) -> PullFailure {
            PullFailure(kind: .trustRootUnavailable, reason: "TUF repository \(request.repository): \(reason)")
        }
        let session: HTTPSession
        do {
            session = try HTTPSession(userAgent: userAgent, caBundle: caBundle, cancellation: CancellationFlag())
        } catch {
            throw failed(error.reason)
        }
        let base = request.repository.hasSuffix("/") ? String(request.repository.dropLast()) : request.repository
        let client = TUFClient(request: request, now: Int64(time(nil))) { (path, limit) throws(PullFailure) in
            let response: HTTPResponse
            do throws(PullFailure) {
                response = try session.get(
                    base + "/" + path,
                    headers: [],
                    sink: .memory,
                    limit: limit,
                    allowPlainRedirects: false
                )
            } catch { throw .transfer("\(path): \(error.reason)") }
            if response.status == 404 || response.status == 403 { return nil }
            guard response.status == 200 else { throw .transfer("\(path): HTTP status \(response.status)") }
            return response.body
        }
        return try client.update()
    }

    /// A private directory for downloaded layers, under `$TMPDIR` or `/tmp`.
    private static func makeScratchDirectory() throws(PullFailure) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/bpfman-image-XXXXXX").utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw .transfer("cannot make a scratch directory in \(base): \(Errno.current)")
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
