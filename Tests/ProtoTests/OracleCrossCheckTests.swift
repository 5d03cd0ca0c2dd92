import Foundation
import TestSupport
import Testing

@testable import Proto

/// Python's protobuf as an independent implementation: it makes thousands of seeded random
/// messages of every bpfman and csi type; we decode its binary and its JSON, re-encode both
/// ways, and it checks that what we wrote parses back to the message it started from.
@Suite struct OracleCrossCheckTests {
    static let python = Repository.path(".venv/bin/python")
    static let script = Repository.path("Interop/proto/oracle.py")
    static let available: Bool = {
        guard FileManager.default.isExecutableFile(atPath: python),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")
        else { return false }
        return (try? run(python, ["-c", "import google.protobuf"]).status) == 0
    }()

    static func hex(_ s: Substring) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count / 2)
        var high: UInt8? = nil
        for c in s.utf8 {
            let v = c <= 0x39 ? c - 0x30 : c - 0x61 + 10
            if let h = high {
                out.append(h << 4 | v)
                high = nil
            } else {
                high = v
            }
        }
        return out
    }

    static func hexString(_ b: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count * 2)
        for x in b {
            out.append(digits[Int(x >> 4)])
            out.append(digits[Int(x & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes the oracle's binary and JSON, checks they agree, and returns our binary and JSON.
    static func roundTrip<M: ProtoMessage>(_: M.Type, binary: [UInt8], json: [UInt8]) throws -> ([UInt8], [UInt8]) {
        let fromBinary = try M(serializedBytes: binary)
        let fromJSON = try M(jsonUTF8Bytes: json)
        #expect(fromBinary == fromJSON, "\(M.protoMessageName): binary and JSON decode differently")
        #expect(fromBinary.serializedSize == binary.count, "\(M.protoMessageName): size differs from the oracle's")
        #expect(try M(serializedBytes: fromBinary.serializedBytes()) == fromBinary)
        return (fromBinary.serializedBytes(), fromBinary.jsonUTF8Bytes())
    }

    @Test(.enabled(if: available, "needs .venv/bin/python with protobuf (scripts/setup.sh) and protoc"))
    func pythonProtobufAgreesWithUs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proto-oracle-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = dir + "/cases.tsv"
        let ours = dir + "/ours.tsv"

        let gen = try run(
            Self.python,
            [Self.script, "generate", "--seed", "20261121", "--count", "30", "--out", cases]
        )
        try #require(gen.status == 0, "\(gen.output)")

        var answers = ""
        var count = 0
        for line in try String(contentsOfFile: cases, encoding: .utf8).split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            try #require(parts.count == 3)
            let name = String(parts[0])
            let type = try #require(ProtoRegistry.messageTypes[name], "no Swift type for \(name)")
            do {
                let (binary, json) = try Self.roundTrip(type, binary: Self.hex(parts[1]), json: Self.hex(parts[2]))
                answers += "\(name)\t\(Self.hexString(binary))\t\(Self.hexString(json))\n"
            } catch {
                Issue.record("\(name): \(error) for \(parts[1].prefix(200))")
                answers += "\(name)\t\t\n"
            }
            count += 1
        }
        #expect(count > 3000, "the oracle should produce thousands of cases")
        try answers.write(toFile: ours, atomically: true, encoding: .utf8)
        let verify = try run(Self.python, [Self.script, "verify", "--cases", cases, "--ours", ours])
        #expect(verify.status == 0, "\(verify.output.prefix(6000))")
        #expect(verify.output.contains("ok \(count)"))
    }
}
