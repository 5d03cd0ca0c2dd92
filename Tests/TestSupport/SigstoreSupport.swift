import Foundation

// Sigstore material made by the tests themselves (Interop/images/sigstore_forge.py, on Python's `cryptography`):
// a Fulcio-style CA with the Sigstore OID extensions, a Rekor key and a trusted_root.json, and cosign-style
// signatures of images and blobs, stored where cosign stores them. Nothing here talks to the public Sigstore.

/// A trust root made for one test: `directory` holds the CA and Rekor keys, `trustedRoot` the trust-root file.
public struct TestTrustRoot: Sendable {
    public var directory: String
    public var trustedRoot: String { directory + "/trusted_root.json" }
}

/// How an image signature is stored.
public enum SignatureFormat: String, Sendable, CaseIterable {
    /// cosign's legacy tag `sha256-<hex>.sig`: a simple-signing layer with the signature as annotations.
    case legacy
    /// An OCI 1.1 referrer holding a Sigstore bundle v0.3 (cosign v3's default).
    case bundle
}

public enum SigstoreForge {
    public static let script = Repository.path("Interop/images/sigstore_forge.py")
    /// The default signer of `signImage`.
    public static let identity = "signer@bpfman.test"
    public static let issuer = "https://issuer.bpfman.test"

    /// Whether Python with `cryptography` is here.
    public static let canRun: Bool = {
        guard let python = RegistryTools.python else { return false }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", "import cryptography"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()
    public static let cannotRun = "needs python3 with cryptography (python3-cryptography, scripts/setup.sh)"

    /// A new trust root in `directory` (made if missing).
    public static func makeRoot(in directory: String) async throws -> TestTrustRoot {
        try await run(["root", directory])
        return TestTrustRoot(directory: directory)
    }

    /// Signs the image `digest` and stores the signature in `registry` (a plain-HTTP `HOST:PORT`, pushed over the
    /// distribution API) or in the OCI layout `layout`.
    /// - Parameters:
    ///   - fault: one of the script's faults (`wrong-digest`, `bad-set`, ...), or empty for a good signature.
    ///   - tagSchema: for `.bundle`, also list the referrer in the `sha256-<hex>` tag-schema index.
    public static func signImage(
        root: TestTrustRoot,
        digest: String,
        format: SignatureFormat,
        registry: String? = nil,
        repository: String = "bytecode",
        layout: String? = nil,
        fault: String = "",
        identity: String = identity,
        issuer: String = issuer,
        tagSchema: Bool = true
    ) async throws {
        var arguments = [
            "sign-image", "--root", root.directory, "--digest", digest, "--format", format.rawValue,
            "--repository", repository, "--identity", identity, "--issuer", issuer,
        ]
        if let registry { arguments += ["--registry", registry] }
        if let layout { arguments += ["--layout", layout] }
        if !fault.isEmpty { arguments += ["--fault", fault] }
        if !tagSchema { arguments.append("--no-tag-schema") }
        try await run(arguments)
    }

    /// Writes a bundle for the file `blob` to `bundle` (a `messageSignature` over the blob).
    public static func signBlob(root: TestTrustRoot, blob: String, bundle: String, fault: String = "") async throws {
        var arguments = ["sign-blob", "--root", root.directory, "--bundle", bundle]
        if !fault.isEmpty { arguments += ["--fault", fault] }
        try await run(arguments + [blob])
    }

    private static func run(_ arguments: [String]) async throws {
        guard let python = RegistryTools.python else { throw FixtureError(cannotRun) }
        let result = try await runTool(python, [script] + arguments)
        guard result.status == 0 else {
            throw FixtureError("sigstore_forge.py \(arguments.first ?? "") failed: \(result.errorOutput)")
        }
    }
}

/// A TUF repository made by the test (Interop/images/tuf_forge.py) serving a trusted_root.json as its target, and
/// Python's http.server process serving it on 127.0.0.1; `requests` lists the paths it was asked for.
public final class TestTUFRepository: Sendable {
    public let directory: String
    public let url: String
    /// The repository's root version 1, the client's initial root.
    public var initialRoot: String { directory + "/initial_root.json" }
    private let process: ChildProcess

    private init(directory: String, url: String, process: ChildProcess) {
        self.directory = directory
        self.url = url
        self.process = process
    }

    deinit { process.terminate() }

    /// (Re)writes the repository in `directory` with `target` as its trusted_root.json.
    /// - Parameters:
    ///   - roots: root versions published (1...roots), each signed by the previous root's key and its own.
    ///   - version: the version of timestamp, snapshot and targets.
    ///   - timestampSeconds: how long the timestamp metadata is valid from now.
    ///   - fault: `tampered-target`, `longer-target`, `expired-timestamp`, `timestamp-threshold`, `bad-rotation`, or empty.
    public static func make(
        in directory: String,
        target: String,
        roots: Int = 1,
        version: Int = 1,
        timestampSeconds: Int = 86400,
        fault: String = ""
    ) async throws {
        guard let python = RegistryTools.python else { throw FixtureError(SigstoreForge.cannotRun) }
        var arguments = [
            Repository.path("Interop/images/tuf_forge.py"), "make", directory, "--target", target,
            "--roots", "\(roots)", "--version", "\(version)", "--timestamp-days", "\(Double(timestampSeconds) / 86400)",
        ]
        if !fault.isEmpty { arguments += ["--fault", fault] }
        let result = try await runTool(python, arguments)
        guard result.status == 0 else { throw FixtureError("tuf_forge.py make failed: \(result.errorOutput)") }
    }

    /// Serves the repository `make` wrote in `directory`.
    public static func serve(_ directory: String) async throws -> TestTUFRepository {
        guard let python = RegistryTools.python else { throw FixtureError(SigstoreForge.cannotRun) }
        let portFile = directory + "/port"
        try? FileManager.default.removeItem(atPath: portFile)
        let process = try ChildProcess(
            python,
            [Repository.path("Interop/images/tuf_forge.py"), "serve", directory, "--port-file", portFile],
            output: directory + "/server.log"
        )
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline && process.isRunning {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text) {
                if await waitForHTTP(port: port, path: "/timestamp.json", while: { process.isRunning }) {
                    try? FileManager.default.removeItem(atPath: directory + "/requests.log")
                    return TestTUFRepository(directory: directory, url: "http://127.0.0.1:\(port)", process: process)
                }
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let log = (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
        process.terminate()
        throw FixtureError("the TUF repository server did not start:\n\(log)")
    }

    /// The paths asked for since the server started (or since `make` was last followed by a request).
    public var requests: [String] {
        ((try? String(contentsOfFile: directory + "/requests.log", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
    }

    public func stop() { process.terminate() }
}
