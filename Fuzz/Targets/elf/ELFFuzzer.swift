internal import BpfmanEngine
// The ELF checks on bytecode from a client's file or an image (SPEC §3.1, §4.13): the header check that decides
// whether libbpf is handed the bytes at all, and the symbol and entry-point lookups for uprobes, which walk the
// section and program headers of a file a client names. Input: the file.
//
// What must hold: the header check accepts exactly ELF64, host byte order, ET_REL, EM_BPF; the lookups read only
// inside the file (AddressSanitizer checks) and never trap, whatever the headers claim. (The offset they return is
// the kernel's to check: an address outside every PT_LOAD segment is passed through as it is.)
internal import FuzzSupport
internal import Glibc
internal import SystemCalls

private let path = "/dev/shm/bpfman-fuzz-elf-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let problem = ELFFile.bpfObjectProblem(header: Array(bytes.prefix(64)))
    let isBPF =
        bytes.count >= 64 && bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46, 2, 1]) && bytes[16] == 1 && bytes[17] == 0
        && bytes[18] == 247 && bytes[19] == 0
    require((problem == nil) == isBPF, "header check says \(problem ?? "BPF") for \(bytes.prefix(20))")

    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "cannot write \(path)")
    defer { unlink(path) }
    var written = 0
    while written < size {
        let n = write(fd, data + written, size - written)
        require(n > 0, "cannot write \(path)")
        written += n
    }
    let owned = OwnedFD(taking: fd)
    for symbol in ["main", "malloc", ""] { _ = ELFFile.fileOffset(of: symbol, in: owned) }
    _ = ELFFile.entryPointFileOffset(path: path)
    return 0
}
