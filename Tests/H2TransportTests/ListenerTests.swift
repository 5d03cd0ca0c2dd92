import Foundation
import H2Transport
import Logging
import SystemCalls
import TestSupport
import Testing

/// Unix socket set-up (SPEC.md §1.4), TCP, and adoption of an already-listening fd.
@Suite struct ListenerTests {
    static func makeServer() throws -> GRPCServer {
        var router = GRPCRouter()
        EchoService.register(in: &router, observations: EchoObservations())
        return try GRPCServer(router: router, logger: Logger(label: "h2-listener-test"))
    }

    /// One raw unary call; true when it came back OK with the echoed text.
    static func echoWorks(connection: RawHTTP2Connection) async -> Bool {
        connection.handshake()
        connection.send(
            .grpcRequest(),
            .data(stream: 1, H2Frame.grpcMessage(EchoRequest(text: "l").encoded), endStream: true)
        )
        let frames = await connection.readStream(1)
        return frames.count == 3 && frames[1].payload == H2Frame.grpcMessage(EchoReply(text: "l").encoded)
    }

    @Test func unixSocketGetsParentDirectoriesModeAndIsUnlinkedAtShutdown() async throws {
        let directory = try makeShortTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/a/b/s.sock"
        let server = try Self.makeServer()
        try server.bind(.unix(path: path))
        var info = stat()
        #expect(lstat(directory + "/a/b", &info) == 0 && info.st_mode & 0o7777 == 0o755)
        #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK)
        #expect(info.st_mode & 0o777 == 0o660)
        try await Task.sleep(for: .milliseconds(50))
        #expect(await Self.echoWorks(connection: try RawHTTP2Connection(unixPath: path)))
        await server.shutdown(gracePeriod: .seconds(1))
        #expect(lstat(path, &info) != 0, "socket file must be removed at shutdown")
    }

    @Test(.enabled(if: getuid() == 0, "chown to another group needs root"))
    func optionalGroupAndModeAreApplied() async throws {
        let directory = try makeShortTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/g.sock"
        let server = try Self.makeServer()
        try server.bind(.unix(path: path, mode: 0o640, group: 4242))
        var info = stat()
        #expect(lstat(path, &info) == 0)
        #expect(info.st_gid == 4242)
        #expect(info.st_mode & 0o777 == 0o640)
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func staleSocketIsReplacedButARegularFileIsNot() async throws {
        let directory = try makeShortTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/s.sock"
        // A stale socket: bound by a listener that is gone.
        let first = try Self.makeServer()
        try first.bind(.unix(path: path))
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        close(stale)
        let second = try Self.makeServer()
        try second.bind(.unix(path: path))
        try await Task.sleep(for: .milliseconds(50))
        #expect(await Self.echoWorks(connection: try RawHTTP2Connection(unixPath: path)))
        await second.shutdown(gracePeriod: .seconds(1))
        await first.shutdown(gracePeriod: .seconds(1))

        let file = directory + "/not-a-socket"
        #expect(FileManager.default.createFile(atPath: file, contents: Array("keep".utf8).withUnsafeBytes { Data($0) }))
        let third = try Self.makeServer()
        #expect(throws: SystemCallError.self) { try third.bind(.unix(path: file)) }
        #expect(FileManager.default.contents(atPath: file) == Data("keep".utf8))
        await third.shutdown(gracePeriod: .seconds(1))
    }

    @Test func tooLongPathIsRefused() async throws {
        let server = try Self.makeServer()
        let long = "/tmp/" + String(repeating: "x", count: 120)
        #expect(throws: SystemCallError.self) { try server.bind(.unix(path: long)) }
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func adoptedListeningSocketIsServedAndNotUnlinked() async throws {
        let directory = try makeShortTempDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/act.sock"
        // What systemd hands over: a bound, listening AF_UNIX socket.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(bound == 0 && listen(fd, 16) == 0)
        let server = try Self.makeServer()
        try server.bind(.adopted(fd: fd))
        try await Task.sleep(for: .milliseconds(50))
        #expect(await Self.echoWorks(connection: try RawHTTP2Connection(unixPath: path)))
        await server.shutdown(gracePeriod: .seconds(1))
        var info = stat()
        #expect(lstat(path, &info) == 0, "an adopted socket's path is not ours to unlink")
    }

    @Test func adoptingSomethingThatIsNotAListenerFails() async throws {
        let server = try Self.makeServer()
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        #expect(throws: SystemCallError.self) { try server.bind(.adopted(fd: fd)) }
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test func socketActivationIsIgnoredWithoutListenPID() {
        // LISTEN_PID unset in the test process: not activated.
        #expect(getenv("LISTEN_PID") == nil)
        #expect(GRPCServer.socketActivatedFD() == nil)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl"), "needs curl (HTTP/2 over TCP)"))
    func tcpListenerPicksAPortAndServes() async throws {
        let server = try Self.makeServer()
        let bound = try server.bind(.tcp(port: 0))
        let port = try #require(bound.port)
        #expect(port != 0)
        try await Task.sleep(for: .milliseconds(50))
        let result = try await spawn(
            "/usr/bin/curl",
            [
                "-s", "-D", "-", "-o", "/dev/null", "--http2-prior-knowledge", "-X", "POST",
                "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "",
                "http://127.0.0.1:\(port)/h2test.v1.Echo/Missing",
            ]
        )
        #expect(result.output.hasPrefix("HTTP/2 200"), "\(result.output)")
        #expect(result.output.contains("grpc-status: 12"), "\(result.output)")
        #expect(
            result.output.contains("grpc-message: unknown method Missing for service h2test.v1.Echo"),
            "\(result.output)"
        )
        await server.shutdown(gracePeriod: .seconds(1))
    }
}
