import BpfmanEngine
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
        #expect(ErrorMapping.pullBytecodeUnavailable.code == .unimplemented)
    }
}
