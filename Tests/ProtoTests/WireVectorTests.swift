import Testing

@testable import Proto

/// Byte-exact encodings, checked against `protoc --encode` output for the same text-format messages.
@Suite struct WireVectorTests {
    /// Encodes to exactly `bytes`, and `bytes` decode back to an equal message.
    func expectRoundTrip<M: ProtoMessage>(
        _ message: M,
        _ bytes: [UInt8],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
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
        try expectRoundTrip(
            m,
            [
                0x0a, 0x0a, 0x1a, 0x08, 0x2f, 0x74, 0x6d, 0x70, 0x2f, 0x61, 0x2e, 0x6f,
                0x2a, 0x06, 0x0a, 0x01, 0x6b, 0x12, 0x01, 0x76, 0x32, 0x07, 0x0a, 0x01,
                0x67, 0x12, 0x02, 0x01, 0x02, 0x3a, 0x00, 0x40, 0x00, 0x4a, 0x0f, 0x0a,
                0x04, 0x70, 0x72, 0x6f, 0x67, 0x10, 0x07, 0x1a, 0x05, 0x0a, 0x03, 0x0a,
                0x01, 0x66,
            ]
        )
    }

    @Test func packedRepeatedAndBool() throws {
        var m = Bpfman_V1_KernelProgramInfo()
        m.id = .max
        m.name = "n"
        m.mapIds = [1, 300]
        m.gplCompatible = true
        try expectRoundTrip(
            m,
            [
                0x08, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x01, 0x6e, 0x30, 0x01, 0x3a, 0x03, 0x01, 0xac, 0x02,
            ]
        )
    }

    @Test func negativeInt32IsTenBytes() throws {
        var m = Bpfman_V1_XDPAttachInfo()
        m.priority = -1
        m.proceedOn = [2, -3]
        try expectRoundTrip(
            m,
            [
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x22,
                0x0b, 0x02, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ]
        )
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

    @Test func fixed64Int64AndBytesInProto2() throws {
        // protoc --encode=google.protobuf.UninterpretedOption: identifier_value: "x" positive_int_value: 300
        // negative_int_value: -2 double_value: 1.5 string_value: "\001"
        var m = Google_Protobuf_UninterpretedOption()
        m.identifierValue = "x"
        m.positiveIntValue = 300
        m.negativeIntValue = -2
        m.doubleValue = 1.5
        m.stringValue = [1]
        try expectRoundTrip(
            m,
            [
                0x1a, 0x01, 0x78, 0x20, 0xac, 0x02, 0x28, 0xfe, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff, 0x01, 0x31, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0xf8, 0x3f, 0x3a, 0x01, 0x01,
            ]
        )
        // proto2 `optional` has presence: a zero that was set is still sent.
        var zero = Google_Protobuf_UninterpretedOption()
        zero.doubleValue = 0
        try expectRoundTrip(zero, [0x31, 0, 0, 0, 0, 0, 0, 0, 0])
        // proto2 [packed = true] repeated int32.
        var location = Google_Protobuf_SourceCodeInfo.Location()
        location.path = [1, 2]
        location.span = [3]
        try expectRoundTrip(location, [0x0a, 0x02, 0x01, 0x02, 0x12, 0x01, 0x03])
    }

    @Test func proto2Defaults() {
        let options = Google_Protobuf_FieldOptions()
        #expect(options.ctype == .string)
        #expect(!options.hasCtype)
        #expect(Google_Protobuf_FileOptions().ccEnableArenas)
        #expect(Google_Protobuf_FileOptions().optimizeFor == .speed)
        #expect(Google_Protobuf_FieldOptions().serializedBytes() == [])
    }

    /// The wire types no bpfman or csi field uses, straight through the reader and writer.
    @Test func fixed32ZigzagAndFloatPrimitives() throws {
        func written(_ size: Int, _ body: (inout ProtoWriter) -> Void) -> [UInt8] {
            [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                var w = ProtoWriter(base: buffer.baseAddress!, capacity: size)
                body(&w)
                #expect(w.position == 0)
                count = size
            }
        }
        func read<T>(_ bytes: [UInt8], _ body: (inout ProtoReader) throws(ProtoDecodingError) -> T) throws -> T {
            try bytes.withUnsafeBufferPointer { b in
                var r = ProtoReader(start: b.baseAddress!, end: b.baseAddress! + b.count)
                let result = Result { () throws(ProtoDecodingError) in try body(&r) }
                #expect(r.isAtEnd)
                return try result.get()
            }
        }
        #expect(written(4) { $0.writeFixed32Value(0x0102_0304) } == [0x04, 0x03, 0x02, 0x01])
        #expect(
            try read([0x04, 0x03, 0x02, 0x01]) { r throws(ProtoDecodingError) in try r.readFixed32() } == 0x0102_0304
        )
        #expect(written(4) { $0.writeFloat(1.0) } == [0x00, 0x00, 0x80, 0x3f])
        #expect(try read([0x00, 0x00, 0x80, 0x3f]) { r throws(ProtoDecodingError) in try r.readFloat() } == 1.0)
        #expect(written(4) { $0.writeSFixed32(-2) } == [0xfe, 0xff, 0xff, 0xff])
        #expect(written(1) { $0.writeSInt32(-1) } == [0x01])
        #expect(written(1) { $0.writeSInt32(1) } == [0x02])
        #expect(written(5) { $0.writeSInt32(.min) } == [0xff, 0xff, 0xff, 0xff, 0x0f])
        #expect(
            try read([0xff, 0xff, 0xff, 0xff, 0x0f]) { r throws(ProtoDecodingError) in try r.readSInt32() } == .min
        )
        #expect(written(10) { $0.writeSInt64(.min) } == [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
        #expect(
            try read([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) { r throws(ProtoDecodingError) in
                try r.readSInt64()
            } == .min
        )
        #expect(ProtoSize.sint32(.min) == 5)
        #expect(ProtoSize.int32(-1) == 10)
    }
}
