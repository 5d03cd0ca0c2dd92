import Foundation
import TestSupport
import Testing

@testable import Proto

/// Hostile inputs kept as files (Tests/ProtoTests/FailCases): every one goes through every
/// generated decoder, binary or JSON; each must decode or fail with a typed error, never trap.
@Suite struct FailCasesTests {
    static let directory = Repository.path("Tests/ProtoTests/FailCases")
    static let files: [String] =
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasPrefix(".") }.sorted()

    static func decodeBinary<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) -> Bool {
        guard let m = try? M(serializedBytes: bytes) else { return false }
        // Whatever decodes must encode and decode again.
        return (try? M(serializedBytes: m.serializedBytes())) != nil
    }

    static func decodeJSON<M: ProtoMessage>(_: M.Type, _ bytes: [UInt8]) -> Bool {
        (try? M(jsonUTF8Bytes: bytes)) != nil
    }

    @Test func thereAreCases() {
        #expect(Self.files.count >= 10)
    }

    @Test(arguments: files)
    func everyDecoderSurvives(_ name: String) throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: Self.directory + "/" + name)))
        var accepted = 0
        for (_, type) in ProtoRegistry.messageTypes {
            let ok = name.hasSuffix(".json") ? Self.decodeJSON(type, bytes) : Self.decodeBinary(type, bytes)
            if ok { accepted += 1 }
        }
        // These inputs are malformed for the messages they target; a few message types may still
        // read them as unknown fields, but not all of them.
        #expect(accepted < ProtoRegistry.messageTypes.count, "\(name) decoded as every type")
    }

    @Test func specificOutcomes() throws {
        func load(_ name: String) throws -> [UInt8] {
            Array(try Data(contentsOf: URL(fileURLWithPath: Self.directory + "/" + name)))
        }
        #expect(throws: ProtoDecodingError.depthLimitExceeded) {
            try Google_Protobuf_DescriptorProto(serializedBytes: try load("nesting-101-deep.bin"))
        }
        #expect(throws: ProtoDecodingError.lengthBeyondBuffer) {
            try Bpfman_V1_LoadRequest(serializedBytes: try load("length-max-uint64.bin"))
        }
        #expect(throws: ProtoDecodingError.lengthBeyondBuffer) {
            try Bpfman_V1_LoadRequest(serializedBytes: try load("nested-length-overflows-parent.bin"))
        }
        #expect(throws: ProtoDecodingError.malformedVarint) {
            try Bpfman_V1_GetRequest(serializedBytes: try load("overlong-tag.bin"))
        }
        #expect(throws: ProtoDecodingError.invalidFieldNumber) {
            try Bpfman_V1_GetRequest(serializedBytes: try load("field-number-edges.bin"))
        }
        #expect(throws: ProtoDecodingError.invalidUTF8(fieldNumber: 2)) {
            try Bpfman_V1_KernelProgramInfo(serializedBytes: try load("utf8-overlong-and-surrogate.bin"))
        }
        #expect(throws: ProtoDecodingError.groupWireType) {
            try Bpfman_V1_GetRequest(serializedBytes: try load("group-inside-unknown.bin"))
        }
        #expect(throws: ProtoJSONError.depthLimitExceeded) {
            try Bpfman_V1_GetRequest(jsonUTF8Bytes: try load("deep-arrays.json"))
        }
    }
}
