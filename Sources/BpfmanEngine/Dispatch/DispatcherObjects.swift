internal import FoundationEssentials

/// The XDP and TC dispatcher objects (`xdp_dispatcher.bpf.o`, `tc_dispatcher.bpf.o`) as ELF bytes, which
/// libbpf opens from memory (`ObjectHandle(image:name:)`).
///
/// The daemon uses `embedded`: the objects compiled from `bpf/*.bpf.c` by `scripts/embed-dispatchers.sh` and
/// committed as `EmbeddedDispatchers.swift`, so the `bpfman` executable carries them and nothing is looked up
/// beside it (SPEC §1.10). Only dispatcher mode needs them (the freplace probe of SPEC §4.3 and every
/// dispatcher build); native mode never touches them.
package struct DispatcherObjects: Sendable, Equatable {
    /// `xdp_dispatcher.bpf.o`.
    package var xdp: [UInt8]
    /// `tc_dispatcher.bpf.o`.
    package var tc: [UInt8]

    package init(xdp: [UInt8], tc: [UInt8]) {
        self.xdp = xdp
        self.tc = tc
    }

    /// The objects built into this executable, decoded from base64 once, at first use.
    package static let embedded = DispatcherObjects(
        xdp: decode(EmbeddedDispatchers.xdp, expecting: EmbeddedDispatchers.xdpByteCount),
        tc: decode(EmbeddedDispatchers.tc, expecting: EmbeddedDispatchers.tcByteCount)
    )

    /// The first line of `clang --version` of the compiler that made `embedded`.
    package static let embeddedCompiler = EmbeddedDispatchers.compiler

    /// The object for `family`.
    package func bytes(for family: ProceedOnFamily) -> [UInt8] {
        family == .xdp ? xdp : tc
    }

    /// The name libbpf gives the object for `family` when opened from its file (`<name>.bpf.o`): it prefixes the
    /// object's internal maps (`xdp_disp.rodata`), so opening from memory under it keeps them as they were.
    package static func objectName(for family: ProceedOnFamily) -> String {
        family == .xdp ? "xdp_dispatcher" : "tc_dispatcher"
    }

    /// Decodes a generated base64 literal (76-character lines; the newlines are skipped).
    /// Traps when the literal is not base64 or not `count` bytes long: `EmbeddedDispatchers.swift` is generated
    /// and checked by `make check`, so either is a build defect, not a run-time condition.
    private static func decode(_ text: StaticString, expecting count: Int) -> [UInt8] {
        let data = text.withUTF8Buffer { Data(base64Encoded: Data($0), options: .ignoreUnknownCharacters) }
        guard let data, data.count == count else {
            fatalError("EmbeddedDispatchers.swift is corrupt: regenerate it with scripts/embed-dispatchers.sh")
        }
        return [UInt8](data)
    }
}
