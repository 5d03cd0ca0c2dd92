import BpfmanImages
import Foundation
import TestSupport
import Testing

/// Cosign keyless verification in the pull path (SPEC §8.5), against Debian's real registry on 127.0.0.1 (and the
/// Python stand-in for the OCI 1.1 referrers API, which distribution 2.8 lacks). Every trust root, certificate,
/// Rekor entry and signature is made by the test (Interop/images/sigstore_forge.py); nothing leaves the machine.
@Suite(
    .serialized,
    .enabled(if: RegistryTools.canRunRegistry, "\(RegistryTools.cannotRunRegistry)"),
    .enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"),
    .timeLimit(.minutes(3))
)
struct SignatureTests {
    /// verify_enabled, unsigned images refused: what production runs.
    static let strict = SigningPolicy(verifyEnabled: true, allowUnsigned: false)

    /// A registry holding the tracepoint image as `bytecode:latest`, a fresh trust root, and the workspace.
    func withSignableImage(
        _ body: (Workspace, TestRegistry, _ digest: String, TestTrustRoot) async throws -> Void
    ) async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry { registry in
                let layout = try workspace.layout(with: try Objects.tracepointImage())
                let digest = try await registry.push(layout: layout.directory, tag: "v1", repository: "bytecode")
                let root = try await SigstoreForge.makeRoot(in: workspace.root + "/sigstore")
                try await body(workspace, registry, digest, root)
            }
        }
    }

    func store(
        _ workspace: Workspace,
        _ policy: SigningPolicy = strict,
        trustRoot: String
    ) throws -> ImageStore {
        try workspace.store(signing: policy, environment: ["SIGSTORE_ROOT_FILE": trustRoot])
    }

    @Test(arguments: SignatureFormat.allCases)
    func goodSignatureIsVerifiedAndRecorded(_ format: SignatureFormat) async throws {
        try await withSignableImage { workspace, registry, digest, root in
            try await SigstoreForge.signImage(root: root, digest: digest, format: format, registry: registry.host)
            let url = "\(registry.host)/bytecode"
            let image = try await store(workspace, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            let metadata = try workspace.metadata(of: image)
            #expect(metadata["verified_digest"] as? String == digest)
            let policy = try #require(metadata["policy"] as? [String: Any])
            #expect(policy["verify_enabled"] as? Bool == true)
            #expect(policy["allow_unsigned"] as? Bool == false)
            let verified = workspace.log.all.filter { $0.contains("image signature verified") }
            #expect(verified.count == 1)
            #expect(verified.first?.contains("identity=\(SigstoreForge.identity)") == true)
            let source = format == .legacy ? "legacy .sig tag" : "OCI referrer bundle"
            #expect(verified.first?.contains("found_in=\(source)") == true, "\(verified)")
        }
    }

    /// A referrer found through the OCI 1.1 referrers API (the stand-in serves it; no tag-schema index exists).
    @Test func referrerFromTheReferrersAPIIsVerified() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let indexJSON = try JSONSerialization.jsonObject(
                with: Data(try readBytes(layout.directory + "/index.json"))
            )
            let digest = try #require(
                ((indexJSON as? [String: Any])?["manifests"] as? [[String: Any]])?.first?["digest"] as? String
            )
            let root = try await SigstoreForge.makeRoot(in: workspace.root + "/sigstore")
            try await SigstoreForge.signImage(
                root: root,
                digest: digest,
                format: .bundle,
                layout: layout.directory,
                tagSchema: false
            )
            try await withRegistryStandin(layout: layout.directory, repository: "bytecode") { standin in
                let url = "\(standin.host)/bytecode:v1"
                let image = try await store(workspace, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
                #expect(try workspace.metadata(of: image)["verified_digest"] as? String == digest)
                #expect(try standin.stats().referrersGets == 1)
            }
        }
    }

    /// A registry that refuses the referrers route (403) is asked for the tag-schema index instead.
    @Test func refusedReferrersAPIFallsBackToTheTagSchema() async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let indexJSON = try JSONSerialization.jsonObject(
                with: Data(try readBytes(layout.directory + "/index.json"))
            )
            let digest = try #require(
                ((indexJSON as? [String: Any])?["manifests"] as? [[String: Any]])?.first?["digest"] as? String
            )
            let root = try await SigstoreForge.makeRoot(in: workspace.root + "/sigstore")
            try await SigstoreForge.signImage(root: root, digest: digest, format: .bundle, layout: layout.directory)
            try await withRegistryStandin(
                layout: layout.directory,
                repository: "bytecode",
                options: .init(refuseReferrers: true)
            ) { standin in
                let url = "\(standin.host)/bytecode:v1"
                let image = try await store(workspace, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
                #expect(try workspace.metadata(of: image)["verified_digest"] as? String == digest)
                let stats = try standin.stats()
                // The manifest, the `.sig` tag, the `sha256-<hex>` index and the referrer manifest.
                #expect(stats.referrersGets == 1 && stats.manifestGets == 4, "\(stats)")
            }
        }
    }

    /// An `oci:` layout carries signatures the same way, under the same tags (`sha256-<hex>.sig`, and the
    /// `sha256-<hex>` referrers index): the layout has no referrers API.
    @Test(arguments: SignatureFormat.allCases)
    func layoutSignaturesAreFoundByTag(_ format: SignatureFormat) async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout(with: try Objects.tracepointImage())
            let indexJSON = try JSONSerialization.jsonObject(
                with: Data(try readBytes(layout.directory + "/index.json"))
            )
            let digest = try #require(
                ((indexJSON as? [String: Any])?["manifests"] as? [[String: Any]])?.first?["digest"] as? String
            )
            let root = try await SigstoreForge.makeRoot(in: workspace.root + "/sigstore")
            let url = "oci:\(layout.directory):v1"
            let store = try store(workspace, trustRoot: root.trustedRoot)
            await expectImageError(.failedPrecondition, "is not signed") {
                try await store.resolve(url: url, policy: .always)
            }
            try await SigstoreForge.signImage(root: root, digest: digest, format: format, layout: layout.directory)
            let image = try await store.resolve(url: url, policy: .always)
            #expect(try workspace.metadata(of: image)["verified_digest"] as? String == digest)
        }
    }

    /// For an image index, the index digest is what is signed and verified.
    @Test func indexDigestIsVerified() async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry { registry in
                let layout = try workspace.layout()
                var manifest = try layout.addImage(try Objects.tracepointImage())
                manifest.platform = ("linux", hostGoArchitecture)
                let index = try layout.addIndex([manifest])
                try layout.tag(index, as: "v1")
                let digest = try await registry.push(layout: layout.directory, tag: "v1", repository: "bytecode")
                #expect(digest == index.digest)
                let root = try await SigstoreForge.makeRoot(in: workspace.root + "/sigstore")
                let url = "\(registry.host)/bytecode"
                let store = try store(workspace, trustRoot: root.trustedRoot)
                // A signature of the platform manifest alone does not sign the index.
                try await SigstoreForge.signImage(
                    root: root,
                    digest: manifest.digest,
                    format: .legacy,
                    registry: registry.host
                )
                await expectImageError(.failedPrecondition, "is not signed") {
                    try await store.resolve(url: url, policy: .always)
                }
                try await SigstoreForge.signImage(root: root, digest: digest, format: .legacy, registry: registry.host)
                let image = try await store.resolve(url: url, policy: .always)
                #expect(try workspace.metadata(of: image)["verified_digest"] as? String == digest)
            }
        }
    }

    /// Each fault makes one thing wrong; the pull fails with FAILED_PRECONDITION naming it and caches nothing.
    @Test(arguments: [
        (SignatureFormat.legacy, "wrong-digest", "names sha256:0000"),
        (.bundle, "wrong-digest", "names sha256:0000"),
        (.legacy, "untrusted-chain", "certificate chain: self-signed certificate in certificate chain"),
        (.bundle, "untrusted-chain", "certificate chain: self-signed certificate in certificate chain"),
        (.legacy, "bad-set", "signed entry timestamp does not verify"),
        (.bundle, "bad-set", "signed entry timestamp does not verify"),
        (.bundle, "bad-proof", "inclusion proof does not lead to the log's root hash"),
        (.bundle, "no-set", "integration time is not signed"),
        (.legacy, "expired-leaf", "certificate was not valid when the log recorded the signature"),
        (.bundle, "expired-leaf", "certificate was not valid when the log recorded the signature"),
        (.legacy, "critical-extension", "unhandled critical extension"),
        (.legacy, "chain-loop", "certificate chain: unable to get local issuer certificate"),
        (.bundle, "chain-loop", "certificate chain: unable to get local issuer certificate"),
        (.legacy, "chain-100", "more than 10"),
        (.bundle, "chain-100", "more than 10"),
        (.legacy, "garbage-base64", "signature annotation is not valid base64"),
        (.bundle, "unknown-media-type", "unknown media type \"application/vnd.dev.sigstore.bundle.v9+json\""),
        (.legacy, "lying-size", "does not match its descriptor"),
        (.bundle, "lying-size", "does not match its descriptor"),
    ])
    func badSignatureIsRefused(_ format: SignatureFormat, _ fault: String, _ reason: String) async throws {
        try await withSignableImage { workspace, registry, digest, root in
            try await SigstoreForge.signImage(
                root: root,
                digest: digest,
                format: format,
                registry: registry.host,
                fault: fault
            )
            let url = "\(registry.host)/bytecode"
            // allow_unsigned does not rescue a present but invalid signature.
            for policy in [Self.strict, SigningPolicy(verifyEnabled: true, allowUnsigned: true)] {
                let error = await expectImageError(.failedPrecondition, reason) {
                    try await store(workspace, policy, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
                }
                #expect(error?.message.hasPrefix("signature verification failed for \(url): ") == true)
            }
            expectEmptyCache(workspace)
        }
    }

    @Test func identityPolicyIsApplied() async throws {
        try await withSignableImage { workspace, registry, digest, root in
            try await SigstoreForge.signImage(
                root: root,
                digest: digest,
                format: .bundle,
                registry: registry.host,
                identity: "https://github.com/acme/bytecode/.github/workflows/release.yml@refs/heads/main",
                issuer: "https://token.actions.githubusercontent.com"
            )
            let url = "\(registry.host)/bytecode"
            func policy(_ identities: [TrustedIdentity]) -> SigningPolicy {
                SigningPolicy(verifyEnabled: true, allowUnsigned: false, trustedIdentities: identities)
            }
            let refused: [TrustedIdentity] = [
                TrustedIdentity(identity: .exact("signer@bpfman.test"), issuer: .pattern(".*")),
                // Anchored: a pattern matching only a part of the identity does not do.
                TrustedIdentity(identity: .pattern("https://github.com/acme/"), issuer: .pattern(".*")),
                TrustedIdentity(
                    identity: .pattern("https://github.com/acme/.*"),
                    issuer: .exact("https://accounts.google.com")
                ),
            ]
            for identity in refused {
                await expectImageError(.failedPrecondition, "is not a trusted identity") {
                    try await store(workspace, policy([identity]), trustRoot: root.trustedRoot)
                        .resolve(url: url, policy: .always)
                }
            }
            expectEmptyCache(workspace)
            let accepted = TrustedIdentity(
                identity: .pattern("https://github\\.com/acme/bytecode/\\.github/workflows/.*"),
                issuer: .exact("https://token.actions.githubusercontent.com")
            )
            let image = try await store(workspace, policy([refused[0], accepted]), trustRoot: root.trustedRoot)
                .resolve(url: url, policy: .always)
            #expect(try workspace.metadata(of: image)["verified_digest"] as? String == digest)
        }
    }

    @Test func unsignedImageFollowsAllowUnsigned() async throws {
        try await withSignableImage { workspace, registry, digest, root in
            let url = "\(registry.host)/bytecode"
            let error = await expectImageError(.failedPrecondition, "is not signed") {
                try await store(workspace, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
            }
            #expect(error?.message == "image \(url) is not signed and unsigned images are not allowed")
            expectEmptyCache(workspace)

            let lax = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            let image = try await store(workspace, lax, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
            let metadata = try workspace.metadata(of: image)
            #expect(metadata["digest"] as? String == digest)
            #expect(metadata["verified_digest"] is NSNull)
            #expect(workspace.log.all.contains { $0.contains("warning") && $0.contains("image is not signed") })
        }
    }

    /// Trust material is read only when a signature is verified: a missing or broken trust root does not matter to
    /// an unsigned image or with verification off, and a signed image then fails with INTERNAL.
    @Test func trustRootIsReadOnlyForASignature() async throws {
        try await withSignableImage { workspace, registry, digest, root in
            let url = "\(registry.host)/bytecode"
            let missing = workspace.root + "/no-such-trusted_root.json"
            let broken = workspace.root + "/broken.json"
            try writeBytes(Array("{not json".utf8), to: broken)
            let lax = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            for path in [missing, broken] {
                _ = try await store(workspace, lax, trustRoot: path).resolve(url: url, policy: .always)
                _ = try await store(workspace, SigningPolicy(verifyEnabled: false), trustRoot: path)
                    .resolve(url: url, policy: .always)
            }
            try await SigstoreForge.signImage(root: root, digest: digest, format: .legacy, registry: registry.host)
            // The verification-off entry stays; a failed pull leaves it alone and adds nothing.
            let before = workspace.cacheFiles().map(\.path)
            for (path, reason) in [
                (missing, "cannot open \(missing)"), (broken, "\(broken): trusted_root.json is not"),
            ] {
                let error = await expectImageError(.internal, reason) {
                    try await store(workspace, lax, trustRoot: path).resolve(url: url, policy: .always)
                }
                #expect(
                    error?.message.hasPrefix("cannot verify signature of \(url): sigstore trust root unavailable: ")
                        == true
                )
            }
            #expect(workspace.cacheFiles().map(\.path) == before)
            _ = try await store(workspace, SigningPolicy(verifyEnabled: false), trustRoot: missing)
                .resolve(url: url, policy: .always)
        }
    }

    /// A cache hit is re-verified when the signing policy changed, and a tightened policy never admits an entry
    /// the new policy refuses (SPEC §8.3).
    @Test func policyChangeReverifiesTheCacheEntry() async throws {
        try await withSignableImage { workspace, registry, digest, root in
            let url = "\(registry.host)/bytecode"
            let lax = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            // Cached unsigned under allow_unsigned = true.
            _ = try await store(workspace, lax, trustRoot: root.trustedRoot).resolve(url: url, policy: .always)
            let strict = try store(workspace, trustRoot: root.trustedRoot)
            let error = await expectImageError(.failedPrecondition, "different signing policy") {
                try await strict.resolve(url: url, policy: .never)
            }
            #expect(
                error?.message == "image \(url) was cached under a different signing policy and pull policy is Never"
            )
            await expectImageError(.failedPrecondition, "is not signed") {
                try await strict.resolve(url: url, policy: .ifNotPresent)
            }
            // Signed now: IfNotPresent verifies it again under the strict policy and records it.
            try await SigstoreForge.signImage(root: root, digest: digest, format: .bundle, registry: registry.host)
            let image = try await strict.resolve(url: url, policy: .ifNotPresent)
            #expect(try workspace.metadata(of: image)["verified_digest"] as? String == digest)
            // A policy naming another signer does not take the entry verified for the first.
            let other = SigningPolicy(
                verifyEnabled: true,
                allowUnsigned: false,
                trustedIdentities: [TrustedIdentity(identity: .exact("mallory@bpfman.test"), issuer: .pattern(".*"))]
            )
            let otherStore = try store(workspace, other, trustRoot: root.trustedRoot)
            await expectImageError(.failedPrecondition, "different signing policy") {
                try await otherStore.resolve(url: url, policy: .never)
            }
            await expectImageError(.failedPrecondition, "is not a trusted identity") {
                try await otherStore.resolve(url: url, policy: .ifNotPresent)
            }
            // The strict entry is still there and still used without the registry.
            registry.stop()
            #expect(try await strict.resolve(url: url, policy: .never) == image)
        }
    }
}
