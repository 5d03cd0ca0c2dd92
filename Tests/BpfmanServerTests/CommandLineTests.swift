import ArgumentParser
import Testing

@testable import BpfmanServer

@Suite struct CommandLineTests {
    static let invocations: [(String, [String], [String])] = [
        ("bpfman", ["--csi-support"], ["serve", "--csi-support"]),
        ("bpfman", ["--timeout=0"], ["serve", "--timeout=0"]),
        ("bpfman-rpc", ["--timeout", "5"], ["serve", "--timeout", "5"]),
        ("bpfman", ["list", "programs"], ["list", "programs"]),
        ("bpfman", [], []),
    ]

    @Test(arguments: invocations)
    func leadingServeFlagMeansServe(name: String, given: [String], expected: [String]) {
        #expect(BpfmanCommand.normalizedArguments(executableName: name, arguments: given) == expected)
    }

    @Test func serveDefaultsAreUpstreams() throws {
        let command = try BpfmanCommand.parseAsRoot(["serve"])
        let serve = try #require(command as? BpfmanCommand.Serve)
        #expect(serve.socketPath == "/run/bpfman-sock/bpfman.sock")
        #expect(serve.runtimeDirectory == "/run/bpfman")
        #expect(serve.imageCacheDirectory == "/var/cache/bpfman")
        #expect(serve.config == nil)  // the default path, /etc/bpfman/bpfman.toml, where a missing file means defaults
        #expect(serve.csiSupport == false)
        #expect(serve.timeout == nil)
    }

    @Test func serveAcceptsBothFlagSpellings() throws {
        let command = try BpfmanCommand.parseAsRoot(["serve", "--socket-path=/tmp/a.sock", "--runtime-dir", "/tmp/rd"])
        let serve = try #require(command as? BpfmanCommand.Serve)
        #expect(serve.socketPath == "/tmp/a.sock")
        #expect(serve.runtimeDirectory == "/tmp/rd")
    }
}
