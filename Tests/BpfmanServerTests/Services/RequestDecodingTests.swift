import H2Transport
import Proto
import Testing

@testable import BpfmanServer

/// The one request decoder every service uses: bytes that do not parse are INVALID_ARGUMENT naming the message.
@Suite struct RequestDecodingTests {
    /// Field 1 (string) announcing 5 bytes of which only 1 follows.
    static let truncated: [UInt8] = [0x0A, 0x05, 0x61]

    @Test func validBytesDecode() throws {
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = "bpfman.v1.Bpfman"
        let decoded = try decode(Grpc_Health_V1_HealthCheckRequest.self, request.serializedBytes())
        #expect(decoded.service == "bpfman.v1.Bpfman")
    }

    @Test func malformedBytesAreInvalidArgumentNamingTheMessage() {
        #expect {
            _ = try decode(Bpfman_V1_GetRequest.self, Self.truncated)
        } throws: { error in
            guard let status = error as? GRPCStatus else { return false }
            return status.code == .invalidArgument && status.message.hasPrefix("cannot decode bpfman.v1.GetRequest: ")
        }
    }

    /// Health and reflection answer a malformed request as the bpfman services do, through the same decoder.
    @Test(
        arguments: [
            ("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest"),
            ("/grpc.health.v1.Health/List", "grpc.health.v1.HealthListRequest"),
        ]
    )
    func standardServicesRefuseMalformedRequests(path: String, message: String) async {
        var router = GRPCRouter()
        HealthService(services: [""]).register(on: &router)
        let result = await router.callInProcess(path, Self.truncated, deadline: nil)
        guard case .failure(let status) = result else {
            Issue.record("a malformed request was answered: \(result)")
            return
        }
        #expect(status.code == .invalidArgument)
        #expect(status.message.hasPrefix("cannot decode \(message): "))
    }
}
