import Foundation
import TestSupport
import Testing

/// The protocat executable, driven as a user would, through a shell pipe.
@Suite struct ProtocatTests {
    static let protocat: String? = {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("protocat").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }()

    func sh(_ script: String) throws -> CommandResult {
        try run("bash", ["-c", script], environment: ["PROTOCAT": Self.protocat!])
    }

    @Test(.enabled(if: protocat != nil, "the protocat executable was not built next to the tests"))
    func decodesBinaryToJSONAndBack() throws {
        // GetRequest{id: 7} is 08 07.
        let decoded = try sh(#"printf '\x08\x07' | "$PROTOCAT" --type bpfman.v1.GetRequest --decode"#)
        #expect(decoded.status == 0)
        #expect(decoded.output == "{\"id\":7}\n")
        let encoded = try sh(#"echo '{"id": 7}' | "$PROTOCAT" --type bpfman.v1.GetRequest --encode | od -An -tx1"#)
        #expect(encoded.status == 0)
        #expect(
            encoded.output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } == [
                "08", "07",
            ]
        )
        let round = try sh(
            #"echo '{"bytecode":{"file":"/a.o"},"metadata":{"k":"v"},"info":[{"name":"p","programType":"TCX"}]}' | "#
                + #""$PROTOCAT" -t bpfman.v1.LoadRequest -e | "$PROTOCAT" -t bpfman.v1.LoadRequest -d"#
        )
        #expect(
            round.output
                == #"{"bytecode":{"file":"/a.o"},"metadata":{"k":"v"},"info":[{"name":"p","programType":"TCX"}]}"#
                + "\n"
        )
    }

    @Test(.enabled(if: protocat != nil, "the protocat executable was not built next to the tests"))
    func reportsErrorsOnStderrWithNonZeroStatus() throws {
        let truncated = try sh(#"printf '\x08' | "$PROTOCAT" --type bpfman.v1.GetRequest --decode 2>&1 >/dev/null"#)
        #expect(truncated.status == 1)
        #expect(truncated.output.contains("truncated input"))
        let badJSON = try sh(#"echo '{"idx": 1}' | "$PROTOCAT" --type bpfman.v1.GetRequest --encode"#)
        #expect(badJSON.status == 1)
        #expect(badJSON.output.contains("has no field named \"idx\""))
        let unknownType = try sh(#""$PROTOCAT" --type bpfman.v1.Nope --decode </dev/null"#)
        #expect(unknownType.status == 2)
        #expect(unknownType.output.contains("unknown message type"))
    }
}
