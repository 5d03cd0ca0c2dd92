import Foundation
import TestSupport
import Testing

/// scripts/check-proto-contract.sh passes on our protos and fails when the contract drifts.
@Suite struct ProtoContractTests {
    static let reference = Repository.path("../shared/reference-proto")
    static let available =
        FileManager.default.isExecutableFile(atPath: "/usr/bin/protoc")
        && FileManager.default.fileExists(atPath: reference + "/bpfman.proto")

    @Test(.enabled(if: available, "needs protoc and ../shared/reference-proto"))
    func matchesTheReferenceAndCatchesDrift() throws {
        let script = Repository.path("scripts/check-proto-contract.sh")
        let ok = try run("bash", [script, Self.reference])
        #expect(ok.status == 0, "\(ok.output)")
        #expect(ok.output.contains("bpfman.proto matches") && ok.output.contains("csi.proto matches"))

        // A reference whose btf_id moved to another number must not match.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("proto-contract-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["bpfman.proto", "csi.proto"] {
            var text = try String(contentsOfFile: Self.reference + "/" + name, encoding: .utf8)
            if name == "bpfman.proto" {
                text = text.replacingOccurrences(of: "uint32 btf_id = 8;", with: "uint32 btf_id = 18;")
            }
            try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
        }
        let drift = try run("bash", [script, dir])
        #expect(drift.status == 1)
        #expect(drift.output.contains("bpfman.proto differs"))
    }
}
