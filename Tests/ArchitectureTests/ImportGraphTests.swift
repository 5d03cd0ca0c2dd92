import Foundation
import TestSupport
import Testing

/// The module graph is enforced by scripts/check-imports.sh; these tests prove the check bites.
@Suite struct ImportGraphTests {
    @Test func theCheckoutRespectsTheModuleGraph() throws {
        let result = try run("bash", [Repository.path("scripts/check-imports.sh")])
        #expect(result.status == 0, "\(result.output)")
    }

    @Test(arguments: [
        ("BpfmanEngine", "internal import Proto", "BpfmanEngine may not import Proto"),
        ("Proto", "internal import Foundation", "Proto may not import Foundation"),
        ("H2Transport", "internal import BpfmanEngine", "H2Transport may not import BpfmanEngine"),
        ("BpfmanServer", "internal import CBPF", "BpfmanServer may not import CBPF"),
        // Foundation pulls ICU into the daemon (about 6 MiB of RSS and 30 ms of start-up); FoundationEssentials
        // has what the daemon needs.
        ("BpfmanServer", "internal import Foundation", "BpfmanServer may not import Foundation"),
        ("BpfmanEngine", "internal import Foundation", "BpfmanEngine may not import Foundation"),
        ("BpfmanEngine", "import Logging", "bare 'import Logging'"),
        // The system-call layer sits under every module: Glibc only, nothing of ours, no logging.
        ("SystemCalls", "internal import Logging", "SystemCalls may not import Logging"),
        ("SystemCalls", "internal import H2Transport", "SystemCalls may not import H2Transport"),
    ])
    func aForbiddenImportFailsTheCheck(module: String, line: String, message: String) throws {
        let fm = FileManager.default
        let copy = fm.temporaryDirectory.appendingPathComponent("import-graph-\(UUID().uuidString)").path
        defer { try? fm.removeItem(atPath: copy) }
        try fm.createDirectory(atPath: copy, withIntermediateDirectories: true)
        let copied = try run("cp", ["-r", Repository.path("Sources"), Repository.path("scripts"), copy])
        try #require(copied.status == 0, "\(copied.output)")
        try (line + "\n").write(toFile: "\(copy)/Sources/\(module)/Violation.swift", atomically: true, encoding: .utf8)

        let result = try run("bash", ["\(copy)/scripts/check-imports.sh", copy])
        #expect(result.status != 0)
        #expect(result.output.contains(message), "\(result.output)")
    }
}
