import Foundation
import Glibc
import Testing
import TestSupport

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
                let result = try await csiSpawn(
                    client, [h.csiPaths.socket, "vol-go", target, "csi-go", "csi_counts,csi_last_pid", "3456"])
                #expect(result.status == 0 && result.output.contains("PASS"), "\(result.output)")
                #expect(csiMounts(at: target).isEmpty)
            }
        }
    }
}
