import Testing

@testable import Proto

/// The proto3 canonical JSON mapping, as text.
@Suite struct JSONMappingTests {
    @Test func encodesCanonicalJSON() throws {
        var m = Bpfman_V1_LoadRequest()
        m.bytecode.location = .image(.init())
        m.bytecode.image.url = "quay.io/x:latest"
        m.metadata = ["b": "2", "a": "1"]
        m.globalData = ["g": [0xFF, 0x00, 0x41]]
        m.uuid = ""
        var info = Bpfman_V1_LoadInfo()
        info.name = "p"
        info.programType = .kprobe
        m.info = [info, Bpfman_V1_LoadInfo()]
        #expect(
            m.jsonString()
                == #"{"bytecode":{"image":{"url":"quay.io/x:latest"}},"metadata":{"a":"1","b":"2"},"globalData":{"g":"/wBB"},"uuid":"","info":[{"name":"p","programType":"KPROBE"},{}]}"#
        )
    }

    @Test func integersEnumsAndEscapes() throws {
        var k = Bpfman_V1_KprobeAttachInfo()
        k.fnName = "do_\"sys\"\n\u{1}é"
        k.offset = .max
        k.containerPid = -5
        #expect(
            k.jsonString() == #"{"fnName":"do_\"sys\"\n\u0001é","offset":"18446744073709551615","containerPid":-5}"#
        )
        var l = Bpfman_V1_LoadInfo()
        l.programType = .UNRECOGNIZED(77)
        #expect(l.jsonString() == #"{"programType":77}"#)
    }

    @Test func wellKnownTypes() throws {
        var s = Csi_V1_Snapshot()
        s.creationTime.seconds = 63_108_020
        s.creationTime.nanos = 21_000_000
        s.sizeBytes = -1
        #expect(s.jsonString() == #"{"sizeBytes":"-1","creationTime":"1972-01-01T10:00:20.021Z"}"#)
        var p = Csi_V1_ProbeResponse()
        p.ready.value = false
        #expect(p.jsonString() == #"{"ready":false}"#)
        let back = try Csi_V1_Snapshot(
            jsonString: #"{"creationTime":"1972-01-01T12:00:20.021+02:00","size_bytes":"-1"}"#
        )
        #expect(back == s)
        var g = Csi_V1_GetCapacityResponse()
        g.maximumVolumeSize.value = 1 << 40
        #expect(g.jsonString() == #"{"maximumVolumeSize":"1099511627776"}"#)
    }

    @Test func decodesLenientForms() throws {
        let m = try Bpfman_V1_KprobeAttachInfo(
            jsonString: #" { "fn_name" : "f", "offset": 12, "containerPid": "7", "metadata": {"k": "v"} } "#
        )
        #expect(m.fnName == "f")
        #expect(m.offset == 12)
        #expect(m.containerPid == 7)
        #expect(m.metadata == ["k": "v"])
        let l = try Bpfman_V1_LoadInfo(jsonString: #"{"programType": 3, "info": null}"#)
        #expect(l.programType == .kprobe)
        #expect(!l.hasInfo)
        let x = try Bpfman_V1_XDPAttachInfo(jsonString: #"{"proceedOn": [1, "2", 3e0], "netns": "\ud83d\ude00"}"#)
        #expect(x.proceedOn == [1, 2, 3])
        #expect(x.netns == "😀")
        let b = try Bpfman_V1_ProgramInfo(jsonString: #"{"globalData": {"a": "_-8", "b": "/+8="}}"#)
        #expect(b.globalData == ["a": [0xFF, 0xEF], "b": [0xFF, 0xEF]])
    }

    /// Found by `fuzz-proto` (input committed as Fuzz/corpus/proto/crash-float-max-through-json): the largest
    /// floats print as ±3.4028235e+38, which read as doubles lie just above `Float.greatestFiniteMagnitude`, and
    /// our own JSON was refused as "out of range for float". Every finite float must read back as itself.
    @Test(arguments: [
        Float.greatestFiniteMagnitude, -Float.greatestFiniteMagnitude, Float.leastNonzeroMagnitude,
        -Float.leastNormalMagnitude, 0.1, 16_777_217,
    ])
    func finiteFloatsReadBackFromTheirJSON(_ value: Float) throws {
        var wrapped = Google_Protobuf_FloatValue()
        wrapped.value = value
        let back = try Google_Protobuf_FloatValue(jsonString: wrapped.jsonString())
        #expect(back.value == value, "\(wrapped.jsonString())")
    }

    @Test func aNumberBeyondTheLargestFloatIsRefused() {
        #expect(throws: ProtoJSONError.invalidValue(field: "value", reason: "out of range for float")) {
            try Google_Protobuf_FloatValue(jsonString: "3.5e38")
        }
    }

    struct Bad: Sendable, CustomTestStringConvertible {
        var json: String
        var error: ProtoJSONError
        var testDescription: String { json }
    }

    static let bad: [Bad] = [
        Bad(json: #"{"nope": 1}"#, error: .unknownField(message: "bpfman.v1.GetRequest", name: "nope")),
        Bad(json: #"{"id": -1}"#, error: .invalidValue(field: "id", reason: "not a UInt32: -1")),
        Bad(json: #"{"id": 1.5}"#, error: .invalidValue(field: "id", reason: "not a UInt32: 1.5")),
        Bad(json: #"{"id": true}"#, error: .invalidValue(field: "id", reason: "expected a number")),
        Bad(json: #"{"id": 1"#, error: .syntax(offset: 8, reason: "unterminated object")),
        Bad(json: #"{"id": 1} x"#, error: .syntax(offset: 10, reason: "trailing characters")),
        Bad(json: #"[]"#, error: .invalidValue(field: "bpfman.v1.GetRequest", reason: "expected an object")),
        Bad(json: #"{"id": 01}"#, error: .syntax(offset: 8, reason: "expected ',' or '}'")),
    ]

    @Test(arguments: bad)
    func rejects(_ c: Bad) {
        #expect(throws: c.error) { try Bpfman_V1_GetRequest(jsonString: c.json) }
    }

    @Test func rejectsBadValues() {
        #expect(throws: ProtoJSONError.self) { try Bpfman_V1_ProgramInfo(jsonString: #"{"globalData": {"a": "!!"}}"#) }
        #expect(throws: ProtoJSONError.self) { try Bpfman_V1_LoadInfo(jsonString: #"{"programType": "NOPE"}"#) }
        #expect(throws: ProtoJSONError.self) {
            try Csi_V1_Snapshot(jsonString: #"{"creationTime": "1972-13-01T00:00:00Z"}"#)
        }
        #expect(throws: ProtoJSONError.depthLimitExceeded) {
            try Bpfman_V1_GetRequest(jsonString: String(repeating: "[", count: 200))
        }
    }

    @Test func timestampTextRoundTrips() throws {
        for (seconds, nanos, text) in [
            (Int64(0), Int32(0), "1970-01-01T00:00:00Z"), (-62_135_596_800, 0, "0001-01-01T00:00:00Z"),
            (253_402_300_799, 999_999_999, "9999-12-31T23:59:59.999999999Z"), (-1, 1000, "1969-12-31T23:59:59.000001Z"),
            (951_782_400, 0, "2000-02-29T00:00:00Z"),
        ] {
            #expect(try ProtoTimestampText.format(seconds: seconds, nanos: nanos, field: "t") == text)
            let parsed = try ProtoTimestampText.parse(text, field: "t")
            #expect(parsed.seconds == seconds && parsed.nanos == nanos)
        }
    }
}

/// The options the CLI's `-o json` uses (SPEC.md section 9.3), and composing and printing values.
@Suite struct JSONOptionsTests {
    static let cli = ProtoJSONEncodingOptions(
        preserveProtoFieldNames: true,
        int64AsNumbers: true,
        alwaysPrintFieldsWithoutPresence: true
    )

    @Test func protoNamesNumbersAndDefaults() throws {
        var r = Bpfman_V1_GetResponse()
        r.kernelInfo.id = 9
        r.kernelInfo.mapIds = []
        #expect(
            r.jsonString(options: Self.cli)
                == #"{"kernel_info":{"id":9,"name":"","program_type":0,"loaded_at":"","tag":"","gpl_compatible":false,"map_ids":[],"btf_id":0,"bytes_xlated":0,"jited":false,"bytes_jited":0,"bytes_memlock":0,"verified_insns":0}}"#
        )
        var k = Bpfman_V1_KprobeAttachInfo()
        k.offset = 1 << 40
        // `optional` container_pid stays out when unset; maps print as {}.
        #expect(k.jsonString(options: Self.cli) == #"{"fn_name":"","offset":1099511627776,"metadata":{}}"#)
        // What the CLI prints still decodes.
        #expect(try Bpfman_V1_KprobeAttachInfo(jsonString: k.jsonString(options: Self.cli)) == k)
    }

    @Test func composedAndPretty() {
        var g = Bpfman_V1_GetRequest()
        g.id = 3
        let doc = ProtoJSONValue.array([g.jsonValue(), .object([.init(key: "x", value: .string("a\"b"))])])
        #expect(doc.text() == #"[{"id":3},{"x":"a\"b"}]"#)
        #expect(doc.text(indent: 2) == "[\n  {\n    \"id\": 3\n  },\n  {\n    \"x\": \"a\\\"b\"\n  }\n]")
        #expect(ProtoJSONValue.object([]).text(indent: 2) == "{}")
    }
}
