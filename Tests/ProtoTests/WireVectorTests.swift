import Testing

@testable import Proto

/// Byte-exact encodings, checked against `protoc --encode` output for the same text-format messages.
@Suite struct WireVectorTests {
    /// Encodes to exactly `bytes`, and `bytes` decode back to an equal message.
    func expectRoundTrip<M: ProtoMessage>(_ message: M, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(message.serializedBytes() == bytes, sourceLocation: sourceLocation)
        #expect(message.serializedSize == bytes.count, sourceLocation: sourceLocation)
        let decoded = try M(serializedBytes: bytes)
        #expect(decoded == message, sourceLocation: sourceLocation)
    }

    @Test func varintField() throws {
        var m = Bpfman_V1_GetRequest()
        m.id = 7
        try expectRoundTrip(m, [0x08, 0x07])
        try expectRoundTrip(Bpfman_V1_GetRequest(), [])
    }

    @Test func nestedOneofMapsOptionalAndEnum() throws {
        // protoc --encode=bpfman.v1.LoadRequest: bytecode { file: "/tmp/a.o" } metadata { key: "k" value: "v" }
        // global_data { key: "g" value: "\001\002" } uuid: "" map_owner_id: 0
        // info { name: "prog" program_type: TCX info { fentry_load_info { fn_name: "f" } } }
        var m = Bpfman_V1_LoadRequest()
        m.bytecode.location = .file("/tmp/a.o")
        m.metadata = ["k": "v"]
        m.globalData = ["g": [1, 2]]
        m.uuid = ""  // explicit presence: an empty optional string is still sent
        m.mapOwnerID = 0
        var info = Bpfman_V1_LoadInfo()
        info.name = "prog"
        info.programType = .tcx
        info.info.fentryLoadInfo.fnName = "f"
        m.info = [info]
        try expectRoundTrip(m, [
            0x0a, 0x0a, 0x1a, 0x08, 0x2f, 0x74, 0x6d, 0x70, 0x2f, 0x61, 0x2e, 0x6f,
            0x2a, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76, 0x32, 0x07, 0x0a, 0x01,
            0x67, 0x12, 0x02, 0x01, 0x02, 0x3a, 0x00, 0x40, 0x00, 0x4a, 0x0f, 0x0a,
            0x04, 0x70, 0x72, 0x6f, 0x67, 0x10, 0x07, 0x1a, 0x05, 0x0a, 0x03, 0x0a,
            0x01, 0x66,
        ])
    }

    @Test func packedRepeatedAndBool() throws {
        var m = Bpfman_V1_KernelProgramInfo()
        m.id = .max
        m.name = "n"
        m.mapIds = [1, 300]
        m.gplCompatible = true
        try expectRoundTrip(m, [
            0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x01, 0x6e, 0x30, 0x01, 0x3a, 0x03, 0x01, 0xac, 0x02,
        ])
    }

    @Test func negativeInt32IsTenBytes() throws {
        var m = Bpfman_V1_XDPAttachInfo()
        m.priority = -1
        m.proceedOn = [2, -3]
        try expectRoundTrip(m, [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x22,
            0x0b, 0x02, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ])
    }

    @Test func unpackedRepeatedIsAccepted() throws {
        // proceed_on (4) sent unpacked: two varint fields.
        let m = try Bpfman_V1_XDPAttachInfo(serializedBytes: [0x20, 0x02, 0x20, 0x05])
        #expect(m.proceedOn == [2, 5])
        #expect(m.serializedBytes() == [0x22, 0x02, 0x02, 0x05])
    }

    @Test func unknownFieldsArePreserved() throws {
        // GetRequest{id: 1} followed by field 99 (varint 5) and field 100 (bytes "ab").
        let bytes: [UInt8] = [0x08, 0x01, 0x98, 0x06, 0x05, 0xa2, 0x06, 0x02, 0x61, 0x62]
        let m = try Bpfman_V1_GetRequest(serializedBytes: bytes)
        #expect(m.id == 1)
        #expect(m.unknownFields == [0x98, 0x06, 0x05, 0xa2, 0x06, 0x02, 0x61, 0x62])
        #expect(m.serializedBytes() == bytes)
    }

    @Test func unknownEnumValueIsKept() throws {
        let m = try Bpfman_V1_LoadInfo(serializedBytes: [0x10, 0x2a])
        #expect(m.programType == .UNRECOGNIZED(42))
        #expect(m.serializedBytes() == [0x10, 0x2a])
    }

    @Test func methodPaths() {
        #expect(Bpfman_V1_Bpfman.Method.load.path == "/bpfman.v1.Bpfman/Load")
        #expect(Bpfman_V1_Bpfman.serviceName == "bpfman.v1.Bpfman")
        #expect(Bpfman_V1_Bpfman.Method(path: "/bpfman.v1.Bpfman/PullBytecode") == .pullBytecode)
        #expect(Grpc_Health_V1_Health.Method.watch.isServerStreaming)
        #expect(Grpc_Reflection_V1_ServerReflection.Method.serverReflectionInfo.isClientStreaming)
        #expect(Csi_V1_Node.Method.nodePublishVolume.path == "/csi.v1.Node/NodePublishVolume")
        #expect(Bpfman_Ext_V1_Inspect.Method.status.path == "/bpfman.ext.v1.Inspect/Status")
    }
}
