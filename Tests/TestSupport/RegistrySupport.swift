import Foundation
import Synchronization

// Registries for image tests, all on 127.0.0.1: Debian's real distribution registry (`docker-registry`, with
// optional htpasswd auth and TLS), images pushed into it with `skopeo`, and a Python stand-in
// (Interop/images/registry_standin.py) for what a real registry won't do: bearer tokens, lying blobs, redirects
// to storage, slow blobs, and counts of what was asked.

/// The image tools the registry tests drive; each is nil when missing, and tests skip with the reason.
public enum RegistryTools {
    public static let registry = executable("docker-registry")
    public static let skopeo = executable("skopeo")
    public static let htpasswd = executable("htpasswd")
    public static let openssl = executable("openssl")
    public static let gzip = executable("gzip")
    /// Debian's Python (the stand-in needs its standard library only).
    public static let python =
        ["/usr/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        ?? executable("python3")

    /// A real registry and skopeo to push into it.
    public static let canRunRegistry = registry != nil && skopeo != nil && gzip != nil
    public static let cannotRunRegistry = "needs docker-registry, skopeo and gzip (scripts/setup.sh)"
    /// The same with htpasswd authentication and a TLS certificate made in the test.
    public static let canRunSecureRegistry = canRunRegistry && htpasswd != nil && openssl != nil
    public static let cannotRunSecureRegistry =
        "needs docker-registry, skopeo, gzip, htpasswd (apache2-utils) and openssl (scripts/setup.sh)"
    /// The Python registry stand-in.
    public static let canRunStandin = python != nil && gzip != nil
    public static let cannotRunStandin = "needs python3 and gzip"

    /// The first executable `name` on `PATH` (or in `/usr/sbin`, `/usr/bin`).
    public static func executable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin"]
        return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// A user name and password for a test registry.
public struct RegistryLogin: Sendable, Equatable {
    public var username: String
    public var password: String

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }
}

/// The manifest format `skopeo copy` writes to the registry.
public enum ManifestFormat: Sendable {
    /// As the layout has it: OCI manifests and indexes.
    case oci
    /// Docker image manifest v2, schema 2 (`--format v2s2`).
    case v2s2
}

// MARK: - The real registry

/// Debian's distribution registry (`docker-registry serve CONFIG`, v2.8) on 127.0.0.1 and a free port, with its
/// storage, configuration and log in a temporary directory.
///
/// Start one with `TestRegistry.start(_:)` or, scoped, `withTestRegistry(_:_:)`. `stop()` kills it and removes
/// its files; it is idempotent, and `deinit` calls it. The registry runs under `timeout` in a process group of
/// its own, so a test process that dies leaves no registry behind for longer than `options.lifetime`.
public final class TestRegistry: Sendable {
    public struct Options: Sendable {
        /// htpasswd authentication (the file made with `htpasswd -Bbn`): the registry answers 401 with
        /// `WWW-Authenticate: Basic` until these are sent.
        public var login: RegistryLogin?
        /// HTTPS with a server certificate for `IP:127.0.0.1` signed by a CA made for this registry (`caFile`).
        public var tls: Bool
        /// Seconds after which the registry exits even if nobody stops it.
        public var lifetime: Int

        public init(login: RegistryLogin? = nil, tls: Bool = false, lifetime: Int = 600) {
            self.login = login
            self.tls = tls
            self.lifetime = lifetime
        }
    }

    /// `127.0.0.1:PORT`: the registry part of image references.
    public let host: String
    public let port: Int
    /// The CA certificate (PEM) that signed the server's certificate, when `options.tls`.
    public let caFile: String?
    public let options: Options
    /// The temporary directory holding the storage, configuration, credentials file, certificates and log.
    public let directory: String
    private let process: ChildProcess

    private init(options: Options, directory: String, port: Int, caFile: String?, process: ChildProcess) {
        self.options = options
        self.directory = directory
        self.port = port
        self.host = "127.0.0.1:\(port)"
        self.caFile = caFile
        self.process = process
    }

    deinit { stop() }

    /// Starts a registry and waits until `/v2/` answers.
    /// - Throws: `FixtureError` with the registry's log when it does not come up within 15 seconds.
    public static func start(_ options: Options = Options()) async throws -> TestRegistry {
        guard let registry = RegistryTools.registry else { throw FixtureError(RegistryTools.cannotRunRegistry) }
        let directory = try makeTemporaryDirectory(prefix: "registry")
        do {
            var auth = ""
            if let login = options.login {
                guard let htpasswd = RegistryTools.htpasswd else { throw FixtureError("needs htpasswd") }
                let made = try await runTool(htpasswd, ["-Bbn", login.username, login.password])
                guard made.status == 0 else { throw FixtureError("htpasswd failed: \(made.errorOutput)") }
                try writeBytes(made.stdout, to: directory + "/htpasswd")
                auth = "auth:\n  htpasswd:\n    realm: bpfman-test\n    path: \(directory)/htpasswd\n"
            }
            var tls = ""
            var caFile: String?
            if options.tls {
                caFile = try await makeCertificates(in: directory)
                tls = "  tls:\n    certificate: \(directory)/server.crt\n    key: \(directory)/server.key\n"
            }
            // A port that was free a moment ago; another process may take it first, hence the retries.
            var lastFailure = FixtureError("the registry did not start")
            for _ in 0..<3 {
                let port = try freeLoopbackPort()
                let config = """
                    version: 0.1
                    log:
                      level: warn
                      accesslog:
                        disabled: true
                    storage:
                      filesystem:
                        rootdirectory: \(directory)/storage
                      delete:
                        enabled: true
                    http:
                      addr: 127.0.0.1:\(port)
                      secret: bpfman-test-secret
                    \(tls)\(auth)
                    """
                try writeBytes(Array(config.utf8), to: directory + "/config.yml")
                let process = try ChildProcess(
                    "/usr/bin/timeout",
                    ["--kill-after=5", "\(options.lifetime)", registry, "serve", directory + "/config.yml"],
                    output: directory + "/registry.log"
                )
                if await waitForHTTP(port: port, path: "/v2/", while: { process.isRunning }) {
                    return TestRegistry(
                        options: options,
                        directory: directory,
                        port: port,
                        caFile: caFile,
                        process: process
                    )
                }
                process.terminate()
                let log = (try? String(contentsOfFile: directory + "/registry.log", encoding: .utf8)) ?? ""
                lastFailure = FixtureError("docker-registry did not answer on 127.0.0.1:\(port):\n\(log)")
            }
            throw lastFailure
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Kills the registry and removes its directory. Safe to call more than once.
    public func stop() {
        process.terminate()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Whether the registry process is running.
    public var isRunning: Bool { process.isRunning }

    /// Copies `oci:<layout>:<tag>` to `docker://HOST/<repository>:<destinationTag>` with skopeo (`--all`, so an
    /// index is copied with its manifests).
    /// - Parameters:
    ///   - format: `.v2s2` converts to Docker's manifest format on the way.
    ///   - login: the push's credentials; by default the registry's own `options.login`.
    /// - Returns: the digest of the manifest (or index) the registry now serves for the tag.
    @discardableResult
    public func push(
        layout: String,
        tag: String,
        repository: String,
        as destinationTag: String = "latest",
        format: ManifestFormat = .oci,
        login: RegistryLogin? = nil
    ) async throws -> String {
        guard let skopeo = RegistryTools.skopeo else { throw FixtureError(RegistryTools.cannotRunRegistry) }
        let digestFile = directory + "/push-digest-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: digestFile) }
        var arguments = ["--insecure-policy", "copy", "--quiet", "--all", "--dest-tls-verify=false"]
        arguments += ["--digestfile", digestFile]
        if format == .v2s2 { arguments += ["--format", "v2s2"] }
        if let login = login ?? options.login { arguments += ["--dest-creds", "\(login.username):\(login.password)"] }
        arguments += ["oci:\(layout):\(tag)", "docker://\(host)/\(repository):\(destinationTag)"]
        let result = try await runTool(skopeo, arguments)
        guard result.status == 0 else {
            throw FixtureError("skopeo copy to \(host)/\(repository) failed: \(result.errorOutput)")
        }
        return String(decoding: try readBytes(digestFile), as: UTF8.self).trimmingCharacters(
            in: .whitespacesAndNewlines
        )
    }

    /// The manifest (or index) the registry serves for `reference` (a tag or a digest), byte for byte, as
    /// `skopeo inspect --raw` shows it.
    public func rawManifest(repository: String, reference: String = "latest") async throws -> [UInt8] {
        guard let skopeo = RegistryTools.skopeo else { throw FixtureError(RegistryTools.cannotRunRegistry) }
        var arguments = ["--insecure-policy", "inspect", "--raw", "--tls-verify=false"]
        if let login = options.login { arguments += ["--creds", "\(login.username):\(login.password)"] }
        let separator = reference.hasPrefix("sha256:") ? "@" : ":"
        arguments.append("docker://\(host)/\(repository)\(separator)\(reference)")
        let result = try await runTool(skopeo, arguments)
        guard result.status == 0 else { throw FixtureError("skopeo inspect failed: \(result.errorOutput)") }
        return result.stdout
    }

    /// `sha256:<hex>` of what `rawManifest` returns: the digest a pull by tag should report.
    public func manifestDigest(repository: String, reference: String = "latest") async throws -> String {
        "sha256:" + sha256Hex(try await rawManifest(repository: repository, reference: reference))
    }

    /// A CA and a server certificate for `IP:127.0.0.1` signed by it; returns the CA file's path.
    private static func makeCertificates(in directory: String) async throws -> String {
        guard let openssl = RegistryTools.openssl else { throw FixtureError("needs openssl") }
        let extensions = """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature, keyEncipherment
            extendedKeyUsage = serverAuth
            subjectAltName = IP:127.0.0.1
            """
        try writeBytes(Array(extensions.utf8), to: directory + "/server.ext")
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(directory)/ca.key", "-out", "\(directory)/ca.crt", "-days", "2",
                "-subj", "/CN=bpfman test registry CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(directory)/server.key", "-out", "\(directory)/server.csr", "-subj", "/CN=127.0.0.1",
            ],
            [
                "x509", "-req", "-in", "\(directory)/server.csr", "-CA", "\(directory)/ca.crt",
                "-CAkey", "\(directory)/ca.key", "-CAcreateserial", "-out", "\(directory)/server.crt",
                "-days", "2", "-extfile", "\(directory)/server.ext",
            ],
        ]
        for step in steps {
            let result = try await runTool(openssl, step)
            guard result.status == 0 else {
                throw FixtureError("openssl \(step[0]) failed: \(result.errorOutput)")
            }
        }
        return directory + "/ca.crt"
    }
}

/// Runs `body` with a registry started with `options`, and stops it afterwards, whatever happens.
public func withTestRegistry<T>(
    _ options: TestRegistry.Options = TestRegistry.Options(),
    _ body: (TestRegistry) async throws -> T
) async throws -> T {
    let registry = try await TestRegistry.start(options)
    defer { registry.stop() }
    return try await body(registry)
}

// MARK: - The stand-in

/// Interop/images/registry_standin.py serving one OCI layout directory as one repository on 127.0.0.1.
///
/// Start one with `RegistryStandin.start(layout:repository:options:)` or, scoped, `withRegistryStandin`.
/// `stop()` is idempotent and `deinit` calls it; the script also exits by itself when this process goes away.
public final class RegistryStandin: Sendable {
    public struct Options: Sendable {
        /// Bearer-token challenges, with a `/token` endpoint; when `login` is set it must come as Basic.
        public var bearer: Bool
        public var login: RegistryLogin?
        /// The challenge's realm; nil for the stand-in's own `http://127.0.0.1:PORT/token`.
        public var realm: String?
        /// The `expires_in` of the tokens, in seconds.
        public var tokenLifetime: Int
        /// Blob GETs answer bytes that do not match their digest.
        public var lie: Bool
        /// Blob GETs answer 307 to `/storage/<digest>` on the same host.
        public var redirect: Bool
        /// Blob GETs answer 307 to `http://localhost:PORT/storage/<digest>`: another host name, as blob storage
        /// is; `Stats.storageAuthorization` counts storage requests that carried an `Authorization` header.
        public var redirectToOtherHost: Bool
        /// Seconds each blob response waits before it is sent (0: none).
        public var blobDelay: Double
        /// The referrers API answers 403, as some registries refuse a route they do not know.
        public var refuseReferrers: Bool

        public init(
            bearer: Bool = false,
            login: RegistryLogin? = nil,
            realm: String? = nil,
            tokenLifetime: Int = 300,
            lie: Bool = false,
            redirect: Bool = false,
            redirectToOtherHost: Bool = false,
            blobDelay: Double = 0,
            refuseReferrers: Bool = false
        ) {
            self.bearer = bearer
            self.login = login
            self.realm = realm
            self.tokenLifetime = tokenLifetime
            self.lie = lie
            self.redirect = redirect
            self.redirectToOtherHost = redirectToOtherHost
            self.blobDelay = blobDelay
            self.refuseReferrers = refuseReferrers
        }
    }

    /// What the stand-in was asked, from its `/stats`.
    public struct Stats: Sendable, Equatable, Decodable {
        public var tokenRequests: Int
        public var manifestGets: Int
        public var blobGets: Int
        public var storageGets: Int
        /// Storage GETs that carried an `Authorization` header.
        public var storageAuthorization: Int
        /// Requests answered with the bearer challenge.
        public var unauthorized: Int
        /// GETs of the OCI 1.1 referrers API.
        public var referrersGets: Int

        enum CodingKeys: String, CodingKey {
            case tokenRequests = "token_requests"
            case manifestGets = "manifest_gets"
            case blobGets = "blob_gets"
            case storageGets = "storage_gets"
            case storageAuthorization = "storage_authorization"
            case unauthorized
            case referrersGets = "referrers_gets"
        }
    }

    /// `127.0.0.1:PORT`.
    public let host: String
    public let port: Int
    private let directory: String
    private let process: ChildProcess

    private init(directory: String, port: Int, process: ChildProcess) {
        self.directory = directory
        self.port = port
        self.host = "127.0.0.1:\(port)"
        self.process = process
    }

    deinit { stop() }

    /// Starts the stand-in over `layout` (an OCI layout directory) as `repository`, and waits until it answers.
    public static func start(
        layout: String,
        repository: String,
        options: Options = Options()
    ) async throws -> RegistryStandin {
        guard let python = RegistryTools.python else { throw FixtureError(RegistryTools.cannotRunStandin) }
        let directory = try makeTemporaryDirectory(prefix: "standin")
        var modes: [String] = []
        if options.bearer { modes.append("bearer") }
        if options.lie { modes.append("lie") }
        if options.redirect { modes.append("redirect") }
        if options.redirectToOtherHost { modes.append("redirect-host") }
        if options.blobDelay > 0 { modes.append("slow") }
        if options.refuseReferrers { modes.append("no-referrers") }
        var arguments = [
            Repository.path("Interop/images/registry_standin.py"),
            "--layout", layout, "--repository", repository, "--port-file", directory + "/port",
            "--mode", modes.joined(separator: ","), "--expires-in", "\(options.tokenLifetime)",
            "--delay", "\(options.blobDelay)",
        ]
        if let login = options.login { arguments += ["--user", login.username, "--password", login.password] }
        if let realm = options.realm { arguments += ["--realm", realm] }
        let process: ChildProcess
        do {
            process = try ChildProcess(python, arguments, output: directory + "/standin.log")
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline && process.isRunning {
            if let text = try? String(contentsOfFile: directory + "/port", encoding: .utf8),
                let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                let standin = RegistryStandin(directory: directory, port: port, process: process)
                if await waitForHTTP(port: port, path: "/stats", while: { process.isRunning }) { return standin }
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let log = (try? String(contentsOfFile: directory + "/standin.log", encoding: .utf8)) ?? ""
        process.terminate()
        try? FileManager.default.removeItem(atPath: directory)
        throw FixtureError("the registry stand-in did not start:\n\(log)")
    }

    /// Stops the stand-in and removes its files. Safe to call more than once.
    public func stop() {
        process.terminate()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Forgets every token issued so far, as a restarted token service would: a client's cached tokens are
    /// then answered with 401 and a new challenge.
    public func revokeTokens() throws {
        guard httpGet(port: port, path: "/revoke")?.status == 200 else {
            throw FixtureError("the stand-in on \(host) did not answer /revoke")
        }
    }

    /// The counts so far.
    public func stats() throws -> Stats {
        guard let answer = httpGet(port: port, path: "/stats"), answer.status == 200 else {
            throw FixtureError("the stand-in on \(host) did not answer /stats")
        }
        return try JSONDecoder().decode(Stats.self, from: Data(answer.body))
    }
}

/// Runs `body` with a stand-in serving `layout` as `repository`, and stops it afterwards, whatever happens.
public func withRegistryStandin<T>(
    layout: String,
    repository: String,
    options: RegistryStandin.Options = RegistryStandin.Options(),
    _ body: (RegistryStandin) async throws -> T
) async throws -> T {
    let standin = try await RegistryStandin.start(layout: layout, repository: repository, options: options)
    defer { standin.stop() }
    return try await body(standin)
}

// MARK: - Processes and sockets

/// A finished tool run, its outputs kept apart (stdout may be binary, such as a raw manifest).
public struct ToolResult: Sendable {
    /// The exit status, or 128 + the signal that ended it.
    public var status: Int32
    public var stdout: [UInt8]
    public var errorOutput: String
}

/// Runs `executable` (an absolute path) as a `ChildProcess` and waits for it without holding a thread of
/// Swift's cooperative pool; after `timeout` seconds it is killed and its status is 128 + SIGTERM or SIGKILL.
public func runTool(_ executable: String, _ arguments: [String], timeout: Double = 60) async throws -> ToolResult {
    let directory = try makeTemporaryDirectory(prefix: "tool")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let child = try ChildProcess(
        executable,
        arguments,
        output: directory + "/stdout",
        errorOutput: directory + "/stderr"
    )
    let status = await child.wait(timeout: .milliseconds(Int(timeout * 1000)))
    return ToolResult(
        status: status,
        stdout: try readBytes(directory + "/stdout"),
        errorOutput: (try? String(contentsOfFile: directory + "/stderr", encoding: .utf8)) ?? ""
    )
}

/// A child process started with `posix_spawn`, in a process group of its own, reaped by this object.
///
/// Foundation's `Process` does not fit servers started from tests: its child inherits the signal mask of the
/// spawning thread, and Dispatch's and Swift's pool threads block signals, so a Go server never sees SIGTERM;
/// and it learns of an exit through a socket the child inherits, so a grandchild that keeps the socket (the
/// registry under `timeout`) makes `waitUntilExit` spin forever. Here the child gets an empty signal mask,
/// default signal actions, stdin from `/dev/null`, and no descriptor but 0-2.
public final class ChildProcess: Sendable {
    public let pid: Int32
    /// The raw wait status once the child has been reaped.
    private let reaped = Mutex<Int32?>(nil)

    /// Starts `executable` (an absolute path) with this process's environment.
    /// - Parameters:
    ///   - output: the file standard output goes to (created or appended to).
    ///   - errorOutput: the file standard error goes to; nil for the same as `output`.
    ///   - environment: variables added to (or replacing) this process's environment.
    public init(
        _ executable: String,
        _ arguments: [String],
        output: String,
        errorOutput: String? = nil,
        environment: [String: String] = [:]
    ) throws {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD, SIGUSR1, SIGUSR2] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(
            &attributes,
            Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP)
        )

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errorOutput {
            posix_spawn_file_actions_addopen(&actions, 2, errorOutput, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        guard let closeFrom = spawnCloseFrom else {
            throw FixtureError("posix_spawn_file_actions_addclosefrom_np is missing (glibc 2.34 or later needed)")
        }
        _ = closeFrom(&actions, 3)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp =
            ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") }
            + [nil]
        defer {
            for pointer in argv + envp { free(pointer) }
        }
        var pid: Int32 = 0
        let error = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard error == 0 else { throw FixtureError("posix_spawn \(executable): \(String(cString: strerror(error)))") }
        self.pid = pid
    }

    deinit { terminate() }

    /// Whether the child has not exited yet (reaping it if it has).
    public var isRunning: Bool { poll() == nil }

    /// The exit status (or 128 + the signal), reaping the child if it has exited; nil while it runs.
    public func poll() -> Int32? {
        reaped.withLock { reaped in
            if reaped == nil {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid { reaped = status }
            }
            return reaped.map(Self.exitStatus)
        }
    }

    /// Waits for the child to exit, for at most `timeout`, then terminates it; returns its status.
    public func wait(timeout: Duration) async -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = poll() { return status }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return terminate()
    }

    /// SIGTERM to the child's process group, SIGKILL after `grace` if the child is still there; returns once
    /// the child has been reaped, with its status. Safe to call more than once.
    @discardableResult
    public func terminate(grace: Duration = .seconds(5)) -> Int32 {
        if let status = poll() { return status }
        kill(-pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if let status = poll() {
                kill(-pid, SIGKILL)  // anything of its group that outlived it
                return status
            }
            usleep(5_000)
        }
        kill(-pid, SIGKILL)
        return reaped.withLock { reaped in
            if reaped == nil {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                reaped = status
            }
            return Self.exitStatus(reaped!)
        }
    }

    private static func exitStatus(_ status: Int32) -> Int32 {
        status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34), which the Glibc module does not declare.
private let spawnCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
    else { return nil }
    return unsafeBitCast(
        symbol,
        to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32).self
    )
}()

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw FixtureError("socket: errno \(errno)") }
    defer { close(fd) }
    var address = loopbackAddress(port: 0)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw FixtureError("bind: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw FixtureError("getsockname: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return address
}

/// One plain-HTTP/1.0 GET of `path` on `127.0.0.1:port`: the status and the body, or nil when nothing answers
/// with an HTTP status line within two seconds. A TLS server answers such a request too (Go's says 400), which
/// is enough to know it listens.
public func httpGet(port: Int, path: String) -> (status: Int, body: [UInt8])? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 2, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = loopbackAddress(port: port)
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count
    else { return nil }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 14)
    while response.count < 1 << 22 {
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        response += buffer[..<n]
    }
    let separator: [UInt8] = [13, 10, 13, 10]
    guard let end = (0..<max(0, response.count - 3)).first(where: { Array(response[$0..<$0 + 4]) == separator })
    else { return nil }
    let head = String(decoding: response[..<end], as: UTF8.self)
    let statusLine = head.split(separator: "\r\n").first.map(String.init) ?? ""
    let fields = statusLine.split(separator: " ")
    guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = Int(fields[1]) else { return nil }
    return (status, Array(response[(end + 4)...]))
}

/// Polls `GET path` every 50 ms for up to 15 seconds while `alive` holds; true once any HTTP status comes back.
func waitForHTTP(port: Int, path: String, while alive: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(15)
    while ContinuousClock.now < deadline && alive() {
        if httpGet(port: port, path: path) != nil { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return false
}
