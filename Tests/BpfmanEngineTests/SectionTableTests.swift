import CBPF
import Synchronization
import Testing

@testable import BpfmanEngine

/// SPEC §4.2's section table checked against libbpf's own (`libbpf_prog_type_by_name`, Debian's libbpf 1.1):
/// wherever libbpf knows a section name, the kernel program type it reports is the one of the family bpfman
/// classifies the name into. No kernel is needed: libbpf answers from its table.
@Suite struct SectionTableTests {
    /// What libbpf says about a section name: its kernel program type and expected attach type, or nil when the
    /// name is not in its table.
    static func libbpfType(_ section: String) -> (type: UInt32, attach: UInt32)? {
        var type = bpf_prog_type(rawValue: 0)
        var attach = bpf_attach_type(rawValue: 0)
        guard libbpf_prog_type_by_name(section, &type, &attach) == 0 else { return nil }
        return (type.rawValue, attach.rawValue)
    }

    /// libbpf's whole section table, as its debug line "supported section(type) names are: …" lists it after a
    /// failed look-up (entries keep libbpf's suffixes: `+` = bare or `/…`, a trailing `/` = `/…` only, none =
    /// exactly that). libbpf's print callback is process-global: it is borrowed for the one look-up and then
    /// given back.
    static let libbpfSectionTable: [String] = {
        let previous = libbpf_set_print(captureLibbpfLine)
        defer { _ = libbpf_set_print(previous) }
        _ = libbpfType("bpfman-test/not-a-section")
        let marker = "supported section(type) names are:"
        let lines = capturedLibbpfLines.withLock { lines in
            defer { lines = [] }
            return lines
        }
        guard let line = lines.first(where: { $0.contains(marker) }) else { return [] }
        return line[line.firstRange(of: marker)!.upperBound...].split(whereSeparator: { $0 == " " || $0 == "\n" })
            .map(String.init)
    }()

    /// Section names to ask both libbpf and bpfman about for one libbpf table entry.
    static func spellings(ofLibbpfEntry entry: String) -> [String] {
        if entry.hasSuffix("+") {
            let bare = String(entry.dropLast())
            return [bare, bare + "/anything"]
        }
        if entry.hasSuffix("/") { return [entry + "anything"] }
        return [entry]
    }

    /// The kernel program type (and, for BTF-attached kinds, expected attach type) of each section kind.
    static func kernelType(of kind: ProgramKind) -> (type: UInt32, attach: UInt32?) {
        switch kind {
        case .fentry: (26, 24)  // BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY
        case .fexit: (26, 25)  // BPF_TRACE_FEXIT
        case .lsm: (29, 27)  // BPF_PROG_TYPE_LSM, BPF_LSM_MAC
        default: (kind.reportedKernelType, nil)
        }
    }

    /// libbpf entries whose kernel type is one of bpfman's families but which are no bpfman kind, with why.
    /// bpfman refuses them as unrecognised sections (a type mismatch, SPEC §3.1).
    static let otherLibbpfKinds: [String: String] = [
        "kprobe.multi+": "multi-function kprobe (BPF_TRACE_KPROBE_MULTI link), not a kprobe bpfman attaches",
        "kretprobe.multi+": "multi-function kretprobe, as above",
        "ksyscall+": "libbpf's syscall-name wrapper around kprobes, resolved by libbpf at attach",
        "kretsyscall+": "as ksyscall",
        "usdt+": "USDT probes need libbpf's USDT manager and spec maps",
        "tp_btf+": "BTF-typed raw tracepoint (BPF_TRACE_RAW_TP), not a perf tracepoint",
        "fmod_ret+": "BPF_MODIFY_RETURN, not fentry/fexit",
        "fmod_ret.s+": "as fmod_ret",
        "lsm_cgroup+": "per-cgroup LSM (BPF_LSM_CGROUP), attached to a cgroup",
        "iter+": "BPF iterators (BPF_TRACE_ITER)",
        "iter.s+": "as iter",
    ]

    @Test func libbpfListsItsSectionTable() {
        let table = Self.libbpfSectionTable
        // Seen with Debian's libbpf 1.1.2: 81 entries, from `socket` to `sk_lookup`.
        #expect(table.count > 50, "libbpf's table was not captured: \(table)")
        for entry in ["kprobe+", "uprobe+", "uprobe.s+", "tracepoint+", "tp+", "xdp", "tc", "classifier", "lsm+"] {
            #expect(table.contains(entry), "libbpf \(cbpf_libbpf_major()).\(cbpf_libbpf_minor()) lacks \(entry)")
        }
    }

    /// Every section name libbpf's table yields (bare and `/…` as its suffix allows): where bpfman knows the name
    /// its family's kernel type is libbpf's; where it does not, libbpf's type is none of bpfman's families or the
    /// entry is one of `otherLibbpfKinds`.
    @Test(arguments: SectionTableTests.libbpfSectionTable)
    func bpfmanAgreesWithLibbpfOnItsEntry(_ entry: String) throws {
        for section in Self.spellings(ofLibbpfEntry: entry) {
            let libbpf = try #require(Self.libbpfType(section), "libbpf does not know \(section) of its entry \(entry)")
            if let kind = Engine.sectionKind(section) {
                let expected = Self.kernelType(of: kind)
                #expect(libbpf.type == expected.type, "\(section): bpfman says \(kind), libbpf type \(libbpf.type)")
                if let attach = expected.attach {
                    #expect(libbpf.attach == attach, "\(section): libbpf's expected attach type \(libbpf.attach)")
                }
            } else {
                let families: Set<UInt32> = Set(ProgramKind.allCases.map { Self.kernelType(of: $0).type })
                #expect(
                    !families.contains(libbpf.type) || Self.otherLibbpfKinds[entry] != nil,
                    "\(section): libbpf type \(libbpf.type) is a bpfman family's, yet bpfman does not recognise it"
                )
            }
        }
    }

    /// SPEC §4.2's spellings, bare and with a suffix: the kind bpfman records, and libbpf's agreement where libbpf
    /// knows the name. libbpf 1.1 does not know `tcx` at all and matches `tc`, `classifier` and `xdp` only bare
    /// (besides `xdp/devmap`, `xdp/cpumap`): those are bpfman's own spellings and are asserted on our side only.
    @Test(arguments: [
        ("xdp", ProgramKind.xdp), ("xdp/anything", .xdp), ("xdp.frags", .xdp), ("xdp.frags/anything", .xdp),
        ("classifier", .tc), ("classifier/anything", .tc), ("tc", .tc), ("tc/ingress", .tc), ("tcx", .tc),
        ("tcx/ingress", .tc), ("tcx/egress", .tc),
        ("tracepoint", .tracepoint), ("tracepoint/syscalls/sys_enter_kill", .tracepoint), ("tp", .tracepoint),
        ("tp/sched/sched_switch", .tracepoint),
        ("kprobe", .kprobe), ("kprobe/do_unlinkat", .kprobe), ("kretprobe", .kretprobe),
        ("kretprobe/do_unlinkat", .kretprobe),
        ("uprobe", .uprobe), ("uprobe/anything", .uprobe), ("uprobe.s", .uprobe), ("uprobe.s/anything", .uprobe),
        ("uretprobe", .uretprobe), ("uretprobe/anything", .uretprobe), ("uretprobe.s", .uretprobe),
        ("uretprobe.s/anything", .uretprobe),
        ("fentry", .fentry), ("fentry/do_unlinkat", .fentry), ("fentry.s", .fentry), ("fentry.s/x", .fentry),
        ("fexit", .fexit), ("fexit/do_unlinkat", .fexit), ("fexit.s", .fexit), ("fexit.s/x", .fexit),
        ("lsm", .lsm), ("lsm/file_open", .lsm), ("lsm.s", .lsm), ("lsm.s/file_open", .lsm),
    ])
    func specSpellingIsItsFamily(_ section: String, _ kind: ProgramKind) {
        #expect(Engine.sectionKind(section) == kind)
        let bpfmanOnly = ["tcx", "tc/", "classifier/", "xdp/", "xdp.frags/"].contains { prefix in
            prefix.hasSuffix("/") ? section.hasPrefix(prefix) : section == prefix || section.hasPrefix(prefix + "/")
        }
        if let libbpf = Self.libbpfType(section) {
            #expect(libbpf.type == Self.kernelType(of: kind).type, "\(section): libbpf says type \(libbpf.type)")
        } else {
            #expect(bpfmanOnly, "libbpf does not know \(section), which it should")
        }
    }

    /// Near misses: a name matches only bare or followed by `/`.
    @Test(arguments: [
        "", "socket", "kprobe.multi", "kprobe.multi/x", "kprobex", "uprobe_x/y", "uprobe.sx", "tpx", "tp_btf/x",
        "tracepoints/x", "raw_tracepoint/x", "xdpx", "xdp.fragsy", "tcx.x", "tc_x", "classifierx", "fentryx",
        "fmod_ret/x", "lsm_cgroup/x", "lsm.sleepable", "/kprobe", "Kprobe",
    ])
    func nearMissesAreNoSection(_ section: String) {
        #expect(Engine.sectionKind(section) == nil, "\(section)")
    }

    @Test func mismatchMessagesNameTheSectionTheFunctionAndTheSpellings() {
        #expect(
            Engine.sectionMismatchMessage(program: "count_kill", section: "tracepoint", requested: .kprobe)
                == "program type mismatch: count_kill was requested as kprobe but its ELF section \"tracepoint\" "
                + "is a tracepoint section"
        )
        #expect(
            Engine.sectionMismatchMessage(program: "probe", section: "uretprobe.s/x", requested: .kprobe)
                == "program type mismatch: probe was requested as kprobe but its ELF section \"uretprobe.s/x\" "
                + "is a uretprobe section"
        )
        #expect(
            Engine.sectionMismatchMessage(program: "filter", section: "socket", requested: .uprobe)
                == "program type mismatch: filter was requested as uprobe but its ELF section \"socket\" is not one "
                + "bpfman knows; a uprobe program's section is one of uprobe, uprobe.s, uretprobe, uretprobe.s "
                + "(bare, or followed by \"/...\")"
        )
        #expect(
            Engine.sectionMismatchMessage(program: "f", section: "tcx.x", requested: .tcx).hasSuffix(
                "a tcx program's section is one of classifier, tc, tcx (bare, or followed by \"/...\")"
            )
        )
    }

    /// Every API type has spellings, and each spelling maps back to that type.
    @Test(arguments: BpfmanProgramType.allCases)
    func everyProgramTypeHasSpellings(_ type: BpfmanProgramType) {
        let names = Engine.sectionNames(for: type)
        #expect(!names.isEmpty)
        for name in names { #expect(Engine.kind(section: name, requested: type)?.programType == type) }
    }
}

/// libbpf's lines while `SectionTableTests` borrows the print callback.
private let capturedLibbpfLines = Mutex<[String]>([])

private func captureLibbpfLine(
    _ level: libbpf_print_level,
    _ format: UnsafePointer<CChar>?,
    _ args: CVaListPointer?
) -> Int32 {
    guard let format, let args else { return 0 }
    var buffer = [CChar](repeating: 0, count: 16384)
    let written = buffer.withUnsafeMutableBufferPointer { cbpf_vformat($0.baseAddress, $0.count, format, args) }
    guard written > 0 else { return 0 }
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    capturedLibbpfLines.withLock { $0.append(line) }
    return 0
}
