import Testing
import TestSupport

@testable import BpfmanEngine

@Suite struct ObjectFileTests {
    @Test func listsTheProgramsOfACompiledFixture() throws {
        let path = try BPFFixtures.object("tracepoint_counter")
        let programs = try ObjectFile.programs(at: path)
        #expect(programs == [DeclaredProgram(name: "count_kill", section: "tracepoint/syscalls/sys_enter_kill")])
    }

    @Test func missingFileIsATypedError() {
        #expect(throws: ObjectFileError(path: "/nonexistent/x.o", errno: 2)) {
            try ObjectFile.programs(at: "/nonexistent/x.o")
        }
    }
}
