import Testing

@testable import Proto

/// Malformed input fails with the right typed error and never traps.
@Suite struct DecodingErrorTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var bytes: [UInt8]
        var error: ProtoDecodingError
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "tag without its varint", bytes: [0x08], error: .truncated),
        Case(name: "varint cut short", bytes: [0x08, 0x80], error: .truncated),
        Case(name: "fixed32 cut short", bytes: [0x15, 0x01, 0x02], error: .truncated),
        Case(name: "fixed64 cut short", bytes: [0x11, 0x01], error: .truncated),
        Case(
            name: "eleven-byte varint",
            bytes: [0x08] + Array(repeating: 0xFF, count: 10) + [0x01],
            error: .malformedVarint
        ),
        Case(
            name: "tenth varint byte above 1",
            bytes: [0x08] + Array(repeating: 0xFF, count: 9) + [0x02],
            error: .malformedVarint
        ),
        Case(
            name: "known field, fixed32 wire type",
            bytes: [0x0D, 0, 0, 0, 0],
            error: .wrongWireType(fieldNumber: 1, wireType: 5)
        ),
        Case(
            name: "known field, length-delimited",
            bytes: [0x0A, 0x00],
            error: .wrongWireType(fieldNumber: 1, wireType: 2)
        ),
        Case(name: "length beyond the buffer", bytes: [0x12, 0x05, 0x61], error: .lengthBeyondBuffer),
        Case(name: "start group", bytes: [0x1B], error: .groupWireType),
        Case(name: "end group", bytes: [0x1C], error: .groupWireType),
        Case(name: "wire type 6", bytes: [0x1E], error: .invalidWireType(6)),
        Case(name: "wire type 7", bytes: [0x1F, 0x00], error: .invalidWireType(7)),
        Case(name: "field number 0", bytes: [0x00, 0x01], error: .invalidFieldNumber),
        Case(
            name: "field number above 2^29-1",
            bytes: [0xF8, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00],
            error: .invalidFieldNumber
        ),
    ]

    @Test(arguments: cases)
    func rejects(_ c: Case) {
        #expect(throws: c.error) { try Bpfman_V1_GetRequest(serializedBytes: c.bytes) }
        // The same bytes through the raw-buffer entry point.
        let viaRaw: Result<Bpfman_V1_GetRequest, ProtoDecodingError> = c.bytes.withUnsafeBytes { raw in
            Result { () throws(ProtoDecodingError) in try Bpfman_V1_GetRequest(serializedBytes: raw) }
        }
        #expect(throws: c.error) { try viaRaw.get() }
    }

    @Test func invalidUTF8InString() {
        // KernelProgramInfo.name (2) = C3 28: a lead byte followed by a non-continuation byte.
        #expect(throws: ProtoDecodingError.invalidUTF8(fieldNumber: 2)) {
            try Bpfman_V1_KernelProgramInfo(serializedBytes: [0x12, 0x02, 0xC3, 0x28])
        }
        // Inside a map key, nested two levels down: LoadRequest.metadata (5) entry key (1) = FF.
        #expect(throws: ProtoDecodingError.invalidUTF8(fieldNumber: 1)) {
            try Bpfman_V1_LoadRequest(serializedBytes: [0x2A, 0x03, 0x0A, 0x01, 0xFF])
        }
        // bytes fields take anything.
        #expect((try? Bpfman_V1_LoadRequest(serializedBytes: [0x32, 0x05, 0x0A, 0x00, 0x12, 0x01, 0xFF])) != nil)
    }

    @Test func wrongWireTypeInsideNestedMessage() {
        // LoadRequest.bytecode (1) = BytecodeLocation with file (3) sent as varint.
        #expect(throws: ProtoDecodingError.wrongWireType(fieldNumber: 3, wireType: 0)) {
            try Bpfman_V1_LoadRequest(serializedBytes: [0x0A, 0x02, 0x18, 0x01])
        }
    }

    /// DescriptorProto.nested_type (3) nested `levels` deep.
    static func nestedDescriptor(levels: Int) -> [UInt8] {
        var inner: [UInt8] = []
        for _ in 0..<levels {
            var outer: [UInt8] = [0x1A]
            Varint.append(UInt64(inner.count), to: &outer)
            inner = outer + inner
        }
        return inner
    }

    @Test func nestingLimit() throws {
        let ok = try Google_Protobuf_DescriptorProto(
            serializedBytes: Self.nestedDescriptor(levels: ProtoReader.maxDepth)
        )
        #expect(ok.nestedType.count == 1)
        #expect(throws: ProtoDecodingError.depthLimitExceeded) {
            try Google_Protobuf_DescriptorProto(
                serializedBytes: Self.nestedDescriptor(levels: ProtoReader.maxDepth + 1)
            )
        }
    }

    @Test func packedRunEndingInsideAVarint() {
        // XDPAttachInfo.proceed_on (4), packed: one byte declared, holding an unterminated varint.
        #expect(throws: ProtoDecodingError.truncated) {
            try Bpfman_V1_XDPAttachInfo(serializedBytes: [0x22, 0x01, 0x80])
        }
    }

    @Test func mapEntriesWithMissingKeyOrValueDecodeToDefaults() throws {
        // ListRequest.match_metadata (3): an empty entry, and one with only a value.
        let m = try Bpfman_V1_ListRequest(serializedBytes: [0x1A, 0x00, 0x1A, 0x03, 0x12, 0x01, 0x76])
        #expect(m.matchMetadata == ["": "v"])
        let only = try Bpfman_V1_ListRequest(serializedBytes: [0x1A, 0x03, 0x0A, 0x01, 0x6B])
        #expect(only.matchMetadata == ["k": ""])
        // A message-valued map with the value missing gets a default message.
        let h = try Grpc_Health_V1_HealthListResponse(serializedBytes: [0x0A, 0x03, 0x0A, 0x01, 0x61])
        #expect(h.statuses == ["a": Grpc_Health_V1_HealthCheckResponse()])
    }

    @Test func laterScalarWinsAndSubMessagesMerge() throws {
        // GetRequest.id twice: the last value wins.
        #expect(try Bpfman_V1_GetRequest(serializedBytes: [0x08, 0x01, 0x08, 0x02]).id == 2)
        // GetResponse.kernel_info (2) twice, with id (1) then name (2): both survive.
        let r = try Bpfman_V1_GetResponse(serializedBytes: [0x12, 0x02, 0x08, 0x05, 0x12, 0x03, 0x12, 0x01, 0x78])
        #expect(r.kernelInfo.id == 5)
        #expect(r.kernelInfo.name == "x")
    }
}
