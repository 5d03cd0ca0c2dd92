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

    /// Only the first symbol table of each type is read, as libbpf's lookup does: a second SHT_SYMTAB naming
    /// `main` is ignored and the SHT_DYNSYM one is found. fuzz-elf found the lookup scanning every table a file
    /// claims, each over the same bytes, and every name to its NUL (160 lookups a second on 9 KB inputs); names
    /// are now compared only up to the symbol's length and its NUL, so `mainly` is not `main`, and a symbol whose
    /// value is 0 (undefined) is skipped.
    @Test func onlyTheFirstSymbolTableOfEachTypeIsReadAndNamesMatchWhole() throws {
        var bytes = [UInt8](repeating: 0, count: 0x320)
        bytes[0..<6] = [0x7f, 0x45, 0x4c, 0x46, 2, 1]
        func put(_ value: UInt64, at offset: Int, size: Int = 8) {
            for i in 0..<size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        put(64, at: 0x28)  // e_shoff
        put(64, at: 0x3a, size: 2)  // e_shentsize
        put(4, at: 0x3c, size: 2)  // e_shnum; no program headers: addresses are passed through
        // (type, offset, size, link) of the four sections; entries are 24 bytes.
        let sections: [(UInt64, UInt64, UInt64, UInt64)] = [
            (2, 0x200, 48, 3),  // SYMTAB: "mainly" (0x10), "main" undefined (0)
            (2, 0x240, 24, 3),  // a second SYMTAB: "main" at 0x1234, ignored
            (11, 0x260, 24, 3),  // DYNSYM: "main" at 0x2000
            (3, 0x300, 14, 0),  // STRTAB "\0mainly\0main\0"
        ]
        for (index, (type, offset, size, link)) in sections.enumerated() {
            let header = 64 + index * 64
            put(type, at: header + 4, size: 4)
            put(offset, at: header + 0x18)
            put(size, at: header + 0x20)
            put(link, at: header + 0x28, size: 4)
            put(24, at: header + 0x38)
        }
        // (entry offset, name offset in STRTAB, st_value)
        let symbols = [(0x200, 1, 0x10), (0x218, 8, 0), (0x240, 8, 0x1234), (0x260, 8, 0x2000)]
        for (entry, name, value) in symbols {
            put(UInt64(name), at: entry, size: 4)
            put(UInt64(value), at: entry + 8)
        }
        bytes[0x300..<0x30e] = [0, 0x6d, 0x61, 0x69, 0x6e, 0x6c, 0x79, 0, 0x6d, 0x61, 0x69, 0x6e, 0, 0][...]
        #expect(try Self.lookups(bytes).symbol == 0x2000)
    }
}
