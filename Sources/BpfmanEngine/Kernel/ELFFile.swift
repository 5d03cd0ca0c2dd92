internal import Glibc
package import SystemCalls

/// Minimal ELF64 reading for what libbpf does not do for us: checking that a file is a BPF object before
/// opening it (SPEC §3.1) and resolving uprobe symbols to file offsets (SPEC §4.13).
package enum ELFFile {
    /// Why a file is not a loadable BPF object, or nil when it is one (ELF64, ET_REL, EM_BPF, host endian).
    package static func bpfObjectProblem(header bytes: [UInt8]) -> String? {
        guard bytes.count >= 64, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[2] == 0x4c, bytes[3] == 0x46 else {
            return "not an ELF file"
        }
        guard bytes[4] == 2 else { return "not a 64-bit ELF file" }
        let hostLittle = 1.littleEndian == 1
        guard bytes[5] == (hostLittle ? 1 : 2) else { return "byte order differs from the host's" }
        let type = read16(bytes, 16, little: hostLittle)
        let machine = read16(bytes, 18, little: hostLittle)
        guard type == 1 else { return "ELF type \(type) is not a relocatable object (ET_REL)" }
        guard machine == 247 else { return "ELF machine \(machine) is not BPF (247)" }
        return nil
    }

    private static func read16(_ b: [UInt8], _ at: Int, little: Bool) -> UInt16 {
        little ? UInt16(b[at]) | UInt16(b[at + 1]) << 8 : UInt16(b[at]) << 8 | UInt16(b[at + 1])
    }

    /// The file offset of `symbol` in the ELF open at `fd`: `.symtab` first, then `.dynsym`;
    /// `st_value - p_vaddr + p_offset` of the PT_LOAD segment containing it.
    /// - Returns: nil when the symbol is absent or the file is not a readable ELF64.
    package static func fileOffset(of symbol: String, in fd: borrowing OwnedFD) -> UInt64? {
        var st = Glibc.stat()
        guard fstat(fd.rawValue, &st) == 0, st.st_size >= 64 else { return nil }
        let size = Int(st.st_size)
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd.rawValue, 0), base != MAP_FAILED else {
            return nil
        }
        defer { munmap(base, size) }
        let image = UnsafeRawBufferPointer(start: base, count: size)
        return ELFImage(image)?.fileOffset(of: symbol)
    }

    /// The file offset of the entry point (`e_entry`) of the ELF at `path`, for offset-only uprobes.
    package static func entryPointFileOffset(path: String) -> UInt64? {
        guard let bytes = Syscalls.readFile(path) else { return nil }
        return bytes.withUnsafeBytes { raw in
            guard let image = ELFImage(raw) else { return nil }
            return image.fileOffset(ofAddress: image.u64(0x18))
        }
    }
}

/// A little-endian ELF64 image in memory.
private struct ELFImage {
    let bytes: UnsafeRawBufferPointer

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 64, bytes[0] == 0x7f, bytes[1] == 0x45, bytes[4] == 2, bytes[5] == 1 else { return nil }
        self.bytes = bytes
    }

    func u16(_ at: Int) -> Int {
        at >= 0 && at + 2 <= bytes.count ? Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)) : 0
    }
    func u32(_ at: Int) -> Int {
        at >= 0 && at + 4 <= bytes.count ? Int(bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) : 0
    }
    func u64(_ at: Int) -> UInt64 {
        at >= 0 && at + 8 <= bytes.count ? bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self) : 0
    }

    /// A 64-bit file offset or size read at `at`, capped at the image's size: the file's headers are not trusted,
    /// and a value past the end would overflow `Int` or the arithmetic done with it (fuzz-elf found both).
    func clamped(_ at: Int) -> Int {
        Int(min(u64(at), UInt64(bytes.count)))
    }

    /// Whether the NUL-terminated string at `offset` is `name`: reads at most the name's length and its NUL, never
    /// on through a long string.
    func string(at offset: Int, is name: [UInt8]) -> Bool {
        guard offset >= 0, offset < bytes.count - name.count else { return false }
        for (index, byte) in name.enumerated() where bytes[offset + index] != byte { return false }
        return bytes[offset + name.count] == 0
    }

    func fileOffset(of symbol: String) -> UInt64? {
        let name = Array(symbol.utf8)
        guard !name.contains(0) else { return nil }
        let sectionHeaders = clamped(0x28)
        let sectionSize = u16(0x3a)
        guard sectionSize >= 64 else { return nil }
        // Headers past the end of the file cannot be read; e_shnum is not trusted to stop before it.
        let sectionCount = min(u16(0x3c), (bytes.count - sectionHeaders) / sectionSize)
        // SHT_SYMTAB (2), then SHT_DYNSYM (11): the first section of each type only, as libbpf's own lookup reads
        // them. A file has at most one of each; a crafted one with thousands of tables over the same bytes would
        // otherwise cost a scan of the file per table (fuzz-elf: 160 lookups a second on 9 KB inputs).
        for wanted in [2, 11] {
            let headers = (0..<sectionCount).lazy.map { sectionHeaders + $0 * sectionSize }
            guard let header = headers.first(where: { u32($0 + 4) == wanted }) else { continue }
            let offset = clamped(header + 0x18)
            let size = clamped(header + 0x20)
            let link = u32(header + 0x28)
            let entrySize = max(clamped(header + 0x38), 24)
            let strings = clamped(sectionHeaders + link * sectionSize + 0x18)
            var entry = offset
            while entry + 24 <= offset + size && entry + 24 <= bytes.count {
                let value = u64(entry + 8)
                if value != 0 && string(at: strings + u32(entry), is: name) { return fileOffset(ofAddress: value) }
                entry += entrySize
            }
        }
        return nil
    }

    /// Maps a virtual address to a file offset through the PT_LOAD segment containing it.
    func fileOffset(ofAddress value: UInt64) -> UInt64? {
        let programHeaders = clamped(0x20)
        let programSize = u16(0x36)
        let programCount = programSize > 0 ? min(u16(0x38), (bytes.count - programHeaders) / programSize) : 0
        for i in 0..<programCount {
            let header = programHeaders + i * programSize
            guard u32(header) == 1 else { continue }  // PT_LOAD
            let fileOffset = u64(header + 0x08)
            let vaddr = u64(header + 0x10)
            let memorySize = u64(header + 0x28)
            if value >= vaddr && value - vaddr < memorySize {
                let (offset, overflow) = (value - vaddr).addingReportingOverflow(fileOffset)
                return overflow ? nil : offset
            }
        }
        return value
    }
}
