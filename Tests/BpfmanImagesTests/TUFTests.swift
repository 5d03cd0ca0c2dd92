import BpfmanImages
import Foundation
import TestSupport
import Testing

@testable import BpfmanImageFetch

/// The Sigstore trust root fetched through TUF when no trusted_root.json is there (SPEC §8.5): a TUF repository
/// the test makes (Interop/images/tuf_forge.py, ed25519 keys, consistent snapshots) whose target is the test's own
/// trust root, served by Python's http.server on 127.0.0.1, and Debian's registry holding an image signed under
/// that trust root. The fetcher (as nobody) runs the TUF client; the daemon caches what it verified.
@Suite(
    .serialized,
    .enabled(if: RegistryTools.canRunRegistry, "\(RegistryTools.cannotRunRegistry)"),
    .enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"),
    .timeLimit(.minutes(3))
)
struct TUFTests {
    static let strict = SigningPolicy(verifyEnabled: true, allowUnsigned: false)

    struct Setup {
        var workspace: Workspace
        var url: String
        var digest: String
        var root: TestTrustRoot
        /// The runtime directory: `<rd>/tuf/` holds no trusted_root.json unless a test puts one there.
        var runtimeDirectory: String
        var tufDirectory: String

        func store(repository: String, initialRoot: String?, policy: SigningPolicy = strict) throws -> ImageStore {
            var environment = ["BPFMAN_TUF_URL": repository]
            if let initialRoot { environment["BPFMAN_TUF_ROOT"] = initialRoot }
            return try workspace.store(signing: policy, environment: environment, runtimeDirectory: runtimeDirectory)
        }

        /// The TUF cache directory the daemon writes for `repository`.
        func cacheDirectory(_ repository: String) -> String {
            TUFCache(environment: ["BPFMAN_TUF_URL": repository], runtimeDirectory: runtimeDirectory).directory
        }

        func makeRepository(
            roots: Int = 1,
            version: Int = 1,
            timestampSeconds: Int = 86400,
            fault: String = ""
        ) async throws {
            try await TestTUFRepository.make(
                in: tufDirectory,
                target: root.trustedRoot,
                roots: roots,
                version: version,
                timestampSeconds: timestampSeconds,
                fault: fault
            )
        }
    }

    /// A signed image in a registry, a trust root, and a TUF repository directory (not yet written).
    func withSignedImage(sign: Bool = true, _ body: (Setup) async throws -> Void) async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry { registry in
                let layout = try workspace.layout(with: try Objects.tracepointImage())
                let digest = try await registry.push(layout: layout.directory, tag: "v1", repository: "bytecode")
                let root = try await SigstoreForge.makeRoot(in: workspace.root + "/sigstore")
                if sign {
                    try await SigstoreForge.signImage(
                        root: root,
                        digest: digest,
                        format: .bundle,
                        registry: registry.host
                    )
                }
                let setup = Setup(
                    workspace: workspace,
                    url: "\(registry.host)/bytecode",
                    digest: digest,
                    root: root,
                    runtimeDirectory: workspace.root + "/runtime",
                    tufDirectory: workspace.root + "/tuf-repository"
                )
                try FileManager.default.createDirectory(atPath: setup.tufDirectory, withIntermediateDirectories: true)
                try await body(setup)
            }
        }
    }

    func version(of path: String) throws -> Int? {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        return ((object as? [String: Any])?["signed"] as? [String: Any])?["version"] as? Int
    }

    @Test func signedImageLoadsWithTheTrustRootFetchedThroughTUF() async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository()
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            defer { server.stop() }
            let store = try setup.store(repository: server.url, initialRoot: server.initialRoot)
            let image = try await store.resolve(url: setup.url, policy: .always)
            #expect(try setup.workspace.metadata(of: image)["verified_digest"] as? String == setup.digest)
            // The daemon cached what the fetcher verified, and wrote no trusted_root.json of its own.
            let cache = setup.cacheDirectory(server.url)
            #expect(
                try Data(contentsOf: URL(fileURLWithPath: cache + "/trusted_root.json"))
                    == Data(contentsOf: URL(fileURLWithPath: setup.root.trustedRoot))
            )
            for name in ["root.json", "timestamp.json", "snapshot.json", "targets.json"] {
                #expect(FileManager.default.fileExists(atPath: cache + "/" + name), "\(name)")
            }
            #expect(!FileManager.default.fileExists(atPath: setup.runtimeDirectory + "/tuf/trusted_root.json"))
            let requests = server.requests
            #expect(requests.contains("/2.root.json"), "\(requests)")
            #expect(requests.contains("/timestamp.json"), "\(requests)")
            #expect(requests.contains("/1.snapshot.json"), "\(requests)")
            #expect(requests.contains("/1.targets.json"), "\(requests)")
            #expect(
                requests.contains { $0.hasPrefix("/targets/") && $0.hasSuffix(".trusted_root.json") },
                "\(requests)"
            )
            #expect(setup.workspace.log.all.contains { $0.contains("sigstore trust root fetched through TUF") })
        }
    }

    /// Root N+1 is trusted only when signed by root N's keys and its own: 1 → 2 → 3 from the initial root, and
    /// from a cached root 3 on to 5; a root 2 its predecessor did not sign is refused.
    @Test func rootRotation() async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository(roots: 3)
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            defer { server.stop() }
            let store = try setup.store(repository: server.url, initialRoot: server.initialRoot)
            _ = try await store.resolve(url: setup.url, policy: .always)
            let cache = setup.cacheDirectory(server.url)
            #expect(try version(of: cache + "/root.json") == 3)
            try await setup.makeRepository(roots: 5, version: 2)
            _ = try await store.resolve(url: setup.url, policy: .always)
            #expect(try version(of: cache + "/root.json") == 5)
            #expect(try version(of: cache + "/timestamp.json") == 2)
            #expect(server.requests.contains("/4.root.json"))
            #expect(!server.requests.contains("/1.root.json"), "the cached root is where the chain starts")
        }
    }

    @Test(arguments: [
        ("tampered-target", "does not match its sha256 hash"),
        ("longer-target", ".trusted_root.json: the response is larger than"),
        ("expired-timestamp", "timestamp.json expired"),
        ("timestamp-threshold", "timestamp.json: 1 valid signature(s), the threshold is 2"),
        ("duplicate-key", "timestamp.json: 1 valid signature(s), the threshold is 2"),
        ("bad-rotation", "2.root.json (by the keys of root 1): 0 valid signature(s), the threshold is 1"),
    ])
    func refusedRepositoryCachesNothing(_ fault: String, _ reason: String) async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository(roots: fault == "bad-rotation" ? 2 : 1, fault: fault)
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            defer { server.stop() }
            let lax = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            let store = try setup.store(repository: server.url, initialRoot: server.initialRoot, policy: lax)
            let error = await expectImageError(.internal, reason) {
                try await store.resolve(url: setup.url, policy: .always)
            }
            #expect(
                error?.message.hasPrefix(
                    "cannot verify signature of \(setup.url): sigstore trust root unavailable: TUF repository "
                        + "\(server.url): "
                ) == true,
                "\(error?.message ?? "")"
            )
            #expect(!FileManager.default.fileExists(atPath: setup.cacheDirectory(server.url)))
            #expect(setup.workspace.cacheContents().isEmpty)
        }
    }

    /// Rollback protection: after version 2 was seen, a repository serving version 1 is refused, and the cache
    /// keeps version 2.
    @Test func rollbackIsRefused() async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository(version: 2)
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            defer { server.stop() }
            let store = try setup.store(repository: server.url, initialRoot: server.initialRoot)
            _ = try await store.resolve(url: setup.url, policy: .always)
            let cache = setup.cacheDirectory(server.url)
            let cached = try Data(contentsOf: URL(fileURLWithPath: cache + "/timestamp.json"))
            try await setup.makeRepository(version: 1)
            _ = await expectImageError(.internal, "rollback: timestamp version 1 < 2") {
                try await store.resolve(url: setup.url, policy: .always)
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: cache + "/timestamp.json")) == cached)
        }
    }

    /// A repository that cannot be reached: the cached trust root serves while the cached metadata is fresh (with
    /// a warning), and once its timestamp has expired the pull fails with INTERNAL.
    @Test func unreachableRepositoryFallsBackToAFreshCacheOnly() async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository(timestampSeconds: 12)
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            let store = try setup.store(repository: server.url, initialRoot: server.initialRoot)
            let written = ContinuousClock.now
            _ = try await store.resolve(url: setup.url, policy: .always)
            _ = try await store.resolve(url: setup.url, policy: .always)
            // The second update found the target unchanged in the targets metadata: one download.
            #expect(server.requests.filter { $0.hasPrefix("/targets/") }.count == 1, "\(server.requests)")
            server.stop()
            _ = try await store.resolve(url: setup.url, policy: .always)
            #expect(setup.workspace.log.all.contains { $0.contains("TUF repository unreachable; using the cached") })
            try await Task.sleep(until: written + .seconds(14))
            let error = await expectImageError(.internal, "TUF repository \(server.url): 2.root.json: ") {
                try await store.resolve(url: setup.url, policy: .always)
            }
            #expect(
                error?.message.hasPrefix("cannot verify signature of \(setup.url): sigstore trust root unavailable: ")
                    == true
            )
        }
    }

    @Test func unreachableRepositoryIsInternal() async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository()
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            let stopped = server.url
            server.stop()
            let lax = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            let store = try setup.store(repository: stopped, initialRoot: server.initialRoot, policy: lax)
            let error = await expectImageError(.internal, "TUF repository \(stopped): 2.root.json: ") {
                try await store.resolve(url: setup.url, policy: .always)
            }
            #expect(
                error?.message.hasPrefix("cannot verify signature of \(setup.url): sigstore trust root unavailable: ")
                    == true
            )
            #expect(setup.workspace.cacheContents().isEmpty)
        }
    }

    /// A pre-seeded `<rd>/tuf/trusted_root.json` wins, and an unsigned image never needs a trust root: the TUF
    /// repository is not asked for anything in either case.
    @Test func preSeededFileAndUnsignedImagesNeverContactTUF() async throws {
        try await withSignedImage(sign: false) { setup in
            try await setup.makeRepository()
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            defer { server.stop() }
            let lax = SigningPolicy(verifyEnabled: true, allowUnsigned: true)
            _ = try await setup.store(repository: server.url, initialRoot: server.initialRoot, policy: lax)
                .resolve(url: setup.url, policy: .always)
            #expect(server.requests.isEmpty, "\(server.requests)")
            try await SigstoreForge.signImage(
                root: setup.root,
                digest: setup.digest,
                format: .legacy,
                registry: setup.url.split(separator: "/").first.map(String.init)
            )
            try FileManager.default.createDirectory(
                atPath: setup.runtimeDirectory + "/tuf",
                withIntermediateDirectories: true
            )
            try FileManager.default.copyItem(
                atPath: setup.root.trustedRoot,
                toPath: setup.runtimeDirectory + "/tuf/trusted_root.json"
            )
            let image = try await setup.store(repository: server.url, initialRoot: server.initialRoot)
                .resolve(url: setup.url, policy: .always)
            #expect(try setup.workspace.metadata(of: image)["verified_digest"] as? String == setup.digest)
            #expect(server.requests.isEmpty, "\(server.requests)")
        }
    }

    /// Without `BPFMAN_TUF_ROOT` the client starts from the embedded Sigstore public-good root (version 16): the
    /// test repository's metadata is not signed by Sigstore's keys, so it is refused, naming Sigstore's root.
    @Test func embeddedSigstoreRootIsTheDefault() async throws {
        try await withSignedImage { setup in
            try await setup.makeRepository()
            let server = try await TestTUFRepository.serve(setup.tufDirectory)
            defer { server.stop() }
            let store = try setup.store(repository: server.url, initialRoot: nil)
            let error = await expectImageError(.internal, "TUF repository \(server.url): ") {
                try await store.resolve(url: setup.url, policy: .always)
            }
            // Until root 16 expires (2027-04-22) the test repository's timestamp is what fails; after, root 16.
            let reason = error?.message ?? ""
            #expect(
                reason.hasSuffix("timestamp.json: 0 valid signature(s), the threshold is 1")
                    || reason.hasSuffix("root version 16 expired (freeze attack?)"),
                "\(reason)"
            )
            #expect(server.requests.first == "/17.root.json", "\(server.requests)")
            #expect(
                TUFCache(environment: [:], runtimeDirectory: "/rd").repository == "https://tuf-repo-cdn.sigstore.dev"
            )
        }
    }
}

/// The embedded Sigstore root against itself: real data signed by Sigstore's root keyholders. The one signature
/// the history copy carries (key e71a54d5…) verifies over this client's canonical JSON of `signed`, and one of
/// five is below the root role's threshold of 3 (the client trusts the initial root as given, it does not check it).
@Test(.enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"))
func embeddedSigstoreRootSignatureVerifiesOverCanonicalJSON() throws {
    let bytes = Array(SigstorePublicGood.initialRoot.utf8)
    func failed(_ reason: String) -> PullFailure { PullFailure(kind: .trustRootUnavailable, reason: reason) }
    let root = try Metadata(bytes, role: "root", what: "root 16", failed)
    #expect(root.version == 16)
    #expect(root.consistentSnapshot)
    let roles = try RootRoles(root, failed)
    #expect(roles.keys.count == 6)
    #expect(roles.roles["root"]?.threshold == 3)
    do {
        try roles.check(root, role: "root", what: "root 16", failed)
        Issue.record("one signature met a threshold of 3")
    } catch {
        #expect(error.reason == "root 16: 1 valid signature(s), the threshold is 3")
    }
    // One changed byte in `signed` and the signature no longer verifies.
    var tampered = root
    tampered.signed = try JSONDecoder().decode(
        JSONValue.self,
        from: Data(
            SigstorePublicGood.initialRoot.replacingOccurrences(of: "\"version\":16", with: "\"version\":17").utf8
        )
    )
    if case .object(let fields) = tampered.signed, let signed = fields["signed"] { tampered.signed = signed }
    do {
        try roles.check(tampered, role: "root", what: "tampered", failed)
        Issue.record("a tampered root met the threshold")
    } catch {
        #expect(error.reason == "tampered: 0 valid signature(s), the threshold is 3")
    }
}

/// TUF's canonical JSON of what a metadata file holds: every JSON kind decoded, keys written in code point order
/// (U+FFFD before U+10000, where UTF-16's order would put them the other way round), and a number that is no
/// integer refused, whichever kind of value it sits in.
@Test func canonicalJSONKeepsEveryKindAndSortsKeysByCodePoint() throws {
    let text = #"{"z":[1,-2,true,false,null],"a":{"\#u{10000}":"x","\#u{FFFD}":"y","é":"q\"\\","Z":{}},"":""}"#
    let value = try decodeJSON(JSONValue.self, Array(text.utf8))
    let expected = #"{"":"","a":{"Z":{},"é":"q\"\\","\#u{FFFD}":"y","\#u{10000}":"x"},"z":[1,-2,true,false,null]}"#
    #expect(String(decoding: value.canonical, as: UTF8.self) == expected)
    #expect(try decodeJSON(JSONValue.self, value.canonical) == value)
    for refused in [#"{"a":1.5}"#, #"[[1.5]]"#, #"{"a":[{"b":2.5}]}"#, "1.5"] {
        #expect(throws: (any Error).self, "\(refused)") { try decodeJSON(JSONValue.self, Array(refused.utf8)) }
    }
}
