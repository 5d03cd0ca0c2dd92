import CBPF
import Foundation
import Glibc
import SystemCalls
import TestSupport
import Testing

@testable import BpfmanEngine

extension KernelTests {
    /// Every SPEC §3 error case with its typed error; the harness checks nothing is left behind.
    @Suite struct EngineErrorTests {
        static let tracepointObject = { (try? BPFFixtures.object("tracepoint_counter")) ?? "" }()

        static func request(
            _ programs: [ProgramLoadInfo],
            file: String? = nil,
            globalData: [String: [UInt8]] = [:],
            owner: UInt32? = nil
        ) -> LoadRequest {
            LoadRequest(
                bytecode: .file(file ?? tracepointObject),
                programs: programs,
                globalData: globalData,
                mapOwnerID: owner
            )
        }

        /// (request, code, exact message or prefix ending in "…"). The input checks of SPEC §3.1 that need no
        /// state are the server's conversion's, asserted in `RequestValidationTests`; these are the engine's.
        static let loadCases: [(String, LoadRequest, EngineError.Code, String)] = [
            (
                "unknown map owner", request([ProgramLoadInfo(name: "count_kill", type: .tracepoint)], owner: 999_999),
                .invalidArgument, "map_owner_id 999999 does not exist: map owner not found"
            ),
            (
                "missing file",
                request([ProgramLoadInfo(name: "count_kill", type: .tracepoint)], file: "/nonexistent/x.o"),
                .invalidArgument, "object file /nonexistent/x.o: No such file or directory"
            ),
            (
                "not a BPF object",
                request([ProgramLoadInfo(name: "count_kill", type: .tracepoint)], file: "/bin/true"),
                .invalidArgument,
                "object file /bin/true is not a BPF object: ELF type 3 is not a relocatable object (ET_REL)"
            ),
            (
                "unknown function name", request([ProgramLoadInfo(name: "nope", type: .tracepoint)]), .invalidArgument,
                "program(s) not found in object file: [nope]; available programs: [count_kill]"
            ),
            (
                "section/type mismatch", request([ProgramLoadInfo(name: "count_kill", type: .kprobe)]),
                .invalidArgument,
                "program type mismatch: count_kill was requested as kprobe but its ELF section \"tracepoint/syscalls/sys_enter_kill\" is a tracepoint section"
            ),
        ]

        @Test(arguments: 0..<loadCases.count)
        func loadValidation(_ index: Int) async throws {
            let (name, request, code, message) = Self.loadCases[index]
            try await withTestEngine("lerr") { h in
                let error = await engineError { _ = try await h.load(request) }
                #expect(error?.code == code, "\(name)")
                #expect(error?.message == message, "\(name)")
            }
        }

        @Test func globalDataErrors() async throws {
            try await withTestEngine("global") { h in
                let object = try BPFFixtures.object("tracepoint_multi")
                let programs = [ProgramLoadInfo(name: "multi_kill", type: .tracepoint)]
                let unknown = await engineError {
                    _ = try await h.load(Self.request(programs, file: object, globalData: ["nope": [1]]))
                }
                #expect(unknown?.code == .invalidArgument)
                #expect(
                    unknown?.message
                        == "global variable \"nope\" not found in object; available: [bias, increment, seen]"
                )
                let size = await engineError {
                    _ = try await h.load(Self.request(programs, file: object, globalData: ["bias": [1, 2]]))
                }
                #expect(size?.code == .invalidArgument)
                #expect(size?.message == "global variable \"bias\" is 8 bytes but 2 bytes were given")
                // .bss and .data variables are writable too.
                let ok = try await h.load(
                    Self.request(
                        programs,
                        file: object,
                        globalData: ["seen": [0, 0, 0, 0], "bias": [1, 0, 0, 0, 0, 0, 0, 0]]
                    )
                )
                try await h.engine.unload(id: ok[0].kernelInfo.id)
            }
        }

        @Test func mapOwnerMismatchAndMissingMap() async throws {
            try await withTestEngine("owner-err") { h in
                let owner = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let mismatch = await engineError {
                    _ = try await h.load(
                        fixture: "tracepoint_counter_big",
                        "count_kill_big",
                        .tracepoint,
                        mapOwner: owner
                    )
                }
                #expect(mismatch?.code == .invalidArgument)
                #expect(
                    mismatch?.message
                        == "map \"counter\" of owner \(owner) does not match this object (max entries: 8 vs 1)"
                )
                let missing = await engineError {
                    _ = try await h.load(fixture: "tracepoint_pinned", "pinned_kill", .tracepoint, mapOwner: owner)
                }
                #expect(missing?.message == "map \"eng_pinned_counter\" is not in the map set of owner \(owner)")
                try await h.engine.unload(id: owner)
                // A map set whose owner is gone accepts no new dependants.
                let gone = await engineError {
                    _ = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint, mapOwner: owner)
                }
                #expect(gone?.message == "map_owner_id \(owner) does not exist: map owner not found")
            }
        }

        @Test func programAndLinkLookups() async throws {
            try await withTestEngine("ids") { h in
                #expect(await engineError { try await h.engine.unload(id: 0) }?.message == "program id is required")
                #expect(await engineError { _ = try await h.engine.get(id: 0) }?.message == "program id is required")
                #expect(await engineError { try await h.engine.detach(linkID: 0) }?.message == "link id is required")
                let unknown = await engineError { try await h.engine.unload(id: 4_000_000_000) }
                #expect(unknown?.code == .notFound)
                #expect(unknown?.message == "program 4000000000 does not exist")
                let link = await engineError { try await h.engine.detach(linkID: 77) }
                #expect(link?.code == .notFound)
                #expect(link?.message == "link 77 does not exist")
                // An unmanaged kernel program: Get answers with kernel info only, Unload and Attach refuse.
                let object = try BPFObject.open(
                    path: try BPFFixtures.object("tracepoint_counter"),
                    pinRoot: "/nonexistent"
                )
                try object.load().get()
                let foreign = try BPF.programID(OwnedFD(taking: dup(bpf_program__fd(object.programs[0].handle)))).get()
                let details = try await h.engine.get(id: foreign)
                #expect(details.info == nil)
                let unmanaged = await engineError { try await h.engine.unload(id: foreign) }
                #expect(unmanaged?.code == .notFound)
                #expect(unmanaged?.message == "program \(foreign) exists in the kernel but is not managed by bpfman")
                let attach = await engineError {
                    _ = try await h.engine.attach(programID: foreign, spec: .fentry(metadata: [:]))
                }
                #expect(attach?.code == .notFound)
            }
        }

        /// SPEC §10 scenario 7: an id no program has is NOT_FOUND for Get as for Unload.
        @Test func getOfAnUnknownIDIsNotFound() async throws {
            try await withTestEngine("unknown") { h in
                let error = await engineError { _ = try await h.engine.get(id: 4_000_000_000) }
                #expect(error?.code == .notFound)
                #expect(error?.message == "program 4000000000 does not exist")
            }
        }

        /// The program an attach refusal is tried on.
        enum AttachTarget: String, Sendable {
            case tracepoint, uprobe, tcx, xdp, tc

            var fixture: (object: String, program: String, type: BpfmanProgramType) {
                switch self {
                case .tracepoint: ("tracepoint_counter", "count_kill", .tracepoint)
                case .uprobe: ("uprobe_counter", "count_call", .uprobe)
                case .tcx: ("tcx_counter", "tcx_count", .tcx)
                case .xdp: ("xdp_counter", "xdp_count_pass", .xdp)
                case .tc: ("tc_counter", "tc_count_ok", .tc)
                }
            }
        }

        /// One attach the engine refuses: the program kind, the spec, and the error.
        struct AttachRefusal: Sendable, CustomTestStringConvertible {
            var target: AttachTarget
            var spec: @Sendable (_ netns: String) -> AttachSpec
            var code: EngineError.Code
            /// `{id}` stands for the program's id, `{netns}` for the veth pair's netns.
            var message: String
            /// The spec names the veth pair's second netns (`VethPair.netnsB`).
            var needsVeth = false
            var testDescription: String

            init(
                _ target: AttachTarget,
                _ description: String,
                spec: @escaping @Sendable (_ netns: String) -> AttachSpec,
                _ code: EngineError.Code,
                needsVeth: Bool = false,
                _ message: String
            ) {
                self.target = target
                self.spec = spec
                self.code = code
                self.message = message
                self.needsVeth = needsVeth
                self.testDescription = "\(target.rawValue): \(description)"
            }
        }

        static let attachRefusals: [AttachRefusal] = [
            // SPEC §10 scenario 10: a program attached as another kind.
            AttachRefusal(
                .uprobe,
                "as kprobe",
                spec: { _ in .kprobe(KprobeAttach(fnName: "x")) },
                .failedPrecondition,
                "program {id} is a uprobe program; the kprobe attach accepts kprobe or kretprobe"
            ),
            AttachRefusal(
                .tracepoint,
                "as tcx",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "lo", direction: "ingress")) },
                .failedPrecondition,
                "program {id} is a tracepoint program; the tcx attach accepts tcx"
            ),
            AttachRefusal(
                .uprobe,
                "as tracepoint",
                spec: { _ in .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill")) },
                .failedPrecondition,
                "program {id} is a uprobe program; the tracepoint attach accepts tracepoint"
            ),
            AttachRefusal(
                .tc,
                "as xdp",
                spec: { _ in .xdp(XDPAttach(priority: 1, iface: "lo")) },
                .failedPrecondition,
                "program {id} is a tc program; the xdp attach accepts xdp"
            ),
            AttachRefusal(
                .xdp,
                "as tc",
                spec: { _ in .tc(TCAttach(priority: 1, iface: "lo", direction: "ingress")) },
                .failedPrecondition,
                "program {id} is a xdp program; the tc attach accepts tc"
            ),
            AttachRefusal(
                .tc,
                "as tcx",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "lo", direction: "ingress")) },
                .failedPrecondition,
                "program {id} is a tc program; the tcx attach accepts tcx"
            ),
            AttachRefusal(
                .tcx,
                "as tc",
                spec: { _ in .tc(TCAttach(priority: 1, iface: "lo", direction: "ingress")) },
                .failedPrecondition,
                "program {id} is a tcx program; the tc attach accepts tc"
            ),
            // Tracepoint names.
            AttachRefusal(
                .tracepoint,
                "no group",
                spec: { _ in .tracepoint(TracepointAttach(tracepoint: "sys_enter_kill")) },
                .invalidArgument,
                "invalid tracepoint \"sys_enter_kill\": expected group/name (e.g. sched/sched_switch)"
            ),
            AttachRefusal(
                .tracepoint,
                "space in name",
                spec: { _ in .tracepoint(TracepointAttach(tracepoint: "syscalls/ sys_enter_kill")) },
                .invalidArgument,
                "invalid tracepoint \"syscalls/ sys_enter_kill\": expected group/name (e.g. sched/sched_switch)"
            ),
            AttachRefusal(
                .tracepoint,
                "unknown tracepoint",
                spec: { _ in .tracepoint(TracepointAttach(tracepoint: "nogroup/noevent")) },
                .notFound,
                "tracepoint \"nogroup/noevent\" not found"
            ),
            // Uprobe targets.
            AttachRefusal(
                .uprobe,
                "empty target",
                spec: { _ in .uprobe(UprobeAttach(target: "")) },
                .invalidArgument,
                "target is required for uprobe attachment"
            ),
            AttachRefusal(
                .uprobe,
                "negative pid",
                spec: { _ in .uprobe(UprobeAttach(target: "libc", pid: -1)) },
                .invalidArgument,
                "pid must be non-negative, got -1"
            ),
            AttachRefusal(
                .uprobe,
                "negative container pid",
                spec: { _ in .uprobe(UprobeAttach(target: "libc", containerPid: -2)) },
                .invalidArgument,
                "container_pid must be non-negative, got -2"
            ),
            AttachRefusal(
                .uprobe,
                "missing file",
                spec: { _ in .uprobe(UprobeAttach(target: "/nonexistent/bin")) },
                .invalidArgument,
                "uprobe target \"/nonexistent/bin\" could not be resolved: no such file"
            ),
            AttachRefusal(
                .uprobe,
                "unknown library",
                spec: { _ in .uprobe(UprobeAttach(target: "libnosuchlibrary")) },
                .invalidArgument,
                "uprobe target \"libnosuchlibrary\" could not be resolved: no entry for libnosuchlibrary.so in /etc/ld.so.cache"
            ),
            AttachRefusal(
                .uprobe,
                "unknown symbol",
                spec: { _ in .uprobe(UprobeAttach(fnName: "no_such_symbol_here", target: "/bin/true")) },
                .invalidArgument,
                "symbol \"no_such_symbol_here\" not found in /bin/true"
            ),
            AttachRefusal(
                .uprobe,
                "container without mount namespace",
                spec: { _ in .uprobe(UprobeAttach(target: "libc", containerPid: 999_999_999)) },
                .invalidArgument,
                "container pid 999999999 has no mount namespace (tried /proc/999999999/ns/mnt and /host/proc/999999999/ns/mnt)"
            ),
            // TCX interfaces, priorities, directions and namespaces.
            AttachRefusal(
                .tcx,
                "empty iface",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "", direction: "ingress")) },
                .invalidArgument,
                "iface is required"
            ),
            AttachRefusal(
                .tcx,
                "slash in iface",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "a/b", direction: "ingress")) },
                .invalidArgument,
                "invalid interface name \"a/b\""
            ),
            AttachRefusal(
                .tcx,
                "negative priority",
                spec: { _ in .tcx(TCXAttach(priority: -1, iface: "lo", direction: "ingress")) },
                .invalidArgument,
                "priority must be non-negative, got -1"
            ),
            AttachRefusal(
                .tcx,
                "unknown direction",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "lo", direction: "sideways")) },
                .invalidArgument,
                "invalid TC direction \"sideways\": must be 'ingress' or 'egress'"
            ),
            AttachRefusal(
                .tcx,
                "missing netns",
                spec: { _ in
                    .tcx(TCXAttach(priority: 1, iface: "lo", direction: "ingress", netns: "/var/run/netns/eng-none"))
                },
                .invalidArgument,
                "netns \"/var/run/netns/eng-none\" is not a network namespace: No such file or directory"
            ),
            AttachRefusal(
                .tcx,
                "netns not a namespace",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "lo", direction: "ingress", netns: "/etc/hostname")) },
                .invalidArgument,
                "netns \"/etc/hostname\" is not a network namespace: Invalid argument"
            ),
            AttachRefusal(
                .tcx,
                "iface missing in netns",
                spec: { netns in .tcx(TCXAttach(priority: 1, iface: "engv0", direction: "ingress", netns: netns)) },
                .invalidArgument,
                needsVeth: true,
                "interface \"engv0\" not found in netns \"{netns}\""
            ),
            AttachRefusal(
                .tcx,
                "iface missing in host",
                spec: { _ in .tcx(TCXAttach(priority: 1, iface: "nope0", direction: "ingress")) },
                .invalidArgument,
                "interface \"nope0\" not found in netns \"host\""
            ),
        ]

        /// Each refusal has its code and message and leaves no link record and no link pin behind (SPEC §3.3).
        @Test(arguments: attachRefusals)
        func attachValidation(_ refusal: AttachRefusal) async throws {
            let veth = refusal.needsVeth ? try VethPair() : nil
            defer { veth?.remove() }
            let netns = veth?.netnsB ?? ""
            try await withTestEngine("aerr") { h in
                let fixture = refusal.target.fixture
                let id = try await h.load(fixture: fixture.object, fixture.program, fixture.type)
                let error = await engineError {
                    _ = try await h.engine.attach(programID: id, spec: refusal.spec(netns))
                }
                #expect(error?.code == refusal.code)
                let message = refusal.message.replacingOccurrences(of: "{id}", with: "\(id)")
                    .replacingOccurrences(of: "{netns}", with: netns)
                #expect(error?.message == message)
                let links = try? await h.engine.links()
                #expect(links?.isEmpty == true, "no link record")
                #expect(!filesUnder(h.paths.bpffs).contains { $0.hasPrefix("links/") }, "no link pin")
                try await h.engine.unload(id: id)
            }
        }

        /// A failed attach leaves no link behind and the next attach works.
        @Test func anAttachAfterARefusalWorks() async throws {
            try await withTestEngine("aerr") { h in
                let tp = try await h.load(fixture: "tracepoint_counter", "count_kill", .tracepoint)
                let refused = await engineError {
                    _ = try await h.engine.attach(
                        programID: tp,
                        spec: .tracepoint(TracepointAttach(tracepoint: "nogroup/noevent"))
                    )
                }
                #expect(refused?.code == .notFound)
                let link = try await h.engine.attach(
                    programID: tp,
                    spec: .tracepoint(TracepointAttach(tracepoint: "syscalls/sys_enter_kill"))
                )
                try await h.engine.detach(linkID: link)
                try await h.engine.unload(id: tp)
            }
        }
    }
}
