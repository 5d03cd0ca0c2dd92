import BpfmanEngine
import BpfmanImages
import H2Transport
import Testing

@testable import BpfmanServer

/// SPEC §0.3: every engine error code becomes exactly one gRPC status, message unchanged.
@Suite struct ErrorMappingTests {
    static let table: [(EngineError.Code, GRPCStatus.Code, String)] = [
        (.invalidArgument, .invalidArgument, "INVALID_ARGUMENT"),
        (.notFound, .notFound, "NOT_FOUND"),
        (.failedPrecondition, .failedPrecondition, "FAILED_PRECONDITION"),
        (.internal, .internal, "INTERNAL"),
        (.unimplemented, .unimplemented, "UNIMPLEMENTED"),
        (.alreadyExists, .alreadyExists, "ALREADY_EXISTS"),
        (.aborted, .aborted, "ABORTED"),
        (.resourceExhausted, .resourceExhausted, "RESOURCE_EXHAUSTED"),
    ]

    @Test(arguments: table)
    func engineCodeMapsToStatus(_ engine: EngineError.Code, _ grpc: GRPCStatus.Code, _ name: String) {
        let error = EngineError(engine, "link 7 does not exist")
        let status = error.grpcStatus
        #expect(status.code == grpc)
        #expect(status.message == "link 7 does not exist")
        #expect("\(status.code)" == name)
    }

    @Test func writerLockStatusesAreSpecs() {
        #expect(ErrorMapping.writerLockTimeout.code == .deadlineExceeded)
        #expect(ErrorMapping.writerLockTimeout.message == "timed out waiting for the bpfman writer lock")
        #expect(ErrorMapping.writerLockCancelled.code == .cancelled)
    }

    /// SPEC §8.3: each image error code reaches the client as its gRPC code, with the message unchanged.
    @Test(arguments: [
        (ImageError.Code.invalidArgument, GRPCStatus.Code.invalidArgument),
        (.notFound, .notFound),
        (.permissionDenied, .permissionDenied),
        (.failedPrecondition, .failedPrecondition),
        (.internal, .internal),
    ])
    func imageErrorsKeepTheirCodeAndMessage(_ code: ImageError.Code, _ expected: GRPCStatus.Code) {
        let status = ErrorMapping.status(for: ImageError(code, "image x not found"))
        #expect(status.code == expected)
        #expect(status.message == "image x not found")
    }

    /// SPEC §7.3, §7.4: each CSI failure reaches the kubelet with its code and message.
    @Test(arguments: [
        (CSIError.invalidRequest("volume_id is required"), GRPCStatus.Code.invalidArgument, "volume_id is required"),
        (.volumeBusy(volumeID: "v"), .aborted, "an operation is already in progress for volume \"v\""),
        (
            .targetMountedWithOtherFilesystem(targetPath: "/t", filesystem: "tmpfs"), .failedPrecondition,
            "target path /t is already mounted with filesystem tmpfs"
        ),
        (
            .targetPublishedDifferently(targetPath: "/t"), .alreadyExists,
            "target path /t is already published with different maps or access mode"
        ),
        (.engine(.notFound("program \"p\" not found")), .notFound, "program \"p\" not found"),
        (.notBPFFS(path: "/v"), .internal, "/v is not a bpffs after mounting one (statfs magic)"),
        (
            .nodeOperation(what: "cannot create /v", cause: "Permission denied"), .internal,
            "cannot create /v: Permission denied"
        ),
        (
            .unimplemented(method: "csi.v1.Node.NodeStageVolume", plugin: "csi.bpfman.io"), .unimplemented,
            "csi.v1.Node.NodeStageVolume is not implemented by csi.bpfman.io"
        ),
    ])
    func csiErrorsMapToTheirStatus(_ error: CSIError, _ code: GRPCStatus.Code, _ message: String) {
        #expect(error.grpcStatus.code == code)
        #expect(error.grpcStatus.message == message)
    }
}
