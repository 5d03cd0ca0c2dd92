internal import FoundationEssentials
internal import Glibc
internal import Synchronization
internal import SystemCalls

/// A registry user name and password. Never logged, stored, cached or returned (SPEC §8.4): it has no
/// Codable conformance and prints as `<redacted>`.
package struct RegistryCredentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    package let username: String
    package let password: String

    /// Both must be non-empty, else there are no credentials (SPEC §8.4).
    package init?(username: String?, password: String?) {
        guard let username, let password, !username.isEmpty, !password.isEmpty else { return nil }
        self.username = username
        self.password = password
    }

    /// `Basic <base64(user:pass)>`.
    package var basicAuthorization: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }

    /// A digest that tells credentials apart (token cache, shared downloads) without keeping them in a key.
    /// Kept in memory only (token cache and shared-download keys), never logged or written.
    package var fingerprint: String { "\(username)\u{0}\(password)" }

    package var description: String { "<redacted>" }
    package var debugDescription: String { "<redacted>" }
}

/// The auth files of SPEC §8.4, in order; the first that exists is the only one read.
package struct AuthFiles: Sendable {
    package var candidates: [String]

    package init(candidates: [String]) { self.candidates = candidates }

    /// `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`, `$HOME/.config/containers/auth.json`,
    /// `$DOCKER_CONFIG/config.json` else `$HOME/.docker/config.json`.
    package init(environment: [String: String]) {
        var files: [String] = []
        func add(_ variable: String, _ suffix: String) {
            if let value = environment[variable], !value.isEmpty { files.append(value + suffix) }
        }
        add("REGISTRY_AUTH_FILE", "")
        add("XDG_RUNTIME_DIR", "/containers/auth.json")
        add("HOME", "/.config/containers/auth.json")
        if environment["DOCKER_CONFIG"].map({ !$0.isEmpty }) == true {
            add("DOCKER_CONFIG", "/config.json")
        } else {
            add("HOME", "/.docker/config.json")
        }
        candidates = files
    }

    /// The credentials the first existing file holds for `registry`, or nil. A file that cannot be read or
    /// parsed gives none (the pull goes on anonymously); its content is never logged.
    func credentials(for registry: String) -> RegistryCredentials? {
        guard let path = candidates.first(where: { access($0, F_OK) == 0 }),
            let bytes = readSmallFile(path, limit: 1 << 20)
        else { return nil }
        struct File: Decodable {
            struct Entry: Decodable { var auth: String? }
            var auths: [String: Entry]?
        }
        guard let auths = (try? JSONDecoder().decode(File.self, from: Data(bytes)))?.auths else { return nil }
        var names = [registry, "https://\(registry)", "http://\(registry)"]
        if registry == "docker.io" {
            names += ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"]
        }
        for name in names {
            guard let encoded = auths[name]?.auth, let decoded = Data(base64Encoded: encoded),
                let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":")
            else { continue }
            return RegistryCredentials(
                username: String(text[..<colon]),
                password: String(text[text.index(after: colon)...])
            )
        }
        return nil
    }
}

/// Reads at most `limit` bytes of a regular file; nil when it cannot be opened, is not regular, or is larger.
package func readSmallFile(_ path: String, limit: Int) -> [UInt8]? {
    readSmallFile(at: AT_FDCWD, path, limit: limit)
}

/// Reads at most `limit` bytes of the regular file `name` (relative to the directory `directoryFD`, or absolute);
/// nil when it cannot be opened, is not regular, or is larger. A final symbolic link is not followed.
package func readSmallFile(at directoryFD: CInt, _ name: String, limit: Int) -> [UInt8]? {
    let raw = openat(directoryFD, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard raw >= 0 else { return nil }
    let fd = OwnedFD(taking: raw)
    var info = stat()
    guard fstat(fd.rawValue, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, Int(info.st_size) <= limit else {
        return nil
    }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { buffer in
            try? syscall("read") { read(fd.rawValue, buffer.baseAddress! + offset, buffer.count - offset) }
        }
        guard let n, n > 0 else { return nil }
        offset += n
    }
    return bytes
}

/// Bearer tokens per registry, scope and credentials, kept until they expire (SPEC §8.2). Shared by all pulls.
package final class TokenCache: Sendable {
    private struct Key: Hashable {
        var registry: String
        var scope: String
        var credentials: String
    }

    private struct Token {
        var value: String
        var expires: ContinuousClock.Instant
    }

    private let tokens = Mutex<[Key: Token]>([:])

    package init() {}

    package func token(registry: String, scope: String, credentials: RegistryCredentials?) -> String? {
        let key = Key(registry: registry, scope: scope, credentials: credentials?.fingerprint ?? "")
        return tokens.withLock { tokens in
            guard let token = tokens[key] else { return nil }
            guard token.expires > .now else {
                tokens[key] = nil
                return nil
            }
            return token.value
        }
    }

    /// Forgets `value` wherever it is cached: the registry refused it.
    package func remove(_ value: String) {
        tokens.withLock { tokens in tokens = tokens.filter { $0.value.value != value } }
    }

    package func store(
        _ value: String,
        lifetime: Duration,
        registry: String,
        scope: String,
        credentials: RegistryCredentials?
    ) {
        let key = Key(registry: registry, scope: scope, credentials: credentials?.fingerprint ?? "")
        tokens.withLock { tokens in
            // Expired entries go first, so the cache stays as small as the set of live tokens.
            let now = ContinuousClock.now
            tokens = tokens.filter { $0.value.expires > now }
            tokens[key] = Token(value: value, expires: now + lifetime)
        }
    }

    /// The live tokens for `registry` and `credentials`, to hand to a fetcher process.
    package func grants(registry: String, credentials: RegistryCredentials?) -> [TokenGrant] {
        let fingerprint = credentials?.fingerprint ?? ""
        let now = ContinuousClock.now
        return tokens.withLock { tokens in
            tokens.compactMap { key, token in
                guard key.registry == registry, key.credentials == fingerprint, token.expires > now else { return nil }
                return TokenGrant(
                    scope: key.scope,
                    token: token.value,
                    seconds: (token.expires - now).components.seconds
                )
            }
        }
    }

    /// Replaces the tokens of `registry` and `credentials` with what a fetcher process ended with.
    package func replace(registry: String, credentials: RegistryCredentials?, with grants: [TokenGrant]) {
        let fingerprint = credentials?.fingerprint ?? ""
        let now = ContinuousClock.now
        tokens.withLock { tokens in
            tokens = tokens.filter {
                ($0.key.registry != registry || $0.key.credentials != fingerprint) && $0.value.expires > now
            }
            for grant in grants where grant.seconds > 0 {
                let key = Key(registry: registry, scope: grant.scope, credentials: fingerprint)
                tokens[key] = Token(value: grant.token, expires: now + .seconds(grant.seconds))
            }
        }
    }
}
