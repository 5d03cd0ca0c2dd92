internal import BpfmanImages
internal import BpfmanSigstore
internal import Glibc
internal import SystemCalls

/// `bpfman image verify-bundle --bundle FILE --certificate-identity ID --certificate-oidc-issuer URL
/// [--trusted-root FILE] FILE_OR_DIGEST`: the verify subcommand of Sigstore's conformance CLI protocol (SPEC §8.5),
/// offline, on the verifier the fetcher uses for images: `bpfman` runs it as `bpfman-image verify-bundle` (the
/// fetcher's name), so that the CLI's module never imports the verifier. Exit status 0
/// when the bundle verifies, 1 when it does not, 2 for a usage error; the reason goes to standard error.
func verifyBundleCommand(_ arguments: [String], environment: [String: String]) -> Int32 {
    func usage(_ problem: String) -> Int32 {
        printError(
            "Error: \(problem)\nUsage: verify-bundle --bundle FILE --certificate-identity ID "
                + "--certificate-oidc-issuer URL [--trusted-root FILE] FILE_OR_DIGEST"
        )
        return 2
    }
    var options: [String: String] = [:]
    var operands: [String] = []
    var index = 0
    while index < arguments.count {
        let argument = arguments[index]
        if argument.hasPrefix("--") {
            var name = String(argument.dropFirst(2))
            var value: String
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            } else {
                index += 1
                guard index < arguments.count else { return usage("--\(name) needs a value") }
                value = arguments[index]
            }
            let names = ["bundle", "certificate-identity", "certificate-oidc-issuer", "trusted-root", "runtime-dir"]
            guard names.contains(name) else {
                return usage("unknown option --\(name)")
            }
            options[name] = value
        } else {
            operands.append(argument)
        }
        index += 1
    }
    guard let bundlePath = options["bundle"] else { return usage("--bundle is required") }
    guard let identity = options["certificate-identity"] else { return usage("--certificate-identity is required") }
    guard let issuer = options["certificate-oidc-issuer"] else {
        return usage("--certificate-oidc-issuer is required")
    }
    guard operands.count == 1 else { return usage("one FILE_OR_DIGEST is required") }
    let runtimeDirectory = options["runtime-dir"] ?? defaultBpfmanRuntimeDirectory
    let rootPath =
        options["trusted-root"]
        ?? ImageStore.trustRootPath(environment: environment, runtimeDirectory: runtimeDirectory)

    func fail(_ reason: String) -> Int32 {
        printError("verification failed: \(reason)")
        return 1
    }
    guard let bundle = readSmallFile(bundlePath, limit: 1 << 20) else {
        return fail("cannot read the bundle \(bundlePath) (or it is over 1 MiB)")
    }
    var rootBytes = readSmallFile(rootPath, limit: 4 << 20)
    // No file and none named: through TUF, as the daemon does, from the daemon's cached metadata when this user
    // may read it (nothing is cached here; the command runs as its caller).
    if rootBytes == nil, options["trusted-root"] == nil, (environment["SIGSTORE_ROOT_FILE"] ?? "").isEmpty,
        access(rootPath, F_OK) != 0, Errno.current == .noSuchFileOrDirectory
    {
        do throws(PullFailure) {
            let request: TUFRequest
            do { request = try TUFCache(environment: environment, runtimeDirectory: runtimeDirectory).request() } catch
            {
                throw PullFailure(kind: .trustRootUnavailable, reason: error.message)
            }
            rootBytes = try Fetcher.fetchThroughTUF(request, userAgent: "bpfman-verify-bundle", caBundle: nil)
                .trustedRoot
        } catch {
            return fail("sigstore trust root unavailable: \(error.reason)")
        }
    }
    guard let rootBytes else { return fail("sigstore trust root unavailable: cannot read \(rootPath)") }
    // The artifact: a `sha256:<hex>` digest, or a file.
    let artifact = operands[0]
    var message: [UInt8]?
    let digest: [UInt8]
    if artifact.hasPrefix("sha256:") {
        guard let bytes = hexDecoded(String(artifact.dropFirst(7))), bytes.count == 32 else {
            return usage("\(artifact) is not a sha256 digest")
        }
        digest = bytes
    } else {
        guard let bytes = readSmallFile(artifact, limit: 256 << 20) else {
            return fail("cannot read \(artifact) (or it is over 256 MiB)")
        }
        message = bytes
        digest = sha256(bytes)
    }
    do throws(SigstoreError) {
        let trustRoot = try TrustRoot(json: rootBytes)
        let material = try SignatureMaterial(bundle: bundle, message: message)
        try material.content.checkBlob(sha256Digest: digest)
        let verifier = SigstoreVerifier(
            trustRoot: trustRoot,
            identities: [TrustedIdentity(identity: .exact(identity), issuer: .exact(issuer))]
        )
        let signer = try verifier.verify(material)
        print("OK: signed by \(signer.identity) (issuer \(signer.issuer)), logged at \(signer.integratedTime)")
        return 0
    } catch {
        return fail(error.kind == .trustRoot ? "sigstore trust root unavailable: \(error.message)" : error.message)
    }
}

func printError(_ text: String) {
    let line = Array((text + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress!, $0.count) }
}
