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
