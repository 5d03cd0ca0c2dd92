import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanServer

/// `bpfman serve --csi-support` as a process, next to the test binary.
final class CSIDaemonProcess: @unchecked Sendable {
    // @unchecked: used from the test's own task only.
    static let executable: String? = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let me = String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let candidate = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("bpfman").path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }()
    static let missing = "needs the bpfman executable next to the test bundle (swift build first)"

    let process = Process()
    let runtimeDirectory: String
    let socketPath: String

    /// - Parameter config: the text of the daemon's `--config` file (empty: all defaults).
    init(directory: String, extraArguments: [String] = [], config: String = "") throws {
        runtimeDirectory = directory + "/rd"
        socketPath = directory + "/b.sock"
        process.executableURL = URL(fileURLWithPath: Self.executable!)
        process.arguments =
            [
                "serve", "--csi-support", "--runtime-dir", runtimeDirectory, "--socket-path", socketPath,
                "--image-cache-dir", directory + "/cache", "--config", directory + "/bpfman.toml",
            ] + extraArguments
        try #require(FileManager.default.createFile(atPath: directory + "/bpfman.toml", contents: Data(config.utf8)))
        let log = directory + "/daemon.log"
        if !FileManager.default.fileExists(atPath: log) {
            try #require(FileManager.default.createFile(atPath: log, contents: nil))
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var csiSocket: String { runtimeDirectory + "/csi/csi.sock" }

    /// Waits until the CSI socket answers health SERVING for `csi.v1.Node`.
    func waitUntilServing() async throws {
        for _ in 0..<100 {
            if FileManager.default.fileExists(atPath: csiSocket), try await health("csi.v1.Node") == "SERVING" {
                return
            }
            try #require(process.isRunning, "the daemon exited with status \(process.terminationStatus)")
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the daemon's CSI socket never became SERVING")
    }

    /// Health Check of `service` on the CSI socket, by grpcio in a separate process.
    func health(_ service: String) async throws -> String {
        let result = try await spawn(
            InteropTools.python!,
            [Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs, csiSocket, "health", service]
        )
        let line = result.output.split(separator: "\n").last.map(String.init) ?? ""
        let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return object?["status"] as? String ?? object?["code"] as? String ?? "?"
    }

    /// Sends `signal` and waits for the process to end; returns its termination status.
    @discardableResult
    func stop(_ signal: Int32) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        try #require(!process.isRunning, "the daemon did not exit after signal \(signal)")
        return process.terminationStatus
    }
}

extension CSIKernelTests {
    /// The kubelet stand-in against the real daemon (`bpfman serve --csi-support`), killed with SIGKILL between
    /// publish and unpublish (issue 7; SPEC §1.4, §1.5, §7).
    @Suite(
        .enabled(
            if: InteropTools.csiAvailable && CSIDaemonProcess.executable != nil,
            "\(InteropTools.csiMissing); \(CSIDaemonProcess.missing)"
        )
    )
    struct CSIDaemonTests {
        @Test func publishSurvivesKill9AndUnpublishesAfterRestart() async throws {
            var template = Array("/tmp/csi-dm-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            let directory = String(cString: try #require(made))
            var daemon = try CSIDaemonProcess(directory: directory)
            defer {
                if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
                for mountPoint in csiMounts(under: directory).reversed() { umount2(mountPoint.path, Int32(MNT_DETACH)) }
                try? FileManager.default.removeItem(atPath: directory)
            }
            try await daemon.waitUntilServing()
            let rd = daemon.runtimeDirectory
            let csiSocket = daemon.csiSocket
            let kubelet = Repository.path("Interop/csi/kubelet.py")
            func python(_ arguments: [String]) async throws -> [String: Any] {
                let result = try await spawn(
                    InteropTools.python!,
                    [kubelet, "--stubs", InteropTools.csiStubs] + arguments
                )
                try #require(result.status == 0, "kubelet.py \(arguments) failed:\n\(result.output)")
                let line = try #require(result.output.split(separator: "\n").last.map(String.init))
                return try #require(
                    try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    "\(line)"
                )
            }

            // The socket: mode 0660, health names of SPEC §1.5.
            let attributes = try FileManager.default.attributesOfItem(atPath: csiSocket)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o660)
            for service in ["", "csi.v1.Identity", "csi.v1.Node"] {
                #expect(try await daemon.health(service) == "SERVING", "health of \"\(service)\"")
            }
            #expect(
                try await daemon.health("bpfman.v1.Bpfman") == "NOT_FOUND",
                "main-socket names are not on the CSI socket"
            )
            // Reflection lists exactly the CSI socket's services (SPEC §1.5), as grpcurl sees them.
            let grpcurl = try #require(InteropTools.grpcurl, "needs grpcurl from .venv (scripts/setup.sh)")
            let listed = try await spawn(grpcurl, ["-plaintext", "-unix", csiSocket, "list"])
            #expect(
                listed.output.split(separator: "\n").map(String.init) == [
                    "csi.v1.Identity", "csi.v1.Node", "grpc.health.v1.Health",
                    "grpc.reflection.v1.ServerReflection",
                    "grpc.reflection.v1alpha.ServerReflection",
                ],
                "\(listed.output)"
            )

            // The operator loads a program with two maps and the ProgramName metadata through the main socket.
            let loaded = try await python([
                daemon.socketPath, "operator-load", try BPFFixtures.object("csi_counter"), "csi_count", "csi-daemon",
                "syscalls/sys_enter_getppid",
            ])
            let programID = try #require(loaded["id"] as? Int)

            // The kubelet publishes a volume into a pod directory.
            let parent = directory + "/pods/p1/volumes/kubernetes.io~csi/vol-dm"
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            let target = parent + "/mount"
            let request = CSIHarness.publishRequest(
                "vol-dm",
                target: target,
                program: "csi-daemon",
                maps: "csi_counts,csi_last_pid",
                group: "2345"
            )
            let json = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
            let published = try await python([csiSocket, "call", "Node/NodePublishVolume", json])
            #expect(published["code"] as? String == "OK", "\(published)")
            #expect(csiMounts(at: target).count == 1)
            let before = try await counterValue(at: target + "/csi_counts")
            for _ in 0..<4 { _ = getppid() }
            #expect(try await counterValue(at: target + "/csi_counts") >= before + 4)

            // kill -9 between publish and unpublish: the mount stays, the record stays.
            #expect(try await daemon.stop(SIGKILL) == SIGKILL)
            #expect(csiMounts(at: target).count == 1)
            #expect(FileManager.default.fileExists(atPath: rd + "/csi/volumes/vol-dm.json"))

            // A restarted daemon serves the volume again and unpublishes it.
            daemon = try CSIDaemonProcess(directory: directory)
            try await daemon.waitUntilServing()
            let again = try await python([csiSocket, "call", "Node/NodePublishVolume", json])
            #expect(again["code"] as? String == "OK", "repeat after restart: \(again)")
            #expect(csiMounts(at: target).count == 1)
            let unpublish = String(
                decoding: try JSONSerialization.data(withJSONObject: ["volume_id": "vol-dm", "target_path": target]),
                as: UTF8.self
            )
            for attempt in 1...2 {
                let reply = try await python([csiSocket, "call", "Node/NodeUnpublishVolume", unpublish])
                #expect(reply["code"] as? String == "OK", "unpublish \(attempt): \(reply)")
            }
            #expect(csiMounts(at: target).isEmpty && csiMounts(under: rd + "/csi").isEmpty)
            #expect(!FileManager.default.fileExists(atPath: target))
            #expect(!FileManager.default.fileExists(atPath: rd + "/csi/volumes/vol-dm.json"))

            _ = try await python([daemon.socketPath, "operator-unload", "\(programID)"])
            // A health Watch on the CSI socket sees SERVING, then NOT_SERVING when SIGTERM arrives.
            let watchLog = directory + "/watch.log"
            let watch = Task {
                try await spawn(
                    InteropTools.python!,
                    [kubelet, "--stubs", InteropTools.csiStubs, csiSocket, "watch", "", watchLog]
                )
            }
            for _ in 0..<200 {
                if let text = try? String(contentsOfFile: watchLog, encoding: .utf8), text.contains("SERVING") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await daemon.stop(SIGTERM) == 0, "clean exit on SIGTERM")
            let watched = try await watch.value.output.split(separator: "\n").map(String.init)
            #expect(Array(watched.suffix(3)) == ["SERVING", "NOT_SERVING", "END"], "\(watched)")
            #expect(!FileManager.default.fileExists(atPath: csiSocket), "the CSI socket is unlinked at exit")
        }

        /// SPEC §1.6: RPCs on the CSI socket count for the idle timer like those on the main socket.
        @Test func csiCallsKeepAnIdleDaemonAlive() async throws {
            var template = Array("/tmp/csi-it-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            let directory = String(cString: try #require(made))
            let daemon = try CSIDaemonProcess(directory: directory, extraArguments: ["--timeout", "2"])
            defer {
                if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) }
                for mountPoint in csiMounts(under: directory).reversed() { umount2(mountPoint.path, Int32(MNT_DETACH)) }
                try? FileManager.default.removeItem(atPath: directory)
            }
            try await daemon.waitUntilServing()
            let clock = ContinuousClock()
            // A Probe every 0.5 s for 5 s from one client: never 2 s without an RPC, so the daemon stays up.
            let probes = try await spawn(
                InteropTools.python!,
                [
                    Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs, daemon.csiSocket,
                    "every",
                    "0.5",
                    "10", "Identity/Probe", "{}",
                ]
            )
            #expect(
                probes.output.contains("{\"codes\": [" + Array(repeating: "\"OK\"", count: 10).joined(separator: ", ")),
                "\(probes.output)"
            )
            try #require(daemon.process.isRunning, "the daemon went idle while CSI calls kept coming")
            let last = clock.now
            for _ in 0..<100 where daemon.process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
            #expect(!daemon.process.isRunning, "idle daemon exits")
            #expect(daemon.process.terminationStatus == 0)
            let idle = clock.now - last
            #expect(idle >= .milliseconds(1200) && idle < .seconds(6), "exited \(idle) after the last call")
        }
    }
}
