import BpfmanImages
import Foundation
import TestSupport
import Testing

/// The real registry with htpasswd authentication (Basic challenges) and with TLS under a CA the test makes:
/// credentials given, refused, missing and read from auth files (SPEC §8.4), certificates (SPEC §8.2).
@Suite(
    .serialized,
    .enabled(if: RegistryTools.canRunSecureRegistry, "\(RegistryTools.cannotRunSecureRegistry)"),
    .timeLimit(.minutes(2))
)
struct RegistryAuthTests {
    static let login = RegistryLogin(username: "puller", password: "s3cret:Pa55word-4-images")

    /// A registry with `options` holding the tracepoint image as `private/bytecode:latest`.
    func withPrivateImage(
        _ options: TestRegistry.Options,
        _ body: (Workspace, TestRegistry) async throws -> Void
    ) async throws {
        try await withWorkspace { workspace in
            try await withTestRegistry(options) { registry in
                let layout = try workspace.layout(with: try Objects.tracepointImage())
                try await registry.push(layout: layout.directory, tag: "v1", repository: "private/bytecode")
                try await body(workspace, registry)
            }
        }
    }

    @Test func rightCredentialsPull() async throws {
        try await withPrivateImage(.init(login: Self.login)) { workspace, registry in
            let image = try await workspace.store().resolve(
                url: "\(registry.host)/private/bytecode",
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            expectNoSecrets(in: workspace)
        }
    }

    @Test(arguments: [("puller", "wrong"), ("nobody", RegistryAuthTests.login.password)])
    func wrongCredentialsArePermissionDenied(_ username: String, _ password: String) async throws {
        try await withPrivateImage(.init(login: Self.login)) { workspace, registry in
            let url = "\(registry.host)/private/bytecode"
            let error = await expectImageError(.permissionDenied, "refused the credentials") {
                try await workspace.store().resolve(url: url, policy: .always, username: username, password: password)
            }
            #expect(error?.message == "registry \(registry.host) refused the credentials for \(url)")
            #expect(error?.message.contains(password) == false)
            expectEmptyCache(workspace)
        }
    }

    /// No credentials (or only half of them, which SPEC §8.4 counts as none) against a private registry.
    @Test(arguments: [(String?.none, String?.none), ("puller", ""), ("", "s3cret")])
    func missingCredentialsAreInternal(_ username: String?, _ password: String?) async throws {
        try await withPrivateImage(.init(login: Self.login)) { workspace, registry in
            let url = "\(registry.host)/private/bytecode"
            let error = await expectImageError(.internal, "failed to pull image \(url): ") {
                try await workspace.store().resolve(url: url, policy: .always, username: username, password: password)
            }
            #expect(error?.message.contains("credentials") == true, "\(error?.message ?? "")")
            expectEmptyCache(workspace)
        }
    }

    /// The auth files of SPEC §8.4, each found through the environment the store was given.
    @Test(arguments: ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "HOME", "DOCKER_CONFIG", "HOME/.docker"])
    func credentialsComeFromAnAuthFile(_ source: String) async throws {
        try await withPrivateImage(.init(login: Self.login)) { workspace, registry in
            let base = workspace.root + "/auth"
            let (variable, file): (String, String) =
                switch source {
                case "REGISTRY_AUTH_FILE": ("REGISTRY_AUTH_FILE", base + "/auth.json")
                case "XDG_RUNTIME_DIR": ("XDG_RUNTIME_DIR", base + "/containers/auth.json")
                case "HOME": ("HOME", base + "/.config/containers/auth.json")
                case "DOCKER_CONFIG": ("DOCKER_CONFIG", base + "/config.json")
                default: ("HOME", base + "/.docker/config.json")
                }
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: file).deletingLastPathComponent().path,
                withIntermediateDirectories: true
            )
            try authFile(at: file, registry: registry.host, login: Self.login)
            let value = variable == "REGISTRY_AUTH_FILE" ? file : base
            let image = try await workspace.store(environment: [variable: value]).resolve(
                url: "\(registry.host)/private/bytecode",
                policy: .always
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            expectNoSecrets(in: workspace)
        }
    }

    /// Only the first auth file that exists is read: a wrong password there is refused even though a later
    /// file holds the right one; credentials given in the call win over both.
    @Test func firstAuthFileWinsAndGivenCredentialsWinOverFiles() async throws {
        try await withPrivateImage(.init(login: Self.login)) { workspace, registry in
            let first = workspace.root + "/first.json"
            let home = workspace.root + "/home"
            try FileManager.default.createDirectory(atPath: home + "/.docker", withIntermediateDirectories: true)
            try authFile(at: first, registry: registry.host, login: RegistryLogin(username: "puller", password: "old"))
            try authFile(at: home + "/.docker/config.json", registry: registry.host, login: Self.login)
            let store = try workspace.store(environment: ["REGISTRY_AUTH_FILE": first, "HOME": home])
            let url = "\(registry.host)/private/bytecode"
            await expectImageError(.permissionDenied, "refused the credentials") {
                try await store.resolve(url: url, policy: .always)
            }
            let image = try await store.resolve(
                url: url,
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
        }
    }

    @Test func tlsRegistryWithItsCAInSSLCertFile() async throws {
        try await withPrivateImage(.init(tls: true)) { workspace, registry in
            let caFile = try #require(registry.caFile)
            let image = try await workspace.store(environment: ["SSL_CERT_FILE": caFile]).resolve(
                url: "\(registry.host)/private/bytecode",
                policy: .always
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
        }
    }

    /// Without the CA the certificate is not trusted, and a loopback registry that speaks TLS is not retried
    /// over plain HTTP.
    @Test func tlsRegistryWithoutItsCAIsRefused() async throws {
        try await withPrivateImage(.init(tls: true)) { workspace, registry in
            let url = "\(registry.host)/private/bytecode"
            let error = await expectImageError(.internal, "failed to pull image \(url): ") {
                try await workspace.store().resolve(url: url, policy: .always)
            }
            #expect(error?.message.contains("certificate") == true, "\(error?.message ?? "")")
            expectEmptyCache(workspace)
        }
    }

    @Test func tlsRegistryWithCredentials() async throws {
        try await withPrivateImage(.init(login: Self.login, tls: true)) { workspace, registry in
            let store = try workspace.store(environment: ["SSL_CERT_FILE": try #require(registry.caFile)])
            let url = "\(registry.host)/private/bytecode"
            let image = try await store.resolve(
                url: url,
                policy: .always,
                username: Self.login.username,
                password: Self.login.password
            )
            try expectEntry(image, holds: try Objects.tracepoint().bytes, in: workspace)
            await expectImageError(.permissionDenied, "refused the credentials") {
                try await store.resolve(url: url, policy: .always, username: "puller", password: "wrong")
            }
            expectNoSecrets(in: workspace)
        }
    }

    /// The password is nowhere in the cache, nor in what the store logged (SPEC §8.4).
    func expectNoSecrets(in workspace: Workspace, sourceLocation: SourceLocation = #_sourceLocation) {
        let secret = Array(Self.login.password.utf8)
        let encoded = Array(Data("\(Self.login.username):\(Self.login.password)".utf8).base64EncodedString().utf8)
        let files = workspace.cacheFiles()
        #expect(!files.isEmpty, sourceLocation: sourceLocation)
        for (path, bytes) in files {
            #expect(
                !contains(bytes, secret) && !contains(bytes, encoded),
                "\(path) holds the password",
                sourceLocation: sourceLocation
            )
        }
        for line in workspace.log.all {
            #expect(!line.contains(Self.login.password), "logged: \(line)", sourceLocation: sourceLocation)
        }
    }
}

/// Whether `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return needle.isEmpty }
    return (0...(haystack.count - needle.count)).contains { haystack[$0..<$0 + needle.count].elementsEqual(needle) }
}
