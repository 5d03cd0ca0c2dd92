import Foundation
import SystemCalls
import TestSupport
import Testing

@testable import BpfmanEngine

@Suite struct ObjectFileTests {
    @Test func listsTheProgramsOfACompiledFixture() throws {
        let path = try BPFFixtures.object("tracepoint_counter")
        let programs = try ObjectFile.programs(at: path)
        #expect(programs == [DeclaredProgram(name: "count_kill", section: "tracepoint/syscalls/sys_enter_kill")])
    }

    @Test func missingFileIsATypedError() {
        #expect(throws: ObjectFileError(path: "/nonexistent/x.o", errno: .noSuchFileOrDirectory)) {
            try ObjectFile.programs(at: "/nonexistent/x.o")
        }
    }
}

/// `BPFObject.open(image:path:pinRoot:)`, the Load path: the file read once by us and opened from memory must
/// give libbpf the same object as opening the file itself — the same programs and sections, and internal maps
/// named after the object (`<name>.rodata`), which those names show up as in the kernel and in bpftool.
@Suite struct ObjectImageTests {
    @Test func openingTheReadBytesMatchesOpeningTheFile() throws {
        let path = try BPFFixtures.object("tracepoint_multi")
        let fromFile = try BPFObject.open(path: path, pinRoot: "/nonexistent")
        let fromImage = try BPFObject.open(image: try ObjectImage.read(path: path), path: path, pinRoot: "/nonexistent")
        #expect(fromImage.programs.map(\.name) == fromFile.programs.map(\.name))
        #expect(fromImage.programs.map(\.section) == fromFile.programs.map(\.section))
        let names = fromImage.maps.map(\.name)
        #expect(names == fromFile.maps.map(\.name))
        #expect(names.contains { $0.hasSuffix(".rodata") }, "the fixture has read-only globals: \(names)")
    }

    @Test func anEmptyFileReadsAsNoBytesAndAMissingOneAsENOENT() throws {
        let empty = "/tmp/eng-empty-\(getpid()).bpf.o"
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(try ObjectImage.read(path: empty).prefix(64).isEmpty)
        #expect(ELFFile.bpfObjectProblem(header: try ObjectImage.read(path: empty).prefix(64)) == "not an ELF file")
        #expect(throws: SystemCallError.self) { _ = try ObjectImage.read(path: "/nonexistent/x.bpf.o") }
        do {
            _ = try ObjectImage.read(path: "/nonexistent/x.bpf.o")
        } catch {
            #expect(error.errno == .noSuchFileOrDirectory)
        }
    }
}
