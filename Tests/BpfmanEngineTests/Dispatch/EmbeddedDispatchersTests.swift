import CBPF
import Testing

@testable import BpfmanEngine

/// The dispatcher objects built into the executable (`EmbeddedDispatchers.swift`, SPEC §1.10). That they are
/// the bytes the pinned clang makes of `bpf/*.bpf.c` is proven by `scripts/embed-dispatchers.sh --check` in
/// `make check`; here: they decode, are BPF ELF objects, and libbpf opens them from memory with the layout
/// SPEC §4.4-4.5 requires. No root needed: nothing is loaded into the kernel.
@Suite struct EmbeddedDispatchersTests {
    @Test(arguments: [ProceedOnFamily.xdp, .tc])
    func decodesToABPFObject(_ family: ProceedOnFamily) {
        let bytes = DispatcherObjects.embedded.bytes(for: family)
        #expect(bytes.count == (family == .xdp ? EmbeddedDispatchers.xdpByteCount : EmbeddedDispatchers.tcByteCount))
        #expect(Array(bytes.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], "ELF magic")
        #expect(bytes.count > 20 && bytes[4] == 2 && bytes[5] == 1, "64-bit little-endian")
        #expect(bytes.count > 20 && UInt16(bytes[18]) | UInt16(bytes[19]) << 8 == 247, "e_machine EM_BPF")
        #expect(DispatcherObjects.embeddedCompiler.hasPrefix("clang version "))
    }

    @Test(arguments: [ProceedOnFamily.xdp, .tc])
    func opensFromMemoryWithTheDispatcherLayout(_ family: ProceedOnFamily) throws {
        let handle = try ObjectHandle(.embedded, family)
        var programs: [String] = []
        var program = bpf_object__next_program(handle.object, nil)
        while let p = program {
            programs.append(String(cString: bpf_program__name(p)))
            program = bpf_object__next_program(handle.object, p)
        }
        // The entry programs: the dispatcher and the freplace probe's extension (SPEC §4.3).
        let main = family == .xdp ? "xdp_dispatcher" : "tc_dispatcher"
        #expect(programs == [main, family == .xdp ? "probe_pass" : "probe_ok"])

        // The object is named as when opened from its file, so the config map keeps its name.
        #expect(String(cString: bpf_object__name(handle.object)) == main)
        var maps: [String] = []
        var map = bpf_object__next_map(handle.object, nil)
        while let m = map {
            maps.append(String(cString: bpf_map__name(m)))
            map = bpf_object__next_map(handle.object, m)
        }
        #expect(maps == [family == .xdp ? "xdp_disp.rodata" : "tc_dispa.rodata"])

        // The slots and `compat_test` are global functions of .text, found by their BTF ids (the freplace
        // targets), so BTF must survive the DWARF strip.
        let btf = try #require(bpf_object__btf(handle.object), "no BTF")
        for name in ["compat_test"] + (0..<10).map({ "prog\($0)" }) {
            #expect(btf__find_by_name_kind(btf, name, 12) > 0, "BTF_KIND_FUNC \(name)")
        }
    }

    @Test func garbageIsRefusedByLibbpf() {
        let error = #expect(throws: DispatchError.self) { _ = try ObjectHandle(image: [1, 2, 3], name: "junk") }
        #expect(error?.code == .internal)
        #expect(error?.message.hasPrefix("open BPF object junk:") == true)
    }
}
