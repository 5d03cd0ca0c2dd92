import Foundation

/// Paths inside this checkout, found from this source file's location.
public enum Repository {
    /// The checkout's root directory.
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/TestSupport/Fixtures.swift
        return url.path
    }()

    /// `path` relative to the checkout root.
    public static func path(_ relative: String) -> String {
        root + "/" + relative
    }
}

/// eBPF test objects, compiled from `Tests/Fixtures/bpf/<name>.bpf.c` on first use.
///
/// Objects are never committed: they are built with `clang -target bpf` into `.build/bpf-fixtures/`
/// and rebuilt when the source is newer. `make fixtures` builds all of them ahead of a test run.
public enum BPFFixtures {
    private static let lock = NSLock()

    /// The compiled object for fixture `name`, compiling it if needed.
    /// - Throws: `FixtureError` with clang's output when compilation fails.
    public static func object(_ name: String) throws -> String {
        let source = Repository.path("Tests/Fixtures/bpf/\(name).bpf.c")
        let outputDirectory = Repository.path(".build/bpf-fixtures")
        let output = "\(outputDirectory)/\(name).bpf.o"
        lock.lock()
        defer { lock.unlock() }
        let fm = FileManager.default
        guard fm.fileExists(atPath: source) else { throw FixtureError("no fixture source \(source)") }
        if let out = try? fm.attributesOfItem(atPath: output)[.modificationDate] as? Date,
            let src = try? fm.attributesOfItem(atPath: source)[.modificationDate] as? Date,
            out >= src
        {
            return output
        }
        try fm.createDirectory(atPath: outputDirectory, withIntermediateDirectories: true)
        // A per-process temporary name: several test processes may compile the same fixture at once.
        let temporary = "\(output).\(getpid()).tmp"
        let result = try run(
            "clang",
            ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-c", source, "-o", temporary]
        )
        guard result.status == 0 else { throw FixtureError("clang failed for \(name):\n\(result.output)") }
        guard rename(temporary, output) == 0 else { throw FixtureError("cannot rename \(temporary) to \(output)") }
        return output
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The result of running a command to completion.
public struct CommandResult: Sendable {
    public var status: Int32
    /// Standard output and standard error, interleaved.
    public var output: String

    public init(status: Int32, output: String) {
        self.status = status
        self.output = output
    }
}

/// Runs `command` (looked up on PATH) with `arguments` and waits for it.
public func run(
    _ command: String,
    _ arguments: [String],
    environment: [String: String]? = nil
) throws
    -> CommandResult
{
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [command] + arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

/// A finished child process, as `spawn` reports it.
public typealias SpawnResult = CommandResult

/// Runs `executable` (an absolute path) to completion without holding a thread of Swift's cooperative pool,
/// ending it (SIGTERM, then SIGKILL) after `timeout` seconds. Use this from async tests whose child talks to a
/// server running in the same process: a blocking wait there can take the pool thread (one per core) the server's
/// handlers need. Standard output and standard error are interleaved into one string; the status of a child
/// ended by a signal is 128 + the signal.
///
/// The child is a `ChildProcess`, not a Foundation `Process`: a `Process` started from a test's task inherits
/// the pool thread's signal mask (SIGTERM blocked), so `terminate()` never ended a client that hung and the
/// timeout did nothing.
public func spawn(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = [:],
    timeout: Double = 120
) async throws -> SpawnResult {
    let outputPath = NSTemporaryDirectory() + "spawn-out-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: outputPath) }
    let child = try ChildProcess(executable, arguments, output: outputPath, environment: environment)
    let status = await child.wait(timeout: .milliseconds(Int(timeout * 1000)))
    return SpawnResult(status: status, output: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
}
