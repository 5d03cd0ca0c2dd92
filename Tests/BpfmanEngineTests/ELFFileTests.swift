import Foundation
import SystemCalls
import Testing

@testable import BpfmanEngine

/// The uprobe lookups read a file a client names (SPEC §4.13), so its headers are not trusted. Inputs found by
/// fuzz-elf (Fuzz/README.md) are replayed here from Fuzz/corpus/elf.
@Suite struct ELFFileTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../Fuzz/corpus/elf").standardized.path

    /// Writes `bytes` to a temporary file and returns what both lookups say of it.
    static func lookups(_ bytes: [UInt8]) throws -> (symbol: UInt64?, entry: UInt64?) {
        let path = NSTemporaryDirectory() + "elf-\(UUID().uuidString)"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        let owned = OwnedFD(taking: fd)
        return (ELFFile.fileOffset(of: "main", in: owned), ELFFile.entryPointFileOffset(path: path))
    }

    /// fuzz-elf's first crash: a symbol table whose sh_entsize is above Int.max trapped in `Int(_:)`, killing the
    /// daemon on an Attach naming such a file as a uprobe target.
    @Test func sectionSizesBeyondIntMaxAreRefusedNotTrapped() throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: Self.corpus + "/crash-entsize-over-int-max")))
        let result = try Self.lookups(bytes)
        #expect(result.symbol == nil)
        #expect(ELFFile.bpfObjectProblem(header: Array(bytes.prefix(64))) == "ELF machine 62 is not BPF (247)")
    }

    /// Every header field that is an offset or a size at its maximum: nothing found, nothing trapped.
    @Test func headerFieldsAtTheirMaximumAreRefusedNotTrapped() throws {
        var bytes = [UInt8](repeating: 0, count: 512)
        bytes[0..<6] = [0x7f, 0x45, 0x4c, 0x46, 2, 1]
        func put64(_ value: UInt64, at offset: Int) {
            for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        put64(.max, at: 0x18)  // e_entry
        put64(.max, at: 0x20)  // e_phoff
        put64(64, at: 0x28)  // e_shoff: one section header right after the ELF header
        bytes[0x36] = 56  // e_phentsize
        bytes[0x38] = 1  // e_phnum
        bytes[0x3a] = 64  // e_shentsize
        bytes[0x3c] = 1  // e_shnum
        bytes[64 + 4] = 2  // sh_type SYMTAB
        put64(.max, at: 64 + 0x18)  // sh_offset
        put64(.max, at: 64 + 0x20)  // sh_size
        put64(.max, at: 64 + 0x38)  // sh_entsize
        let result = try Self.lookups(bytes)
        #expect(result.symbol == nil)
        // No PT_LOAD segment can be read (e_phoff is past the end): the entry address is passed through as it is.
        #expect(result.entry == .max)
    }
}
