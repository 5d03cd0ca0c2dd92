import Foundation
import H2Transport
import Logging
import Proto
import TestSupport
import Testing

@testable import BpfmanServer

extension CSIKernelTests {
    /// A failed CSI call logs one line whose status and message are what the kubelet was sent (SPEC §7, §1.10),
    /// one case per kind of CSI failure, over the plugin's real socket.
    @Suite struct CSIStatusLogTests {
        enum Failure: String, CaseIterable, Sendable {
            case invalidRequest, programMissing, volumeBusy, unimplemented
        }

        @Test(arguments: Failure.allCases)
        func theLoggedStatusIsTheSentStatus(_ failure: Failure) async throws {
            let sink = LogRecorder()
            try await withCSIPlugin("log", logger: sink.makeLogger(label: "bpfman")) { h in
                let target = try h.podTarget("vol-log")
                var path = Csi_V1_Node.Method.nodePublishVolume.path
                var rpc = "NodePublishVolume"
                var request = CSIPublishRequestTests.request(volume: "vol-log", target: target)
                var expected = GRPCStatus.Code.notFound
                var release: (@Sendable () -> Void)?
                switch failure {
                case .invalidRequest:
                    request.volumeID = "a/b"
                    expected = .invalidArgument
                case .programMissing:
                    request.volumeContext["csi.bpfman.io/program"] = "no-such-program"
                case .volumeBusy:
                    release = h.node._testOnlyMarkBusy("vol-log")
                    expected = .aborted
                case .unimplemented:
                    path = Csi_V1_Node.Method.nodeStageVolume.path
                    rpc = "NodeStageVolume"
                    expected = .unimplemented
                }
                let result = try await unaryCallOnThread(h.csiPaths.socket, path, request.serializedBytes())
                release?()
                guard case .failure(let sent) = result else {
                    Issue.record("\(failure): the call succeeded")
                    return
                }
                #expect(sent.code == expected, "\(sent)")
                let lines = loggedRPCLines(sink, rpc: rpc).filter { $0.message == "rpc" }
                #expect(lines.count == 1, "\(sink.records)")
                #expect(lines.first?.metadata["status"] == "\(sent.code)", "\(lines)")
                #expect(lines.first?.metadata["status_message"] == "\(sent.message)", "\(lines)")
            }
        }
    }
}
