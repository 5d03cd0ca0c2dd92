internal import BpfmanImages
// Image layers as the fetcher reads them (SPEC §8.1): plain, gzip or zstd tar, or a bare (or gzipped) ELF object,
// sniffed by content, read with libarchive under the fetcher's caps. Input: the layer's bytes.
//
// The caps are small here (an entry of 64 KiB, 1 MiB expanded) so that the fuzzer reaches them: a layer that
// would expand past them must be refused, not read. What must hold: a layer is either refused as invalid content
// or yields at most one object, which starts with the ELF magic, is no larger than the entry cap, and has a
// relative name without `..`.
internal import FuzzSupport
internal import Glibc

@testable internal import BpfmanImageFetch

private let limits: ImageLimits = {
    var limits = ImageLimits()
    limits.entry = 64 << 10
    limits.expanded = 1 << 20
    return limits
}()

private let path = "/dev/shm/bpfman-fuzz-layer-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    require(fd >= 0, "cannot write \(path)")
    var written = 0
    while written < size {
        let n = write(fd, data + written, size - written)
        require(n > 0, "cannot write \(path)")
        written += n
    }
    close(fd)
    defer { unlink(path) }
    do {
        switch try readLayer(path: path, limits: limits, url: "fuzz.example/layer") {
        case .object(let name, let bytes):
            require(bytes.starts(with: [0x7f, 0x45, 0x4c, 0x46]), "object without the ELF magic")
            require(bytes.count <= limits.entry, "object of \(bytes.count) bytes over the cap")
            require(!name.hasPrefix("/") && !name.split(separator: "/").contains(".."), "object named \(name)")
        case .none:
            break
        }
    } catch {
        guard case .content(let content) = error.kind else { fail("layer refused as \(error.kind)") }
        require(content.code == .invalidArgument, "layer refused with \(content.code)")
    }
    return 0
}
