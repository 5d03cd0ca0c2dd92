import Foundation
import TestSupport
import Testing

/// Sources/Proto/Generated is exactly what ProtoGen makes from proto/ today.
@Suite struct GeneratedCodeIsFreshTests {
    /// ProtoGen is built next to the test bundle by `swift build --build-tests` / `swift test`.
    static let protoGen: String? = {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("ProtoGen").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    @Test(.enabled(if: protoGen != nil, "the ProtoGen executable was not built next to the tests"))
    func regeneratingChangesNothing() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("protogen-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let gen = try run(Self.protoGen!, ["--proto-dir", Repository.path("proto"), "--out", dir])
        try #require(gen.status == 0, "\(gen.output)")
        let diff = try run("diff", ["-ru", Repository.path("Sources/Proto/Generated"), dir])
        #expect(
            diff.status == 0,
            "stale generated code; run scripts/check-generated.sh --fix\n\(diff.output.prefix(4000))"
        )
    }
}
