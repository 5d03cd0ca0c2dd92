import BpfmanImages
import Foundation
import TestSupport
import Testing

/// What a real registry won't do, from Interop/images/registry_standin.py: bearer-token challenges and token
/// caching, redirects to blob storage, a blob that lies about its digest, and slow blobs for concurrent pulls
/// of one image. Its `/stats` counts what the store asked.
@Suite(
    .serialized,
    .enabled(if: RegistryTools.canRunStandin, "\(RegistryTools.cannotRunStandin)"),
    .timeLimit(.minutes(2))
)
struct StandinRegistryTests {
    static let login = RegistryLogin(username: "robot", password: "t0ken-Service-Pa55")

    /// A stand-in with `options` serving the tracepoint image as `bytecode:latest`.
    func withStandin(
        _ options: RegistryStandin.Options,
        image: TestImage? = nil,
        _ body: (Workspace, RegistryStandin, _ manifest: OCIDescriptor) async throws -> Void
    ) async throws {
        try await withWorkspace { workspace in
            let layout = try workspace.layout()
            let manifest = try layout.add(try image ?? Objects.tracepointImage(), tag: "latest")
            try await withRegistryStandin(layout: layout.directory, repository: "bytecode", options: options) {
                standin in try await body(workspace, standin, manifest)
            }
        }
    }

    @Test func plainStandinServesTheImage() async throws {
        try await withStandin(.init()) { workspace, standin, manifest in
            let image = try await workspace.store().resolve(url: "\(standin.host)/bytecode", policy: .always)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(image.digest == manifest.digest)
            let stats = try standin.stats()
            // A pull with verification on (the default) asks for the manifest, its `.sig` tag and its referrers
            // (SPEC §8.5); the stand-in answers the referrers API, so the `sha256-<hex>` tag is not asked for.
            #expect(stats.manifestGets == 2)
            #expect(stats.referrersGets == 1)
            #expect(stats.blobGets == 2)
            #expect(stats.tokenRequests == 0)
        }
    }

    /// An anonymous token: the challenge is answered without credentials, and the token is cached for the
    /// registry and scope, so a second pull asks for none.
    @Test func bearerTokenWithoutCredentialsIsFetchedOnceAndReused() async throws {
        try await withStandin(.init(bearer: true)) { workspace, standin, manifest in
            let store = try workspace.store()
            let url = "\(standin.host)/bytecode"
            let first = try await store.resolve(url: url, policy: .always)
            try expectEntry(first, holds: try Objects.tracepoint().bytes, in: workspace)
            #expect(first.digest == manifest.digest)
            let afterFirst = try standin.stats()
            #expect(afterFirst.tokenRequests == 1)
            #expect(afterFirst.unauthorized == 1)

            let second = try await store.resolve(url: url, policy: .always)
            #expect(second == first)
            let afterSecond = try standin.stats()
            #expect(afterSecond.tokenRequests == 1, "the token was not reused: \(afterSecond)")
            #expect(afterSecond.unauthorized == 1, "the second pull was challenged: \(afterSecond)")
            #expect(afterSecond.manifestGets == 2 * afterFirst.manifestGets)
        }
    }

    @Test func bearerTokenWithCredentials() async throws {
        try await withStandin(.init(bearer: true, login: Self.login)) { workspace, standin, _ in
            let store = try workspace.store()
            let url = "\(standin.host)/bytecode"
            let image = try await store.resolve(
                url: url,
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            _ = try await store.resolve(
                url: url,
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            #expect(try standin.stats().tokenRequests == 1)
            for (path, bytes) in workspace.cacheFiles() {
                #expect(!contains(bytes, Array(Self.login.password.utf8)), "\(path) holds the password")
            }
            for line in workspace.log.all { #expect(!line.contains(Self.login.password), "logged: \(line)") }
        }
    }

    /// A token is kept per credentials: other credentials (or none) do not reuse the one issued above.
    @Test func bearerTokenServiceRefusingTheCredentials() async throws {
        try await withStandin(.init(bearer: true, login: Self.login)) { workspace, standin, _ in
            let store = try workspace.store()
            let url = "\(standin.host)/bytecode"
            _ = try await store.resolve(
                url: url,
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            let error = await expectImageError(.permissionDenied, "refused the credentials") {
                try await store.resolve(url: url, policy: .always, username: "robot", password: "wrong")
            }
            #expect(error?.message == "registry \(standin.host) refused the credentials for \(url)")
            await expectImageError(.internal, "failed to pull image \(url): ") {
                try await store.resolve(url: url, policy: .always)
            }
            #expect(try standin.stats().tokenRequests == 3)
        }
    }

    /// Credentials go to a token service over plain HTTP only when it is on this machine: a challenge naming
    /// an `http:` realm elsewhere is refused before anything is sent (the address is never contacted).
    @Test func credentialsAreNotSentToAPlainHTTPTokenServiceElsewhere() async throws {
        let realm = "http://192.0.2.1/token"
        try await withStandin(.init(bearer: true, login: Self.login, realm: realm)) { workspace, standin, _ in
            let url = "\(standin.host)/bytecode"
            let store = try workspace.store()
            let error = await expectImageError(.internal, "failed to pull image \(url): ") {
                try await store.resolve(
                    url: url,
                    policy: .always,
                    username: Self.login.username,
                    password: Self.login.password
                )
            }
            #expect(
                error?.message.contains("refusing to send credentials to the token service \(realm)") == true,
                "\(error?.message ?? "")"
            )
            #expect(try standin.stats().tokenRequests == 0)
            expectEmptyCache(workspace)
        }
    }

    /// A cached token that the registry no longer takes (its token service restarted, or the token expired
    /// early) is dropped and the challenge answered afresh, once; it is not the credentials being refused.
    @Test(arguments: [false, true])
    func revokedTokenIsReplaced(_ withCredentials: Bool) async throws {
        let login = withCredentials ? Self.login : nil
        try await withStandin(.init(bearer: true, login: login)) { workspace, standin, _ in
            let store = try workspace.store()
            let url = "\(standin.host)/bytecode"
            let first = try await store.resolve(
                url: url,
                policy: .always,
                username: login?.username,
                password: login?.password
            )
            try standin.revokeTokens()
            let second = try await store.resolve(
                url: url,
                policy: .always,
                username: login?.username,
                password: login?.password
            )
            #expect(second == first)
            let stats = try standin.stats()
            #expect(stats.tokenRequests == 2, "\(stats)")
            #expect(stats.unauthorized == 2, "\(stats)")
        }
    }

    @Test func blobRedirectsToStorageAreFollowed() async throws {
        try await withStandin(.init(bearer: true, redirect: true)) { workspace, standin, _ in
            let image = try await workspace.store().resolve(url: "\(standin.host)/bytecode", policy: .always)
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            let stats = try standin.stats()
            #expect(stats.blobGets == 2)
            #expect(stats.storageGets == 2)
        }
    }

    /// Blob storage on another host gets the redirect's URL only, never the registry's bearer token.
    @Test func redirectToAnotherHostCarriesNoAuthorization() async throws {
        try await withStandin(.init(bearer: true, login: Self.login, redirectToOtherHost: true)) {
            workspace,
            standin,
            _ in
            let image = try await workspace.store().resolve(
                url: "\(standin.host)/bytecode",
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            let stats = try standin.stats()
            #expect(stats.storageGets == 2, "\(stats)")
            #expect(stats.storageAuthorization == 0, "\(stats)")
        }
    }

    @Test func blobThatLiesAboutItsDigestIsRefused() async throws {
        try await withStandin(.init(lie: true)) { workspace, standin, _ in
            let url = "\(standin.host)/bytecode"
            let store = try workspace.store()
            let error = await expectImageError(.internal, "failed to pull image \(url): ") {
                try await store.resolve(url: url, policy: .always)
            }
            #expect(error?.message.contains("does not match its descriptor") == true, "\(error?.message ?? "")")
            expectEmptyCache(workspace)
            await expectImageError(.failedPrecondition, "not in cache") {
                try await store.resolve(url: url, policy: .never)
            }
        }
    }

    /// A blob the registry does not have (404) fails the pull as INTERNAL: only a missing manifest is NOT_FOUND.
    @Test func missingBlobIsInternal() async throws {
        try await withWorkspace { workspace in
            let object = try Objects.tracepoint().bytes
            let layout = try workspace.layout()
            try layout.add(TestImage(layers: [.bare(object)]), tag: "latest")
            try FileManager.default.removeItem(atPath: "\(layout.directory)/blobs/sha256/\(sha256Hex(object))")
            try await withRegistryStandin(layout: layout.directory, repository: "bytecode") { standin in
                let url = "\(standin.host)/bytecode"
                let error = await expectImageError(.internal, "failed to pull image \(url): ") {
                    try await workspace.store().resolve(url: url, policy: .always)
                }
                #expect(error?.message.contains("404") == true, "\(error?.message ?? "")")
                expectEmptyCache(workspace)
            }
        }
    }

    /// Eight callers of one failing pull share its one attempt and its error; a later call tries again.
    @Test func concurrentResolvesShareOneFailure() async throws {
        try await withStandin(.init(lie: true, blobDelay: 0.3)) { workspace, standin, _ in
            let store = try workspace.store()
            let url = "\(standin.host)/bytecode"
            let errors = await withTaskGroup(of: ImageError?.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        do throws(ImageError) {
                            _ = try await store.resolve(url: url, policy: .ifNotPresent)
                            return nil
                        } catch {
                            return error
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(errors.count == 8)
            #expect(errors.allSatisfy { $0?.code == .internal })
            #expect(Set(errors.map { $0?.message }).count == 1)
            // One pull: the manifest and the signature lookups (`.sig` tag, referrers) once.
            #expect(try standin.stats().manifestGets == 2)
            expectEmptyCache(workspace)
            await expectImageError(.internal, "does not match its descriptor") {
                try await store.resolve(url: url, policy: .ifNotPresent)
            }
            #expect(try standin.stats().manifestGets == 4)
        }
    }

    /// A bare ELF layer, as some tools push it, served by a registry.
    @Test func bareObjectLayer() async throws {
        let image = TestImage(layers: [.bare(try Objects.tracepoint().bytes)])
        try await withStandin(.init(), image: image) { workspace, standin, _ in
            let cached = try await workspace.store().resolve(url: "\(standin.host)/bytecode", policy: .always)
            try expectEntry(cached, holds: try Objects.tracepoint().bytes, in: workspace)
        }
    }

    /// Eight callers resolving one uncached image at once share one download (SPEC §8.2).
    @Test func concurrentResolvesShareOneDownload() async throws {
        try await withStandin(.init(bearer: true, blobDelay: 0.5)) { workspace, standin, manifest in
            let store = try workspace.store()
            let url = "\(standin.host)/bytecode"
            let images = try await withThrowingTaskGroup(of: CachedImage.self) { group in
                for _ in 0..<8 { group.addTask { try await store.resolve(url: url, policy: .ifNotPresent) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(images.count == 8)
            #expect(Set(images.map(\.objectPath)).count == 1)
            #expect(images.allSatisfy { $0.digest == manifest.digest })
            try expectEntry(images[0], holds: try Objects.tracepoint().bytes, in: workspace)
            let stats = try standin.stats()
            // One pull: the manifest, its `.sig` tag and its referrers once each (SPEC §8.5), the blobs once.
            #expect(stats.manifestGets == 2 && stats.referrersGets == 1, "\(stats)")
            #expect(stats.blobGets == 2, "\(stats)")
            #expect(stats.tokenRequests == 1, "\(stats)")
            #expect(workspace.cacheContents().count == 1)
        }
    }
}
