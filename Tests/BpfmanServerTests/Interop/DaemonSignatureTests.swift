import Foundation
import TestSupport
import Testing

extension DaemonKernelTests.Images {
    /// Image signatures through the real daemon (SPEC §8.5, §1.8): a production-like config (unsigned images
    /// refused, one trusted identity) and a trust root pre-seeded as `<runtime dir>/tuf/trusted_root.json`, as
    /// an offline node has it. Images and signatures are made by the test and pushed to Debian's registry.
    @Test(.enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"))
    func signedImagesLoadAndOthersAreRefused() async throws {
        let layout = try Self.tracepointLayout()
        defer { try? FileManager.default.removeItem(atPath: layout.directory) }
        try await withTestRegistry { registry in
            var digests: [String: String] = [:]
            for repository in ["legacy", "bundle", "unsigned", "stranger"] {
                digests[repository] = try await registry.push(
                    layout: layout.directory,
                    tag: "tp",
                    repository: repository
                )
            }
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            let root = try await SigstoreForge.makeRoot(in: daemon.directory + "/sigstore")
            try await SigstoreForge.signImage(
                root: root,
                digest: digests["legacy"]!,
                format: .legacy,
                registry: registry.host,
                repository: "legacy"
            )
            try await SigstoreForge.signImage(
                root: root,
                digest: digests["bundle"]!,
                format: .bundle,
                registry: registry.host,
                repository: "bundle"
            )
            try await SigstoreForge.signImage(
                root: root,
                digest: digests["stranger"]!,
                format: .bundle,
                registry: registry.host,
                repository: "stranger",
                identity: "mallory@bpfman.test"
            )
            // Pre-seeded, as the README tells an offline node to do.
            try FileManager.default.createDirectory(
                atPath: daemon.runtimeDirectory + "/tuf",
                withIntermediateDirectories: true
            )
            try FileManager.default.copyItem(
                atPath: root.trustedRoot,
                toPath: daemon.runtimeDirectory + "/tuf/trusted_root.json"
            )
            try writeBytes(
                Array(
                    """
                    [logging]
                    level = "debug"
                    [signing]
                    verify_enabled = true
                    allow_unsigned = false
                    [[signing.trusted_identities]]
                    certificate_identity = "\(SigstoreForge.identity)"
                    certificate_oidc_issuer_regexp = "https://issuer\\\\.bpfman\\\\.test"

                    """.utf8
                ),
                to: daemon.directory + "/bpfman.toml"
            )
            try daemon.start()
            for repository in ["legacy", "bundle"] {
                let url = "\(registry.host)/\(repository):latest"
                let load = try await CLI.bpfman(
                    daemon,
                    ["load", "image", "-i", url, "--programs", "tracepoint:count_kill"]
                )
                #expect(load.status == 0, "\(load.output)\n\(daemon.log)")
                let id = try #require(CLI.row("Program ID", in: load.output), "\(load.output)")
                _ = try await CLI.bpfman(daemon, ["unload", id])
            }
            let unsigned = try await CLI.bpfman(
                daemon,
                ["load", "image", "-i", "\(registry.host)/unsigned", "--programs", "tracepoint:count_kill"]
            )
            #expect(
                unsigned.output
                    == "Error: FAILED_PRECONDITION: image \(registry.host)/unsigned is not signed and unsigned images "
                    + "are not allowed\n",
                "\(unsigned.output)"
            )
            let stranger = try await CLI.bpfman(daemon, ["image", "pull", "-i", "\(registry.host)/stranger"])
            #expect(
                stranger.output.hasPrefix(
                    "Error: FAILED_PRECONDITION: signature verification failed for \(registry.host)/stranger: "
                        + "OCI referrer bundle: the signer mallory@bpfman.test (issuer https://issuer.bpfman.test) "
                        + "is not a trusted identity"
                ),
                "\(stranger.output)"
            )
            // Only the two verified images are cached, each with its verified digest.
            let entries = try FileManager.default.contentsOfDirectory(atPath: daemon.imageCacheDirectory)
                .filter { !$0.hasPrefix(".") }
            #expect(entries.count == 2, "\(entries)")
            let verified = try entries.map { entry in
                let data = try Data(
                    contentsOf: URL(fileURLWithPath: daemon.imageCacheDirectory + "/\(entry)/metadata.json")
                )
                return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])["verified_digest"]
                    as? String
            }
            #expect(Set(verified.compactMap { $0 }) == [digests["legacy"]!, digests["bundle"]!])
            #expect(daemon.log.contains("image signature verified"), "\(daemon.log)")
        }
    }

    /// With no trust root file, the daemon fetches it through TUF (SPEC §8.5): the operator's default config
    /// (`allow_unsigned = true`) loads a signed image, with the repository (made by the test, served by Python's
    /// http.server) named by `BPFMAN_TUF_URL` and its initial root by `BPFMAN_TUF_ROOT`; the verified metadata is
    /// cached under `<rd>/tuf/` by the daemon, and a second pull refreshes it from there.
    @Test(.enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"))
    func signedImageLoadsWithTheTrustRootFromTUF() async throws {
        let layout = try Self.tracepointLayout()
        defer { try? FileManager.default.removeItem(atPath: layout.directory) }
        try await withTestRegistry { registry in
            let digest = try await registry.push(layout: layout.directory, tag: "tp", repository: "bundle")
            let daemon = try TestDaemon()
            defer { daemon.destroy() }
            let root = try await SigstoreForge.makeRoot(in: daemon.directory + "/sigstore")
            try await SigstoreForge.signImage(
                root: root,
                digest: digest,
                format: .bundle,
                registry: registry.host,
                repository: "bundle"
            )
            let repository = daemon.directory + "/tuf-repository"
            try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
            try await TestTUFRepository.make(in: repository, target: root.trustedRoot, roots: 2)
            let server = try await TestTUFRepository.serve(repository)
            defer { server.stop() }
            try daemon.start(environment: ["BPFMAN_TUF_URL": server.url, "BPFMAN_TUF_ROOT": server.initialRoot])
            let url = "\(registry.host)/bundle:latest"
            for _ in 0..<2 {
                let pull = try await CLI.bpfman(daemon, ["image", "pull", "-i", url, "-p", "Always"])
                #expect(pull.status == 0, "\(pull.output)\n\(daemon.log)")
            }
            #expect(daemon.log.contains("sigstore trust root fetched through TUF"), "\(daemon.log)")
            #expect(daemon.log.contains("image signature verified"), "\(daemon.log)")
            #expect(!FileManager.default.fileExists(atPath: daemon.runtimeDirectory + "/tuf/trusted_root.json"))
            let cached = try FileManager.default.contentsOfDirectory(atPath: daemon.runtimeDirectory + "/tuf")
            #expect(cached.count == 1, "\(cached)")
            let files = try FileManager.default.contentsOfDirectory(
                atPath: daemon.runtimeDirectory + "/tuf/" + (cached.first ?? "")
            )
            #expect(
                Set(files) == ["root.json", "timestamp.json", "snapshot.json", "targets.json", "trusted_root.json"]
            )
            // The second pull started from the cached root 2 (no 1 → 2 step again).
            #expect(server.requests.filter { $0 == "/2.root.json" }.count == 1, "\(server.requests)")
            #expect(server.requests.filter { $0 == "/3.root.json" }.count == 2, "\(server.requests)")
        }
    }

    /// `[[signing.trusted_identities]]` is checked at start-up: a bad regexp stops the daemon with exit 1 and a
    /// message naming the file, line and entry (SPEC §1.8).
    @Test func invalidTrustedIdentityStopsStartUp() async throws {
        let daemon = try TestDaemon()
        defer { daemon.destroy() }
        let config = daemon.directory + "/bpfman.toml"
        try writeBytes(
            Array(
                """
                [[signing.trusted_identities]]
                certificate_identity = "a@example.com"
                certificate_oidc_issuer = "https://issuer.example.com"
                [[signing.trusted_identities]]
                certificate_identity_regexp = "[unclosed"
                certificate_oidc_issuer = "https://issuer.example.com"

                """.utf8
            ),
            to: config
        )
        let result = try await spawn(
            DaemonTools.bpfman!,
            [
                "serve", "--runtime-dir", daemon.runtimeDirectory, "--socket-path", daemon.socketPath, "--config",
                config,
            ],
            timeout: 30
        )
        #expect(result.status == 1, "\(result.output)")
        #expect(
            result.output.contains(
                "\(config): line 1: signing.trusted_identities entry 2 has an invalid certificate_identity_regexp "
                    + "\"[unclosed\""
            ),
            "\(result.output)"
        )
    }

    /// `bpfman image verify-bundle` (the conformance CLI's verify, SPEC §8.5) on a blob and on its digest, with a
    /// test-made trust root; a wrong identity, a tampered blob and a bad bundle exit 1.
    @Test(.enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"))
    func verifyBundleFollowsTheConformanceProtocol() async throws {
        let directory = try makeTemporaryDirectory(prefix: "verify-bundle")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = try await SigstoreForge.makeRoot(in: directory + "/root")
        let blob = directory + "/artifact.txt"
        try writeBytes(Array("bytecode release notes\n".utf8), to: blob)
        try await SigstoreForge.signBlob(root: root, blob: blob, bundle: directory + "/good.json")
        try await SigstoreForge.signBlob(root: root, blob: blob, bundle: directory + "/bad.json", fault: "bad-set")
        let tampered = directory + "/tampered.txt"
        try writeBytes(Array("bytecode release notes!\n".utf8), to: tampered)
        func verify(
            _ bundle: String,
            _ artifact: String,
            identity: String = SigstoreForge.identity
        ) async throws
            -> SpawnResult
        {
            try await spawn(
                DaemonTools.bpfman!,
                [
                    "image", "verify-bundle", "--bundle", directory + "/" + bundle, "--certificate-identity", identity,
                    "--certificate-oidc-issuer", SigstoreForge.issuer, "--trusted-root", root.trustedRoot, artifact,
                ],
                timeout: 30
            )
        }
        let good = try await verify("good.json", blob)
        #expect(good.status == 0, "\(good.output)")
        #expect(good.output.hasPrefix("OK: signed by \(SigstoreForge.identity)"), "\(good.output)")
        let digest = "sha256:" + sha256Hex(try readBytes(blob))
        #expect(try await verify("good.json", digest).status == 0)
        let failures = [
            (try await verify("good.json", blob, identity: "mallory@bpfman.test"), "is not a trusted identity"),
            (try await verify("good.json", tampered), "the bundle signs another artifact"),
            (try await verify("bad.json", blob), "signed entry timestamp does not verify"),
        ]
        for (result, reason) in failures {
            #expect(result.status == 1, "\(result.output)")
            #expect(
                result.output.hasPrefix("verification failed: ") && result.output.contains(reason),
                "\(result.output)"
            )
        }
    }
    /// Without `--trusted-root`, and no file in the runtime directory, `verify-bundle` fetches the trust root
    /// through TUF as the daemon does (a repository the test made, on 127.0.0.1); an unreachable one exits 1
    /// with `sigstore trust root unavailable`.
    @Test(.enabled(if: SigstoreForge.canRun, "\(SigstoreForge.cannotRun)"))
    func verifyBundleFetchesTheTrustRootThroughTUF() async throws {
        let directory = try makeTemporaryDirectory(prefix: "verify-bundle-tuf")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let root = try await SigstoreForge.makeRoot(in: directory + "/root")
        let blob = directory + "/artifact.txt"
        try writeBytes(Array("bytecode release notes\n".utf8), to: blob)
        try await SigstoreForge.signBlob(root: root, blob: blob, bundle: directory + "/good.json")
        let repository = directory + "/repository"
        try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: directory + "/rd", withIntermediateDirectories: true)
        try await TestTUFRepository.make(in: repository, target: root.trustedRoot)
        let server = try await TestTUFRepository.serve(repository)
        func verify(_ url: String) async throws -> SpawnResult {
            try await spawn(
                DaemonTools.bpfman!,
                [
                    "image", "verify-bundle", "--bundle", directory + "/good.json", "--certificate-identity",
                    SigstoreForge.identity, "--certificate-oidc-issuer", SigstoreForge.issuer, "--runtime-dir",
                    directory + "/rd", blob,
                ],
                environment: ["BPFMAN_TUF_URL": url, "BPFMAN_TUF_ROOT": server.initialRoot],
                timeout: 30
            )
        }
        let good = try await verify(server.url)
        #expect(good.status == 0, "\(good.output)")
        #expect(server.requests.contains("/timestamp.json"), "\(server.requests)")
        server.stop()
        let unreachable = try await verify(server.url)
        #expect(unreachable.status == 1, "\(unreachable.output)")
        #expect(
            unreachable.output.hasPrefix(
                "verification failed: sigstore trust root unavailable: TUF repository \(server.url): "
            ),
            "\(unreachable.output)"
        )
    }
}
