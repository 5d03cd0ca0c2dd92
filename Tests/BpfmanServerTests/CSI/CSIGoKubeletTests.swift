import Foundation
import Glibc
import TestSupport
import Testing

@testable import BpfmanServer

/// The Go kubelet stand-in (Interop/csi/go), built once per test process with Debian's grpc-go.
enum CSIGoKubelet {
    static let toolchain: Bool = {
        ["/usr/bin/go", "/usr/bin/protoc", "/usr/bin/protoc-gen-go", "/usr/bin/protoc-gen-go-grpc"].allSatisfy {
            FileManager.default.isExecutableFile(atPath: $0)
        } && FileManager.default.fileExists(atPath: "/usr/share/gocode/src/google.golang.org/grpc")
    }()
    static let missing = "needs golang-go, golang-google-grpc-dev, protoc-gen-go(-grpc) (scripts/setup.sh)"

    /// Path of the built client, or the build's output when it failed.
    static let binary: Result<String, FixtureError> = {
        let output = NSTemporaryDirectory() + "csi-go-kubelet-\(getpid())"
        guard let result = try? TestSupport.run("bash", [Repository.path("Interop/csi/go/build.sh"), output]) else {
            return .failure(FixtureError("cannot run Interop/csi/go/build.sh"))
        }
        return result.status == 0 ? .success(output) : .failure(FixtureError("go build failed:\n\(result.output)"))
    }()
}

extension CSIKernelTests {
    /// grpc-go, the kubelet's own gRPC stack, against the plugin over its Unix socket.
    @Suite(.enabled(if: CSIGoKubelet.toolchain && TestKernel.canUseBPF, "\(CSIGoKubelet.missing)"))
    struct CSIGoKubeletTests {
        @Test func kubeletFlowOverGrpcGo() async throws {
            let client = try CSIGoKubelet.binary.get()
            try await withCSIPlugin("go") { h in
                _ = try await h.loadCounter(named: "csi-go")
                let target = try h.podTarget("vol-go")
                let result = try await spawn(
                    client,
                    [h.csiPaths.socket, "vol-go", target, "csi-go", "csi_counts,csi_last_pid", "3456"]
                )
                #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)")
                #expect(csiMounts(at: target).isEmpty)
            }
        }
    }
}

extension CSIKernelTests {
    /// grpc-go against the real daemon (`bpfman serve --csi-support`), and the daemon's `[csi] pods_root`
    /// (issue 7; SPEC §1.4, §7).
    @Suite(
        .enabled(
            if: CSIGoKubelet.toolchain && InteropTools.csiAvailable && CSIDaemonProcess.executable != nil,
            "\(CSIGoKubelet.missing); \(InteropTools.csiMissing); \(CSIDaemonProcess.missing)"
        )
    )
    struct CSIGoKubeletDaemonTests {
        /// A private directory for one daemon; `body` runs with it, then mounts and the directory go.
        func withDirectory(_ prefix: String, _ body: (String) async throws -> Void) async throws {
            var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
            let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
            let directory = String(cString: try #require(made))
            defer {
                for mountPoint in csiMounts(under: directory).reversed() { umount2(mountPoint.path, Int32(MNT_DETACH)) }
                try? FileManager.default.removeItem(atPath: directory)
            }
            try await body(directory)
        }

        /// kubelet.py against one of the daemon's sockets; the last output line as JSON.
        func python(_ arguments: [String]) async throws -> [String: Any] {
            let result = try await spawn(
                InteropTools.python!,
                [Repository.path("Interop/csi/kubelet.py"), "--stubs", InteropTools.csiStubs] + arguments
            )
            try #require(result.status == 0, "kubelet.py \(arguments) failed:\n\(result.output)")
            let line = try #require(result.output.split(separator: "\n").last.map(String.init))
            return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
        }

        /// Publish by grpc-go in one process, kill -9 of the daemon, unpublish by grpc-go in another process
        /// against the restarted daemon.
        @Test func grpcGoPublishesThenUnpublishesAcrossKill9() async throws {
            let client = try CSIGoKubelet.binary.get()
            try await withDirectory("csi-gd") { directory in
                var daemon = try CSIDaemonProcess(directory: directory)
                defer { if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) } }
                try await daemon.waitUntilServing()
                let loaded = try await python([
                    daemon.socketPath, "operator-load", try BPFFixtures.object("csi_counter"), "csi_count",
                    "csi-go-daemon", "syscalls/sys_enter_getppid",
                ])
                let programID = try #require(loaded["id"] as? Int)
                let parent = directory + "/pods/p-go/volumes/kubernetes.io~csi/vol-gd"
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
                let target = parent + "/mount"
                let arguments = [
                    daemon.csiSocket, "vol-gd", target, "csi-go-daemon", "csi_counts,csi_last_pid", "3456",
                ]

                let published = try await spawn(client, arguments + ["publish"])
                #expect(published.status == 0 && published.output.contains("PASS"), "\(published.output)")
                #expect(csiMounts(at: target).count == 1)
                // The maps under the target are the program's: the counter moves with the traced syscall.
                let before = try await counterValue(at: target + "/csi_counts")
                for _ in 0..<4 { _ = getppid() }
                #expect(try await counterValue(at: target + "/csi_counts") >= before + 4)

                #expect(try await daemon.stop(SIGKILL) == SIGKILL)
                #expect(csiMounts(at: target).count == 1, "the mount outlives the killed daemon")

                daemon = try CSIDaemonProcess(directory: directory)
                try await daemon.waitUntilServing()
                let unpublished = try await spawn(client, arguments + ["unpublish"])
                #expect(unpublished.status == 0 && unpublished.output.contains("PASS"), "\(unpublished.output)")
                #expect(csiMounts(at: target).isEmpty)
                #expect(csiMounts(under: daemon.runtimeDirectory + "/csi").isEmpty, "per-volume bpffs removed")
                #expect(!FileManager.default.fileExists(atPath: daemon.runtimeDirectory + "/csi/volumes/vol-gd.json"))

                _ = try await python([daemon.socketPath, "operator-unload", "\(programID)"])
                #expect(try await daemon.stop(SIGTERM) == 0)
            }
        }

        /// `[csi] pods_root` in the daemon's config file: a target outside it is INVALID_ARGUMENT with nothing
        /// mounted or created; one inside it publishes.
        @Test func podsRootFromConfigRefusesOutsideTargets() async throws {
            try await withDirectory("csi-pr") { directory in
                let podsRoot = directory + "/kubelet/pods"
                let daemon = try CSIDaemonProcess(directory: directory, config: "[csi]\npods_root = \"\(podsRoot)\"\n")
                defer { if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) } }
                try await daemon.waitUntilServing()
                let loaded = try await python([
                    daemon.socketPath, "operator-load", try BPFFixtures.object("csi_counter"), "csi_count",
                    "csi-pods-root", "syscalls/sys_enter_getppid",
                ])
                let programID = try #require(loaded["id"] as? Int)
                func publish(_ volume: String, under root: String) async throws -> (String, [String: Any]) {
                    let parent = root + "/p1/volumes/kubernetes.io~csi/\(volume)"
                    try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
                    let request = CSIHarness.publishRequest(volume, target: parent + "/mount", program: "csi-pods-root")
                    let json = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
                    let reply = try await python([daemon.csiSocket, "call", "Node/NodePublishVolume", json])
                    return (parent + "/mount", reply)
                }

                let (outside, refused) = try await publish("vol-out", under: directory + "/elsewhere/pods")
                #expect(refused["code"] as? String == "INVALID_ARGUMENT", "\(refused)")
                #expect(csiMounts(under: directory + "/elsewhere").isEmpty, "nothing mounted at the target")
                #expect(csiMounts(under: daemon.runtimeDirectory + "/csi").isEmpty, "no per-volume bpffs")
                #expect(!FileManager.default.fileExists(atPath: outside))
                #expect(!FileManager.default.fileExists(atPath: daemon.runtimeDirectory + "/csi/volumes/vol-out.json"))

                let (inside, accepted) = try await publish("vol-in", under: podsRoot)
                #expect(accepted["code"] as? String == "OK", "\(accepted)")
                #expect(csiMounts(at: inside).count == 1)
                let request: [String: Any] = ["volume_id": "vol-in", "target_path": inside]
                let unpublish = String(decoding: try JSONSerialization.data(withJSONObject: request), as: UTF8.self)
                let reply = try await python([daemon.csiSocket, "call", "Node/NodeUnpublishVolume", unpublish])
                #expect(reply["code"] as? String == "OK", "\(reply)")
                #expect(csiMounts(at: inside).isEmpty && csiMounts(under: daemon.runtimeDirectory + "/csi").isEmpty)

                _ = try await python([daemon.socketPath, "operator-unload", "\(programID)"])
                #expect(try await daemon.stop(SIGTERM) == 0)
            }
        }
    }
}
